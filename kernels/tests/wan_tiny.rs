//! The loader (`kernels::wan`) against a real `WanPipeline.save_pretrained` output: the tiny
//! random-weight pipeline in `model/wan/tiny/` and its goldens
//! (`model/wan/tiny-goldens.safetensors`), both written by `model/wan/make_tiny.py` with
//! diffusers 0.42.1 / transformers 5.24.0 (see that script for the dimensions and how to
//! regenerate them). Where `wan_load.rs` checks the loader against its own idea of the layout,
//! this checks it against what diffusers actually writes.

mod common;

use common::wan::{open_tiny as open, Goldens};
use kernels::wan::{WanDtype, WanScheduler};
use safetensors::Dtype;

#[test]
fn tiny_pipeline_loads_and_validates() {
    let ckpt = open();
    let summary = ckpt.describe();
    assert_eq!(summary.pipeline, "WanPipeline");
    assert_eq!(summary.scheduler, "UniPCMultistepScheduler");
    // 250 SentencePiece pieces + 7 <extra_id_*>.
    assert_eq!(summary.vocab_size, 257);
    assert_eq!(
        ckpt.model_index().diffusers_version.as_deref(),
        Some("0.42.1")
    );
    assert_eq!(ckpt.model_index().tokenizer.1, "T5Tokenizer");

    // (name, class, tensors, parameters, ignored tensors, ignored parameters): the counts of
    // what make_tiny.py saved; the VAE's encoder half is present and ignored.
    let expected = [
        ("text_encoder", "UMT5EncoderModel", 22, 15_858, 0, 0),
        ("transformer", "WanTransformer3DModel", 96, 37_797, 0, 0),
        ("vae", "AutoencoderKLWan", 110, 63_869, 88, 48_831),
    ];
    assert_eq!(summary.components.len(), expected.len());
    for (c, (name, class, tensors, params, ignored, ignored_params)) in
        summary.components.iter().zip(expected)
    {
        assert_eq!((c.name.as_str(), c.class.as_str()), (name, class));
        assert_eq!(c.weights.files, 1, "{name}");
        assert_eq!(c.weights.dtypes, vec!["F32".to_string()], "{name}");
        assert_eq!(c.weights.tensors, tensors, "{name}");
        assert_eq!(c.weights.parameters, params, "{name}");
        assert_eq!(c.weights.bytes, params * 4, "{name}");
        assert_eq!(c.weights.ignored_tensors, ignored, "{name}");
        assert_eq!(c.weights.ignored_bytes, ignored_params * 4, "{name}");
    }
}

#[test]
fn tiny_configs_are_the_scripts() {
    let ckpt = open();
    let t = ckpt.transformer_config();
    assert_eq!(t.patch_size, [1, 2, 3]);
    assert_eq!((t.num_attention_heads, t.attention_head_dim), (2, 14));
    assert_eq!((t.in_channels, t.out_channels), (5, 5));
    assert_eq!(
        (t.text_dim, t.freq_dim, t.ffn_dim, t.num_layers),
        (24, 18, 45, 3)
    );
    assert!(t.cross_attn_norm);
    assert_eq!(t.eps, 1e-6);

    let u = ckpt.text_encoder_config();
    assert_eq!(
        (u.vocab_size, u.d_model, u.num_heads, u.d_kv, u.d_ff),
        (263, 24, 3, 7, 37)
    );
    assert_eq!(u.num_layers, 2);
    assert_eq!(
        (
            u.relative_attention_num_buckets,
            u.relative_attention_max_distance
        ),
        (11, 19)
    );

    let v = ckpt.vae_config();
    assert_eq!((v.base_dim, v.decoder_dim(), v.z_dim), (3, 3, 5));
    assert_eq!(v.dim_mult, vec![1, 2, 3, 4]);
    assert_eq!(v.num_res_blocks, 2);
    assert_eq!(v.temperal_downsample, vec![false, true, true]);
    assert_eq!(v.latents_mean.len(), 5);
    assert!(v.latents_std.iter().all(|s| *s > 0.0));

    match ckpt.scheduler() {
        WanScheduler::UniPc(s) => {
            assert_eq!(s.prediction_type, "flow_prediction");
            assert!(s.use_flow_sigmas);
            assert_eq!(s.flow_shift, 3.0);
            assert_eq!((s.solver_order, s.solver_type.as_str()), (2, "bh2"));
        }
        other => panic!("wrong scheduler {other:?}"),
    }

    // The weights are the random ones, not an init's ones and zeros.
    let gamma = ckpt
        .vae()
        .tensor("decoder.norm_out.gamma")
        .expect("present");
    assert_eq!(gamma.shape, &[3, 1, 1, 1]);
    assert_eq!(gamma.dtype, WanDtype::F32);
    assert!(gamma.to_f32().iter().all(|g| *g != 1.0));
    let table = ckpt
        .transformer()
        .tensor("scale_shift_table")
        .expect("present");
    assert_eq!(table.shape, &[1, 2, 28]);
    assert!(table.to_f32().iter().all(|x| *x != 0.0));
}

#[test]
fn tokenizer_matches_the_golden_ids() {
    let ckpt = open();
    let goldens = Goldens::load();
    let meta = goldens.metadata();
    let max_len: usize = meta["max_sequence_length"].parse().expect("a number");
    for key in ["en", "zh"] {
        let prompt = &meta[&format!("prompt.{key}")];
        let encoding = ckpt.tokenizer().encode(prompt.as_str(), true).expect(key);
        let got: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
        let n = got.len();
        let want = goldens.i64(&format!("{key}.ids"), &[n]);
        assert_eq!(got, want, "{key}: {prompt:?}");
        // Ends with </s> (1) and, on these prompts, is more than one token per word.
        assert_eq!(got.last(), Some(&1), "{key}");
        assert!(n > 10, "{key}: {n} tokens");

        // The pipeline's padded form: the same ids, then <pad> (0), mask 1 over the prompt.
        let padded = goldens.i64(&format!("{key}.input_ids"), &[1, max_len]);
        assert_eq!(&padded[..n], &want[..], "{key}");
        assert!(padded[n..].iter().all(|&i| i == 0), "{key}");
        let mask = goldens.i64(&format!("{key}.attention_mask"), &[1, max_len]);
        assert!(mask[..n].iter().all(|&m| m == 1), "{key}");
        assert!(mask[n..].iter().all(|&m| m == 0), "{key}");
    }
    // The English prompt exercises an out-of-vocabulary character (<unk>, 2).
    let en = ckpt
        .tokenizer()
        .encode(meta["prompt.en"].as_str(), true)
        .expect("en");
    assert!(en.get_ids().contains(&2), "{:?}", en.get_tokens());
}

#[test]
fn goldens_fit_the_configs() {
    let ckpt = open();
    let goldens = Goldens::load();
    let tensors = goldens.tensors();
    let text_dim = ckpt.transformer_config().text_dim;
    assert_eq!(text_dim, ckpt.text_encoder_config().d_model);
    let z = ckpt.vae_config().z_dim;
    let shapes: &[(&str, Vec<usize>)] = &[
        ("en.last_hidden_state", vec![1, 512, text_dim]),
        ("zh.last_hidden_state", vec![1, 512, text_dim]),
        ("en.prompt_embeds", vec![1, 512, text_dim]),
        ("zh.prompt_embeds", vec![1, 512, text_dim]),
        ("negative.prompt_embeds", vec![1, 512, text_dim]),
        ("transformer.latent", vec![1, z, 2, 4, 6]),
        ("transformer.timestep", vec![1]),
        ("transformer.output", vec![1, z, 2, 4, 6]),
        ("unipc4.sigmas", vec![5]),
        ("vae.latent", vec![1, z, 2, 4, 6]),
        ("vae.video", vec![1, 3, 5, 32, 48]),
        ("pipeline.latents", vec![1, z, 2, 4, 6]),
        ("pipeline.final_latents", vec![1, z, 2, 4, 6]),
        ("pipeline.video", vec![1, 5, 32, 48, 3]),
        ("transformer.patch_embed", vec![1, 8, 28]),
        ("transformer.temb", vec![1, 28]),
        ("transformer.timestep_proj", vec![1, 6 * 28]),
        ("transformer.text_embeds", vec![1, 512, 28]),
        ("transformer.blocks", vec![3, 1, 8, 28]),
        ("unipc4.step_latents", vec![4, 1, z, 2, 4, 6]),
        ("euler2.timesteps", vec![2]),
        ("euler2.sigmas", vec![3]),
        ("euler2.final_latents", vec![1, z, 2, 4, 6]),
        ("euler2.step_latents", vec![2, 1, z, 2, 4, 6]),
    ];
    for (name, shape) in shapes {
        let t = tensors.tensor(name).expect(name);
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
    }
    // diffusers 0.42.1's UniPC truncates to integers: 4 steps at shift 3.
    assert_eq!(
        goldens.i64("unipc4.timesteps", &[4]),
        vec![999, 900, 750, 500]
    );
}
