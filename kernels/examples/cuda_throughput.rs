//! Throughput of the CUDA backend on a checkpoint, for bench/gpu.sh (which runs it beside
//! bench/gpu_torch.py, the PyTorch side, on the same weights and inputs).
//!
//! For each batch of `b` scenes it times, after warm-up passes, the median of:
//! - `pass`: one classifier-free-guided denoiser pass over `2b` clips (`Model::denoise`,
//!   host tensors in and out, as `Model::step` uses it);
//! - `step`: one whole sampler step of the `b` scenes (`Model::step`: the pass plus the
//!   guidance combine and the DPM-Solver++(2M) update).
//!
//! Prints one JSON line per batch size; frames x steps per second is `b * frames / step`.
//!
//! `cargo run --release -p kernels --example cuda_throughput -- --batches 1,8,32`

use std::path::PathBuf;
use std::time::Instant;

use kernels::{philox, CudaBackend, Method, Model, Tensor};

const CAPTION: &str = "a small red circle moving left on a black background";

struct Args {
    checkpoint: PathBuf,
    batches: Vec<usize>,
    iters: usize,
    warmup: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        checkpoint: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../model/checkpoint")),
        batches: vec![1, 8, 32],
        iters: 30,
        warmup: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--checkpoint" => args.checkpoint = PathBuf::from(value),
            "--batches" => args.batches = value.split(',').map(number).collect::<Result<_, _>>()?,
            "--iters" => args.iters = number(&value)?.max(1),
            "--warmup" => args.warmup = number(&value)?,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--checkpoint, --batches, --iters, --warmup)"
                ))
            }
        }
    }
    Ok(args)
}

/// Median milliseconds of `iters` calls of `f` after `warmup` untimed ones.
fn median_ms(warmup: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    (0..warmup).for_each(|_| f());
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let backend = CudaBackend::try_new(0)?;
    let model = Model::load_with(&args.checkpoint, backend)?;
    let cfg = model.config().clone();
    // The caption's condition, then the unconditional one (an all-padding caption).
    let conds = model
        .text(&[model.tokenize(CAPTION)?, vec![0; cfg.max_tokens]])?
        .data;
    let (cond_row, null_row) = conds.split_at(cfg.emb);
    for &b in &args.batches {
        // The inputs of bench/gpu_torch.py: Philox stream 0 of seed 1, the same noise for the
        // conditional and unconditional halves, t = 0.5.
        let noise = philox::gaussian(1, 0, b * cfg.latent_len());
        let shape = [
            2 * b,
            cfg.frames,
            cfg.latent_channels,
            cfg.latent_size(),
            cfg.latent_size(),
        ];
        let z = Tensor::new(&shape, [noise.clone(), noise].concat());
        let cond = Tensor::new(
            &[2 * b, cfg.emb],
            [cond_row.repeat(b), null_row.repeat(b)].concat(),
        );
        let t = vec![0.5f32; 2 * b];
        let pass = median_ms(args.warmup, args.iters, || {
            model.denoise(&z, &t, &cond).expect("denoise");
        });

        // Whole steps: scenes with enough steps that none finishes while timed.
        let total = args.warmup + args.iters;
        let mut scenes = (0..b)
            .map(|i| model.start(CAPTION, 1, i as u64, total, 4.0, Method::DpmPP2M))
            .collect::<Result<Vec<_>, _>>()?;
        let step = median_ms(args.warmup, args.iters, || {
            model.step(&mut scenes.iter_mut().collect::<Vec<_>>())
        });

        let frame_steps = (b * cfg.frames) as f64;
        println!(
            "{}",
            serde_json::json!({
                "impl": "rust-cuda",
                "backend": model.backend_name(),
                "batch": b,
                "pass_ms": pass,
                "step_ms": step,
                "frame_steps_per_s": frame_steps / (step / 1e3),
                "pass_frame_steps_per_s": frame_steps / (pass / 1e3),
            })
        );
    }
    Ok(())
}
