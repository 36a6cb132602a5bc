//! The Wan2.1 denoising transformer (diffusers' `WanTransformer3DModel`, text-to-video) on
//! the CPU in f32, its weights kept in the checkpoint's precision (see `linear.rs`).
//!
//! The math, for a latent `z` of `C x F x H x W`, patch `(pt, ph, pw)`, width `d` (`heads x
//! dh`), timestep `t` and text embeddings `e` (`L x text_dim`, the pipeline's prompt embeds):
//!
//! - Patch embedding: the Conv3d with stride = kernel = patch is a linear map of each patch
//!   (`C pt ph pw` values, channel slowest) to `d`; tokens are the `F/pt x H/ph x W/pw` grid in
//!   frame, row, column order.
//! - Time: `s = [cos(t w_j), sin(t w_j)]`, `w_j = exp(-ln(10000) j / (freq_dim / 2))`;
//!   `temb = W2 silu(W1 s)`; `proj = Wp silu(temb)`, six `d`-rows of modulation.
//! - Text: `c = W2 gelu_tanh(W1 e)` (all `L` rows: padding rows included, unmasked).
//! - Each block, with `(shift, scale, gate, c_shift, c_scale, c_gate) = table + proj`:
//!   - `x += gate * Wo attn(n)`, `n = LN(x) (1 + scale) + shift`, where attention is over
//!     the tokens with `q = rope(rms(Wq n))`, `k = rope(rms(Wk n))`, `v = Wv n`; `rms` is an
//!     RMS norm across all heads (`rms_norm_across_heads`) with a weight, `rope` Wan's 3D RoPE
//!     (`rope.rs`), scores scaled by `1 / sqrt(dh)`.
//!   - `x += Wo' attn(LN'(x))` over the text: `q = rms(Wq' LN'(x))`, `k = rms(Wk' c)`,
//!     `v = Wv' c`; `LN'` has a weight and bias (`cross_attn_norm`), else is the identity.
//!   - `x += c_gate * W4 gelu_tanh(W3 (LN(x) (1 + c_scale) + c_shift))`.
//!
//!   `LN` is a LayerNorm without affine parameters (eps from the config); every projection
//!   has a bias.
//! - Output: `(shift, scale) = table_out + temb` (temb, not proj), `y = Wout (LN(x) (1 +
//!   scale) + shift)`, each token's `pt ph pw C` values (channel fastest) put back in place.
//!
//! The cross-attention's keys and values depend on the text only, so [`WanTextContext`]
//! computes them once per prompt and every denoising step reuses them. Attention runs in
//! GEMM-shaped blocks with an online softmax (`attention.rs`); projections go through the
//! packed GEMM; rows are split over the current rayon pool. A batch
//! ([`WanTransformer::forward_batch`]) stacks its items' tokens for every projection (each
//! weight packed once per call, not once per item) and keeps the time modulation and both
//! attentions per item.

use std::path::Path;

use rayon::prelude::*;

use super::step_cache::{Decision, StepCache};

use super::attention::{attention, Rows, Shape};
use super::linear::{Linear, Stored};
use super::rope::Rope;
use super::umt5::{gelu_tanh, silu};
use super::{WanCheckpoint, WanDtype, WanLoadError, WanTransformerConfig};

/// One transformer block's weights.
#[derive(Debug)]
struct Block {
    /// Self-attention q, k and v stacked: `[3d, d]`.
    qkv: Linear,
    self_out: Linear,
    self_norm_q: Vec<f32>,
    self_norm_k: Vec<f32>,
    cross_q: Linear,
    /// Cross-attention k and v stacked: `[2d, d]`.
    cross_kv: Linear,
    cross_out: Linear,
    cross_norm_q: Vec<f32>,
    cross_norm_k: Vec<f32>,
    /// `norm2`'s weight and bias, when `cross_attn_norm`.
    norm2: Option<(Vec<f32>, Vec<f32>)>,
    ffn_in: Linear,
    ffn_out: Linear,
    /// `scale_shift_table`, `6 x d`.
    table: Vec<f32>,
}

/// A Wan2.1 text-to-video transformer, ready to run.
#[derive(Debug)]
pub struct WanTransformer {
    config: WanTransformerConfig,
    patch: Linear,
    time_1: Linear,
    time_2: Linear,
    time_proj: Linear,
    text_1: Linear,
    text_2: Linear,
    blocks: Vec<Block>,
    /// The output head's `scale_shift_table`, `2 x d`.
    out_table: Vec<f32>,
    proj_out: Linear,
}

/// A prompt as the transformer's cross-attention sees it: for every block, the text's keys
/// (RMS-normed) and values. Made once per prompt by [`WanTransformer::text_context`].
#[derive(Debug, Clone)]
pub struct WanTextContext {
    rows: usize,
    /// Per block, `rows` rows of `ld` floats: keys in `0..d`, values in `d..2d`.
    kv: Vec<Vec<f32>>,
    ld: usize,
}

/// One latent of a [`WanTransformer::forward_batch`] call: what
/// [`WanTransformer::forward`] takes as arguments.
#[derive(Debug, Clone, Copy)]
pub struct WanInput<'a> {
    /// The latent, `[C, F, H, W]` as `shape`, row-major.
    pub latent: &'a [f32],
    /// `[C, F, H, W]`; every item of a batch has the same.
    pub shape: [usize; 4],
    /// The timestep.
    pub timestep: f32,
    /// The text the item attends to.
    pub context: &'a WanTextContext,
}

impl WanTextContext {
    /// Text rows (tokens, padding included).
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// `out = LN(x) * (1 + scale) + shift` for `rows` rows of `x` (`ld` apart), LayerNorm
/// without affine parameters; `out` is dense (`d` per row).
fn modulated_norm(
    x: &[f32],
    ld: usize,
    d: usize,
    eps: f32,
    shift: &[f32],
    scale: &[f32],
    out: &mut [f32],
) {
    out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
        let (mean, rstd) = moments(&x[r * ld..r * ld + d], eps);
        for (((o, &v), &s), &b) in o.iter_mut().zip(&x[r * ld..]).zip(scale).zip(shift) {
            *o = (v - mean) * rstd * (1.0 + s) + b;
        }
    });
}

/// LayerNorm with weight and bias of each row of `x` (`ld` apart) into dense `out`.
fn layer_norm(x: &[f32], ld: usize, d: usize, eps: f32, w: &[f32], b: &[f32], out: &mut [f32]) {
    out.par_chunks_mut(d).enumerate().for_each(|(r, o)| {
        let (mean, rstd) = moments(&x[r * ld..r * ld + d], eps);
        for (((o, &v), &w), &b) in o.iter_mut().zip(&x[r * ld..]).zip(w).zip(b) {
            *o = (v - mean) * rstd * w + b;
        }
    });
}

/// Mean and `1 / sqrt(var + eps)` (biased variance) of `row`, accumulated in f64.
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

/// RMS norm in place of columns `col0..col0 + w.len()` of every row of `x` (`ld` apart):
/// `x * w / sqrt(mean(x^2) + eps)`.
fn rms_norm(x: &mut [f32], ld: usize, col0: usize, w: &[f32], eps: f32) {
    let d = w.len();
    x.par_chunks_mut(ld).for_each(|row| {
        let part = &mut row[col0..col0 + d];
        let ss: f32 = part.iter().map(|v| v * v).sum();
        let inv = 1.0 / (ss / d as f32 + eps).sqrt();
        for (v, w) in part.iter_mut().zip(w) {
            *v = *v * inv * w;
        }
    });
}

/// `x[:, :d] += y[:, :d] * gate` (or `+= y` without a gate), rows `ldx` and `ldy` apart.
fn residual(x: &mut [f32], ldx: usize, y: &[f32], ldy: usize, d: usize, gate: Option<&[f32]>) {
    x.par_chunks_mut(ldx)
        .zip(y.par_chunks(ldy))
        .for_each(|(x, y)| match gate {
            Some(g) => {
                for ((x, y), g) in x[..d].iter_mut().zip(y).zip(g) {
                    *x += y * g;
                }
            }
            None => {
                for (x, y) in x[..d].iter_mut().zip(y) {
                    *x += y;
                }
            }
        });
}

/// The first `d` columns of `rows` rows `ld` apart, dense.
fn dense(x: &[f32], ld: usize, d: usize) -> Vec<f32> {
    x.chunks(ld).flat_map(|r| &r[..d]).copied().collect()
}

/// Where [`WanTransformer::build`] gets each tensor: name and expected shape in, the
/// elements in their stored type out.
type Source<'a> = dyn FnMut(&str, &[usize]) -> Result<Stored, WanLoadError> + 'a;

/// What [`WanTransformer::forward_traced`] hands each intermediate to.
type Trace<'a> = &'a mut dyn FnMut(&str, &[f32]);

/// A cached pass: each item's [`StepCache`], the threshold, and which items must compute.
type CachedPass<'c, 'r> = (&'c mut [&'r mut StepCache], f32, &'c [bool]);

impl WanTransformer {
    /// Reads the transformer's weights from `ckpt`, in their stored precision.
    pub fn from_checkpoint(ckpt: &WanCheckpoint) -> Result<WanTransformer, WanLoadError> {
        let weights = ckpt.transformer();
        let path = ckpt.dir.join("transformer");
        let mut get = |name: &str, shape: &[usize]| match weights.tensor(name) {
            Some(t) if t.shape == shape => Ok(Stored::from_tensor(&t)),
            Some(t) => Err(WanLoadError::WrongShape {
                path: path.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.to_vec(),
            }),
            None => Err(WanLoadError::MissingTensor {
                path: path.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
            }),
        };
        Self::build(
            ckpt.transformer_config(),
            &ckpt.dir.join("transformer/config.json"),
            &mut get,
        )
    }

    /// A transformer of `config`'s shape with random weights stored as `dtype` (weights
    /// uniform in `+-1/sqrt(fan_in)`, norm weights 1, biases and modulation tables small),
    /// drawn from `seed`: for sizing and timing without a checkpoint, not for generating.
    pub fn random(
        config: &WanTransformerConfig,
        dtype: WanDtype,
        seed: u64,
    ) -> Result<WanTransformer, WanLoadError> {
        let mut count = 0u64;
        let mut get = |name: &str, shape: &[usize]| {
            count += 1;
            let len: usize = shape.iter().product();
            let fan_in: usize = shape[1..].iter().product();
            let (offset, amplitude) = if name.contains("norm") && name.ends_with("weight") {
                (1.0, 0.0)
            } else if shape.len() >= 2 && !name.ends_with("scale_shift_table") {
                (0.0, 1.0 / (fan_in as f32).sqrt())
            } else {
                (0.0, 0.02)
            };
            Ok(random_stored(
                len,
                dtype,
                seed ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                offset,
                amplitude,
            ))
        };
        Self::build(config, Path::new("<in-memory config>"), &mut get)
    }

    fn build(
        config: &WanTransformerConfig,
        config_path: &Path,
        get: &mut Source<'_>,
    ) -> Result<WanTransformer, WanLoadError> {
        config.validate(config_path)?;
        let d = config.inner_dim();
        let [pt, ph, pw] = config.patch_size;
        let patch_in = config.in_channels * pt * ph * pw;
        let mut linear = |name: &str, input: usize, output: usize, weight_shape: &[usize]| {
            let weight = get(&format!("{name}.weight"), weight_shape)?;
            let bias = get(&format!("{name}.bias"), &[output])?.to_f32();
            Ok::<_, WanLoadError>(Linear::new(input, output, weight, bias))
        };
        let patch = linear(
            "patch_embedding",
            patch_in,
            d,
            &[d, config.in_channels, pt, ph, pw],
        )?;
        let ce = "condition_embedder";
        let time_1 = linear(
            &format!("{ce}.time_embedder.linear_1"),
            config.freq_dim,
            d,
            &[d, config.freq_dim],
        )?;
        let time_2 = linear(&format!("{ce}.time_embedder.linear_2"), d, d, &[d, d])?;
        let time_proj = linear(&format!("{ce}.time_proj"), d, 6 * d, &[6 * d, d])?;
        let text_1 = linear(
            &format!("{ce}.text_embedder.linear_1"),
            config.text_dim,
            d,
            &[d, config.text_dim],
        )?;
        let text_2 = linear(&format!("{ce}.text_embedder.linear_2"), d, d, &[d, d])?;
        let proj_out = linear(
            "proj_out",
            d,
            config.out_channels * pt * ph * pw,
            &[config.out_channels * pt * ph * pw, d],
        )?;

        let mut blocks = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let b = format!("blocks.{i}");
            let mut stacked = |attn: &str, projs: &[&str]| {
                let mut weights = Vec::new();
                let mut bias = Vec::new();
                for p in projs {
                    weights.push(get(&format!("{b}.{attn}.{p}.weight"), &[d, d])?);
                    bias.extend(get(&format!("{b}.{attn}.{p}.bias"), &[d])?.to_f32());
                }
                let out = projs.len() * d;
                Ok::<_, WanLoadError>(Linear::new(d, out, Stored::concat(weights), bias))
            };
            let qkv = stacked("attn1", &["to_q", "to_k", "to_v"])?;
            let self_out = stacked("attn1", &["to_out.0"])?;
            let cross_q = stacked("attn2", &["to_q"])?;
            let cross_kv = stacked("attn2", &["to_k", "to_v"])?;
            let cross_out = stacked("attn2", &["to_out.0"])?;
            let mut vector = |name: String, shape: &[usize]| Ok(get(&name, shape)?.to_f32());
            let self_norm_q = vector(format!("{b}.attn1.norm_q.weight"), &[d])?;
            let self_norm_k = vector(format!("{b}.attn1.norm_k.weight"), &[d])?;
            let cross_norm_q = vector(format!("{b}.attn2.norm_q.weight"), &[d])?;
            let cross_norm_k = vector(format!("{b}.attn2.norm_k.weight"), &[d])?;
            let norm2 = if config.cross_attn_norm {
                Some((
                    vector(format!("{b}.norm2.weight"), &[d])?,
                    vector(format!("{b}.norm2.bias"), &[d])?,
                ))
            } else {
                None
            };
            let table = vector(format!("{b}.scale_shift_table"), &[1, 6, d])?;
            let mut linear = |name: &str, input: usize, output: usize| {
                let weight = get(&format!("{b}.{name}.weight"), &[output, input])?;
                let bias = get(&format!("{b}.{name}.bias"), &[output])?.to_f32();
                Ok::<_, WanLoadError>(Linear::new(input, output, weight, bias))
            };
            let ffn_in = linear("ffn.net.0.proj", d, config.ffn_dim)?;
            let ffn_out = linear("ffn.net.2", config.ffn_dim, d)?;
            blocks.push(Block {
                qkv,
                self_out,
                self_norm_q,
                self_norm_k,
                cross_q,
                cross_kv,
                cross_out,
                cross_norm_q,
                cross_norm_k,
                norm2,
                ffn_in,
                ffn_out,
                table,
            });
        }
        let out_table = get("scale_shift_table", &[1, 2, d])?.to_f32();
        Ok(WanTransformer {
            config: config.clone(),
            patch,
            time_1,
            time_2,
            time_proj,
            text_1,
            text_2,
            blocks,
            out_table,
            proj_out,
        })
    }

    /// The config it was built from.
    pub fn config(&self) -> &WanTransformerConfig {
        &self.config
    }

    fn eps(&self) -> f32 {
        self.config.eps as f32
    }

    /// The time embedding of `timestep`: `(temb, proj)`, `d` and `6 d` floats (the output
    /// head's and the blocks' modulation inputs). The sinusoid is computed in f32 as
    /// diffusers' `get_timestep_embedding` does (cosines first; a zero appended when
    /// `freq_dim` is odd).
    pub fn embed_time(&self, timestep: f32) -> (Vec<f32>, Vec<f32>) {
        let dim = self.config.freq_dim;
        let half = dim / 2;
        let mut s = vec![0.0f32; dim];
        let log_period = -(10000f64.ln() as f32);
        for j in 0..half {
            let arg = timestep * ((log_period * j as f32) / half as f32).exp();
            s[j] = arg.cos();
            s[half + j] = arg.sin();
        }
        let mut h = self.time_1.apply(1, &s, dim);
        h.iter_mut().for_each(|v| *v = silu(*v));
        let mut temb = self.time_2.apply(1, &h, h.len());
        temb.truncate(self.time_2.output());
        let act: Vec<f32> = temb.iter().map(|&v| silu(v)).collect();
        let mut proj = self.time_proj.apply(1, &act, act.len());
        proj.truncate(self.time_proj.output());
        (temb, proj)
    }

    /// The text embedder's output for `prompt_embeds` (`rows x text_dim`, row-major):
    /// `rows x d`, row-major.
    ///
    /// Panics if the length is not a whole number of rows.
    pub fn embed_text(&self, prompt_embeds: &[f32]) -> Vec<f32> {
        let td = self.config.text_dim;
        assert_eq!(prompt_embeds.len() % td, 0, "prompt embeds: partial row");
        let rows = prompt_embeds.len() / td;
        let mut h = self.text_1.apply(rows, prompt_embeds, td);
        h.par_iter_mut().for_each(|v| *v = gelu_tanh(*v));
        let ld = self.text_1.padded_out();
        let out = self.text_2.apply(rows, &h, ld);
        dense(&out, self.text_2.padded_out(), self.config.inner_dim())
    }

    /// The cross-attention keys and values of every block for `prompt_embeds` (`rows x
    /// text_dim`, as `WanPipeline.encode_prompt` returns them: all rows, padding included).
    pub fn text_context(&self, prompt_embeds: &[f32]) -> WanTextContext {
        let d = self.config.inner_dim();
        let text = self.embed_text(prompt_embeds);
        let rows = text.len() / d;
        let eps = self.eps();
        let kv = self
            .blocks
            .iter()
            .map(|b| {
                let mut kv = b.cross_kv.apply(rows, &text, d);
                rms_norm(&mut kv, b.cross_kv.padded_out(), 0, &b.cross_norm_k, eps);
                kv
            })
            .collect();
        let ld = self
            .blocks
            .first()
            .map_or(2 * d, |b| b.cross_kv.padded_out());
        WanTextContext { rows, kv, ld }
    }

    /// The model's prediction (the flow velocity for Wan2.1) for `latent` (`[C, F, H, W]`
    /// as `shape`, row-major, batch 1) at `timestep` with the text `context`: `[out_channels,
    /// F, H, W]`, row-major.
    ///
    /// Panics if `shape` does not match the latent or the config (channels, a grid not
    /// divisible by the patch or longer than `rope_max_seq_len`), or `context` came from
    /// another transformer.
    pub fn forward(
        &self,
        latent: &[f32],
        shape: [usize; 4],
        timestep: f32,
        context: &WanTextContext,
    ) -> Vec<f32> {
        let item = WanInput {
            latent,
            shape,
            timestep,
            context,
        };
        self.run(&[item], None, None).remove(0)
    }

    /// [`WanTransformer::forward`] for several latents of one shape at once, each with its
    /// own timestep and text: the predictions in the order of `items`. The linear layers
    /// run once over every item's tokens (one GEMM with `items x tokens` rows, which packs
    /// each weight once per batch instead of once per item); time modulation and self- and
    /// cross-attention stay per item. Each prediction equals the item's own
    /// [`WanTransformer::forward`] up to float rounding.
    ///
    /// Panics if the items' shapes differ, or as [`WanTransformer::forward`] does.
    pub fn forward_batch(&self, items: &[WanInput<'_>]) -> Vec<Vec<f32>> {
        self.run(items, None, None)
    }

    /// [`WanTransformer::forward_batch`] with step caching ([`super::step_cache`]): each
    /// item's [`StepCache`] decides from its first-block modulated input whether its blocks
    /// run (those that do run as one batch) or its last computed residual is added instead;
    /// `force[i]` makes item `i` compute. With a threshold of 0 every pass computes and the
    /// predictions equal [`WanTransformer::forward_batch`]'s.
    pub fn forward_batch_cached(
        &self,
        items: &[WanInput<'_>],
        caches: &mut [&mut StepCache],
        threshold: f32,
        force: &[bool],
    ) -> Vec<Vec<f32>> {
        assert!(caches.len() == items.len() && force.len() == items.len());
        self.run(items, None, Some((caches, threshold, force)))
    }

    /// [`WanTransformer::forward`], handing `trace` the patch embedding (`"patch_embed"`)
    /// and each block's output (`"block0"`, ...) as dense `tokens x d`: for parity debugging.
    #[doc(hidden)]
    pub fn forward_traced(
        &self,
        latent: &[f32],
        shape: [usize; 4],
        timestep: f32,
        context: &WanTextContext,
        trace: &mut dyn FnMut(&str, &[f32]),
    ) -> Vec<f32> {
        let item = WanInput {
            latent,
            shape,
            timestep,
            context,
        };
        self.run(&[item], Some(trace), None).remove(0)
    }

    /// The transformer blocks over `x` (every item's `n` tokens, rows `ldx` apart, item after
    /// item), in place: self-attention, cross-attention to each item's text, feed-forward,
    /// each item modulated by its own time embedding (`times`, as `embed_time` made them).
    #[allow(clippy::too_many_arguments)]
    fn blocks_over(
        &self,
        x: &mut [f32],
        ldx: usize,
        items: &[&WanInput<'_>],
        times: &[&(Vec<f32>, Vec<f32>)],
        n: usize,
        grid: [usize; 3],
        trace: &mut Option<Trace<'_>>,
    ) {
        let c = &self.config;
        let (d, heads, dh) = (c.inner_dim(), c.num_attention_heads, c.attention_head_dim);
        let b = items.len();
        let eps = self.eps();
        let rope = Rope::new(dh, grid);
        let scale = 1.0 / (dh as f32).sqrt();
        let zero_bias = |_: usize, _: usize, _: usize| 0.0;
        let mut normed = vec![0.0f32; b * n * d];
        let mut ctx = vec![0.0f32; b * n * d];
        for (bi, block) in self.blocks.iter().enumerate() {
            // Each item's modulation rows: shift, scale, gate, c_shift, c_scale, c_gate.
            let mods: Vec<Vec<f32>> = times
                .iter()
                .map(|(_, proj)| block.table.iter().zip(proj).map(|(t, p)| t + p).collect())
                .collect();
            let row = |item: usize, r: usize| &mods[item][r * d..(r + 1) * d];
            // Every item's tokens of `x` normed into `normed` with its own modulation rows
            // `shift` and `scale`.
            let norm_items = |x: &[f32], shift: usize, scale: usize, normed: &mut [f32]| {
                for (i, (x, out)) in x.chunks(n * ldx).zip(normed.chunks_mut(n * d)).enumerate() {
                    modulated_norm(x, ldx, d, eps, row(i, shift), row(i, scale), out);
                }
            };

            // Self-attention.
            norm_items(x, 0, 1, &mut normed);
            let mut qkv = block.qkv.apply(b * n, &normed, d);
            let ldq = block.qkv.padded_out();
            rms_norm(&mut qkv, ldq, 0, &block.self_norm_q, eps);
            rms_norm(&mut qkv, ldq, d, &block.self_norm_k, eps);
            for item in qkv.chunks_mut(n * ldq) {
                rope.apply(item, ldq, 0, heads);
                rope.apply(item, ldq, d, heads);
            }
            let shape = Shape {
                queries: n,
                keys: n,
                heads,
                dk: dh,
                scale,
            };
            for (item, out) in qkv.chunks(n * ldq).zip(ctx.chunks_mut(n * d)) {
                let rows = |offset: usize| Rows {
                    data: &item[offset..],
                    ld: ldq,
                };
                attention(rows(0), rows(d), rows(2 * d), shape, zero_bias, None, out);
            }
            drop(qkv);
            let o = block.self_out.apply(b * n, &ctx, d);
            let ldo = block.self_out.padded_out();
            for i in 0..b {
                residual(
                    &mut x[i * n * ldx..(i + 1) * n * ldx],
                    ldx,
                    &o[i * n * ldo..(i + 1) * n * ldo],
                    ldo,
                    d,
                    Some(row(i, 2)),
                );
            }

            // Cross-attention to each item's text.
            match &block.norm2 {
                Some((nw, nb)) => layer_norm(x, ldx, d, eps, nw, nb, &mut normed),
                None => normed.copy_from_slice(&dense(x, ldx, d)),
            }
            let mut q = block.cross_q.apply(b * n, &normed, d);
            let ldq = block.cross_q.padded_out();
            rms_norm(&mut q, ldq, 0, &block.cross_norm_q, eps);
            for ((item, q), out) in items
                .iter()
                .zip(q.chunks(n * ldq))
                .zip(ctx.chunks_mut(n * d))
            {
                let (kv, ld) = (&item.context.kv[bi], item.context.ld);
                let shape = Shape {
                    queries: n,
                    keys: item.context.rows,
                    heads,
                    dk: dh,
                    scale,
                };
                let k = Rows { data: kv, ld };
                let v = Rows { data: &kv[d..], ld };
                attention(Rows { data: q, ld: ldq }, k, v, shape, zero_bias, None, out);
            }
            drop(q);
            let o = block.cross_out.apply(b * n, &ctx, d);
            residual(x, ldx, &o, block.cross_out.padded_out(), d, None);
            drop(o);

            // Feed-forward.
            norm_items(x, 3, 4, &mut normed);
            let mut hidden = block.ffn_in.apply(b * n, &normed, d);
            hidden.par_iter_mut().for_each(|v| *v = gelu_tanh(*v));
            let o = block
                .ffn_out
                .apply(b * n, &hidden, block.ffn_in.padded_out());
            drop(hidden);
            let ldo = block.ffn_out.padded_out();
            for i in 0..b {
                residual(
                    &mut x[i * n * ldx..(i + 1) * n * ldx],
                    ldx,
                    &o[i * n * ldo..(i + 1) * n * ldo],
                    ldo,
                    d,
                    Some(row(i, 5)),
                );
            }
            if let Some(trace) = trace.as_mut() {
                trace(&format!("block{bi}"), &dense(x, ldx, d));
            }
        }
    }

    /// [`WanTransformer::blocks_over`] for the items whose [`StepCache`] says to compute (one
    /// batch), keeping their residuals; the others get `x + residual` of their last computed
    /// pass instead.
    #[allow(clippy::too_many_arguments)]
    fn cached_blocks(
        &self,
        x: &mut [f32],
        ldx: usize,
        items: &[WanInput<'_>],
        times: &[(Vec<f32>, Vec<f32>)],
        n: usize,
        grid: [usize; 3],
        caches: &mut [&mut StepCache],
        threshold: f32,
        force: &[bool],
    ) {
        let d = self.config.inner_dim();
        let eps = self.eps();
        let first = &self.blocks[0];
        let rows = n * ldx;
        let decisions: Vec<Decision> = (0..items.len())
            .map(|i| {
                let mods: Vec<f32> = first
                    .table
                    .iter()
                    .zip(&times[i].1)
                    .map(|(t, p)| t + p)
                    .collect();
                let mut modulated = vec![0.0f32; n * d];
                let xi = &x[i * rows..(i + 1) * rows];
                modulated_norm(xi, ldx, d, eps, &mods[..d], &mods[d..2 * d], &mut modulated);
                caches[i].decide(modulated, threshold, force[i])
            })
            .collect();
        let chosen: Vec<usize> = (0..items.len())
            .filter(|&i| decisions[i] == Decision::Compute)
            .collect();
        if !chosen.is_empty() {
            let mut sub: Vec<f32> = chosen
                .iter()
                .flat_map(|&i| x[i * rows..(i + 1) * rows].iter().copied())
                .collect();
            let before = sub.clone();
            let sub_items: Vec<&WanInput<'_>> = chosen.iter().map(|&i| &items[i]).collect();
            let sub_times: Vec<&(Vec<f32>, Vec<f32>)> = chosen.iter().map(|&i| &times[i]).collect();
            self.blocks_over(&mut sub, ldx, &sub_items, &sub_times, n, grid, &mut None);
            for (k, &i) in chosen.iter().enumerate() {
                let (after, before) = (&sub[k * rows..(k + 1) * rows], &before[k * rows..]);
                caches[i].keep(after.iter().zip(before).map(|(a, b)| a - b).collect());
                x[i * rows..(i + 1) * rows].copy_from_slice(after);
            }
        }
        for (i, decision) in decisions.iter().enumerate() {
            if *decision == Decision::Reuse {
                let residual = caches[i].residual().expect("a reused pass has a residual");
                for (x, r) in x[i * rows..(i + 1) * rows].iter_mut().zip(residual) {
                    *x += r;
                }
            }
        }
    }

    /// The forward pass of `items` (one shape), `trace` seeing every item's tokens stacked.
    fn run(
        &self,
        items: &[WanInput<'_>],
        mut trace: Option<Trace<'_>>,
        cache: Option<CachedPass<'_, '_>>,
    ) -> Vec<Vec<f32>> {
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let shape = first.shape;
        for (i, item) in items.iter().enumerate() {
            assert_eq!(
                item.shape, shape,
                "forward_batch: item {i} has shape {:?}, item 0 {shape:?}; a batch shares one shape",
                item.shape
            );
        }
        let c = &self.config;
        let d = c.inner_dim();
        let [pt, ph, pw] = c.patch_size;
        let [ch, f, h, w] = shape;
        assert_eq!(ch, c.in_channels, "latent channels");
        assert!(
            f % pt == 0 && h % ph == 0 && w % pw == 0,
            "latent {f}x{h}x{w} not divisible by the patch {pt}x{ph}x{pw}"
        );
        let grid = [f / pt, h / ph, w / pw];
        assert!(
            grid.iter().all(|&g| g <= c.rope_max_seq_len),
            "patch grid {grid:?} longer than rope_max_seq_len {}",
            c.rope_max_seq_len
        );
        for item in items {
            assert_eq!(item.latent.len(), ch * f * h * w, "latent size");
            assert_eq!(item.context.kv.len(), self.blocks.len(), "text context");
        }
        let n = grid.iter().product::<usize>();
        let b = items.len();
        let eps = self.eps();

        // Patchify: token (gf, gh, gw), value (channel, a, b, e) at c pt ph pw + (a ph + b)
        // pw + e, as the Conv3d weight is laid out; item after item.
        let pv = ch * pt * ph * pw;
        let mut patches = vec![0.0f32; b * n * pv];
        patches
            .par_chunks_mut(pv)
            .enumerate()
            .for_each(|(row_index, row)| {
                let (latent, t) = (items[row_index / n].latent, row_index % n);
                let (gf, gh, gw) = (
                    t / (grid[1] * grid[2]),
                    (t / grid[2]) % grid[1],
                    t % grid[2],
                );
                for (i, v) in row.iter_mut().enumerate() {
                    let (ci, a, b, e) = (
                        i / (pt * ph * pw),
                        (i / (ph * pw)) % pt,
                        (i / pw) % ph,
                        i % pw,
                    );
                    *v = latent[((ci * f + gf * pt + a) * h + gh * ph + b) * w + gw * pw + e];
                }
            });
        let mut x = self.patch.apply(b * n, &patches, pv);
        drop(patches);
        let ldx = self.patch.padded_out();
        if let Some(trace) = trace.as_mut() {
            trace("patch_embed", &dense(&x, ldx, d));
        }

        let times: Vec<(Vec<f32>, Vec<f32>)> =
            items.iter().map(|i| self.embed_time(i.timestep)).collect();
        match cache {
            None => {
                let items: Vec<&WanInput<'_>> = items.iter().collect();
                let times: Vec<&(Vec<f32>, Vec<f32>)> = times.iter().collect();
                self.blocks_over(&mut x, ldx, &items, &times, n, grid, &mut trace);
            }
            Some((caches, threshold, force)) => {
                assert!(trace.is_none(), "a traced pass is not cached");
                self.cached_blocks(
                    &mut x, ldx, items, &times, n, grid, caches, threshold, force,
                );
            }
        }
        let mut normed = vec![0.0f32; b * n * d];

        // Output head (shift and scale from each item's temb) and unpatchify: token value
        // (a, b, e, channel) at ((a ph + b) pw + e) C + channel.
        for (i, (temb, _)) in times.iter().enumerate() {
            let shift: Vec<f32> = self.out_table[..d]
                .iter()
                .zip(temb)
                .map(|(t, e)| t + e)
                .collect();
            let scale: Vec<f32> = self.out_table[d..]
                .iter()
                .zip(temb)
                .map(|(t, e)| t + e)
                .collect();
            modulated_norm(
                &x[i * n * ldx..(i + 1) * n * ldx],
                ldx,
                d,
                eps,
                &shift,
                &scale,
                &mut normed[i * n * d..(i + 1) * n * d],
            );
        }
        drop(x);
        let y = self.proj_out.apply(b * n, &normed, d);
        let ldy = self.proj_out.padded_out();
        let co = c.out_channels;
        y.chunks(n * ldy)
            .map(|y| {
                let mut out = vec![0.0f32; co * f * h * w];
                out.par_chunks_mut(h * w)
                    .enumerate()
                    .for_each(|(plane, o)| {
                        let (ci, fi) = (plane / f, plane % f);
                        let (gf, a) = (fi / pt, fi % pt);
                        for (idx, o) in o.iter_mut().enumerate() {
                            let (hi, wi) = (idx / w, idx % w);
                            let t = (gf * grid[1] + hi / ph) * grid[2] + wi / pw;
                            let (b, e) = (hi % ph, wi % pw);
                            *o = y[t * ldy + ((a * ph + b) * pw + e) * co + ci];
                        }
                    });
                out
            })
            .collect()
    }
}

/// `len` elements `offset + amplitude * u`, `u` uniform in [-1, 1) from a SplitMix64 stream
/// seeded with `seed`, stored as `dtype`.
fn random_stored(len: usize, dtype: WanDtype, seed: u64, offset: f32, amplitude: f32) -> Stored {
    const CHUNK: usize = 1 << 16;
    let size = dtype.size();
    let mut data = vec![0u8; len * size];
    data.par_chunks_mut(CHUNK * size)
        .enumerate()
        .for_each(|(c, bytes)| {
            let mut state = seed ^ (c as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            for b in bytes.chunks_exact_mut(size) {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                let u = (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
                let v = offset + amplitude * u;
                match dtype {
                    WanDtype::F32 => b.copy_from_slice(&v.to_le_bytes()),
                    WanDtype::Bf16 => b.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                    WanDtype::F16 => b.copy_from_slice(&half::f16::from_f32(v).to_le_bytes()),
                }
            }
        });
    Stored::from_bytes(dtype, data)
}
