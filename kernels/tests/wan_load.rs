//! Loading and validating Wan2.1 checkpoints in the diffusers layout (`kernels::wan`).
//!
//! The helper writes a tiny pipeline directory the way `WanPipeline.save_pretrained` lays it
//! out, with every dimension of each config distinct so that a swapped or transposed shape
//! cannot pass, and its own list of tensor names (the VAE decoder's spelled out literally)
//! rather than the loader's, so a wrong expectation in the loader fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kernels::wan::{WanCheckpoint, WanDtype, WanLoadError, WanScheduler};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};

type Tensors = Vec<(String, Vec<usize>)>;

fn push(list: &mut Tensors, name: impl Into<String>, shape: &[usize]) {
    list.push((name.into(), shape.to_vec()));
}

fn linear(list: &mut Tensors, prefix: &str, input: usize, output: usize) {
    push(list, format!("{prefix}.weight"), &[output, input]);
    push(list, format!("{prefix}.bias"), &[output]);
}

// Tiny transformer: heads 2 x 6 = width 12, patch (1, 2, 3), 4 channels in, 5 out, text 7,
// time features 8, ffn 10, 2 blocks.
const D: usize = 12;

fn transformer_config() -> Value {
    json!({
        "_class_name": "WanTransformer3DModel",
        "_diffusers_version": "0.42.1",
        "added_kv_proj_dim": null,
        "attention_head_dim": 6,
        "cross_attn_norm": true,
        "eps": 1e-06,
        "ffn_dim": 10,
        "freq_dim": 8,
        "image_dim": null,
        "in_channels": 4,
        "num_attention_heads": 2,
        "num_layers": 2,
        "out_channels": 5,
        "patch_size": [1, 2, 3],
        "pos_embed_seq_len": null,
        "qk_norm": "rms_norm_across_heads",
        "rope_max_seq_len": 1024,
        "text_dim": 7
    })
}

fn transformer_tensors() -> Tensors {
    let mut t = Tensors::new();
    push(&mut t, "patch_embedding.weight", &[D, 4, 1, 2, 3]);
    push(&mut t, "patch_embedding.bias", &[D]);
    let c = "condition_embedder";
    linear(&mut t, &format!("{c}.time_embedder.linear_1"), 8, D);
    linear(&mut t, &format!("{c}.time_embedder.linear_2"), D, D);
    linear(&mut t, &format!("{c}.time_proj"), D, 6 * D);
    linear(&mut t, &format!("{c}.text_embedder.linear_1"), 7, D);
    linear(&mut t, &format!("{c}.text_embedder.linear_2"), D, D);
    for i in 0..2 {
        for attn in ["attn1", "attn2"] {
            let a = format!("blocks.{i}.{attn}");
            for proj in ["to_q", "to_k", "to_v", "to_out.0"] {
                linear(&mut t, &format!("{a}.{proj}"), D, D);
            }
            push(&mut t, format!("{a}.norm_q.weight"), &[D]);
            push(&mut t, format!("{a}.norm_k.weight"), &[D]);
        }
        push(&mut t, format!("blocks.{i}.norm2.weight"), &[D]);
        push(&mut t, format!("blocks.{i}.norm2.bias"), &[D]);
        linear(&mut t, &format!("blocks.{i}.ffn.net.0.proj"), D, 10);
        linear(&mut t, &format!("blocks.{i}.ffn.net.2"), 10, D);
        push(&mut t, format!("blocks.{i}.scale_shift_table"), &[1, 6, D]);
    }
    push(&mut t, "scale_shift_table", &[1, 2, D]);
    linear(&mut t, "proj_out", D, 5 * 6);
    t
}

// Tiny umT5: vocab 11, width 9, 4 heads x 5, ffn 14, 2 layers, 6 buckets.
fn text_encoder_config() -> Value {
    json!({
        "architectures": ["UMT5EncoderModel"],
        "classifier_dropout": 0.0,
        "d_ff": 14,
        "d_kv": 5,
        "d_model": 9,
        "dense_act_fn": "gelu_new",
        "dropout_rate": 0.1,
        "dtype": "float32",
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "initializer_factor": 1.0,
        "is_encoder_decoder": true,
        "is_gated_act": true,
        "layer_norm_epsilon": 1e-06,
        "model_type": "umt5",
        "num_decoder_layers": 2,
        "num_heads": 4,
        "num_layers": 2,
        "pad_token_id": 0,
        "relative_attention_max_distance": 16,
        "relative_attention_num_buckets": 6,
        "scalable_attention": true,
        "tie_word_embeddings": true,
        "tokenizer_class": "T5Tokenizer",
        "transformers_version": "5.24.0",
        "use_cache": true,
        "vocab_size": 11
    })
}

fn text_encoder_tensors() -> Tensors {
    let mut t = Tensors::new();
    push(&mut t, "shared.weight", &[11, 9]);
    for i in 0..2 {
        let a = format!("encoder.block.{i}.layer.0");
        for p in ["q", "k", "v"] {
            push(&mut t, format!("{a}.SelfAttention.{p}.weight"), &[20, 9]);
        }
        push(&mut t, format!("{a}.SelfAttention.o.weight"), &[9, 20]);
        push(
            &mut t,
            format!("{a}.SelfAttention.relative_attention_bias.weight"),
            &[6, 4],
        );
        push(&mut t, format!("{a}.layer_norm.weight"), &[9]);
        let f = format!("encoder.block.{i}.layer.1");
        push(&mut t, format!("{f}.DenseReluDense.wi_0.weight"), &[14, 9]);
        push(&mut t, format!("{f}.DenseReluDense.wi_1.weight"), &[14, 9]);
        push(&mut t, format!("{f}.DenseReluDense.wo.weight"), &[9, 14]);
        push(&mut t, format!("{f}.layer_norm.weight"), &[9]);
    }
    push(&mut t, "encoder.final_layer_norm.weight", &[9]);
    t
}

// Tiny VAE: base 2, z 3, levels x1 x2 x3, 1 residual block per level (2 in the decoder),
// time halved at the second and third encoder levels: decoder widths 6, 6, 4, 2.
fn vae_config() -> Value {
    json!({
        "_class_name": "AutoencoderKLWan",
        "_diffusers_version": "0.42.1",
        "attn_scales": [],
        "base_dim": 2,
        "decoder_base_dim": null,
        "dim_mult": [1, 2, 3],
        "dropout": 0.0,
        "in_channels": 3,
        "is_residual": false,
        "latents_mean": [0.1, -0.2, 0.3],
        "latents_std": [1.5, 2.5, 3.5],
        "num_res_blocks": 1,
        "out_channels": 3,
        "patch_size": null,
        "scale_factor_spatial": 4,
        "scale_factor_temporal": 2,
        "temperal_downsample": [false, true],
        "z_dim": 3
    })
}

/// The decoder, spelled out: what `AutoencoderKLWan(**vae_config())` names its decoding
/// parameters.
fn vae_decoder_tensors() -> Tensors {
    let literal: &[(&str, &[usize])] = &[
        ("post_quant_conv.weight", &[3, 3, 1, 1, 1]),
        ("post_quant_conv.bias", &[3]),
        ("decoder.conv_in.weight", &[6, 3, 3, 3, 3]),
        ("decoder.conv_in.bias", &[6]),
        ("decoder.mid_block.resnets.0.norm1.gamma", &[6, 1, 1, 1]),
        ("decoder.mid_block.resnets.0.conv1.weight", &[6, 6, 3, 3, 3]),
        ("decoder.mid_block.resnets.0.conv1.bias", &[6]),
        ("decoder.mid_block.resnets.0.norm2.gamma", &[6, 1, 1, 1]),
        ("decoder.mid_block.resnets.0.conv2.weight", &[6, 6, 3, 3, 3]),
        ("decoder.mid_block.resnets.0.conv2.bias", &[6]),
        ("decoder.mid_block.attentions.0.norm.gamma", &[6, 1, 1]),
        (
            "decoder.mid_block.attentions.0.to_qkv.weight",
            &[18, 6, 1, 1],
        ),
        ("decoder.mid_block.attentions.0.to_qkv.bias", &[18]),
        ("decoder.mid_block.attentions.0.proj.weight", &[6, 6, 1, 1]),
        ("decoder.mid_block.attentions.0.proj.bias", &[6]),
        ("decoder.mid_block.resnets.1.norm1.gamma", &[6, 1, 1, 1]),
        ("decoder.mid_block.resnets.1.conv1.weight", &[6, 6, 3, 3, 3]),
        ("decoder.mid_block.resnets.1.conv1.bias", &[6]),
        ("decoder.mid_block.resnets.1.norm2.gamma", &[6, 1, 1, 1]),
        ("decoder.mid_block.resnets.1.conv2.weight", &[6, 6, 3, 3, 3]),
        ("decoder.mid_block.resnets.1.conv2.bias", &[6]),
        // Level 0: 6 -> 6, then an upsample3d to 3 channels (time doubled first).
        ("decoder.up_blocks.0.resnets.0.norm1.gamma", &[6, 1, 1, 1]),
        (
            "decoder.up_blocks.0.resnets.0.conv1.weight",
            &[6, 6, 3, 3, 3],
        ),
        ("decoder.up_blocks.0.resnets.0.conv1.bias", &[6]),
        ("decoder.up_blocks.0.resnets.0.norm2.gamma", &[6, 1, 1, 1]),
        (
            "decoder.up_blocks.0.resnets.0.conv2.weight",
            &[6, 6, 3, 3, 3],
        ),
        ("decoder.up_blocks.0.resnets.0.conv2.bias", &[6]),
        ("decoder.up_blocks.0.resnets.1.norm1.gamma", &[6, 1, 1, 1]),
        (
            "decoder.up_blocks.0.resnets.1.conv1.weight",
            &[6, 6, 3, 3, 3],
        ),
        ("decoder.up_blocks.0.resnets.1.conv1.bias", &[6]),
        ("decoder.up_blocks.0.resnets.1.norm2.gamma", &[6, 1, 1, 1]),
        (
            "decoder.up_blocks.0.resnets.1.conv2.weight",
            &[6, 6, 3, 3, 3],
        ),
        ("decoder.up_blocks.0.resnets.1.conv2.bias", &[6]),
        (
            "decoder.up_blocks.0.upsamplers.0.resample.1.weight",
            &[3, 6, 3, 3],
        ),
        ("decoder.up_blocks.0.upsamplers.0.resample.1.bias", &[3]),
        (
            "decoder.up_blocks.0.upsamplers.0.time_conv.weight",
            &[12, 6, 3, 1, 1],
        ),
        ("decoder.up_blocks.0.upsamplers.0.time_conv.bias", &[12]),
        // Level 1: 3 -> 4 (with a shortcut), then an upsample2d to 2 channels.
        ("decoder.up_blocks.1.resnets.0.norm1.gamma", &[3, 1, 1, 1]),
        (
            "decoder.up_blocks.1.resnets.0.conv1.weight",
            &[4, 3, 3, 3, 3],
        ),
        ("decoder.up_blocks.1.resnets.0.conv1.bias", &[4]),
        ("decoder.up_blocks.1.resnets.0.norm2.gamma", &[4, 1, 1, 1]),
        (
            "decoder.up_blocks.1.resnets.0.conv2.weight",
            &[4, 4, 3, 3, 3],
        ),
        ("decoder.up_blocks.1.resnets.0.conv2.bias", &[4]),
        (
            "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
            &[4, 3, 1, 1, 1],
        ),
        ("decoder.up_blocks.1.resnets.0.conv_shortcut.bias", &[4]),
        ("decoder.up_blocks.1.resnets.1.norm1.gamma", &[4, 1, 1, 1]),
        (
            "decoder.up_blocks.1.resnets.1.conv1.weight",
            &[4, 4, 3, 3, 3],
        ),
        ("decoder.up_blocks.1.resnets.1.conv1.bias", &[4]),
        ("decoder.up_blocks.1.resnets.1.norm2.gamma", &[4, 1, 1, 1]),
        (
            "decoder.up_blocks.1.resnets.1.conv2.weight",
            &[4, 4, 3, 3, 3],
        ),
        ("decoder.up_blocks.1.resnets.1.conv2.bias", &[4]),
        (
            "decoder.up_blocks.1.upsamplers.0.resample.1.weight",
            &[2, 4, 3, 3],
        ),
        ("decoder.up_blocks.1.upsamplers.0.resample.1.bias", &[2]),
        // Level 2: 2 -> 2, no upsampler.
        ("decoder.up_blocks.2.resnets.0.norm1.gamma", &[2, 1, 1, 1]),
        (
            "decoder.up_blocks.2.resnets.0.conv1.weight",
            &[2, 2, 3, 3, 3],
        ),
        ("decoder.up_blocks.2.resnets.0.conv1.bias", &[2]),
        ("decoder.up_blocks.2.resnets.0.norm2.gamma", &[2, 1, 1, 1]),
        (
            "decoder.up_blocks.2.resnets.0.conv2.weight",
            &[2, 2, 3, 3, 3],
        ),
        ("decoder.up_blocks.2.resnets.0.conv2.bias", &[2]),
        ("decoder.up_blocks.2.resnets.1.norm1.gamma", &[2, 1, 1, 1]),
        (
            "decoder.up_blocks.2.resnets.1.conv1.weight",
            &[2, 2, 3, 3, 3],
        ),
        ("decoder.up_blocks.2.resnets.1.conv1.bias", &[2]),
        ("decoder.up_blocks.2.resnets.1.norm2.gamma", &[2, 1, 1, 1]),
        (
            "decoder.up_blocks.2.resnets.1.conv2.weight",
            &[2, 2, 3, 3, 3],
        ),
        ("decoder.up_blocks.2.resnets.1.conv2.bias", &[2]),
        ("decoder.norm_out.gamma", &[2, 1, 1, 1]),
        ("decoder.conv_out.weight", &[3, 2, 3, 3, 3]),
        ("decoder.conv_out.bias", &[3]),
    ];
    literal
        .iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

/// A few of the encoder's tensors, which the published VAE file holds and the loader ignores.
fn vae_encoder_tensors() -> Tensors {
    let mut t = Tensors::new();
    push(&mut t, "encoder.conv_in.weight", &[2, 3, 3, 3, 3]);
    push(&mut t, "encoder.conv_in.bias", &[2]);
    push(&mut t, "encoder.conv_out.weight", &[6, 6, 3, 3, 3]);
    push(&mut t, "quant_conv.weight", &[6, 6, 1, 1, 1]);
    push(&mut t, "quant_conv.bias", &[6]);
    t
}

fn model_index() -> Value {
    json!({
        "_class_name": "WanPipeline",
        "_diffusers_version": "0.42.1",
        "boundary_ratio": null,
        "expand_timesteps": false,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "transformer_2": [null, null],
        "vae": ["diffusers", "AutoencoderKLWan"]
    })
}

fn scheduler_config() -> Value {
    json!({
        "_class_name": "UniPCMultistepScheduler",
        "_diffusers_version": "0.42.1",
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "beta_start": 0.0001,
        "disable_corrector": [],
        "dynamic_thresholding_ratio": 0.995,
        "final_sigmas_type": "zero",
        "flow_shift": 3.0,
        "lower_order_final": true,
        "num_train_timesteps": 1000,
        "predict_x0": true,
        "prediction_type": "flow_prediction",
        "rescale_betas_zero_snr": false,
        "solver_order": 2,
        "solver_p": null,
        "solver_type": "bh2",
        "steps_offset": 0,
        "thresholding": false,
        "timestep_spacing": "linspace",
        "trained_betas": null,
        "use_flow_sigmas": true
    })
}

/// A unigram tokenizer in the layout `T5Tokenizer` saves: pad 0, eos 1, unk 2, SentencePiece
/// word boundaries, `</s>` appended.
fn tokenizer_json() -> Value {
    let special = |id: u32, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": null,
        // As transformers 5 writes it (model/wan/tiny/tokenizer/tokenizer.json), less the
        // Precompiled nmt_nfkc normaliser.
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always",
             "split": true}
        ]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": {"type": "Metaspace", "replacement": "\u{2581}",
                    "prepend_scheme": "always", "split": true},
        "model": {
            "type": "Unigram",
            "unk_id": 2,
            "vocab": [["<pad>", 0.0], ["</s>", 0.0], ["<unk>", 0.0],
                      ["\u{2581}a", -2.0], ["\u{2581}red", -3.0], ["\u{2581}fox", -3.5],
                      ["\u{2581}", -4.0], ["r", -5.0], ["e", -5.0], ["d", -5.0],
                      ["\u{2581}runs", -3.2]],
            "byte_fallback": false
        }
    })
}

/// Deterministic pseudo-random values in [-1, 1), different per tensor.
fn values(name: &str, len: usize) -> Vec<f32> {
    let mut state = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The bytes of `values(name, ..)` stored as `dtype`.
fn encode(name: &str, shape: &[usize], dtype: Dtype) -> Vec<u8> {
    let v = values(name, shape.iter().product());
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        // Any other type: the right number of arbitrary bytes, for the refusal tests.
        other => vec![7u8; v.len() * other.bitsize() / 8],
    }
}

/// Writes `tensors` as one safetensors file, every one as `dtype` except those in `odd`.
fn write_safetensors(path: &Path, tensors: &Tensors, dtype: Dtype, odd: &[(&str, Dtype)]) {
    let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let d = odd
                .iter()
                .find(|(n, _)| n == name)
                .map_or(dtype, |(_, d)| *d);
            (name.clone(), shape.clone(), d, encode(name, shape, d))
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, d, data)| {
            (
                name.clone(),
                TensorView::new(*d, shape.clone(), data).expect("view"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("json")).expect("write json");
}

/// Splits the transformer over two shards and writes the index diffusers writes beside them.
fn write_sharded(dir: &Path, tensors: &Tensors, dtype: Dtype) {
    let (first, second) = tensors.split_at(tensors.len() / 2);
    let names = [
        "diffusion_pytorch_model-00001-of-00002.safetensors",
        "diffusion_pytorch_model-00002-of-00002.safetensors",
    ];
    let mut map = BTreeMap::new();
    for (part, file) in [first, second].into_iter().zip(names) {
        write_safetensors(&dir.join(file), &part.to_vec(), dtype, &[]);
        for (name, _) in part {
            map.insert(name.clone(), file);
        }
    }
    write_json(
        &dir.join("diffusion_pytorch_model.safetensors.index.json"),
        &json!({"metadata": {"total_size": 0}, "weight_map": map}),
    );
}

/// A tiny pipeline directory; the text encoder also holds the tied `encoder.embed_tokens`
/// alias, the VAE a few encoder tensors.
struct Tiny {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Tiny {
    fn new(dtype: Dtype, sharded: bool) -> Tiny {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("Wan2.1-T2V-tiny-Diffusers");
        write_json(&dir.join("model_index.json"), &model_index());
        write_json(
            &dir.join("scheduler/scheduler_config.json"),
            &scheduler_config(),
        );
        write_json(&dir.join("tokenizer/tokenizer.json"), &tokenizer_json());
        write_json(
            &dir.join("tokenizer/tokenizer_config.json"),
            &json!({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}),
        );
        write_json(&dir.join("transformer/config.json"), &transformer_config());
        if sharded {
            write_sharded(&dir.join("transformer"), &transformer_tensors(), dtype);
        } else {
            write_safetensors(
                &dir.join("transformer/diffusion_pytorch_model.safetensors"),
                &transformer_tensors(),
                dtype,
                &[],
            );
        }
        write_json(
            &dir.join("text_encoder/config.json"),
            &text_encoder_config(),
        );
        let mut text = text_encoder_tensors();
        push(&mut text, "encoder.embed_tokens.weight", &[11, 9]);
        write_safetensors(
            &dir.join("text_encoder/model.safetensors"),
            &text,
            dtype,
            &[],
        );
        write_json(&dir.join("vae/config.json"), &vae_config());
        let mut vae = vae_decoder_tensors();
        vae.extend(vae_encoder_tensors());
        write_safetensors(
            &dir.join("vae/diffusion_pytorch_model.safetensors"),
            &vae,
            dtype,
            &[],
        );
        Tiny { _tmp: tmp, dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn error(&self) -> String {
        match WanCheckpoint::open(&self.dir) {
            Ok(_) => panic!("a broken checkpoint loaded"),
            Err(e) => e.to_string(),
        }
    }
}

fn parameters(tensors: &Tensors) -> u64 {
    tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not name {part:?}");
    }
}

#[test]
fn loads_and_describes_each_dtype() {
    for (dtype, name, size) in [
        (Dtype::F32, "F32", 4u64),
        (Dtype::BF16, "BF16", 2),
        (Dtype::F16, "F16", 2),
    ] {
        let tiny = Tiny::new(dtype, false);
        let ckpt = WanCheckpoint::open(&tiny.dir).expect("tiny checkpoint loads");
        let summary = ckpt.describe();
        assert_eq!(summary.pipeline, "WanPipeline");
        assert_eq!(summary.scheduler, "UniPCMultistepScheduler");
        assert_eq!(summary.vocab_size, 11);
        let expected = [
            (
                "text_encoder",
                "UMT5EncoderModel",
                text_encoder_tensors(),
                1,
                11 * 9,
            ),
            (
                "transformer",
                "WanTransformer3DModel",
                transformer_tensors(),
                0,
                0,
            ),
            ("vae", "AutoencoderKLWan", vae_decoder_tensors(), 5, 0),
        ];
        assert_eq!(summary.components.len(), 3);
        for (c, (cname, class, tensors, ignored, _)) in summary.components.iter().zip(&expected) {
            assert_eq!(&c.name, cname);
            assert_eq!(&c.class, class);
            assert_eq!(c.weights.files, 1);
            assert_eq!(c.weights.tensors, tensors.len(), "{cname}");
            assert_eq!(c.weights.parameters, parameters(tensors), "{cname}");
            assert_eq!(c.weights.bytes, parameters(tensors) * size, "{cname}");
            assert_eq!(c.weights.dtypes, vec![name.to_string()]);
            assert_eq!(c.weights.ignored_tensors, *ignored, "{cname}");
        }
        assert_eq!(
            summary.components[0].weights.ignored_bytes,
            (expected[0].4 as u64) * size
        );
        assert_eq!(
            summary.components[2].weights.ignored_bytes,
            parameters(&vae_encoder_tensors()) * size
        );
        // The JSON form is what logs and /readyz carry.
        let value = serde_json::to_value(&summary).expect("summary serialises");
        assert_eq!(
            value["components"][1]["parameters"],
            parameters(&transformer_tensors())
        );
        assert_eq!(value["components"][1]["dtypes"][0], name);

        // Values come back exactly as stored (widened to f32).
        let weights = ckpt.transformer();
        let t = weights
            .tensor("blocks.1.ffn.net.0.proj.weight")
            .expect("present");
        assert_eq!(t.shape, &[10, D]);
        assert_eq!(t.dtype.name(), name);
        let stored: Vec<f32> = values("blocks.1.ffn.net.0.proj.weight", 10 * D)
            .into_iter()
            .map(|x| match dtype {
                Dtype::BF16 => half::bf16::from_f32(x).to_f32(),
                Dtype::F16 => half::f16::from_f32(x).to_f32(),
                _ => x,
            })
            .collect();
        assert_eq!(t.to_f32(), stored);
        // Ignored tensors are not handed out.
        assert!(ckpt.vae().tensor("encoder.conv_in.weight").is_none());
        assert!(ckpt
            .text_encoder()
            .tensor("encoder.embed_tokens.weight")
            .is_none());
        assert!(ckpt.text_encoder().tensor("shared.weight").is_some());
    }
}

#[test]
fn configs_are_typed() {
    let tiny = Tiny::new(Dtype::F32, false);
    let ckpt = WanCheckpoint::open(&tiny.dir).expect("loads");
    let t = ckpt.transformer_config();
    assert_eq!(
        (
            t.patch_size,
            t.inner_dim(),
            t.ffn_dim,
            t.text_dim,
            t.freq_dim
        ),
        ([1, 2, 3], D, 10, 7, 8)
    );
    let u = ckpt.text_encoder_config();
    assert_eq!((u.d_model, u.num_heads, u.d_kv, u.d_ff), (9, 4, 5, 14));
    assert_eq!(u.relative_attention_max_distance, 16);
    let v = ckpt.vae_config();
    assert_eq!(
        (v.z_dim, v.decoder_dim(), v.latents_std.clone()),
        (3, 2, vec![1.5, 2.5, 3.5])
    );
    match ckpt.scheduler() {
        WanScheduler::UniPc(s) => {
            assert_eq!(s.prediction_type, "flow_prediction");
            assert!(s.use_flow_sigmas);
            assert_eq!(s.flow_shift, 3.0);
        }
        other => panic!("wrong scheduler {other:?}"),
    }
    assert_eq!(ckpt.model_index().tokenizer.1, "T5Tokenizer");
}

#[test]
fn flow_match_euler_scheduler_loads() {
    let tiny = Tiny::new(Dtype::F32, false);
    write_json(
        &tiny.path("scheduler/scheduler_config.json"),
        &json!({"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 5.0,
                "num_train_timesteps": 1000, "use_dynamic_shifting": false}),
    );
    let mut index = model_index();
    index["scheduler"] = json!(["diffusers", "FlowMatchEulerDiscreteScheduler"]);
    write_json(&tiny.path("model_index.json"), &index);
    let ckpt = WanCheckpoint::open(&tiny.dir).expect("loads");
    match ckpt.scheduler() {
        WanScheduler::FlowMatchEuler(s) => assert_eq!(s.shift, 5.0),
        other => panic!("wrong scheduler {other:?}"),
    }
}

#[test]
fn tokenizer_round_trips_a_prompt() {
    let tiny = Tiny::new(Dtype::F32, false);
    let ckpt = WanCheckpoint::open(&tiny.dir).expect("loads");
    let encoding = ckpt
        .tokenizer()
        .encode("a red fox runs", true)
        .expect("encodes");
    assert_eq!(encoding.get_ids(), &[3, 4, 5, 10, 1]);
    let text = ckpt
        .tokenizer()
        .decode(encoding.get_ids(), true)
        .expect("decodes");
    assert_eq!(text, "a red fox runs");
}

#[test]
fn sharded_transformer_loads() {
    let tiny = Tiny::new(Dtype::BF16, true);
    let ckpt = WanCheckpoint::open(&tiny.dir).expect("sharded checkpoint loads");
    let summary = ckpt.describe();
    let t = &summary.components[1];
    assert_eq!(t.weights.files, 2);
    assert_eq!(t.weights.tensors, transformer_tensors().len());
    assert_eq!(t.weights.parameters, parameters(&transformer_tensors()));
    // One tensor from each shard.
    for name in ["patch_embedding.weight", "proj_out.bias"] {
        let tensor = ckpt.transformer().tensor(name).expect("present");
        assert_eq!(tensor.dtype, WanDtype::Bf16);
    }
}

#[test]
fn missing_config_file() {
    let tiny = Tiny::new(Dtype::F32, false);
    std::fs::remove_file(tiny.path("vae/config.json")).expect("rm");
    assert_names(&tiny.error(), &["vae/config.json"]);
}

#[test]
fn missing_weights_file() {
    let tiny = Tiny::new(Dtype::F32, false);
    std::fs::remove_file(tiny.path("text_encoder/model.safetensors")).expect("rm");
    assert_names(&tiny.error(), &["text_encoder", "safetensors"]);
}

#[test]
fn missing_shard() {
    let tiny = Tiny::new(Dtype::F32, true);
    let shard = "transformer/diffusion_pytorch_model-00002-of-00002.safetensors";
    std::fs::remove_file(tiny.path(shard)).expect("rm");
    assert_names(&tiny.error(), &[shard]);
}

#[test]
fn missing_tokenizer() {
    let tiny = Tiny::new(Dtype::F32, false);
    std::fs::remove_file(tiny.path("tokenizer/tokenizer.json")).expect("rm");
    assert_names(&tiny.error(), &["tokenizer/tokenizer.json"]);
}

#[test]
fn missing_tensor() {
    let tiny = Tiny::new(Dtype::F32, false);
    let tensors: Tensors = text_encoder_tensors()
        .into_iter()
        .filter(|(n, _)| {
            n != "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"
        })
        .collect();
    write_safetensors(
        &tiny.path("text_encoder/model.safetensors"),
        &tensors,
        Dtype::F32,
        &[],
    );
    assert_names(
        &tiny.error(),
        &[
            "text_encoder/model.safetensors",
            "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
            "[6, 4]",
        ],
    );
}

#[test]
fn missing_tensor_in_sharded_transformer_names_the_index() {
    let tiny = Tiny::new(Dtype::F32, true);
    let tensors: Tensors = transformer_tensors()
        .into_iter()
        .filter(|(n, _)| n != "blocks.1.attn2.norm_k.weight")
        .collect();
    std::fs::remove_file(
        tiny.path("transformer/diffusion_pytorch_model-00001-of-00002.safetensors"),
    )
    .expect("rm");
    std::fs::remove_file(
        tiny.path("transformer/diffusion_pytorch_model-00002-of-00002.safetensors"),
    )
    .expect("rm");
    write_sharded(&tiny.path("transformer"), &tensors, Dtype::F32);
    assert_names(
        &tiny.error(),
        &[
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "blocks.1.attn2.norm_k.weight",
            "[12]",
        ],
    );
}

#[test]
fn missing_vae_decoder_tensor() {
    let tiny = Tiny::new(Dtype::F32, false);
    let tensors: Tensors = vae_decoder_tensors()
        .into_iter()
        .filter(|(n, _)| n != "decoder.up_blocks.0.upsamplers.0.time_conv.weight")
        .collect();
    write_safetensors(
        &tiny.path("vae/diffusion_pytorch_model.safetensors"),
        &tensors,
        Dtype::F32,
        &[],
    );
    assert_names(
        &tiny.error(),
        &[
            "vae/diffusion_pytorch_model.safetensors",
            "decoder.up_blocks.0.upsamplers.0.time_conv.weight",
            "[12, 6, 3, 1, 1]",
        ],
    );
}

#[test]
fn extra_tensor() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut tensors = transformer_tensors();
    // A third block's weight: a checkpoint with more layers than its config says.
    push(&mut tensors, "blocks.2.attn1.to_q.weight", &[D, D]);
    write_safetensors(
        &tiny.path("transformer/diffusion_pytorch_model.safetensors"),
        &tensors,
        Dtype::F32,
        &[],
    );
    assert_names(
        &tiny.error(),
        &[
            "transformer/diffusion_pytorch_model.safetensors",
            "unexpected tensor blocks.2.attn1.to_q.weight",
        ],
    );
}

#[test]
fn wrong_shape() {
    let tiny = Tiny::new(Dtype::F32, false);
    let tensors: Tensors = text_encoder_tensors()
        .into_iter()
        .map(|(n, s)| {
            if n == "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight" {
                (n, vec![4, 6])
            } else {
                (n, s)
            }
        })
        .collect();
    write_safetensors(
        &tiny.path("text_encoder/model.safetensors"),
        &tensors,
        Dtype::F32,
        &[],
    );
    assert_names(
        &tiny.error(),
        &[
            "text_encoder/model.safetensors",
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            "has shape [4, 6], expected [6, 4]",
        ],
    );
}

#[test]
fn wrong_shape_of_tied_embedding_alias() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut tensors = text_encoder_tensors();
    push(&mut tensors, "encoder.embed_tokens.weight", &[9, 11]);
    write_safetensors(
        &tiny.path("text_encoder/model.safetensors"),
        &tensors,
        Dtype::F32,
        &[],
    );
    assert_names(
        &tiny.error(),
        &[
            "text_encoder/model.safetensors",
            "encoder.embed_tokens.weight",
            "[9, 11]",
        ],
    );
}

#[test]
fn unsupported_dtype() {
    let tiny = Tiny::new(Dtype::BF16, false);
    write_safetensors(
        &tiny.path("vae/diffusion_pytorch_model.safetensors"),
        &vae_decoder_tensors(),
        Dtype::BF16,
        &[("decoder.conv_in.bias", Dtype::I32)],
    );
    assert_names(
        &tiny.error(),
        &[
            "vae/diffusion_pytorch_model.safetensors",
            "decoder.conv_in.bias",
            "I32",
        ],
    );
}

#[test]
fn unknown_pipeline_class() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut index = model_index();
    index["_class_name"] = json!("StableDiffusionPipeline");
    write_json(&tiny.path("model_index.json"), &index);
    assert_names(
        &tiny.error(),
        &["model_index.json", "StableDiffusionPipeline"],
    );
}

#[test]
fn unknown_component_class() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut index = model_index();
    index["vae"] = json!(["diffusers", "AutoencoderKL"]);
    write_json(&tiny.path("model_index.json"), &index);
    assert_names(&tiny.error(), &["model_index.json", "vae", "AutoencoderKL"]);
}

#[test]
fn unknown_text_encoder_architecture() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut config = text_encoder_config();
    config["architectures"] = json!(["T5EncoderModel"]);
    write_json(&tiny.path("text_encoder/config.json"), &config);
    assert_names(
        &tiny.error(),
        &["text_encoder/config.json", "T5EncoderModel"],
    );
}

#[test]
fn image_to_video_transformer_is_refused() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut config = transformer_config();
    config["image_dim"] = json!(1280);
    write_json(&tiny.path("transformer/config.json"), &config);
    assert_names(&tiny.error(), &["transformer/config.json", "image_dim"]);
}

#[test]
fn bad_scheduler_class() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut config = scheduler_config();
    config["_class_name"] = json!("DDIMScheduler");
    write_json(&tiny.path("scheduler/scheduler_config.json"), &config);
    assert_names(
        &tiny.error(),
        &["scheduler/scheduler_config.json", "DDIMScheduler"],
    );
}

#[test]
fn bad_json() {
    let tiny = Tiny::new(Dtype::F32, false);
    std::fs::write(
        tiny.path("transformer/config.json"),
        b"{\"_class_name\": \"WanTra",
    )
    .expect("write");
    assert_names(&tiny.error(), &["bad JSON", "transformer/config.json"]);
}

#[test]
fn missing_config_key() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut config = vae_config();
    config.as_object_mut().expect("object").remove("z_dim");
    write_json(&tiny.path("vae/config.json"), &config);
    assert_names(&tiny.error(), &["vae/config.json", "z_dim"]);
}

#[test]
fn truncated_weights_file() {
    let tiny = Tiny::new(Dtype::F32, false);
    let path = tiny.path("vae/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 4]).expect("write");
    assert_names(&tiny.error(), &["vae/diffusion_pytorch_model.safetensors"]);
}

#[test]
fn tokenizer_that_is_not_one() {
    let tiny = Tiny::new(Dtype::F32, false);
    write_json(
        &tiny.path("tokenizer/tokenizer.json"),
        &json!({"model": {"type": "Nope"}}),
    );
    let message = tiny.error();
    assert_names(&message, &["tokenizer/tokenizer.json"]);
    // The error is the loader's, not a panic: a typed variant the server can report.
    assert!(matches!(
        WanCheckpoint::open(&tiny.dir),
        Err(WanLoadError::Tokenizer { .. })
    ));
}

#[test]
fn shard_index_that_disagrees_with_its_shards() {
    let tiny = Tiny::new(Dtype::F32, true);
    let path = tiny.path("transformer/diffusion_pytorch_model.safetensors.index.json");
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
    // proj_out.bias is in the second shard; the index now says the first.
    index["weight_map"]["proj_out.bias"] =
        json!("diffusion_pytorch_model-00001-of-00002.safetensors");
    write_json(&path, &index);
    assert_names(
        &tiny.error(),
        &[
            "transformer/diffusion_pytorch_model.safetensors.index.json",
            "proj_out.bias",
        ],
    );
}

#[test]
fn aliases_and_encoder_are_optional() {
    // transformers 5 writes only `shared.weight` for the tied umT5 embedding; a decoder-only
    // VAE export has no encoder. Both load, with nothing ignored.
    let tiny = Tiny::new(Dtype::F32, false);
    write_safetensors(
        &tiny.path("text_encoder/model.safetensors"),
        &text_encoder_tensors(),
        Dtype::F32,
        &[],
    );
    write_safetensors(
        &tiny.path("vae/diffusion_pytorch_model.safetensors"),
        &vae_decoder_tensors(),
        Dtype::F32,
        &[],
    );
    let summary = WanCheckpoint::open(&tiny.dir).expect("loads").describe();
    for c in &summary.components {
        assert_eq!(c.weights.ignored_tensors, 0, "{}", c.name);
        assert_eq!(c.weights.ignored_bytes, 0, "{}", c.name);
    }
    assert_eq!(
        summary.components[0].weights.parameters,
        parameters(&text_encoder_tensors())
    );
}

#[test]
fn tokenizer_larger_than_the_embedding() {
    let tiny = Tiny::new(Dtype::F32, false);
    let mut config = text_encoder_config();
    config["vocab_size"] = json!(10);
    write_json(&tiny.path("text_encoder/config.json"), &config);
    assert_names(
        &tiny.error(),
        &["tokenizer/tokenizer.json", "11 tokens", "vocab_size 10"],
    );
}
