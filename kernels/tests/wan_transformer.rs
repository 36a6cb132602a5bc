//! The Wan transformer (`kernels::wan::WanTransformer`) against diffusers 0.42.1's
//! `WanTransformer3DModel` on the tiny random-weight checkpoint in `model/wan/tiny/` (goldens
//! computed in f32 on the CPU by `model/wan/make_tiny.py`): the time and text embeddings, the
//! patch embedding, every block's output and the prediction. PyTorch's own CPU results move
//! by up to ~5e-7 with where the weights lie in memory, so the tolerance is 1e-5 absolute.

mod common;

use std::time::Instant;

use common::wan::{max_abs_diff, open_tiny, Goldens};
use kernels::wan::{WanDtype, WanInput, WanTextContext, WanTransformer, WanTransformerConfig};

const TOLERANCE: f32 = 1e-5;

fn check(name: &str, got: &[f32], want: &[f32], tolerance: f32) -> f32 {
    let err = max_abs_diff(got, want);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    eprintln!("{name}: max abs error {err:e} (max |golden| {scale})");
    assert!(err <= tolerance, "{name} off by {err}");
    err
}

#[test]
fn transformer_matches_diffusers() {
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let d = model.config().inner_dim();

    let t = goldens.f32("transformer.timestep")[0];
    assert_eq!(t, 750.0);
    let (temb, proj) = model.embed_time(t);
    check("temb", &temb, &goldens.f32("transformer.temb"), TOLERANCE);
    check(
        "timestep_proj",
        &proj,
        &goldens.f32("transformer.timestep_proj"),
        TOLERANCE,
    );
    let embeds = goldens.f32("en.prompt_embeds");
    check(
        "text_embeds",
        &model.embed_text(&embeds),
        &goldens.f32("transformer.text_embeds"),
        TOLERANCE,
    );

    let context = model.text_context(&embeds);
    assert_eq!(context.rows(), 512);
    let latent = goldens.f32("transformer.latent");
    let shape = [5, 2, 4, 6];
    let blocks = goldens.f32("transformer.blocks");
    let tokens = 2 * (4 / 2) * (6 / 3);
    let mut traced = Vec::new();
    let start = Instant::now();
    let out = model.forward_traced(&latent, shape, t, &context, &mut |name, x| {
        traced.push((name.to_string(), x.to_vec()))
    });
    eprintln!("forward: {:?}", start.elapsed());
    for (name, x) in &traced {
        let want = match name.strip_prefix("block") {
            Some(i) => {
                let i: usize = i.parse().expect("block number");
                blocks[i * tokens * d..(i + 1) * tokens * d].to_vec()
            }
            None => goldens.f32(&format!("transformer.{name}")),
        };
        check(name, x, &want, TOLERANCE);
    }
    assert_eq!(traced.len(), 1 + model.config().num_layers);
    check(
        "transformer.output",
        &out,
        &goldens.f32("transformer.output"),
        TOLERANCE,
    );
    // forward is forward_traced without the trace.
    assert_eq!(model.forward(&latent, shape, t, &context), out);
}

#[test]
fn the_test_notices_a_wrong_axis() {
    // The latent read as [C, F, W, H]-shaped data, or at another timestep, is far off: the
    // tolerance is tight enough to tell.
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let context = model.text_context(&goldens.f32("en.prompt_embeds"));
    let latent = goldens.f32("transformer.latent");
    let want = goldens.f32("transformer.output");
    let err = max_abs_diff(
        &model.forward(&latent, [5, 2, 4, 6], 749.0, &context),
        &want,
    );
    eprintln!("timestep 749 instead of 750: max abs error {err:e}");
    assert!(err > 100.0 * TOLERANCE, "{err}");
    let negative = model.text_context(&goldens.f32("negative.prompt_embeds"));
    let err = max_abs_diff(
        &model.forward(&latent, [5, 2, 4, 6], 750.0, &negative),
        &want,
    );
    eprintln!("the negative prompt instead: max abs error {err:e}");
    assert!(err > 100.0 * TOLERANCE, "{err}");
}

#[test]
fn forward_batch_equals_single_forwards() {
    // Three items with their own timesteps and texts (the second and third share a latent
    // but not a text): batching the linear layers must not mix items.
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let prompt = model.text_context(&goldens.f32("en.prompt_embeds"));
    let negative = model.text_context(&goldens.f32("negative.prompt_embeds"));
    let latent = goldens.f32("transformer.latent");
    let other: Vec<f32> = latent.iter().map(|v| 0.5 - v).collect();
    let shape = [5, 2, 4, 6];
    let items = [
        WanInput {
            latent: &latent,
            shape,
            timestep: 999.0,
            context: &prompt,
        },
        WanInput {
            latent: &other,
            shape,
            timestep: 500.0,
            context: &negative,
        },
        WanInput {
            latent: &other,
            shape,
            timestep: 250.0,
            context: &prompt,
        },
    ];
    let batch = model.forward_batch(&items);
    assert_eq!(batch.len(), 3);
    for (i, (item, got)) in items.iter().zip(&batch).enumerate() {
        let single = model.forward(item.latent, shape, item.timestep, item.context);
        let err = max_abs_diff(got, &single);
        eprintln!("item {i}: batched vs single max abs diff {err:e}");
        assert!(err <= 1e-6, "item {i} off by {err}");
    }
    // The items differ, so a batch that returned one item's prediction thrice would fail.
    assert!(max_abs_diff(&batch[1], &batch[2]) > 1e-3);
    assert!(model.forward_batch(&[]).is_empty());
}

#[test]
#[should_panic(expected = "a batch shares one shape")]
fn forward_batch_rejects_mixed_shapes() {
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let context = model.text_context(&goldens.f32("en.prompt_embeds"));
    let latent = goldens.f32("transformer.latent");
    let item = |shape| WanInput {
        latent: &latent,
        shape,
        timestep: 999.0,
        context: &context,
    };
    model.forward_batch(&[item([5, 2, 4, 6]), item([5, 2, 6, 4])]);
}

/// The peak memory the 1.3B test allows: its bf16 weights (1.42 B parameters, 2.65 GiB) stay
/// at their stored size, and the widened panels, 512 text rows' keys and values per block and
/// the 64-token activations add well under 1 GiB. A model widened to f32 would need 5.3 GiB.
const PEAK_RSS_1_3B: u64 = 7 << 29; // 3.5 GiB

/// This process's peak resident set (`VmHWM` of `/proc/self/status`), bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib << 10
}

/// The real 1.3B shape, random bf16 weights in memory: about 20 s and 2.9 GiB peak RSS on the
/// 2-core development machine (11 s of it drawing the weights). The peak is the whole test
/// process's, the tiny-checkpoint tests running beside it included (a few MB).
#[test]
fn wan_1_3b_shape_forward() {
    let config = WanTransformerConfig::wan21_t2v_1_3b();
    let start = Instant::now();
    let model = WanTransformer::random(&config, WanDtype::Bf16, 7).expect("model");
    eprintln!("built random 1.3B (bf16) in {:?}", start.elapsed());
    // 1 latent frame of 16 x 16 (a 128 x 128 frame): 64 tokens; the full 512 text rows.
    let text: Vec<f32> = (0..512 * 4096)
        .map(|i| ((i % 97) as f32 - 48.0) / 100.0)
        .collect();
    let start = Instant::now();
    let context = model.text_context(&text);
    eprintln!("text context in {:?}", start.elapsed());
    let shape = [16, 1, 16, 16];
    let latent: Vec<f32> = (0..16 * 16 * 16)
        .map(|i| ((i % 13) as f32 - 6.0) / 6.0)
        .collect();
    let start = Instant::now();
    let out = model.forward(&latent, shape, 999.0, &context);
    eprintln!("forward (64 tokens) in {:?}", start.elapsed());
    assert_eq!(out.len(), latent.len());
    assert!(out.iter().all(|v| v.is_finite()));
    assert!(out.iter().any(|&v| v != 0.0));
    let peak = peak_rss_bytes();
    eprintln!("peak RSS {:.2} GiB", peak as f64 / (1u64 << 30) as f64);
    assert!(
        peak < PEAK_RSS_1_3B,
        "peak RSS {peak} B is above the stated bound {PEAK_RSS_1_3B} B"
    );
}

#[test]
fn a_cached_pass_reuses_the_residual_and_computes_what_the_cache_says() {
    use kernels::wan::StepCache;
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let prompt = model.text_context(&goldens.f32("en.prompt_embeds"));
    let latent = goldens.f32("transformer.latent");
    let moved: Vec<f32> = latent.iter().map(|v| v * 0.98).collect();
    let shape = [5, 2, 4, 6];
    fn at<'a>(latent: &'a [f32], timestep: f32, context: &'a WanTextContext) -> WanInput<'a> {
        WanInput {
            latent,
            shape: [5, 2, 4, 6],
            timestep,
            context,
        }
    }
    let item = |latent, timestep| at(latent, timestep, &prompt);
    let (latent, moved) = (&latent[..], &moved[..]);
    let (mut a, mut b) = (StepCache::default(), StepCache::default());
    // First pass: nothing kept, both compute, and equal the uncached forward.
    let first = model.forward_batch_cached(
        &[item(latent, 999.0), item(moved, 999.0)],
        &mut [&mut a, &mut b],
        0.5,
        &[false, false],
    );
    let plain = model.forward_batch(&[item(latent, 999.0), item(moved, 999.0)]);
    assert_eq!(first, plain, "a computed pass is the uncached pass");
    assert_eq!((a.computed(), b.computed()), (1, 1));
    // Same input again: `a` reuses (its change is 0) and reproduces the computed output
    // through `x + residual`; `b` is forced to compute.
    let again = model.forward_batch_cached(
        &[item(latent, 999.0), item(moved, 999.0)],
        &mut [&mut a, &mut b],
        0.5,
        &[false, true],
    );
    assert_eq!((a.computed(), b.computed()), (1, 2));
    let err = max_abs_diff(&again[0], &plain[0]);
    assert!(err <= 1e-5, "reused pass off by {err}");
    assert_eq!(again[1], plain[1]);
    // A later timestep moves the modulated input: under a small threshold it computes, and
    // its prediction is the uncached one at that timestep.
    let later = model.forward_batch_cached(&[item(latent, 500.0)], &mut [&mut a], 1e-6, &[false]);
    assert_eq!(a.computed(), 2);
    assert_eq!(later[0], model.forward(latent, shape, 500.0, &prompt));
}
