//! Throughput of the CUDA backend on a checkpoint, for bench/gpu.sh (which runs it beside
//! bench/gpu_torch.py, the PyTorch side, on the same weights and inputs).
//!
//! For each batch of `b` scenes it times, after warm-up passes, the median of:
//! - `pass`: one classifier-free-guided denoiser pass over `2b` clips (`Model::denoise`,
//!   host tensors in and out, as `Model::step` uses it);
//! - `step`: one whole sampler step of the `b` scenes (`Model::step`: the pass plus the
//!   guidance combine and the DPM-Solver++(2M) update).
//! - with `--resident`, `resident_step`: the same step with the scenes' latents kept on the
//!   device (`Model::with_resident_steps`: no latent upload or output download, the sampler
//!   as `guided_step`), waited for with a device synchronisation instead of a download.
//!
//! and, to size what keeping the latents on the device would save, the parts of a step that
//! move between host and device:
//! - `host_sampler`: the guidance combine and DPM-Solver++(2M) update of the `b` scenes on the
//!   host, as `Model::step` does after its pass;
//! - `device_sampler`: the same on the device (the CUDA backend's `Backend::guided_step`, its
//!   table upload included);
//! - `transfer`: uploading the `2b` clips of a pass's input and downloading its output.
//!
//! Prints one JSON line per batch size; frames x steps per second is `b * frames / step`.
//! `--conv` and `--temporal` choose the convolution paths (`sgemm`, the default, or `tf32`:
//! `CudaOptions`), so one machine can measure them side by side:
//!
//! `cargo run --release -p kernels --example cuda_throughput -- --batches 1,8,32 --conv tf32 --temporal tf32`

use std::path::PathBuf;
use std::time::Instant;

use kernels::cuda::{ConvPath, CudaOptions, SceneStep};
use kernels::sampler::Solver;
use kernels::{philox, Backend, CudaBackend, Method, Model, Tensor};

const CAPTION: &str = "a small red circle moving left on a black background";

struct Args {
    checkpoint: PathBuf,
    batches: Vec<usize>,
    iters: usize,
    warmup: usize,
    options: CudaOptions,
    resident: bool,
}

/// The row name in bench/gpu.sh's summary: `rust-cuda`, with the non-default paths appended.
fn impl_name(options: &CudaOptions) -> String {
    let mut name = String::from("rust-cuda");
    let default = CudaOptions::default();
    if options.conv != default.conv {
        name += &format!("-conv-{}", options.conv.name());
    }
    if options.temporal_conv != default.temporal_conv {
        name += &format!("-temporal-{}", options.temporal_conv.name());
    }
    name
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        checkpoint: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../model/checkpoint")),
        batches: vec![1, 8, 32],
        iters: 30,
        warmup: 5,
        options: CudaOptions::default(),
        resident: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--resident" {
            args.resident = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{flag} {v}: {e}"));
        let path =
            |v: &str| ConvPath::from_name(v).ok_or(format!("{flag} {v}: want sgemm or tf32"));
        match flag.as_str() {
            "--checkpoint" => args.checkpoint = PathBuf::from(value),
            "--batches" => args.batches = value.split(',').map(number).collect::<Result<_, _>>()?,
            "--iters" => args.iters = number(&value)?.max(1),
            "--warmup" => args.warmup = number(&value)?,
            "--conv" => args.options.conv = path(&value)?,
            "--temporal" => args.options.temporal_conv = path(&value)?,
            _ => {
                return Err(format!(
                    "unknown flag {flag} (--checkpoint, --batches, --iters, --warmup, --conv, \
                     --temporal, --resident)"
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
    let backend = CudaBackend::with_options(0, args.options)?;
    let mut model = Model::load_with(&args.checkpoint, backend)?;
    // A second handle on the same device for the sampler and transfer measurements (the
    // model owns its backend).
    let be = CudaBackend::try_new(0)?;
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
        let z = Tensor::new(&shape, [noise.clone(), noise.clone()].concat());
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
        // The same with resident scenes. Both backends are on the primary context of device
        // 0 and queue on its default (legacy) stream, so `be.synchronize()` waits for the
        // model's work too.
        let resident_step = if args.resident {
            model = model.with_resident_steps(true);
            let mut scenes = (0..b)
                .map(|i| model.start(CAPTION, 1, i as u64, total, 4.0, Method::DpmPP2M))
                .collect::<Result<Vec<_>, _>>()?;
            model = model.with_resident_steps(false);
            Some(median_ms(args.warmup, args.iters, || {
                model.step(&mut scenes.iter_mut().collect::<Vec<_>>());
                be.synchronize();
            }))
        } else {
            None
        };

        // The sampler alone, host and device, on the pass's output shape, mid-run: solvers
        // one step in (second-order updates from then on), with a step to spare per call.
        let len = cfg.latent_len();
        let out_host = Tensor::new(&[2 * b * len], philox::gaussian(2, 0, 2 * b * len));
        let mut solvers: Vec<Solver> = (0..b)
            .map(|_| {
                let mut s = Solver::new(Method::DpmPP2M, cfg.prediction, total + 2);
                s.advance(&mut vec![0.0; len], &vec![0.0; len]);
                s
            })
            .collect();
        let mut latents: Vec<Vec<f32>> = noise.chunks(len).map(<[f32]>::to_vec).collect();
        let host_sampler = median_ms(args.warmup, args.iters, || {
            let (oc, ou) = out_host.data.split_at(b * len);
            for (i, (solver, z)) in solvers.iter_mut().zip(&mut latents).enumerate() {
                let (oc, ou) = (&oc[i * len..(i + 1) * len], &ou[i * len..(i + 1) * len]);
                let guided: Vec<f32> = oc
                    .iter()
                    .zip(ou)
                    .map(|(&c, &u)| u + 4.0 * (c - u))
                    .collect();
                solver.advance(z, &guided);
            }
        });
        let steps: Vec<SceneStep> = (0..b)
            .map(|_| SceneStep {
                method: Method::DpmPP2M,
                prediction: cfg.prediction,
                steps: total + 2,
                step: 1,
                guidance: 4.0,
            })
            .collect();
        let out_dev = be.upload(&out_host);
        let mut z_dev = be.upload(&Tensor::new(&[b * len], noise.clone()));
        let mut x0_dev = be.upload(&Tensor::new(&[b * len], vec![0.0; b * len]));
        let device_sampler = median_ms(args.warmup, args.iters, || {
            be.guided_step(&mut z_dev, &mut x0_dev, &out_dev, &steps)
                .expect("guided_step");
            be.synchronize();
        });
        let transfer = median_ms(args.warmup, args.iters, || {
            be.download(&be.upload(&z));
        });

        let frame_steps = (b * cfg.frames) as f64;
        println!(
            "{}",
            serde_json::json!({
                "impl": impl_name(&args.options),
                "backend": model.backend_name(),
                "conv": args.options.conv.name(),
                "temporal_conv": args.options.temporal_conv.name(),
                "batch": b,
                "pass_ms": pass,
                "step_ms": step,
                "resident_step_ms": resident_step,
                "resident_frame_steps_per_s": resident_step.map(|ms| frame_steps / (ms / 1e3)),
                "host_sampler_ms": host_sampler,
                "device_sampler_ms": device_sampler,
                "transfer_ms": transfer,
                "frame_steps_per_s": frame_steps / (step / 1e3),
                "pass_frame_steps_per_s": frame_steps / (pass / 1e3),
            })
        );
    }
    Ok(())
}
