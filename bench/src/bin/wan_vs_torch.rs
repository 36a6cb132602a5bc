//! The Rust side of the Wan2.1 benchmark against diffusers (`bench/wan_bench.sh` runs both
//! sides and `bench/wan_torch.py report` prints the ratios): the time of each component and
//! of a whole generation on the CPU, one JSON line per measurement on stdout, with the median
//! of `--runs` runs and this process's peak RSS (`VmHWM`) at the end. The shapes are
//! `wan_torch.py`'s, so both sides do the same work:
//!
//! - `tiny`: `model/wan/tiny/` (the parity fixture), 5 frames of 32 x 48.
//! - `mid`: the checkpoint `wan_torch.py make-mid` writes (transformer dim 768, 8 layers;
//!   umT5 d 512, 4 layers; VAE base 32): the transformer at 9 frames of 256 x 256 (768
//!   tokens), the VAE and the whole pipeline at 9 frames of 128 x 128.
//! - `1.3b`: the Wan2.1-T2V-1.3B transformer config with random weights stored as bf16 (as
//!   served), one forward at 17 frames of 256 x 256 (latent 16 x 5 x 32 x 32, 1,280 tokens).
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p bench --bin wan_vs_torch -- --config mid
//! --dir /var/tmp/reel-wan-mid`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kernels::wan::{
    denoise, postprocess_video, prompt_embeds, Guidance, Umt5Encoder, WanCheckpoint, WanDtype,
    WanInput, WanSampler, WanTransformer, WanTransformerConfig, WanVaeDecoder,
};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Wan2.1 on reel's CPU kernels: per-component and end-to-end seconds")]
struct Args {
    /// tiny, mid or 1.3b.
    #[arg(long)]
    config: String,
    /// The checkpoint directory (tiny: model/wan/tiny; mid: what `make-mid` wrote).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed runs per measurement (after one untimed warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// The prompt both sides encode.
const PROMPT: &str = "A red fox runs through fresh snow at sunrise, cinematic, 4K.";
/// Text rows the pipeline pads prompts to.
const TEXT_LEN: usize = 512;

/// Deterministic values in [-1, 1) (timing inputs, not a sample of torch's generator).
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            h as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Median of `runs` timed calls of `f` after one untimed warm-up call, and every run.
fn time(runs: usize, mut f: impl FnMut()) -> (f64, Vec<f64>) {
    f();
    let mut all: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    let printed = all.clone();
    all.sort_by(f64::total_cmp);
    (all[all.len() / 2], printed)
}

fn report(config: &str, component: &str, detail: &str, (median, runs): (f64, Vec<f64>)) {
    println!(
        "{}",
        json!({"side": "reel", "config": config, "component": component, "detail": detail,
               "median_s": median, "runs_s": runs})
    );
}

/// This process's peak resident set (`VmHWM`), KiB.
fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM")?.parse()?)
}

/// Token ids and mask of `prompt` padded to [`TEXT_LEN`], as `WanPipeline` tokenizes.
fn tokenize(ckpt: &WanCheckpoint, prompt: &str) -> Result<(Vec<u32>, Vec<u32>)> {
    let encoding = ckpt
        .tokenizer()
        .encode(prompt, true)
        .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
    let mut ids = encoding.get_ids().to_vec();
    ids.truncate(TEXT_LEN);
    let mut mask = vec![1u32; ids.len()];
    ids.resize(TEXT_LEN, 0);
    mask.resize(TEXT_LEN, 0);
    Ok((ids, mask))
}

/// Video size and frames of each stage of a checkpoint benchmark.
struct Shapes {
    /// Transformer latent `[C, F, H, W]`.
    transformer: [usize; 4],
    /// VAE and end-to-end latent `[C, F, H, W]`.
    video: [usize; 4],
}

fn checkpoint(config: &str, dir: PathBuf, runs: usize, shapes: Shapes) -> Result<()> {
    let ckpt = WanCheckpoint::open(&dir).with_context(|| format!("open {}", dir.display()))?;
    let encoder = Umt5Encoder::from_checkpoint(&ckpt)?;
    let model = WanTransformer::from_checkpoint(&ckpt)?;
    let vae = WanVaeDecoder::from_checkpoint(&ckpt)?;

    let (ids, mask) = tokenize(&ckpt, PROMPT)?;
    report(
        config,
        "umt5",
        "encode 512 tokens",
        time(runs, || {
            encoder.encode(&ids, &mask);
        }),
    );
    let embeds = prompt_embeds(encoder.encode(&ids, &mask), encoder.d_model(), &mask);
    let negative = values(embeds.len(), 2);

    let shape = shapes.transformer;
    let latent = values(shape.iter().product(), 1);
    // diffusers recomputes the text embedder and the cross-attention keys and values every
    // call; reel computes them once per prompt (text_context), so the comparable single
    // call is both.
    report(
        config,
        "transformer",
        "text_context + forward, batch 1",
        time(runs, || {
            let context = model.text_context(&embeds);
            model.forward(&latent, shape, 500.0, &context);
        }),
    );
    let prompt = model.text_context(&embeds);
    let uncond = model.text_context(&negative);
    report(
        config,
        "transformer_cfg",
        "forward_batch of 2 (cond + uncond), contexts cached",
        time(runs, || {
            let items = [&prompt, &uncond].map(|context| WanInput {
                latent: &latent,
                shape,
                timestep: 500.0,
                context,
            });
            model.forward_batch(&items);
        }),
    );

    // The same two predictions as two batch-1 calls: what forward_batch saves, side by side.
    report(
        config,
        "transformer_cfg_two_calls",
        "2 x forward, batch 1, contexts cached",
        time(runs, || {
            model.forward(&latent, shape, 500.0, &prompt);
            model.forward(&latent, shape, 500.0, &uncond);
        }),
    );

    let [z, frames, h, w] = shapes.video;
    let video_latent = values(z * frames * h * w, 3);
    report(
        config,
        "vae",
        "decode",
        time(runs, || {
            vae.decode(&video_latent, frames, h, w);
        }),
    );

    // The whole generation: tokenize and encode both prompts, 4 UniPC steps with guidance
    // 5, decode, postprocess (as WanPipeline(..., num_inference_steps=4, output_type="np")).
    let (neg_ids, neg_mask) = tokenize(&ckpt, "")?;
    report(
        config,
        "end_to_end",
        "4 steps, CFG 5",
        time(runs, || {
            let (ids, mask) = tokenize(&ckpt, PROMPT).expect("tokenize");
            let d = encoder.d_model();
            let prompt = model.text_context(&prompt_embeds(encoder.encode(&ids, &mask), d, &mask));
            let negative = model.text_context(&prompt_embeds(
                encoder.encode(&neg_ids, &neg_mask),
                d,
                &neg_mask,
            ));
            let mut sampler = WanSampler::new(ckpt.scheduler(), 4);
            let guidance = Guidance {
                prompt: &prompt,
                negative: &negative,
                scale: 5.0,
            };
            let latents = denoise(
                &model,
                video_latent.clone(),
                shapes.video,
                &mut sampler,
                guidance,
                |_, _| {},
            );
            let mut video = vae.decode(&latents, frames, h, w);
            postprocess_video(&mut video);
        }),
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let threads = rayon::current_num_threads();
    match args.config.as_str() {
        "tiny" => {
            let dir = args.dir.unwrap_or_else(|| {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../model/wan/tiny"))
            });
            let shapes = Shapes {
                transformer: [5, 2, 4, 6],
                video: [5, 2, 4, 6],
            };
            checkpoint("tiny", dir, args.runs, shapes)?;
        }
        "mid" => {
            let dir = args.dir.context("--dir: the make-mid checkpoint")?;
            let shapes = Shapes {
                transformer: [16, 3, 32, 32],
                video: [16, 3, 16, 16],
            };
            checkpoint("mid", dir, args.runs, shapes)?;
        }
        "1.3b" => {
            let start = Instant::now();
            let model =
                WanTransformer::random(&WanTransformerConfig::wan21_t2v_1_3b(), WanDtype::Bf16, 7)?;
            eprintln!("built random 1.3B (bf16) in {:?}", start.elapsed());
            let text = values(TEXT_LEN * 4096, 2);
            let shape = [16, 5, 32, 32];
            let latent = values(shape.iter().product(), 1);
            report(
                "1.3b",
                "transformer",
                "text_context + forward, batch 1, 1280 tokens, bf16 weights",
                time(args.runs, || {
                    let context = model.text_context(&text);
                    model.forward(&latent, shape, 500.0, &context);
                }),
            );
        }
        other => bail!("--config {other}: tiny, mid or 1.3b"),
    }
    println!(
        "{}",
        json!({"side": "reel", "config": args.config, "component": "peak_rss",
               "rss_kib": peak_rss_kib()?, "threads": threads})
    );
    Ok(())
}
