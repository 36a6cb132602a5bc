//! Stage 4, yuv: RGB8 -> BT.601 limited-range Y'CbCr 4:2:0 (CPU twin of `yuv.wgsl`).
//!
//! Converting the delivered RGB8 (not the floats before it) keeps the video and the PNG frames
//! in agreement. Chroma is the mean of each 2x2 block, edge pixels repeated for odd sizes.

use super::Yuv420;

/// `floor(v + 0.5)` clamped to 0-255, as the shader's `quantise`: the saturating cast
/// truncates, which is the floor for every value it does not saturate.
fn quantise(v: f32) -> u8 {
    (v + 0.5) as u8
}

fn luma(c: [f32; 3]) -> u8 {
    quantise(16.0 + 0.256788 * c[0] + 0.504129 * c[1] + 0.097906 * c[2])
}

fn chroma(c: [f32; 3]) -> (u8, u8) {
    let cb = 128.0 - 0.148223 * c[0] - 0.290993 * c[1] + 0.439216 * c[2];
    let cr = 128.0 + 0.439216 * c[0] - 0.367788 * c[1] - 0.071427 * c[2];
    (quantise(cb), quantise(cr))
}

fn pixel(row: &[u8], x: usize) -> [f32; 3] {
    let p = &row[3 * x..3 * x + 3];
    [p[0] as f32, p[1] as f32, p[2] as f32]
}

/// One `width` x `height` RGB8 frame in Y'CbCr 4:2:0.
pub fn rgb_to_yuv420(rgb: &[u8], width: usize, height: usize) -> Yuv420 {
    let y = rgb
        .chunks_exact(3)
        .map(|p| luma([p[0] as f32, p[1] as f32, p[2] as f32]))
        .collect();
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let row = |r: usize| &rgb[r * width * 3..(r + 1) * width * 3];
    let (mut u, mut v) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
    for cy in 0..ch {
        let (top, bottom) = (row(2 * cy), row((2 * cy + 1).min(height - 1)));
        for cx in 0..cw {
            let (x, x1) = (2 * cx, (2 * cx + 1).min(width - 1));
            let block = [
                pixel(top, x),
                pixel(top, x1),
                pixel(bottom, x),
                pixel(bottom, x1),
            ];
            let mean =
                [0, 1, 2].map(|c| (block[0][c] + block[1][c] + block[2][c] + block[3][c]) * 0.25);
            let (cb, cr) = chroma(mean);
            u.push(cb);
            v.push(cr);
        }
    }
    Yuv420 {
        width,
        height,
        y,
        u,
        v,
    }
}
