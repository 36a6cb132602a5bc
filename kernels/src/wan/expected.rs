//! The tensor names and shapes each component's config implies, spelled as diffusers'
//! `WanTransformer3DModel` / `AutoencoderKLWan` and transformers' `UMT5EncoderModel` name
//! their parameters (PyTorch layouts: Linear weights are [out, in], convolutions
//! [out, in, kernel...]).

use super::config::{Umt5Config, WanTransformerConfig, WanVaeConfig};
use super::weights::Expected;

struct List(Vec<(String, Vec<usize>)>);

impl List {
    fn add(&mut self, name: impl Into<String>, shape: &[usize]) {
        self.0.push((name.into(), shape.to_vec()));
    }

    /// A `Linear(input, output)` with a bias.
    fn linear(&mut self, prefix: &str, input: usize, output: usize) {
        self.add(format!("{prefix}.weight"), &[output, input]);
        self.add(format!("{prefix}.bias"), &[output]);
    }

    /// A convolution with a bias; `kernel` holds the spatial (and temporal) extents.
    fn conv(&mut self, prefix: &str, input: usize, output: usize, kernel: &[usize]) {
        let mut shape = vec![output, input];
        shape.extend_from_slice(kernel);
        self.add(format!("{prefix}.weight"), &shape);
        self.add(format!("{prefix}.bias"), &[output]);
    }
}

/// `WanTransformer3DModel` as diffusers 0.42 saves it: the output head's modulation is the
/// top-level `scale_shift_table` [1, 2, dim]; `norm1`/`norm3` and `norm_out` have no
/// parameters.
pub(crate) fn transformer(c: &WanTransformerConfig) -> Expected {
    let d = c.inner_dim();
    let [pt, ph, pw] = c.patch_size;
    let mut l = List(Vec::new());
    l.conv("patch_embedding", c.in_channels, d, &[pt, ph, pw]);
    l.linear("condition_embedder.time_embedder.linear_1", c.freq_dim, d);
    l.linear("condition_embedder.time_embedder.linear_2", d, d);
    l.linear("condition_embedder.time_proj", d, 6 * d);
    l.linear("condition_embedder.text_embedder.linear_1", c.text_dim, d);
    l.linear("condition_embedder.text_embedder.linear_2", d, d);
    for i in 0..c.num_layers {
        let b = format!("blocks.{i}");
        for attn in ["attn1", "attn2"] {
            for proj in ["to_q", "to_k", "to_v", "to_out.0"] {
                l.linear(&format!("{b}.{attn}.{proj}"), d, d);
            }
            l.add(format!("{b}.{attn}.norm_q.weight"), &[d]);
            l.add(format!("{b}.{attn}.norm_k.weight"), &[d]);
        }
        if c.cross_attn_norm {
            l.add(format!("{b}.norm2.weight"), &[d]);
            l.add(format!("{b}.norm2.bias"), &[d]);
        }
        l.linear(&format!("{b}.ffn.net.0.proj"), d, c.ffn_dim);
        l.linear(&format!("{b}.ffn.net.2"), c.ffn_dim, d);
        l.add(format!("{b}.scale_shift_table"), &[1, 6, d]);
    }
    l.add("scale_shift_table", &[1, 2, d]);
    l.linear("proj_out", d, c.out_channels * pt * ph * pw);
    Expected {
        required: l.0,
        ..Expected::default()
    }
}

/// `UMT5EncoderModel`: unlike T5, every layer has its own relative position bias. The token
/// embedding is `shared.weight`; a file may also hold its alias `encoder.embed_tokens.weight`
/// (or, as transformers 5 saves it, not), which is then checked for shape and ignored.
pub(crate) fn text_encoder(c: &Umt5Config) -> Expected {
    let inner = c.num_heads * c.d_kv;
    let mut l = List(Vec::new());
    l.add("shared.weight", &[c.vocab_size, c.d_model]);
    for i in 0..c.num_layers {
        let b = format!("encoder.block.{i}.layer");
        for proj in ["q", "k", "v"] {
            l.add(
                format!("{b}.0.SelfAttention.{proj}.weight"),
                &[inner, c.d_model],
            );
        }
        l.add(format!("{b}.0.SelfAttention.o.weight"), &[c.d_model, inner]);
        l.add(
            format!("{b}.0.SelfAttention.relative_attention_bias.weight"),
            &[c.relative_attention_num_buckets, c.num_heads],
        );
        l.add(format!("{b}.0.layer_norm.weight"), &[c.d_model]);
        l.add(
            format!("{b}.1.DenseReluDense.wi_0.weight"),
            &[c.d_ff, c.d_model],
        );
        l.add(
            format!("{b}.1.DenseReluDense.wi_1.weight"),
            &[c.d_ff, c.d_model],
        );
        l.add(
            format!("{b}.1.DenseReluDense.wo.weight"),
            &[c.d_model, c.d_ff],
        );
        l.add(format!("{b}.1.layer_norm.weight"), &[c.d_model]);
    }
    l.add("encoder.final_layer_norm.weight", &[c.d_model]);
    // The encoder's embedding is `shared` itself in UMT5EncoderModel whatever
    // tie_word_embeddings says (that flag is about the LM head, which this model lacks).
    let optional = vec![(
        "encoder.embed_tokens.weight".to_string(),
        vec![c.vocab_size, c.d_model],
    )];
    Expected {
        required: l.0,
        optional,
        ignored_prefixes: &[],
    }
}

/// A `WanResidualBlock(input, output)`: RMS norms with a [C, 1, 1, 1] gamma, causal 3x3x3
/// convolutions, and a 1x1x1 shortcut when the width changes.
fn residual(l: &mut List, prefix: &str, input: usize, output: usize) {
    l.add(format!("{prefix}.norm1.gamma"), &[input, 1, 1, 1]);
    l.conv(&format!("{prefix}.conv1"), input, output, &[3, 3, 3]);
    l.add(format!("{prefix}.norm2.gamma"), &[output, 1, 1, 1]);
    l.conv(&format!("{prefix}.conv2"), output, output, &[3, 3, 3]);
    if input != output {
        l.conv(
            &format!("{prefix}.conv_shortcut"),
            input,
            output,
            &[1, 1, 1],
        );
    }
}

/// The decoding half of `AutoencoderKLWan` (Wan2.1: plain up blocks, no attention outside the
/// middle block). The server only decodes, so the encoder (`encoder.*`, `quant_conv.*`) is
/// allowed and ignored: the published file holds it, and a decoder-only export may not.
pub(crate) fn vae(c: &WanVaeConfig) -> Expected {
    let base = c.decoder_dim();
    let levels = c.dim_mult.len();
    // Widths from the bottom up: the deepest level's width, then each level's in reverse.
    let dims: Vec<usize> = std::iter::once(c.dim_mult[levels - 1])
        .chain(c.dim_mult.iter().rev().copied())
        .map(|m| m * base)
        .collect();
    let mut l = List(Vec::new());
    l.conv("post_quant_conv", c.z_dim, c.z_dim, &[1, 1, 1]);
    l.conv("decoder.conv_in", c.z_dim, dims[0], &[3, 3, 3]);
    residual(&mut l, "decoder.mid_block.resnets.0", dims[0], dims[0]);
    l.add(
        "decoder.mid_block.attentions.0.norm.gamma",
        &[dims[0], 1, 1],
    );
    l.conv(
        "decoder.mid_block.attentions.0.to_qkv",
        dims[0],
        3 * dims[0],
        &[1, 1],
    );
    l.conv(
        "decoder.mid_block.attentions.0.proj",
        dims[0],
        dims[0],
        &[1, 1],
    );
    residual(&mut l, "decoder.mid_block.resnets.1", dims[0], dims[0]);
    // The decoder upsamples in the reverse order of the encoder's downsampling.
    let temporal: Vec<bool> = c.temperal_downsample.iter().rev().copied().collect();
    for i in 0..levels {
        let output = dims[i + 1];
        // Each upsampler halves the width, so every level after the first starts at half.
        let mut width = if i == 0 { dims[0] } else { dims[i] / 2 };
        let b = format!("decoder.up_blocks.{i}");
        for j in 0..=c.num_res_blocks {
            residual(&mut l, &format!("{b}.resnets.{j}"), width, output);
            width = output;
        }
        if i + 1 < levels {
            let up = format!("{b}.upsamplers.0");
            l.conv(&format!("{up}.resample.1"), output, output / 2, &[3, 3]);
            if temporal[i] {
                l.conv(&format!("{up}.time_conv"), output, 2 * output, &[3, 1, 1]);
            }
        }
    }
    let last = dims[levels];
    l.add("decoder.norm_out.gamma", &[last, 1, 1, 1]);
    l.conv("decoder.conv_out", last, c.out_channels, &[3, 3, 3]);
    Expected {
        required: l.0,
        optional: Vec::new(),
        ignored_prefixes: &["encoder.", "quant_conv."],
    }
}
