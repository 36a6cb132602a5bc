//! Which backend post-processes, and why `Auto` picks what it picks.
//!
//! `Auto` takes a hardware adapter (discrete, integrated or virtual GPU) when wgpu finds one.
//! A software adapter (lavapipe/llvmpipe, device type `Cpu`) runs the same shaders on the same
//! CPU cores as the rayon path, and the committed measurement below says it is the slower of
//! the two, so `Auto` then uses the CPU path. Deciding from a measurement rather than timing
//! both at start-up keeps start-up fast (a device and its shader JIT cost about half a
//! second) and the choice deterministic; rerun `cargo run --release -p bench --bin
//! post_throughput` on a new kind of machine to revisit it.
//!
//! Measured with that bench on the 2-core development machine (lavapipe on LLVM 15, other jobs
//! sharing the cores), one scene of 8 base frames of 64x64 -> 48 frames of 256x256 + YUV,
//! medians of 9 in three alternating runs: [`CPU_PATH_FPS`] against [`SOFTWARE_ADAPTER_FPS`].

use std::str::FromStr;

use anyhow::{anyhow, bail, Result};

/// Delivered frames per second of the CPU chain (bench `post_throughput`, 2026-11-27, after
/// the per-cell side table).
const CPU_PATH_FPS: f64 = 1500.0;
/// Delivered frames per second of the wgpu chain on lavapipe, same run.
const SOFTWARE_ADAPTER_FPS: f64 = 125.0;

/// Which backend runs post-processing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PostChoice {
    /// A hardware adapter when there is one, else the CPU path (faster than a software adapter).
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

/// The adapter to use (None: the CPU path) and, when `Auto` decided, why.
pub(crate) fn resolve(choice: PostChoice) -> Result<(Option<wgpu::Adapter>, String)> {
    match choice {
        PostChoice::Cpu => Ok((None, String::new())),
        PostChoice::Wgpu => match best_adapter() {
            Some(adapter) => Ok((Some(adapter), String::new())),
            None => bail!(
                "no wgpu adapter found: install a Vulkan driver (on Debian, mesa-vulkan-drivers and \
                 libvulkan1 give the lavapipe software adapter) or choose the CPU backend"
            ),
        },
        PostChoice::Auto => Ok(match best_adapter() {
            None => (None, "auto: no wgpu adapter".into()),
            Some(a) if a.get_info().device_type != wgpu::DeviceType::Cpu => {
                (Some(a), "auto: hardware adapter".into())
            }
            Some(a) => (
                None,
                format!(
                    "auto: only a software adapter ({}), measured at {SOFTWARE_ADAPTER_FPS:.0} frames/s \
                     against the CPU path's {CPU_PATH_FPS:.0}",
                    a.get_info().name
                ),
            ),
        }),
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
