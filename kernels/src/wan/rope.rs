//! Wan's 3D rotary position embedding (diffusers' `WanRotaryPosEmbed` and the rotation in
//! `WanAttnProcessor`).
//!
//! A head of width `d` is split into a frame part of `d - 4 floor(d / 6)` channels and a
//! height and a width part of `2 floor(d / 6)` each, in that order. Within a part of width
//! `d_a`, channel pair `(2j, 2j + 1)` (interleaved pairs, not halves) is rotated by the angle
//! `pos * theta^(-2j / d_a)`, `theta = 10000`, where `pos` is the token's frame, row or column
//! index in the patch grid:
//!
//! `out[2j] = x[2j] cos - x[2j+1] sin`, `out[2j+1] = x[2j] sin + x[2j+1] cos`.
//!
//! Angles, cosines and sines are computed in f64 and rounded to f32, as diffusers does; the
//! rotation itself is f32.

use rayon::prelude::*;

/// The cosines and sines of every token of one patch grid, `tokens x d / 2` each.
#[derive(Debug, Clone)]
pub(crate) struct Rope {
    pairs: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    /// The tables for a `frames x height x width` patch grid (tokens in that order, width
    /// fastest) and heads `head_dim` wide (even).
    pub(crate) fn new(head_dim: usize, grid: [usize; 3]) -> Rope {
        assert!(
            head_dim.is_multiple_of(2),
            "RoPE: odd head width {head_dim}"
        );
        let hw = 2 * (head_dim / 6);
        let dims = [head_dim - 2 * hw, hw, hw];
        let pairs = head_dim / 2;
        // Per pair: which grid axis and which inverse frequency.
        let mut axis_freq = Vec::with_capacity(pairs);
        for (axis, &d) in dims.iter().enumerate() {
            for j in 0..d / 2 {
                let inv = 1.0 / 10000f64.powf((2 * j) as f64 / d as f64);
                axis_freq.push((axis, inv));
            }
        }
        let [f, h, w] = grid;
        let tokens = f * h * w;
        let mut cos = vec![0.0f32; tokens * pairs];
        let mut sin = vec![0.0f32; tokens * pairs];
        for t in 0..tokens {
            let pos = [t / (h * w), (t / w) % h, t % w];
            for (p, &(axis, inv)) in axis_freq.iter().enumerate() {
                let angle = pos[axis] as f64 * inv;
                cos[t * pairs + p] = angle.cos() as f32;
                sin[t * pairs + p] = angle.sin() as f32;
            }
        }
        Rope { pairs, cos, sin }
    }

    /// Rotates, in place, every head of the grid's rows of `x` (rows `ld` apart, `heads`
    /// heads of `head_dim` side by side from column `col0`).
    pub(crate) fn apply(&self, x: &mut [f32], ld: usize, col0: usize, heads: usize) {
        let pairs = self.pairs;
        let tokens = self.cos.len() / pairs;
        x[..tokens * ld]
            .par_chunks_mut(ld)
            .enumerate()
            .for_each(|(t, row)| {
                let cos = &self.cos[t * pairs..(t + 1) * pairs];
                let sin = &self.sin[t * pairs..(t + 1) * pairs];
                for head in row[col0..col0 + heads * 2 * pairs].chunks_exact_mut(2 * pairs) {
                    for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                        let (x1, x2) = (pair[0], pair[1]);
                        pair[0] = x1 * c - x2 * s;
                        pair[1] = x1 * s + x2 * c;
                    }
                }
            });
    }
}
