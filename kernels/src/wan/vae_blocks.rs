//! The blocks of the Wan VAE decoder (diffusers' `WanResidualBlock`, `WanAttentionBlock`,
//! `WanResample` in its upsampling modes) on frames stored channels-last, and the per-frame
//! feature cache that lets them run one latent frame at a time.
//!
//! The math (no dropout at inference):
//!
//! - RMS norm (`WanRMS_norm`, no bias in the decoder): per pixel, over its `C` channels,
//!   `y = x / max(||x||_2, 1e-12) * sqrt(C) * gamma` (`F.normalize`, an L2 normalisation, not
//!   T5's mean of squares).
//! - SiLU: `x * sigmoid(x)`.
//! - Residual block: `shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`, both convs
//!   causal 3x3x3, the shortcut a 1x1x1 conv when the width changes (else the identity).
//! - Attention block, per frame: `x + proj(softmax(q k^T / sqrt(C)) v)` with
//!   `[q | k | v] = to_qkv(norm(x))` (1x1 convs), one head over the frame's `H * W` pixels.
//! - Upsampler: in `upsample3d` mode first a causal `(3, 1, 1)` conv from `C` to `2C` channels
//!   whose output frame `t` becomes frames `2t` (channels `0..C`) and `2t + 1` (`C..2C`),
//!   doubling time; then, in both modes, per frame a nearest 2x spatial upsampling and a 3x3
//!   conv (zero padding 1) from `C` to `C / 2` channels.
//!
//! The feature cache: each causal conv keeps the last 2 frames of its input from one call to
//! the next ([`Slot`]), zeros before the first, so that decoding frame by frame equals one
//! causal conv over the whole video. The temporal upsampler is the exception diffusers makes:
//! on the first latent frame it does not run at all (its slot becomes `Rep`, so that the first
//! latent frame decodes to a single frame), and its stream of inputs starts at the second
//! latent frame, with zeros before it.

use rayon::prelude::*;

use super::conv3d::Conv;
use super::umt5::silu;
use super::WanLoadError;
use crate::cpu::gemm::{gemm, Operand, PackedB};

/// Queries per attention task.
const QUERY_ROWS: usize = 64;
/// Pixels per normalisation task.
const NORM_ROWS: usize = 256;

/// Frames stored channels-last: element `(t, y, x, c)` at `((t * h + y) * w + x) * c`.
#[derive(Clone)]
pub(crate) struct Frames {
    pub t: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Frames {
    pub(crate) fn zeros(t: usize, h: usize, w: usize, c: usize) -> Frames {
        Frames {
            t,
            h,
            w,
            c,
            data: vec![0.0; t * h * w * c],
        }
    }

    fn frame_len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// Frames of the same shape holding `data`.
    pub(crate) fn with_data(&self, data: Vec<f32>) -> Frames {
        debug_assert_eq!(data.len(), self.data.len());
        Frames { data, ..*self }
    }
}

/// One causal conv's entry in the feature cache (diffusers' `feat_cache[idx]`).
#[derive(Default)]
pub(crate) enum Slot {
    /// Nothing decoded yet (`None`): the causal padding is zeros.
    #[default]
    Empty,
    /// A temporal upsampler that has skipped the first latent frame (`"Rep"`): its conv has
    /// not run yet, so its causal padding is zeros too.
    Rep,
    /// The last `kt - 1` frames of the conv's input stream.
    Cached(Vec<f32>),
}

/// The cache entries of one decoding call, handed out in the order the convs run (diffusers'
/// `feat_idx`).
pub(crate) type Slots<'a> = std::slice::IterMut<'a, Slot>;

fn next<'a>(slots: &mut Slots<'a>) -> &'a mut Slot {
    slots
        .next()
        .expect("the feature cache has a slot per causal conv")
}

/// The RMS norm of every pixel of `x` (`c` channels each), optionally followed by SiLU.
pub(crate) fn rms_norm(x: &[f32], c: usize, gamma: &[f32], then_silu: bool) -> Vec<f32> {
    let scale = (c as f64).sqrt() as f32;
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(NORM_ROWS * c)
        .zip(x.par_chunks(NORM_ROWS * c))
        .for_each(|(out, x)| {
            for (o, x) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                for ((o, &v), &g) in o.iter_mut().zip(x).zip(gamma) {
                    let y = v / norm * scale * g;
                    *o = if then_silu { silu(y) } else { y };
                }
            }
        });
    out
}

/// A conv with no extent in time (`kt` = 1) over every frame of `x`.
pub(crate) fn per_frame(conv: &Conv, x: &Frames) -> Frames {
    debug_assert_eq!(conv.kt(), 1);
    let mut out = Frames::zeros(x.t, x.h, x.w, conv.cout());
    let stream: Vec<Option<&[f32]>> = x.data.chunks_exact(x.frame_len()).map(Some).collect();
    conv.apply(&stream, x.c, x.h, x.w, false, &mut out.data);
    out
}

/// A causal conv over `x`, continuing the stream its `slot` caches, which it then updates.
pub(crate) fn causal(conv: &Conv, x: &Frames, slot: &mut Slot) -> Frames {
    let keep = conv.kt() - 1;
    let len = x.frame_len();
    let mut out = Frames::zeros(x.t, x.h, x.w, conv.cout());
    let cached = {
        let cache = match slot {
            Slot::Cached(frames) => Some(frames.as_slice()),
            Slot::Empty | Slot::Rep => None,
        };
        let mut stream: Vec<Option<&[f32]>> = (0..keep)
            .map(|i| cache.map(|c| &c[i * len..(i + 1) * len]))
            .collect();
        stream.extend(x.data.chunks_exact(len).map(Some));
        conv.apply(&stream, x.c, x.h, x.w, false, &mut out.data);
        let mut cached = vec![0.0f32; keep * len];
        for (dst, src) in cached
            .chunks_exact_mut(len)
            .zip(&stream[stream.len() - keep..])
        {
            if let Some(src) = src {
                dst.copy_from_slice(src);
            }
        }
        cached
    };
    *slot = Slot::Cached(cached);
    out
}

/// Reads a norm's gamma, a conv's weights, for the blocks below.
pub(crate) trait Params {
    /// The named tensor widened to f32, checked to have `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WanLoadError>;

    /// `{prefix}.weight` `[cout, cin, kt, kh, kw]` (`[cout, cin, kh, kw]` when `kt` is 0:
    /// a 2D conv) and `{prefix}.bias` as a [`Conv`] with `k x k` spatial taps, or `1 x 1`
    /// ones when `k` is 1 (a `(kt, 1, 1)` kernel).
    fn conv(
        &self,
        prefix: &str,
        cin: usize,
        cout: usize,
        kt: usize,
        k: usize,
    ) -> Result<Conv, WanLoadError> {
        let mut shape = vec![cout, cin];
        if kt > 0 {
            shape.push(kt);
        }
        shape.extend([k, k]);
        let weight = self.get(&format!("{prefix}.weight"), &shape)?;
        let bias = self.get(&format!("{prefix}.bias"), &[cout])?;
        Ok(Conv::new(cin, cout, kt.max(1), k, &weight, bias))
    }
}

/// `WanResidualBlock`.
pub(crate) struct Residual {
    norm1: Vec<f32>,
    conv1: Conv,
    norm2: Vec<f32>,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl Residual {
    pub(crate) fn load(
        p: &impl Params,
        prefix: &str,
        cin: usize,
        cout: usize,
    ) -> Result<Residual, WanLoadError> {
        Ok(Residual {
            norm1: p.get(&format!("{prefix}.norm1.gamma"), &[cin, 1, 1, 1])?,
            conv1: p.conv(&format!("{prefix}.conv1"), cin, cout, 3, 3)?,
            norm2: p.get(&format!("{prefix}.norm2.gamma"), &[cout, 1, 1, 1])?,
            conv2: p.conv(&format!("{prefix}.conv2"), cout, cout, 3, 3)?,
            shortcut: (cin != cout)
                .then(|| p.conv(&format!("{prefix}.conv_shortcut"), cin, cout, 1, 1))
                .transpose()?,
        })
    }

    /// Causal convs with cache entries: 2.
    pub(crate) const SLOTS: usize = 2;

    pub(crate) fn forward(&self, x: Frames, slots: &mut Slots<'_>) -> Frames {
        let y = x.with_data(rms_norm(&x.data, x.c, &self.norm1, true));
        let h = match &self.shortcut {
            Some(conv) => per_frame(conv, &x),
            None => x,
        };
        let y = causal(&self.conv1, &y, next(slots));
        let y = y.with_data(rms_norm(&y.data, y.c, &self.norm2, true));
        let mut y = causal(&self.conv2, &y, next(slots));
        y.data
            .par_chunks_mut(NORM_ROWS)
            .zip(h.data.par_chunks(NORM_ROWS))
            .for_each(|(y, h)| y.iter_mut().zip(h).for_each(|(y, h)| *y += h));
        y
    }
}

/// `WanAttentionBlock`: single-head self-attention within each frame.
pub(crate) struct Attention {
    norm: Vec<f32>,
    to_qkv: Conv,
    proj: Conv,
}

impl Attention {
    pub(crate) fn load(p: &impl Params, prefix: &str, c: usize) -> Result<Attention, WanLoadError> {
        Ok(Attention {
            norm: p.get(&format!("{prefix}.norm.gamma"), &[c, 1, 1])?,
            to_qkv: p.conv(&format!("{prefix}.to_qkv"), c, 3 * c, 0, 1)?,
            proj: p.conv(&format!("{prefix}.proj"), c, c, 0, 1)?,
        })
    }

    pub(crate) fn forward(&self, mut x: Frames) -> Frames {
        let (n, c) = (x.h * x.w, x.c);
        let normed = x.with_data(rms_norm(&x.data, c, &self.norm, false));
        let qkv = per_frame(&self.to_qkv, &normed);
        let ctx = x.with_data(
            qkv.data
                .chunks_exact(n * 3 * c)
                .flat_map(|qkv| attend(qkv, n, c))
                .collect(),
        );
        let out = per_frame(&self.proj, &ctx);
        x.data
            .par_chunks_mut(NORM_ROWS)
            .zip(out.data.par_chunks(NORM_ROWS))
            .for_each(|(x, o)| x.iter_mut().zip(o).for_each(|(x, o)| *x += o));
        x
    }
}

/// `softmax(q k^T / sqrt(c)) v` of one frame's `n` pixels, `qkv` holding each pixel's
/// `[q | k | v]` (`3c` wide); `[n, c]`. Blocks of queries run on the rayon pool, each a GEMM
/// of its scores against every key, a softmax per row and a GEMM against the values.
fn attend(qkv: &[f32], n: usize, c: usize) -> Vec<f32> {
    let ld = 3 * c;
    let keys_t = PackedB::new(
        c,
        n,
        Operand {
            data: &qkv[c..],
            row_stride: 1,
            col_stride: ld,
        },
    );
    let values = PackedB::new(
        n,
        c,
        Operand {
            data: &qkv[2 * c..],
            row_stride: ld,
            col_stride: 1,
        },
    );
    let (lds, ldo) = (keys_t.padded_n(), values.padded_n());
    let scale = 1.0 / (c as f32).sqrt();
    let mut ctx = vec![0.0f32; n * c];
    ctx.par_chunks_mut(QUERY_ROWS * c)
        .enumerate()
        .for_each(|(block, ctx)| {
            let rows = ctx.len() / c;
            let mut scores = vec![0.0f32; rows * lds];
            gemm(
                rows,
                &qkv[block * QUERY_ROWS * ld..],
                ld,
                &keys_t,
                &mut scores,
                lds,
                false,
            );
            for row in scores.chunks_exact_mut(lds) {
                let row = &mut row[..n];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s * scale));
                let mut sum = 0.0f32;
                for s in row.iter_mut() {
                    *s = (*s * scale - max).exp();
                    sum += *s;
                }
                for s in row.iter_mut() {
                    *s /= sum;
                }
            }
            let mut out = vec![0.0f32; rows * ldo];
            gemm(rows, &scores, lds, &values, &mut out, ldo, false);
            for (ctx, out) in ctx.chunks_exact_mut(c).zip(out.chunks_exact(ldo)) {
                ctx.copy_from_slice(&out[..c]);
            }
        });
    ctx
}

/// `WanResample` in `upsample2d` (no `time_conv`) or `upsample3d` mode, `c` to `c / 2`
/// channels.
pub(crate) struct Upsample {
    time_conv: Option<Conv>,
    conv: Conv,
}

impl Upsample {
    pub(crate) fn load(
        p: &impl Params,
        prefix: &str,
        c: usize,
        temporal: bool,
    ) -> Result<Upsample, WanLoadError> {
        Ok(Upsample {
            time_conv: temporal
                .then(|| p.conv(&format!("{prefix}.time_conv"), c, 2 * c, 3, 1))
                .transpose()?,
            conv: p.conv(&format!("{prefix}.resample.1"), c, c / 2, 0, 3)?,
        })
    }

    /// Cache entries: 1 in `upsample3d` mode.
    pub(crate) fn slots(&self) -> usize {
        usize::from(self.time_conv.is_some())
    }

    /// Frames each input frame becomes (after the first latent frame).
    pub(crate) fn time_factor(&self) -> usize {
        1 + self.slots()
    }

    pub(crate) fn forward(&self, x: Frames, slots: &mut Slots<'_>) -> Frames {
        let c = x.c;
        let (h, w) = (2 * x.h, 2 * x.w);
        let doubled = self.time_conv.as_ref().and_then(|time_conv| {
            let slot = next(slots);
            if matches!(slot, Slot::Empty) {
                // The first latent frame: no time upsampling (diffusers' "Rep").
                *slot = Slot::Rep;
                None
            } else {
                Some(causal(time_conv, &x, slot))
            }
        });
        // The frames to upsample in space, pixels `ld` apart.
        let (frames, ld): (Vec<&[f32]>, usize) = match &doubled {
            None => (x.data.chunks_exact(x.frame_len()).collect(), c),
            // Output frame t's channels 0..c are frame 2t, c..2c frame 2t + 1.
            Some(y) => (
                y.data
                    .chunks_exact(y.frame_len())
                    .flat_map(|f| [f, &f[c..]])
                    .collect(),
                2 * c,
            ),
        };
        let mut out = Frames::zeros(frames.len(), h, w, self.conv.cout());
        let stream: Vec<Option<&[f32]>> = frames.into_iter().map(Some).collect();
        self.conv.apply(&stream, ld, h, w, true, &mut out.data);
        out
    }
}
