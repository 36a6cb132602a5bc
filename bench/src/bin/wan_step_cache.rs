//! Step caching (`--step-cache`, `kernels::wan::step_cache`) against the uncached run: for
//! each threshold, the transformer passes computed and reused, the seconds of a whole scene
//! (start, every step, VAE decode; median of `--runs` runs, each threshold's runs alternating
//! with the others') and how far its frames are from the uncached frames (PSNR over [0, 1]
//! pixels, and the largest pixel difference), on a served Wan2.1 checkpoint through the
//! `VideoModel` API the engine drives. Prints a markdown table.
//!
//! `cargo run --release -p bench --bin wan_step_cache -- --dir model/wan/tiny`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use kernels::wan::WanModel;
use kernels::{FreeFormScene, SceneRequest, VideoModel};

#[derive(Parser)]
#[command(about = "Wan2.1 step caching: passes skipped, seconds and frames against no cache")]
struct Args {
    /// A Wan2.1 checkpoint in the diffusers layout.
    #[arg(long, default_value = "model/wan/tiny")]
    dir: PathBuf,
    /// Sampler steps per scene.
    #[arg(long, default_value_t = 30)]
    steps: usize,
    /// Frame width, height and count.
    #[arg(long, default_value_t = 48)]
    width: usize,
    #[arg(long, default_value_t = 32)]
    height: usize,
    #[arg(long, default_value_t = 9)]
    frames: usize,
    /// Timed runs per threshold.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Thresholds to compare (0 is the uncached reference).
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.1,0.2,0.4")]
    thresholds: Vec<f32>,
}

/// One whole scene: its frames (all pixels, in order) and its seconds.
fn scene(model: &WanModel, args: &Args) -> Result<(Vec<f32>, f64)> {
    let request = SceneRequest {
        caption: "a red fox runs through fresh snow at sunrise",
        seed: 7,
        stream: 0,
        steps: args.steps,
        guidance: 5.0,
        free_form: Some(FreeFormScene {
            width: args.width,
            height: args.height,
            num_frames: args.frames,
            negative_prompt: "blurry, low quality",
            scheduler: "unipc",
        }),
    };
    let t = Instant::now();
    let mut run = model.start(&request)?;
    while !run.done() {
        model.step(&mut [&mut run]);
    }
    let mut pixels = Vec::new();
    model.decode(&model.latent(&run), &mut |clip| {
        pixels.extend(clip.data);
        true
    });
    Ok((pixels, t.elapsed().as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    let models: Vec<WanModel> = args
        .thresholds
        .iter()
        .map(|&t| Ok(WanModel::load(&args.dir)?.with_step_cache(t)))
        .collect::<Result<_>>()?;
    // A warm-up scene each (the prompt's text context is made and cached on the first).
    let mut frames = Vec::new();
    for m in &models {
        frames.push(scene(m, &args)?.0);
    }
    let mut secs = vec![Vec::new(); models.len()];
    for _ in 0..args.runs {
        for (m, s) in models.iter().zip(&mut secs) {
            s.push(scene(m, &args)?.1);
        }
    }
    let reference = &frames[0];
    let base = median(secs[0].clone());
    println!(
        "{} steps, {}x{}x{} frames, CFG (2 passes a step), {} runs, {} threads\n",
        args.steps,
        args.width,
        args.height,
        args.frames,
        args.runs,
        rayon::current_num_threads()
    );
    println!("| threshold | passes computed | passes reused | scene s | speed-up | PSNR dB | max pixel diff |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for ((t, m), (f, s)) in args
        .thresholds
        .iter()
        .zip(&models)
        .zip(frames.iter().zip(secs))
    {
        let (computed, reused) = m.passes();
        let runs = (args.runs + 1) as u64;
        let mse = f
            .iter()
            .zip(reference)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>()
            / f.len() as f64;
        let psnr = if mse == 0.0 {
            "identical".to_string()
        } else {
            format!("{:.1}", -10.0 * mse.log10())
        };
        let max = f
            .iter()
            .zip(reference)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let s = median(s);
        println!(
            "| {t} | {} | {} | {s:.3} | {:.2}x | {psnr} | {max:.4} |",
            computed / runs,
            reused / runs,
            base / s
        );
    }
    Ok(())
}
