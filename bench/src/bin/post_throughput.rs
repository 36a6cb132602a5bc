//! post_throughput: delivered frames per second through the whole post-processing chain
//! (analyse -> interpolate + upscale -> RGB8 + Y'CbCr 4:2:0), wgpu and CPU side by side.
//!
//! One 2-second scene as the model delivers it (8 base frames of 64x64, a circle moving across)
//! becomes 48 frames of 256x256. Each backend is set up once, warmed up once (shader JIT), then
//! timed over `--repeats` runs; the table shows medians and the ratio to the CPU path. The
//! `Auto` choice of `pipeline::post` is decided from this table.
//!
//! `cargo run --release -p bench --bin post_throughput [-- --repeats 9 --size 256 --frames 48]`

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use kernels::Clip;
use pipeline::post::{PostChoice, PostProcessor};

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
}

/// 8 frames of 64x64: a red disc of a quarter of the side crossing a black canvas, with the
/// anti-aliased one-pixel edge of the project's renderer.
fn scene() -> Clip {
    let (n, frames) = (64usize, 8usize);
    let mut data = Vec::with_capacity(frames * n * n * 3);
    for i in 0..frames {
        let cx = (0.3 + 0.45 * i as f32 / (frames - 1) as f32) * n as f32;
        let (cy, r) = (0.5 * n as f32, 0.125 * n as f32);
        for y in 0..n {
            for x in 0..n {
                let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt() - r;
                let a = (0.5 - d).clamp(0.0, 1.0);
                for (fg, bg) in [(230.0, 10.0), (50.0, 10.0), (50.0, 10.0)] {
                    data.push((bg * (1.0 - a) + fg * a) / 255.0);
                }
            }
        }
    }
    Clip { frames, width: n, height: n, data }
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
}

fn measure(name: &'static str, choice: PostChoice, clip: &Clip, args: &Args) -> Result<Row> {
    let t = Instant::now();
    let post = PostProcessor::new(choice)?;
    let setup = t.elapsed();
    let t = Instant::now();
    post.process(clip, args.size, args.frames)?;
    let first = t.elapsed();
    let mut times = Vec::with_capacity(args.repeats);
    for _ in 0..args.repeats.max(1) {
        let t = Instant::now();
        let out = post.process(clip, args.size, args.frames)?;
        times.push(t.elapsed());
        std::hint::black_box(out);
    }
    times.sort();
    Ok(Row {
        name,
        device: post.describe(),
        setup,
        first,
        median: times[times.len() / 2],
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
        "{:<6} {:>9} {:>9} {:>10} {:>9} {:>8}  device",
        "path", "setup ms", "first ms", "median ms", "frames/s", "vs cpu"
    );
    for r in &rows {
        let fps = args.frames as f64 / r.median.as_secs_f64();
        let ratio = cpu.map_or(f64::NAN, |c| c.as_secs_f64() / r.median.as_secs_f64());
        println!(
            "{:<6} {:>9.1} {:>9.1} {:>10.1} {:>9.1} {:>7.2}x  {}",
            r.name,
            ms(r.setup),
            ms(r.first),
            ms(r.median),
            fps,
            ratio,
            r.device
        );
    }
    Ok(())
}
