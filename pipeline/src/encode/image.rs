//! Single RGB8 frames as PNG (png crate): the stored frames, which `/frames/{n}` and the live
//! stream serve as they are.

use anyhow::{ensure, Context as _, Result};

fn check(width: u32, height: u32, rgb: &[u8]) -> Result<()> {
    ensure!(
        rgb.len() == width as usize * height as usize * 3,
        "{} bytes are not a {width}x{height} RGB8 image",
        rgb.len()
    );
    Ok(())
}

/// A `width` x `height` RGB8 image (rows top to bottom) as PNG.
pub fn png_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>> {
    check(width, height, rgb)?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Fast filtering: frames are written as they are made, and flat pictures compress anyway.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().context("writing PNG header")?;
    writer.write_image_data(rgb).context("writing PNG data")?;
    writer.finish().context("finishing PNG")?;
    Ok(out)
}
