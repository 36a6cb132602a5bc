//! post_throughput: delivered frames per second through the whole post-processing chain
//! (analyse -> interpolate + upscale -> RGB8 + Y'CbCr 4:2:0), wgpu and CPU side by side.
//!
//! One 2-second scene as the model delivers it (8 base frames of 64x64, a circle moving across,
//! drawn by the world renderer) becomes 48 frames of 256x256. Each backend is set up once, warmed up once (shader JIT), then
//! timed over `--repeats` runs; the table shows medians and the ratio to the CPU path. The
//! `Auto` choice of `pipeline::post` is decided from this table. Then `--batch` copies of the
//! scene go through `process_batch` at once (on wgpu one submission), timed the same way: the
//! last columns show the median per scene and what batching saves against one at a time.
//!
//! `cargo run --release -p bench --bin post_throughput [-- --repeats 9 --size 256 --frames 48 --batch 8]`

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use eval::render::{draw_start, render};
use kernels::Clip;
use pipeline::post::{PostChoice, PostInput, PostProcessor};
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size};

#[derive(Parser)]
struct Args {
    /// Timed runs per backend (after one warm-up).
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Delivered side in pixels.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Delivered frames per scene.
    #[arg(long, default_value_t = 48)]
    frames: usize,
    /// Scenes per batch for the batched timing (1 leaves it out).
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

/// What the model delivers for one scene: 8 frames of 64x64 of a medium red circle moving right
/// on a black background, drawn by the world renderer.
fn scene() -> Clip {
    let scene = Scene {
        size: Size::Medium,
        color: Color::Red,
        shape: Shape::Circle,
        motion: Motion::Right,
        background: Background::Black,
    };
    render(&scene, draw_start(&scene, 0.5, 0.5), 64, 8)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    name: &'static str,
    device: String,
    setup: Duration,
    first: Duration,
    median: Duration,
    /// Median time per scene when `--batch` scenes go together.
    batched: Option<Duration>,
}

/// Median of `repeats` timings of `run`.
fn median(repeats: usize, mut run: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

fn measure(name: &'static str, choice: PostChoice, clip: &Clip, args: &Args) -> Result<Row> {
    let t = Instant::now();
    let post = PostProcessor::new(choice)?;
    let setup = t.elapsed();
    let t = Instant::now();
    post.process(clip, args.size, args.frames)?;
    let first = t.elapsed();
    let median_one = median(args.repeats, || {
        std::hint::black_box(post.process(clip, args.size, args.frames)?);
        Ok(())
    })?;
    let input = PostInput {
        clip,
        out_size: args.size,
        out_frames: args.frames,
    };
    let batch = vec![input; args.batch];
    let batched = match args.batch {
        0 | 1 => None,
        n => Some(
            median(args.repeats, || {
                for out in post.process_batch(&batch) {
                    std::hint::black_box(out?);
                }
                Ok(())
            })? / n as u32,
        ),
    };
    Ok(Row {
        name,
        device: post.describe(),
        setup,
        first,
        median: median_one,
        batched,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        // The Vulkan loader complains without one; a private directory keeps it quiet.
        let dir = std::env::temp_dir().join(format!("reel-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
    let clip = scene();
    println!(
        "post-processing, {} base frames {}x{} -> {} frames {}x{} + yuv420, median of {} (cores: {})",
        clip.frames,
        clip.width,
        clip.height,
        args.frames,
        args.size,
        args.size,
        args.repeats.max(1),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut rows = Vec::new();
    for (name, choice) in [("cpu", PostChoice::Cpu), ("wgpu", PostChoice::Wgpu)] {
        match measure(name, choice, &clip, &args) {
            Ok(row) => rows.push(row),
            Err(e) => println!("{name}: unavailable: {e:#}"),
        }
    }
    let cpu = rows.iter().find(|r| r.name == "cpu").map(|r| r.median);
    println!(
        "{:<6} {:>9} {:>9} {:>10} {:>9} {:>8} {:>13} {:>9}  device",
        "path",
        "setup ms",
        "first ms",
        "median ms",
        "frames/s",
        "vs cpu",
        format!("x{} ms/scene", args.batch),
        "vs one"
    );
    for r in &rows {
        let fps = args.frames as f64 / r.median.as_secs_f64();
        let ratio = cpu.map_or(f64::NAN, |c| c.as_secs_f64() / r.median.as_secs_f64());
        let (batched, saved) = r.batched.map_or((f64::NAN, f64::NAN), |b| {
            (ms(b), r.median.as_secs_f64() / b.as_secs_f64())
        });
        println!(
            "{:<6} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>7.2}x {:>13.1} {:>8.2}x  {}",
            r.name,
            ms(r.setup),
            ms(r.first),
            ms(r.median),
            fps,
            ratio,
            batched,
            saved,
            r.device
        );
    }
    Ok(())
}
