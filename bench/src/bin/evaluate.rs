//! Prompt-adherence evaluation of the shipped model: generates every scene of
//! `eval::prompt_suite` with the Rust inference (CPU backend), judges the model's
//! frames and the delivered (post-processed) frames with `eval`, and writes the
//! accuracy tables as Markdown. It also measures artifacts near the object
//! (`eval::artifacts`) on the delivered frames after the server's H.264 encoder and a decode
//! (ffmpeg), against the same measure on the rendered ground truth of each scene through the
//! same encoder.
//!
//! `cargo run --release -p bench --bin evaluate -- --out docs/EVALUATION.md`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use bench::report::peer::decode;
use clap::Parser;
use eval::artifacts::{edge_artifacts, EdgeArtifacts, BAND, TOLERANCE};
use eval::render::{render, seeded_start};
use eval::report;
use kernels::{Clip, Model};
use pipeline::encode::Mp4Encoder;
use pipeline::post::yuv::rgb_to_yuv420;
use pipeline::post::{PostChoice, PostProcessor};
use pipeline::world::Shape;

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
    // Per scene: its shape, and the edge artifacts of the model's video and of the truth's.
    let mut artifacts: Vec<(Shape, EdgeArtifacts, EdgeArtifacts)> = Vec::new();
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
            let index = artifacts.len() as u64;
            let model_video = through_encoder(&out.rgb, args.size)?;
            let truth = render(
                scene,
                seeded_start(scene, args.seed, index),
                args.size,
                args.frames,
            );
            let truth_video = through_encoder(&as_rgb8(&truth), args.size)?;
            if let (Some(m), Some(t)) = (edge_artifacts(&model_video), edge_artifacts(&truth_video))
            {
                artifacts.push((scene.shape, m, t));
            }
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
    md += &artifact_table(&artifacts);
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

/// Delivered RGB8 frames through the server's H.264 encoder (`Mp4Encoder`, as
/// `encode_video` feeds it) and back (ffmpeg).
fn through_encoder(frames: &[Vec<u8>], size: usize) -> anyhow::Result<Clip> {
    let mut encoder = Mp4Encoder::new(size as u32, size as u32, 24)?;
    for rgb in frames {
        encoder.push(&rgb_to_yuv420(rgb, size, size))?;
    }
    decode(&encoder.finish()?, size)
}

/// A clip in [0, 1] as RGB8 frames.
fn as_rgb8(clip: &Clip) -> Vec<Vec<u8>> {
    let frame = clip.width * clip.height * 3;
    clip.data
        .chunks_exact(frame)
        .map(|f| {
            f.iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect()
        })
        .collect()
}

/// The artifact section: stray pixels near the edge, model against truth, overall and by
/// shape.
fn artifact_table(rows: &[(Shape, EdgeArtifacts, EdgeArtifacts)]) -> String {
    let mut md = format!(
        "\n### Artifacts near the object (delivered frames through H.264, against the rendered truth)\n\n\
         Share of the pixels within {BAND} px of the object's edge whose colour is more than \
         {TOLERANCE} from both the object's and the canvas's (`eval::artifacts`), over every \
         frame, after the server's encoder and a decode; the truth is each scene rendered \
         (`eval::render`) and encoded the same way, so its share is the anti-aliasing ramp and \
         the codec's own.\n\n| scenes | n | model | truth | model / truth |\n|---|---:|---:|---:|---:|\n"
    );
    let mut line = |label: &str, keep: &dyn Fn(Shape) -> bool| {
        let picked: Vec<_> = rows.iter().filter(|r| keep(r.0)).collect();
        let sum = |f: &dyn Fn(&(Shape, EdgeArtifacts, EdgeArtifacts)) -> EdgeArtifacts| {
            picked.iter().fold(EdgeArtifacts::default(), |a, r| {
                let e = f(r);
                EdgeArtifacts {
                    band: a.band + e.band,
                    stray: a.stray + e.stray,
                }
            })
        };
        let (m, t) = (sum(&|r| r.1).share(), sum(&|r| r.2).share());
        md += &format!(
            "| {label} | {} | {:.2}% | {:.2}% | {:.2}x |\n",
            picked.len(),
            m * 100.0,
            t * 100.0,
            m / t.max(f32::MIN_POSITIVE)
        );
    };
    line("all", &|_| true);
    for shape in [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Diamond,
    ] {
        line(&format!("{shape:?}").to_lowercase(), &|s| s == shape);
    }
    md
}
