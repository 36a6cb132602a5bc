//! Embedding reel's model as a library: generate one scene from a canonical caption with the
//! Rust inference and write its frames as a PNG strip (left to right, one frame per tile).
//!
//! cargo run --release --example generate_frames -- "a small red circle moving left on a black background" strip.png

use std::path::Path;

use anyhow::Context as _;
use kernels::Model;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let caption = args
        .next()
        .unwrap_or_else(|| "a small red circle moving left on a black background".into());
    let out = args.next().unwrap_or_else(|| "strip.png".into());
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);

    let model =
        Model::load(Path::new("model/checkpoint")).context("run from the repository root")?;
    let s = &model.config().sampler;
    let clip = model
        .generate(&[&caption], seed, s.steps, s.guidance, s.method)?
        .remove(0);

    // Frames side by side: [frame][y][x][rgb] -> [y][frame * width + x][rgb].
    let (w, h, n) = (clip.width, clip.height, clip.frames);
    let mut strip = vec![0u8; n * w * h * 3];
    for f in 0..n {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let v = clip.data[((f * h + y) * w + x) * 3 + c];
                    strip[(y * n * w + f * w + x) * 3 + c] = (v * 255.0).round() as u8;
                }
            }
        }
    }
    let png = pipeline::encode::png_rgb((n * w) as u32, h as u32, &strip)?;
    std::fs::write(&out, png).with_context(|| format!("writing {out}"))?;
    println!("{n} frames of {w}x{h} for {caption:?} -> {out}");
    Ok(())
}
