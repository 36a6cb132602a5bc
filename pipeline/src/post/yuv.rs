//! Stage 3, yuv: RGB8 -> BT.601 limited-range Y'CbCr 4:2:0 (CPU twin of `yuv.wgsl`).
//!
//! Converting the delivered RGB8 (not the floats before it) keeps the video and the PNG frames
//! in agreement. Chroma is the mean of each 2x2 block, edge pixels repeated for odd sizes.

use rayon::prelude::*;

use super::Yuv420;

fn quantise(v: f32) -> u8 {
    (v + 0.5).floor().clamp(0.0, 255.0) as u8
}

fn luma(c: [f32; 3]) -> u8 {
    quantise(16.0 + 0.256788 * c[0] + 0.504129 * c[1] + 0.097906 * c[2])
}

fn chroma(c: [f32; 3]) -> (u8, u8) {
    let cb = 128.0 - 0.148223 * c[0] - 0.290993 * c[1] + 0.439216 * c[2];
    let cr = 128.0 + 0.439216 * c[0] - 0.367788 * c[1] - 0.071427 * c[2];
    (quantise(cb), quantise(cr))
}

/// One `side` x `side` RGB8 frame in Y'CbCr 4:2:0.
pub fn rgb_to_yuv420(rgb: &[u8], side: usize) -> Yuv420 {
    let at = |x: usize, y: usize| {
        let p = 3 * (y * side + x);
        [rgb[p] as f32, rgb[p + 1] as f32, rgb[p + 2] as f32]
    };
    let y = (0..side * side)
        .map(|i| luma(at(i % side, i / side)))
        .collect();
    let cs = side.div_ceil(2);
    let (u, v) = (0..cs * cs)
        .map(|i| {
            let (x, y) = (2 * (i % cs), 2 * (i / cs));
            let (x1, y1) = ((x + 1).min(side - 1), (y + 1).min(side - 1));
            let blocks = [at(x, y), at(x1, y), at(x, y1), at(x1, y1)];
            let mean = [0, 1, 2]
                .map(|c| (blocks[0][c] + blocks[1][c] + blocks[2][c] + blocks[3][c]) * 0.25);
            chroma(mean)
        })
        .unzip();
    Yuv420 {
        width: side,
        height: side,
        y,
        u,
        v,
    }
}

/// Every frame, in parallel.
pub(crate) fn convert(rgb: &[Vec<u8>], side: usize) -> Vec<Yuv420> {
    rgb.par_iter().map(|f| rgb_to_yuv420(f, side)).collect()
}
