//! The samplers (`UniPcScheduler`, `FlowMatchEulerScheduler`) and the guided denoising loop
//! (`kernels::wan::denoise`) against diffusers 0.42.1's `WanPipeline` on the tiny
//! random-weight checkpoint in `model/wan/tiny/` (goldens from `model/wan/make_tiny.py`):
//! schedules exactly, latents after every step within 1e-4 (PyTorch's own CPU results move by
//! up to ~3e-6 over the 4-step run with where the weights lie in memory).

mod common;

use std::time::Instant;

use common::wan::{max_abs_diff, open_tiny, Goldens};
use kernels::wan::{
    denoise, FlowMatchEulerScheduler, Guidance, UniPcScheduler, WanSampler, WanScheduler,
    WanTransformer,
};

const TOLERANCE: f32 = 1e-4;

fn unipc_config() -> kernels::wan::UniPcConfig {
    match open_tiny().scheduler() {
        WanScheduler::UniPc(c) => c.clone(),
        other => panic!("wrong scheduler {other:?}"),
    }
}

fn euler_config() -> kernels::wan::FlowMatchEulerConfig {
    serde_json::from_value(serde_json::json!({"shift": 3.0, "num_train_timesteps": 1000}))
        .expect("config")
}

#[test]
fn unipc_schedule_is_diffusers() {
    let goldens = Goldens::load();
    let s = UniPcScheduler::new(&unipc_config(), 4);
    assert_eq!(s.timesteps(), goldens.i64("unipc4.timesteps", &[4]));
    assert_eq!(s.sigmas(), goldens.f32("unipc4.sigmas"), "bit for bit");
}

#[test]
fn euler_schedule_is_diffusers() {
    let goldens = Goldens::load();
    let s = FlowMatchEulerScheduler::new(&euler_config(), 2);
    assert_eq!(
        s.timesteps(),
        goldens.f32("euler2.timesteps"),
        "bit for bit"
    );
    assert_eq!(s.sigmas(), goldens.f32("euler2.sigmas"), "bit for bit");
}

/// Runs `sampler` from `pipeline.latents` with the en prompt and the empty negative prompt
/// at guidance 5 and checks the latent after every step against `{golden}.step_latents`
/// and the last against `final_name`.
fn run(mut sampler: WanSampler, golden: &str, final_name: &str) {
    let ckpt = open_tiny();
    let model = WanTransformer::from_checkpoint(&ckpt).expect("transformer");
    let goldens = Goldens::load();
    let prompt = model.text_context(&goldens.f32("en.prompt_embeds"));
    let negative = model.text_context(&goldens.f32("negative.prompt_embeds"));
    let guidance = Guidance {
        prompt: &prompt,
        negative: &negative,
        scale: 5.0,
    };
    let steps = goldens.f32(&format!("{golden}.step_latents"));
    let start = goldens.f32("pipeline.latents");
    let n = start.len();
    let t0 = Instant::now();
    let out = denoise(
        &model,
        start,
        [5, 2, 4, 6],
        &mut sampler,
        guidance,
        |i, latents| {
            let err = max_abs_diff(latents, &steps[i * n..(i + 1) * n]);
            eprintln!("{golden} step {i}: max abs error {err:e}");
            assert!(err <= TOLERANCE, "{golden} step {i} off by {err}");
        },
    );
    eprintln!("{golden}: {:?}", t0.elapsed());
    let err = max_abs_diff(&out, &goldens.f32(final_name));
    eprintln!("{final_name}: max abs error {err:e}");
    assert!(err <= TOLERANCE, "{final_name} off by {err}");
}

#[test]
fn unipc_4_steps_with_guidance_match_the_pipeline() {
    let sampler = WanSampler::new(&WanScheduler::UniPc(unipc_config()), 4);
    run(sampler, "unipc4", "pipeline.final_latents");
}

#[test]
fn euler_2_steps_with_guidance_match_the_pipeline() {
    let sampler = WanSampler::new(&WanScheduler::FlowMatchEuler(euler_config()), 2);
    run(sampler, "euler2", "euler2.final_latents");
}
