//! The umT5 text encoder (transformers' `UMT5EncoderModel`) on the CPU in f32, and the rule
//! `WanPipeline` applies to its output before the transformer sees it.
//!
//! The math, layer by layer (dropout is off at inference):
//!
//! - `x = shared[ids]` (the encoder's embedding is the shared one; no scaling).
//! - Each block: `x += o(attn(rms(x)))`, then `x += wo(gelu_tanh(wi_0(rms(x))) * wi_1(rms(x)))`.
//! - Self-attention per head: scores `q . k` with no `1/sqrt(d_kv)` scaling, plus the block's
//!   own relative position bias (umT5 has one in every block; T5 only in the first), keys
//!   whose mask is 0 left out. The bias of query `i` and key `j` is
//!   `relative_attention_bias[bucket(j - i), head]`, the bidirectional T5 bucketing.
//! - After the last block, the final RMS norm.
//!
//! RMS norms are T5's: `x * w / sqrt(mean(x^2) + eps)`, no mean subtraction, no bias.
//!
//! Attention runs in tiles of queries against tiles of keys with an online softmax (the
//! module shared with the transformer), so no `seq x seq` score matrix is held; with the bias
//! looked up per relative offset it is `O(seq^2 d)` time and `O(seq d)` memory. The
//! projections are [`Linear`] layers and the embedding a [`Stored`] table: weights stay in the
//! checkpoint's precision (bf16 for the published umT5-xxl: 10.6 GiB instead of 21 GiB in
//! f32) and are widened one GEMM panel group, or one embedding row, at a time. Work is split
//! over rows with rayon (the current pool: run inside `ThreadPool::install` to choose the
//! threads).

use rayon::prelude::*;

use super::attention::{attention, Rows, Shape};
use super::linear::{Linear, Stored};
use super::{Umt5Config, WanCheckpoint, WanLoadError};

/// One encoder block's weights: projections in stored precision, norms and bias in f32.
struct Block {
    attn_norm: Vec<f32>,
    /// q, k and v stacked: `d_model -> 3 * inner`.
    qkv: Linear,
    /// `inner -> d_model`.
    o: Linear,
    /// `[buckets, heads]`, as stored.
    relative_bias: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// wi_0 and wi_1 stacked: `d_model -> 2 * d_ff`.
    wi: Linear,
    /// `d_ff -> d_model`.
    wo: Linear,
}

/// The umT5 encoder of a Wan2.1 checkpoint: projections and embedding in the checkpoint's
/// precision, the small norms and position biases widened to f32 at load.
pub struct Umt5Encoder {
    vocab_size: usize,
    d_model: usize,
    heads: usize,
    d_kv: usize,
    d_ff: usize,
    eps: f32,
    num_buckets: usize,
    max_distance: usize,
    /// `[vocab, d_model]`, in stored precision.
    embed: Stored,
    blocks: Vec<Block>,
    final_norm: Vec<f32>,
}

impl std::fmt::Debug for Umt5Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umt5Encoder")
            .field("vocab_size", &self.vocab_size)
            .field("d_model", &self.d_model)
            .field("heads", &self.heads)
            .field("d_kv", &self.d_kv)
            .field("d_ff", &self.d_ff)
            .field("layers", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

/// `x[r, :d] += y[r, :d]` for every row: a projection's output (rows `ldy` apart) into the
/// residual stream (rows `d` apart).
fn add_rows(x: &mut [f32], y: &[f32], d: usize, ldy: usize) {
    x.par_chunks_mut(d)
        .zip(y.par_chunks(ldy))
        .for_each(|(x, y)| x.iter_mut().zip(y).for_each(|(x, y)| *x += y));
}

/// T5's RMS norm of each `d`-wide row of `x` into `out`.
fn rms_norm(x: &[f32], d: usize, w: &[f32], eps: f32, out: &mut [f32]) {
    out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
        let row = &x[r * d..(r + 1) * d];
        let ss: f32 = row.iter().map(|v| v * v).sum();
        let inv = 1.0 / (ss / d as f32 + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(row).zip(w) {
            *o = w * (v * inv);
        }
    });
}

/// `x * sigmoid(x)`, as PyTorch computes it on the CPU (an exact exp, unlike the CPU
/// backend's fast `cpu::math::silu`: parity with diffusers needs this one).
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gelu_new`: the tanh approximation of GELU.
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// The bucket of relative position `rel = key - query` in umT5's bidirectional bucketing:
/// half the buckets for keys after the query, half for the rest; in each half, distances
/// below a quarter of the buckets get their own bucket, longer ones share log-spaced buckets
/// up to `max_distance`, and everything past it the last one. Computed in f32 as
/// transformers does, so that distances on a bucket boundary land where they do there.
pub fn relative_position_bucket(rel: i64, num_buckets: usize, max_distance: usize) -> usize {
    let half = num_buckets / 2;
    let base = if rel > 0 { half } else { 0 };
    let n = rel.unsigned_abs() as usize;
    let max_exact = half / 2;
    if n < max_exact {
        return base + n;
    }
    let denom = (max_distance as f64 / max_exact as f64).ln() as f32;
    let log_ratio = (n as f32 / max_exact as f32).ln() / denom * (half - max_exact) as f32;
    base + (max_exact + log_ratio as usize).min(half - 1)
}

/// What `WanPipeline` hands the transformer: `hidden` (`seq x d`, as
/// [`Umt5Encoder::encode`] returns it) with every row from the prompt's length on zeroed,
/// the length being the number of nonzero entries of `mask` (the pipeline keeps the first
/// that many rows; its masks are ones then zeros).
pub fn prompt_embeds(mut hidden: Vec<f32>, d: usize, mask: &[u32]) -> Vec<f32> {
    let len = mask.iter().filter(|&&m| m != 0).count();
    let start = (len * d).min(hidden.len());
    hidden[start..].fill(0.0);
    hidden
}

impl Umt5Encoder {
    /// Reads the text encoder's weights from `ckpt`: projections and embedding kept in their
    /// stored precision, norms and relative position biases widened to f32.
    pub fn from_checkpoint(ckpt: &WanCheckpoint) -> Result<Umt5Encoder, WanLoadError> {
        let c: &Umt5Config = ckpt.text_encoder_config();
        let config_path = ckpt.dir.join("text_encoder/config.json");
        let half = c.relative_attention_num_buckets / 2;
        if half / 2 == 0 || c.relative_attention_max_distance <= half / 2 {
            return Err(WanLoadError::Config {
                path: config_path,
                message: format!(
                    "relative_attention_num_buckets {} and relative_attention_max_distance {} \
                     leave no log-spaced buckets (need at least 4 buckets and a distance \
                     past a quarter of them)",
                    c.relative_attention_num_buckets, c.relative_attention_max_distance
                ),
            });
        }
        let weights = ckpt.text_encoder();
        let path = ckpt.dir.join("text_encoder");
        let stored = |name: String, shape: &[usize]| -> Result<Stored, WanLoadError> {
            match weights.tensor(&name) {
                Some(t) if t.shape == shape => Ok(Stored::from_tensor(&t)),
                Some(t) => Err(WanLoadError::WrongShape {
                    path: path.clone(),
                    tensor: name,
                    expected: shape.to_vec(),
                    found: t.shape.to_vec(),
                }),
                None => Err(WanLoadError::MissingTensor {
                    path: path.clone(),
                    tensor: name,
                    expected: shape.to_vec(),
                }),
            }
        };
        let get = |name: String, shape: &[usize]| stored(name, shape).map(|s| s.to_f32());
        let (d, inner, ff) = (c.d_model, c.num_heads * c.d_kv, c.d_ff);
        // umT5's projections have no bias.
        let linear = |input: usize, parts: Vec<Stored>| {
            let weight = Stored::concat(parts);
            let output = weight.len() / input;
            Linear::new(input, output, weight, vec![0.0; output])
        };
        let embed = stored("shared.weight".into(), &[c.vocab_size, d])?;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let b = format!("encoder.block.{i}.layer");
            let attn = |p: &str| format!("{b}.0.SelfAttention.{p}.weight");
            let q = stored(attn("q"), &[inner, d])?;
            let k = stored(attn("k"), &[inner, d])?;
            let v = stored(attn("v"), &[inner, d])?;
            let o = stored(attn("o"), &[d, inner])?;
            let wi_0 = stored(format!("{b}.1.DenseReluDense.wi_0.weight"), &[ff, d])?;
            let wi_1 = stored(format!("{b}.1.DenseReluDense.wi_1.weight"), &[ff, d])?;
            let wo = stored(format!("{b}.1.DenseReluDense.wo.weight"), &[d, ff])?;
            blocks.push(Block {
                attn_norm: get(format!("{b}.0.layer_norm.weight"), &[d])?,
                qkv: linear(d, vec![q, k, v]),
                o: linear(inner, vec![o]),
                relative_bias: get(
                    attn("relative_attention_bias"),
                    &[c.relative_attention_num_buckets, c.num_heads],
                )?,
                ffn_norm: get(format!("{b}.1.layer_norm.weight"), &[d])?,
                wi: linear(d, vec![wi_0, wi_1]),
                wo: linear(ff, vec![wo]),
            });
        }
        let final_norm = get("encoder.final_layer_norm.weight".into(), &[d])?;
        Ok(Umt5Encoder {
            vocab_size: c.vocab_size,
            d_model: d,
            heads: c.num_heads,
            d_kv: c.d_kv,
            d_ff: ff,
            eps: c.layer_norm_epsilon as f32,
            num_buckets: c.relative_attention_num_buckets,
            max_distance: c.relative_attention_max_distance,
            embed,
            blocks,
            final_norm,
        })
    }

    /// Width of the encoder's output rows.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Test knob: zeroes block `layer`'s relative position bias, to show that a test
    /// comparing against the reference notices a missing per-block bias.
    #[doc(hidden)]
    pub fn zero_relative_bias(&mut self, layer: usize) {
        self.blocks[layer].relative_bias.fill(0.0);
    }

    /// The encoder's last hidden state for token `ids` under attention `mask` (1: attend to
    /// this key, 0: a padding key; same length as `ids`), `ids.len() x d_model` row-major.
    /// Every row is computed, padding rows included, as `UMT5EncoderModel` does; see
    /// [`prompt_embeds`] for what the pipeline keeps.
    ///
    /// Panics if the lengths differ or an id is outside the vocabulary (the checkpoint's
    /// tokenizer is checked at load to produce none).
    pub fn encode(&self, ids: &[u32], mask: &[u32]) -> Vec<f32> {
        assert_eq!(ids.len(), mask.len(), "umT5: ids and mask lengths differ");
        let s = ids.len();
        let d = self.d_model;
        let inner = self.heads * self.d_kv;
        if s == 0 {
            return Vec::new();
        }
        // The residual stream, `s x d`; embedding rows widened one at a time.
        let mut x = vec![0.0f32; s * d];
        for (row, &id) in x.chunks_exact_mut(d).zip(ids) {
            let id = id as usize;
            assert!(
                id < self.vocab_size,
                "umT5: token id {id} outside the vocabulary"
            );
            self.embed.widen(id * d, row);
        }

        // Bucket of every relative offset j - i, indexed by j - i + s - 1.
        let buckets: Vec<usize> = (0..2 * s - 1)
            .map(|r| {
                relative_position_bucket(
                    r as i64 - (s as i64 - 1),
                    self.num_buckets,
                    self.max_distance,
                )
            })
            .collect();
        let keep: Vec<bool> = mask.iter().map(|&m| m != 0).collect();

        let mut normed = vec![0.0f32; s * d];
        let mut ctx = vec![0.0f32; s * inner];
        let mut bias = vec![0.0f32; self.heads * (2 * s - 1)];
        for block in &self.blocks {
            rms_norm(&x, d, &block.attn_norm, self.eps, &mut normed);
            let ldqkv = block.qkv.padded_out();
            let qkv = block.qkv.apply(s, &normed, d);
            for (h, row) in bias.chunks_exact_mut(2 * s - 1).enumerate() {
                for (b, &bucket) in row.iter_mut().zip(&buckets) {
                    *b = block.relative_bias[bucket * self.heads + h];
                }
            }
            let rows = |offset: usize| Rows {
                data: &qkv[offset..],
                ld: ldqkv,
            };
            let shape = Shape {
                queries: s,
                keys: s,
                heads: self.heads,
                dk: self.d_kv,
                scale: 1.0,
            };
            let bias_of = |h: usize, i: usize, j: usize| bias[h * (2 * s - 1) + j + s - 1 - i];
            attention(
                rows(0),
                rows(inner),
                rows(2 * inner),
                shape,
                bias_of,
                Some(&keep),
                &mut ctx,
            );
            add_rows(
                &mut x,
                &block.o.apply(s, &ctx, inner),
                d,
                block.o.padded_out(),
            );

            rms_norm(&x, d, &block.ffn_norm, self.eps, &mut normed);
            let ldh = block.wi.padded_out();
            let hidden = block.wi.apply(s, &normed, d);
            let ff = self.d_ff;
            let mut gated = vec![0.0f32; s * ff];
            gated
                .par_chunks_mut(ff)
                .zip(hidden.par_chunks(ldh))
                .for_each(|(g, h)| {
                    for ((g, a), b) in g.iter_mut().zip(&h[..ff]).zip(&h[ff..2 * ff]) {
                        *g = gelu_tanh(*a) * b;
                    }
                });
            add_rows(
                &mut x,
                &block.wo.apply(s, &gated, ff),
                d,
                block.wo.padded_out(),
            );
        }
        rms_norm(&x, d, &self.final_norm, self.eps, &mut normed);
        normed
    }
}
