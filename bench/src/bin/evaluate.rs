//! Prompt-adherence evaluation of the shipped model: generates every scene of
//! `eval::prompt_suite` with the Rust inference (CPU backend), judges the model's
//! frames and the delivered (post-processed) frames with `eval`, and writes the
//! accuracy tables as Markdown.
//!
//! `cargo run --release -p bench --bin evaluate -- --out docs/EVALUATION.md`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use eval::report;
use kernels::{Clip, Model};
use pipeline::post::{PostChoice, PostProcessor};

#[derive(Parser)]
struct Args {
    /// Checkpoint directory
    #[arg(long, default_value = "model/checkpoint")]
    model: PathBuf,
    /// Scenes to generate (at least 200 covers every attribute value and held-out pair)
    #[arg(long, default_value_t = 240)]
    n: usize,
    /// Seed of the suite and of the sampling noise
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Scenes sampled together in one batched forward pass
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Denoising steps (default: the checkpoint's)
    #[arg(long)]
    steps: Option<usize>,
    /// Guidance scale (default: the checkpoint's)
    #[arg(long)]
    guidance: Option<f32>,
    /// Delivered frame side and frames per scene (256 px, 48 frames = 2 s at 24 fps)
    #[arg(long, default_value_t = 256)]
    size: usize,
    #[arg(long, default_value_t = 48)]
    frames: usize,
    /// Markdown output (printed to stdout as well)
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model =
        Model::load(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let post = PostProcessor::new(PostChoice::Cpu)?;
    let cfg = model.config();
    let steps = args.steps.unwrap_or(cfg.sampler.steps);
    let guidance = args.guidance.unwrap_or(cfg.sampler.guidance);
    let method = cfg.sampler.method;
    let suite = eval::prompt_suite(args.n, args.seed);

    let started = Instant::now();
    let (mut base, mut delivered) = (Vec::new(), Vec::new());
    for (b, chunk) in suite.chunks(args.batch.max(1)).enumerate() {
        let captions: Vec<String> = chunk.iter().map(|s| s.caption()).collect();
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        // Each batch draws its own noise: seed + batch index.
        let clips = model.generate(
            &refs,
            args.seed.wrapping_add(b as u64),
            steps,
            guidance,
            method,
        )?;
        for (clip, scene) in clips.iter().zip(chunk) {
            base.push(eval::evaluate(clip, scene));
            let out = post.process(clip, args.size, args.frames)?;
            delivered.push(eval::evaluate(&as_clip(&out.rgb, args.size), scene));
        }
        eprintln!(
            "{}/{} scenes, {:.0} s",
            base.len(),
            suite.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let mut md = format!(
        "Model `{}`, {} scenes (`prompt_suite({}, {})`), {} {:?} steps, guidance {}, CPU backend.\n\n",
        model.id(),
        suite.len(),
        args.n,
        args.seed,
        steps,
        method,
        guidance
    );
    md += &format!(
        "### Model frames ({0}x{0}, {1} frames)\n\n",
        cfg.base_size, cfg.frames
    );
    md += &report::markdown(&report::rows(&base));
    md += &format!(
        "\n### Delivered frames ({0}x{0}, {1} frames, CPU post-processing)\n\n",
        args.size, args.frames
    );
    md += &report::markdown(&report::rows(&delivered));
    md += &format!(
        "\nGenerated and judged in {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
    println!("{md}");
    if let Some(path) = args.out {
        std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Delivered RGB8 frames as a clip in [0, 1], the evaluator's input.
fn as_clip(frames: &[Vec<u8>], size: usize) -> Clip {
    Clip {
        frames: frames.len(),
        width: size,
        height: size,
        data: frames
            .iter()
            .flatten()
            .map(|&v| f32::from(v) / 255.0)
            .collect(),
    }
}
