//! Denoiser throughput of the kernels CPU backend against PyTorch on the same checkpoint.
//!
//! One sampler step of `batch` scenes is one classifier-free-guided denoiser pass over
//! `2 * batch` clips; throughput is counted in frames x steps per second (`batch * frames`
//! frame-steps per pass). The Rust side runs first, then (unless `--no-torch`) it spawns
//! `bench/torch_throughput.py` with the same thread count, inputs and repetitions, and prints
//! both medians, their ratio, the FLOPs of one pass and the achieved GFLOP/s.
//!
//! With `--resident` it also times whole sampler steps (`Model::step`: the pass, guidance and
//! the solver) of the same scenes on the host path and with resident latents
//! (`Model::with_resident_steps`), alternating the two so both see the same machine.
//!
//! `cargo run --release -p bench --bin denoiser_throughput -- --threads 2 --batches 1,8 [--resident]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kernels::{philox, CpuBackend, Method, Model, ModelConfig, SceneState, Tensor};

#[derive(Parser)]
#[command(about = "Denoiser frames x steps per second: kernels CPU backend vs PyTorch")]
struct Args {
    /// Checkpoint directory (config.json + model.safetensors); default model/checkpoint.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Compute threads, for both sides.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Scenes per step (each is two clips with guidance), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    batches: Vec<usize>,
    /// Timed passes per batch size (the median is reported).
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed passes first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Python interpreter with torch, safetensors and numpy.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Skip the PyTorch side.
    #[arg(long)]
    no_torch: bool,
    /// Also time whole steps, host path against resident latents.
    #[arg(long)]
    resident: bool,
}

const CAPTION: &str = "a small red circle moving left on a black background";

fn main() -> Result<()> {
    let args = Args::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let checkpoint = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| root.join("model/checkpoint"));
    let backend = CpuBackend::new(args.threads);
    let model = Model::load_with(&checkpoint, backend)
        .with_context(|| format!("loading {}", checkpoint.display()))?;
    let cfg = model.config().clone();

    let rust: Vec<f64> = args
        .batches
        .iter()
        .map(|&b| time_rust(&model, b, &args))
        .collect::<Result<_>>()?;
    let torch = if args.no_torch {
        None
    } else {
        match time_torch(&args, &root.join("bench/torch_throughput.py"), &checkpoint) {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("PyTorch side skipped: {e:#}");
                None
            }
        }
    };

    println!(
        "denoiser throughput: model {}, {}, {} iterations (median)",
        model.id(),
        model.backend_name(),
        args.iters
    );
    if let Some((version, _)) = &torch {
        println!("PyTorch {version} on {} threads", args.threads);
    }
    println!(
        "{:>5} {:>10} {:>10} {:>12} {:>12} {:>8} {:>10} {:>10} {:>10}",
        "batch",
        "rust ms",
        "torch ms",
        "rust fr*st/s",
        "torch fr*st/s",
        "speedup",
        "GFLOP/pass",
        "rust GF/s",
        "torch GF/s"
    );
    for (i, &b) in args.batches.iter().enumerate() {
        let flops = pass_flops(&cfg, 2 * b);
        let frame_steps = (b * cfg.frames) as f64;
        let t = torch.as_ref().and_then(|(_, ms)| ms.get(i).copied());
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        println!(
            "{:>5} {:>10.2} {:>10} {:>12.0} {:>12} {:>8} {:>10.3} {:>10.1} {:>10}",
            b,
            rust[i],
            opt(t),
            frame_steps / (rust[i] / 1e3),
            opt(t.map(|t| frame_steps / (t / 1e3))),
            t.map_or("-".to_string(), |t| format!("{:.2}x", t / rust[i])),
            flops / 1e9,
            flops / (rust[i] / 1e3) / 1e9,
            opt(t.map(|t| flops / (t / 1e3) / 1e9)),
        );
    }
    if args.resident {
        println!(
            "{:>5} {:>14} {:>14} {:>9}",
            "batch", "host step ms", "resident ms", "resident"
        );
        let mut model = model;
        for &b in &args.batches {
            let (host, resident);
            (model, host, resident) = time_steps(model, b, &args)?;
            println!(
                "{b:>5} {host:>14.2} {resident:>14.2} {:>8.2}x",
                host / resident
            );
        }
    }
    Ok(())
}

/// Median milliseconds of one whole step of `batch` scenes on the host path and with
/// resident latents, the two timed alternately.
fn time_steps(model: Model, batch: usize, args: &Args) -> Result<(Model, f64, f64)> {
    // Enough steps that no scene finishes while timed.
    let steps = args.warmup + args.iters + 1;
    let start = |model: &Model| -> Result<Vec<SceneState>> {
        (0..batch)
            .map(|i| Ok(model.start(CAPTION, 1, i as u64, steps, 4.0, Method::DpmPP2M)?))
            .collect()
    };
    let model = model.with_resident_steps(false);
    let mut host = start(&model)?;
    let model = model.with_resident_steps(true);
    let mut resident = start(&model)?;
    let (mut t_host, mut t_resident) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.iters {
        for (scenes, times) in [(&mut host, &mut t_host), (&mut resident, &mut t_resident)] {
            let t = Instant::now();
            model.step(&mut scenes.iter_mut().collect::<Vec<_>>());
            if i >= args.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Ok((
        model.with_resident_steps(false),
        median(t_host),
        median(t_resident),
    ))
}

/// Median milliseconds of one guided pass over `batch` scenes.
fn time_rust(model: &Model, batch: usize, args: &Args) -> Result<f64> {
    let cfg = model.config();
    let len = cfg.latent_len();
    let noise = philox::gaussian(1, 0, batch * len);
    let z = Tensor::new(
        &[
            2 * batch,
            cfg.frames,
            cfg.latent_channels,
            cfg.latent_size(),
            cfg.latent_size(),
        ],
        [noise.clone(), noise].concat(),
    );
    let ids = [model.tokenize(CAPTION)?, vec![0; cfg.max_tokens]];
    let rows: Vec<Vec<usize>> = (0..2 * batch).map(|i| ids[i / batch].clone()).collect();
    let cond = model.text(&rows)?;
    let t = vec![0.5f32; 2 * batch];
    let mut times = Vec::with_capacity(args.iters);
    for i in 0..args.warmup + args.iters {
        let start = Instant::now();
        model.denoise(&z, &t, &cond)?;
        if i >= args.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(&mut times))
}

/// (torch version, median ms per batch size) from bench/torch_throughput.py.
fn time_torch(args: &Args, script: &Path, checkpoint: &Path) -> Result<(String, Vec<f64>)> {
    let batches = args
        .batches
        .iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = Command::new(&args.python)
        .arg(script)
        .args([
            "--checkpoint",
            &checkpoint.display().to_string(),
            "--threads",
            &args.threads.to_string(),
        ])
        .args([
            "--batches",
            &batches,
            "--iters",
            &args.iters.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", args.python))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut version = String::new();
    let mut medians = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("bad line from torch: {line}"))?;
        medians.push(v["median_ms"].as_f64().context("median_ms missing")?);
        version = v["torch"].as_str().unwrap_or("?").to_string();
    }
    if medians.len() != args.batches.len() {
        bail!(
            "torch reported {} batch sizes, expected {}",
            medians.len(),
            args.batches.len()
        );
    }
    Ok((version, medians))
}

/// Multiply-add FLOPs (2 per MAC) of one denoiser pass over `clips` clips: the convolutions
/// and linear layers; norms and activations are noise next to them.
fn pass_flops(cfg: &ModelConfig, clips: usize) -> f64 {
    let (l, ch, emb, blocks) = (cfg.latent_channels, cfg.channels, cfg.emb, cfg.blocks);
    let pixels = (cfg.frames * cfg.latent_size() * cfg.latent_size()) as f64;
    let per_pixel = 2 * 9 * l * ch + blocks * (2 * 9 * ch * ch + 2 * 3 * ch * ch) + 2 * 9 * ch * l;
    let per_clip = 2 * 64 * emb + 2 * emb * emb + blocks * 2 * emb * 2 * ch;
    clips as f64 * (pixels * per_pixel as f64 + per_clip as f64)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
