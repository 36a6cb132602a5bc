//! Which backend post-processes, and why `Auto` picks what it picks.
//!
//! `Auto` takes a hardware adapter (discrete, integrated or virtual GPU) when wgpu finds one
//! (issue 4 asks for the GPU whenever there is one), and still times it against the CPU path
//! so that the figures are on record. A software adapter (lavapipe/llvmpipe, device type `Cpu`) runs the same shaders on the same
//! CPU cores as the rayon path, so whether it is worth taking depends on the machine: `Auto`
//! times one probe scene on both ([`probe_fps`]) and takes the faster. With lavapipe on the
//! 2-core development machine, choosing takes 0.64-0.69 s of start-up, device included
//! (`cargo test --release -p pipeline --test post -- bad_input --nocapture` prints it). The measured figures are part of
//! [`super::PostProcessor::describe`], which the start-up log and `/readyz` show.

use std::str::FromStr;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use kernels::Clip;

/// Which backend runs post-processing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PostChoice {
    /// A hardware adapter when there is one; with only a software adapter, whichever of it and
    /// the CPU path is faster on a probe scene timed at start-up.
    #[default]
    Auto,
    /// wgpu compute shaders on the best adapter found (an error when there is none).
    Wgpu,
    /// The rayon CPU path.
    Cpu,
}

impl FromStr for PostChoice {
    type Err = anyhow::Error;

    /// `auto`, `wgpu` or `cpu`.
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(PostChoice::Auto),
            "wgpu" | "gpu" => Ok(PostChoice::Wgpu),
            "cpu" => Ok(PostChoice::Cpu),
            other => Err(anyhow!(
                "unknown post-processing backend {other:?} (auto, wgpu or cpu)"
            )),
        }
    }
}

/// The adapter `choice` asks for: None for the CPU path (for `Auto`, when there is no adapter);
/// an error for `Wgpu` without an adapter.
pub(crate) fn adapter_for(choice: PostChoice) -> Result<Option<wgpu::Adapter>> {
    match choice {
        PostChoice::Cpu => Ok(None),
        PostChoice::Auto => Ok(best_adapter()),
        PostChoice::Wgpu => match best_adapter() {
            Some(adapter) => Ok(Some(adapter)),
            None => bail!(
                "no wgpu adapter found: install a Vulkan driver (on Debian, mesa-vulkan-drivers and \
                 libvulkan1 give the lavapipe software adapter) or choose the CPU backend"
            ),
        },
    }
}

/// Whether `adapter` runs on the CPU (lavapipe/llvmpipe) rather than on a GPU.
pub(crate) fn is_software(adapter: &wgpu::Adapter) -> bool {
    adapter.get_info().device_type == wgpu::DeviceType::Cpu
}

/// Side and count of the probe's base frames: those of one scene of the shipped model (8 of
/// 48x48).
const PROBE_BASE: (usize, usize) = (48, 8);
/// Side and count of the probe's delivered frames: a quarter of a default scene (0.5 s of
/// 256x256 at 24 fps), which keeps the probe short on a slow path.
const PROBE_OUT: (usize, usize) = (256, 12);

/// Delivered frames per second of `process` on the probe scene: one untimed run (shader JIT,
/// buffer growth), then the faster of two timed runs, which is the least disturbed by other
/// work on the machine.
pub(crate) fn probe_fps<T>(process: impl Fn(&Clip, usize, usize) -> Result<T>) -> Result<f64> {
    let clip = probe_clip();
    let (size, frames) = PROBE_OUT;
    process(&clip, size, frames)?;
    let mut best = f64::INFINITY;
    for _ in 0..2 {
        let start = Instant::now();
        process(&clip, size, frames)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(frames as f64 / best.max(1e-9))
}

/// A red square moving right on a dark canvas, with the one-pixel ramp of the model's frames:
/// an object and edges, so every stage does the work it does on a real scene.
fn probe_clip() -> Clip {
    let (side, frames) = PROBE_BASE;
    let (bg, fg) = ([0.05f32, 0.05, 0.1], [0.9f32, 0.1, 0.1]);
    let mut data = Vec::with_capacity(frames * side * side * 3);
    for f in 0..frames {
        let (x0, y0, w) = (8.0 + 2.0 * f as f32, 16.0, 14.0);
        for y in 0..side {
            for x in 0..side {
                let inside = |p: usize, lo: f32| (p as f32 + 0.5 - lo).min(lo + w - p as f32 - 0.5);
                let a = (inside(x, x0).min(inside(y, y0)) + 0.5).clamp(0.0, 1.0);
                data.extend((0..3).map(|c| bg[c] + a * (fg[c] - bg[c])));
            }
        }
    }
    Clip {
        frames,
        width: side,
        height: side,
        data,
    }
}

/// The most capable adapter: GPUs before software, native APIs before GL.
fn best_adapter() -> Option<wgpu::Adapter> {
    // WGPU_BACKEND may narrow the search; by default GL is left out (Vulkan covers Linux).
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.into_iter().max_by_key(|a| {
        let info = a.get_info();
        let kind = match info.device_type {
            wgpu::DeviceType::DiscreteGpu => 4,
            wgpu::DeviceType::IntegratedGpu => 3,
            wgpu::DeviceType::VirtualGpu => 2,
            wgpu::DeviceType::Cpu => 1,
            wgpu::DeviceType::Other => 0,
        };
        (kind, info.backend != wgpu::Backend::Gl)
    })
}
