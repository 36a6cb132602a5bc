//! The convolutions of the Wan VAE decoder on the CPU in f32, over frames stored
//! channels-last (`[T, H, W, C]`, a pixel's channels contiguous).
//!
//! One [`Conv`] covers every kind the decoder has: the causal 3D convolutions (`kt` = 3 taps in
//! time, 3x3 or 1x1 in space, zero padding of 1 in space), the 1x1x1 ones, the `(3, 1, 1)`
//! temporal convolution of the upsampler and the 2D 3x3 ones (`kt` = 1), the last optionally
//! reading its input through a nearest 2x upsampling. Output frame `t` is
//!
//! `out[t][y, x, o] = bias[o] + sum_{dt, dy, dx, i} in[t + dt][y + dy - p, x + dx - p, i]
//!                    * w[o, i, dt, dy, dx]`
//!
//! over the *stream* of input frames, which for a causal convolution starts with the last
//! `kt - 1` input frames of the previous call (its cache, zeros before the first call: the
//! causal padding), so that calling it frame by frame equals calling it on the whole video.
//! A stream frame given as `None` is known to be zeros and its taps are skipped.
//!
//! Each time tap is one GEMM (`crate::cpu::gemm`) of a block of output pixels' im2col rows
//! (`k * k * Cin` wide, gathered into a per-thread buffer; a 1x1 tap reads the input in place)
//! against the tap's weights packed once at load as `[k * k * Cin, Cout]`; the taps accumulate.
//! Blocks of pixels of every output frame run on the rayon pool.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::cpu::gemm::{gemm, PackedB};

/// Output pixels per rayon task (one GEMM's rows).
const ROWS: usize = 64;

thread_local! {
    /// Each compute thread's im2col rows and tap sums, kept from call to call.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A convolution's weights, f32, packed per time tap for the GEMM.
pub(crate) struct Conv {
    cin: usize,
    cout: usize,
    /// Taps in time.
    kt: usize,
    /// Taps in each spatial direction (1 or 3; padding `k / 2`).
    k: usize,
    /// One `[k * k * cin, cout]` matrix per time tap, rows in `(dy, dx, i)` order.
    taps: Vec<PackedB>,
    bias: Vec<f32>,
}

impl Conv {
    /// From a PyTorch weight `[cout, cin, kt, k, k]` (a 2D one, `[cout, cin, k, k]`, with
    /// `kt` = 1) and its bias, both row-major.
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        kt: usize,
        k: usize,
        weight: &[f32],
        bias: Vec<f32>,
    ) -> Conv {
        assert_eq!(weight.len(), cout * cin * kt * k * k, "conv weight size");
        assert_eq!(bias.len(), cout, "conv bias size");
        let rows = k * k * cin;
        let taps = (0..kt)
            .map(|dt| {
                let mut dense = vec![0.0f32; rows * cout];
                for o in 0..cout {
                    for i in 0..cin {
                        for dy in 0..k {
                            for dx in 0..k {
                                let src = (((o * cin + i) * kt + dt) * k + dy) * k + dx;
                                dense[((dy * k + dx) * cin + i) * cout + o] = weight[src];
                            }
                        }
                    }
                }
                PackedB::row_major(rows, cout, &dense)
            })
            .collect();
        Conv {
            cin,
            cout,
            kt,
            k,
            taps,
            bias,
        }
    }

    pub(crate) fn cout(&self) -> usize {
        self.cout
    }

    /// Taps in time: the stream holds `kt - 1` frames more than the output.
    pub(crate) fn kt(&self) -> usize {
        self.kt
    }

    /// Convolves the stream of input frames into `out` (`[T, h, w, cout]`,
    /// `T = stream.len() - (kt - 1)`). Pixel `p` of a stream frame has its `cin` channels at
    /// `p * ld..`; frames are `[h, w]`, or `[h / 2, w / 2]` read as their nearest 2x upsampling
    /// when `upsample`.
    pub(crate) fn apply(
        &self,
        stream: &[Option<&[f32]>],
        ld: usize,
        h: usize,
        w: usize,
        upsample: bool,
        out: &mut [f32],
    ) {
        let hw = h * w;
        let frames = stream.len() + 1 - self.kt;
        assert_eq!(out.len(), frames * hw * self.cout, "conv output size");
        assert!(ld >= self.cin, "conv input stride");
        let (ih, iw) = if upsample { (h / 2, w / 2) } else { (h, w) };
        assert!(
            !upsample || (h.is_multiple_of(2) && w.is_multiple_of(2)),
            "odd upsampled size"
        );
        for frame in stream.iter().flatten() {
            assert!(
                ih * iw == 0 || (ih * iw - 1) * ld + self.cin <= frame.len(),
                "conv input frame too short"
            );
        }
        if hw == 0 || self.cout == 0 {
            return;
        }
        let (cin, cout, k) = (self.cin, self.cout, self.k);
        let kk = k * k * cin;
        let ldc = self.taps[0].padded_n();
        // A 1x1 tap over a frame as it is reads the frame in place.
        let direct = k == 1 && !upsample;
        out.par_chunks_mut(hw * cout)
            .enumerate()
            .for_each(|(t, out_frame)| {
                out_frame
                    .par_chunks_mut(ROWS * cout)
                    .enumerate()
                    .for_each(|(block, out_rows)| {
                        let p0 = block * ROWS;
                        let rows = out_rows.len() / cout;
                        SCRATCH.with_borrow_mut(|(cols, sums)| {
                            sums.clear();
                            sums.resize(rows * ldc, 0.0);
                            let mut first = true;
                            for (dt, tap) in self.taps.iter().enumerate() {
                                let Some(input) = stream[t + dt] else {
                                    continue;
                                };
                                if direct {
                                    gemm(rows, &input[p0 * ld..], ld, tap, sums, ldc, !first);
                                } else {
                                    cols.clear();
                                    cols.resize(rows * kk, 0.0);
                                    im2col(input, ld, cin, (ih, iw), w, k, upsample, p0, cols);
                                    gemm(rows, cols, kk, tap, sums, ldc, !first);
                                }
                                first = false;
                            }
                            for (o, s) in out_rows.chunks_exact_mut(cout).zip(sums.chunks(ldc)) {
                                for ((o, s), b) in o.iter_mut().zip(s).zip(&self.bias) {
                                    *o = if first { *b } else { s + b };
                                }
                            }
                        });
                    });
            });
    }
}

/// The im2col rows of output pixels `p0..p0 + cols.len() / (k * k * cin)` (row-major over an
/// output `w` wide): for each, its `k x k` input neighbourhood's channels in `(dy, dx, i)`
/// order, zeros outside the `ih x iw` input (or its 2x upsampling, when `upsample`).
#[allow(clippy::too_many_arguments)]
fn im2col(
    input: &[f32],
    ld: usize,
    cin: usize,
    (ih, iw): (usize, usize),
    w: usize,
    k: usize,
    upsample: bool,
    p0: usize,
    cols: &mut [f32],
) {
    let shift = usize::from(upsample);
    let (h_lim, w_lim) = (ih << shift, iw << shift);
    let pad = k / 2;
    for (r, row) in cols.chunks_exact_mut(k * k * cin).enumerate() {
        let (y, x) = ((p0 + r) / w, (p0 + r) % w);
        for dy in 0..k {
            let yy = (y + dy).wrapping_sub(pad);
            for dx in 0..k {
                let xx = (x + dx).wrapping_sub(pad);
                let dst = &mut row[(dy * k + dx) * cin..][..cin];
                if yy < h_lim && xx < w_lim {
                    let p = (yy >> shift) * iw + (xx >> shift);
                    dst.copy_from_slice(&input[p * ld..p * ld + cin]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a direct loop over the formula, with the stream's zero frames, a 2x upsampled
    /// input and a strided one.
    #[test]
    fn conv_matches_the_formula() {
        let (cin, cout, kt, k) = (3, 5, 3, 3);
        let weight: Vec<f32> = (0..cout * cin * kt * k * k)
            .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.5).collect();
        let conv = Conv::new(cin, cout, kt, k, &weight, bias.clone());
        for (upsample, ld) in [(false, cin), (true, cin), (false, cin + 2)] {
            let (h, w) = (4, 6);
            let (ih, iw) = if upsample { (2, 3) } else { (h, w) };
            let frames: Vec<Vec<f32>> = (0..3)
                .map(|f| {
                    (0..ih * iw * ld)
                        .map(|i| ((i * 5 + f * 3) % 11) as f32 * 0.2 - 1.0)
                        .collect()
                })
                .collect();
            // Stream: a zero frame, then three real ones: two output frames.
            let stream: Vec<Option<&[f32]>> = std::iter::once(None)
                .chain(frames.iter().map(|f| Some(f.as_slice())))
                .collect();
            let mut out = vec![0.0f32; 2 * h * w * cout];
            conv.apply(&stream, ld, h, w, upsample, &mut out);
            for t in 0..2 {
                for y in 0..h {
                    for x in 0..w {
                        for o in 0..cout {
                            let mut want = bias[o] as f64;
                            for dt in 0..kt {
                                let Some(f) = stream[t + dt] else { continue };
                                for dy in 0..k {
                                    for dx in 0..k {
                                        let (yy, xx) = (y + dy, x + dx);
                                        if yy < 1 || xx < 1 || yy > h || xx > w {
                                            continue;
                                        }
                                        let (sy, sx) = if upsample {
                                            ((yy - 1) / 2, (xx - 1) / 2)
                                        } else {
                                            (yy - 1, xx - 1)
                                        };
                                        for i in 0..cin {
                                            let wv = weight
                                                [(((o * cin + i) * kt + dt) * k + dy) * k + dx];
                                            want += (f[(sy * iw + sx) * ld + i] * wv) as f64;
                                        }
                                    }
                                }
                            }
                            let got = out[((t * h + y) * w + x) * cout + o] as f64;
                            assert!((got - want).abs() < 1e-4, "{t} {y} {x} {o}: {got} {want}");
                        }
                    }
                }
            }
        }
    }
}
