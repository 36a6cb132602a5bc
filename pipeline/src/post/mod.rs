//! Post-processing: the model's base frames -> delivered frames (size, rate, RGB8 and YUV).
//!
//! Input is a [`kernels::Clip`] (a few low-resolution frames spanning a whole scene, frame i at
//! progress i/(frames-1)); output is a [`Processed`] scene of `out_frames` frames of
//! `out_size` x `out_size`, as RGB8 (the stored PNG frames) and as YUV 4:2:0 for the H.264
//! encoder of [`crate::encode`]. The stages, each written twice, as a WGSL compute shader
//! (`*.wgsl` here) and as a CPU twin (rayon) that agrees with it within 1/255:
//!
//! 1. **analyse** (`analyse.rs`): per base frame, the flat background colour (mean of the border),
//!    the object's mask, mass (area) and centroid. The world has one flat object on a flat
//!    canvas, so these few numbers describe the motion completely.
//! 2. **sides** (`sides.rs`): per base frame and per 4x4 neighbourhood a delivered pixel can
//!    read (its *cell*), the channels' range, whether it is an edge or noise, and the colours
//!    either side of the edge, robust to noise (means weighted away from the edge's own ramp,
//!    where a plain minimum and maximum of noisy taps would draw a dark ring round objects).
//!    Found once per cell rather than once per delivered pixel.
//! 3. **resample** (`resample.rs`): temporal interpolation and spatial upscale in one pass. An
//!    in-between frame re-places the object: its centroid and scale are interpolated, and each of
//!    the two neighbouring base frames is sampled at positions warped so that its object lands
//!    there, then the two are blended. Both copies of the object coincide, so nothing ghosts.
//!    The sampling itself is the edge-crisp upscale: Catmull-Rom, clamped to the 4x4
//!    neighbourhood's range (no ringing), then pushed along the step between the cell's side
//!    colours away from its middle by the magnification, which turns the base frame's
//!    one-pixel anti-aliasing ramp back into a one-pixel ramp at the delivered size instead of
//!    bicubic's four-pixel blur. Fusing the two stages resamples each base frame once instead
//!    of twice.
//! 4. **yuv** ([`yuv`]): RGB8 -> BT.601 limited-range Y'CbCr 4:2:0 (what H.264 Constrained
//!    Baseline yuv420p wants), from the delivered RGB8 so both outputs agree.
//!
//! On the device the stages are chained: a scene is uploaded once and read back once, the
//! scenes of a batch ([`PostProcessor::process_batch`]) in one submission and one read-back,
//! and the device, pipelines and buffers live as long as the [`PostProcessor`] (buffers grow
//! on demand).

mod analyse;
mod choice;
mod cpu;
mod geometry;
mod gpu;
mod resample;
mod sides;
pub mod yuv;

use std::fmt;

use anyhow::{anyhow, ensure, Result};
use kernels::Clip;

pub use analyse::FrameMotion;
pub use choice::PostChoice;

/// One frame in planar Y'CbCr 4:2:0: `y` is `width * height`, `u` and `v` are
/// `ceil(width/2) * ceil(height/2)`, all tightly packed rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Yuv420 {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Luma (Y'), one byte per pixel.
    pub y: Vec<u8>,
    /// Blue-difference chroma (Cb), one byte per 2x2 pixels.
    pub u: Vec<u8>,
    /// Red-difference chroma (Cr), one byte per 2x2 pixels.
    pub v: Vec<u8>,
}

/// A post-processed scene.
#[derive(Clone, Debug, PartialEq)]
pub struct Processed {
    /// Per delivered frame, `out_size * out_size * 3` bytes of RGB8, rows top to bottom.
    pub rgb: Vec<Vec<u8>>,
    /// The same frames in Y'CbCr 4:2:0.
    pub yuv: Vec<Yuv420>,
    /// What the analysis found in each base frame (logged, and checked by tests).
    pub motion: Vec<FrameMotion>,
}

/// Runs the post-processing chain on the backend chosen at construction.
pub struct PostProcessor {
    backend: Backend,
    why: String,
}

enum Backend {
    Cpu,
    Wgpu(Box<gpu::GpuPost>),
}

impl PostProcessor {
    /// Sets up the backend: `Cpu` always works; `Wgpu` fails when no adapter exists; `Auto`
    /// takes a hardware adapter when there is one and otherwise the faster of a software
    /// adapter and the CPU path on a probe scene timed here (see [`PostChoice`]), so it never
    /// fails.
    pub fn new(choice: PostChoice) -> Result<PostProcessor> {
        let cpu = |why: String| PostProcessor {
            backend: Backend::Cpu,
            why,
        };
        let auto = choice == PostChoice::Auto;
        let Some(adapter) = choice::adapter_for(choice)? else {
            return Ok(cpu(if auto {
                "auto: no wgpu adapter".into()
            } else {
                String::new()
            }));
        };
        let software = choice::is_software(&adapter);
        let name = adapter.get_info().name;
        let gpu = match gpu::GpuPost::new(adapter) {
            Ok(gpu) => PostProcessor {
                backend: Backend::Wgpu(Box::new(gpu)),
                why: String::new(),
            },
            // Auto promises a working backend: a device that fails to start leaves the CPU path.
            Err(e) if auto => return Ok(cpu(format!("auto: the wgpu device failed: {e:#}"))),
            Err(e) => return Err(e),
        };
        if !auto {
            return Ok(gpu);
        }
        let cpu_fps = choice::probe_fps(|c, s, f| cpu(String::new()).process(c, s, f))?;
        let gpu_fps = match choice::probe_fps(|c, s, f| gpu.process(c, s, f)) {
            Ok(fps) => fps,
            Err(e) => return Ok(cpu(format!("auto: the wgpu device failed: {e:#}"))),
        };
        let measured = format!(
            "start-up probe: wgpu {gpu_fps:.0} frames/s, the CPU path {cpu_fps:.0} frames/s"
        );
        Ok(if !software {
            PostProcessor {
                why: format!("auto: hardware adapter; {measured}"),
                ..gpu
            }
        } else if gpu_fps > cpu_fps {
            PostProcessor {
                why: format!("auto: software adapter, the faster; {measured}"),
                ..gpu
            }
        } else {
            cpu(format!(
                "auto: only a software adapter ({name}), the slower; {measured}"
            ))
        })
    }

    /// The backend in words, e.g. `wgpu: llvmpipe (LLVM 15.0.6, 256 bits) / Vulkan / Cpu` or
    /// `cpu (...)`, with the reason when `Auto` chose.
    pub fn describe(&self) -> String {
        let what = match &self.backend {
            Backend::Cpu => "cpu".to_string(),
            Backend::Wgpu(gpu) => format!("wgpu: {}", gpu.describe()),
        };
        if self.why.is_empty() {
            what
        } else {
            format!("{what} ({})", self.why)
        }
    }

    /// True when the chain runs through wgpu.
    pub fn is_wgpu(&self) -> bool {
        matches!(self.backend, Backend::Wgpu(_))
    }

    /// Brings one scene to `out_frames` frames of `out_size` x `out_size`.
    pub fn process(&self, clip: &Clip, out_size: usize, out_frames: usize) -> Result<Processed> {
        let mut done = self.process_batch(&[PostInput {
            clip,
            out_size,
            out_frames,
        }]);
        done.pop().expect("one result per scene")
    }

    /// Brings several scenes through the chain, each result in the order given. On wgpu
    /// they go to the device together: one submission and one read-back for all of them
    /// (more only when they outgrow the device's largest buffer). A scene whose shape is
    /// refused fails alone; a device error fails every scene of the batch.
    pub fn process_batch(&self, scenes: &[PostInput<'_>]) -> Vec<Result<Processed>> {
        let shaped: Vec<Result<geometry::Geometry>> = scenes
            .iter()
            .map(|s| geometry::Geometry::new(s.clip, s.out_size, s.out_frames))
            .collect();
        match &self.backend {
            Backend::Cpu => scenes
                .iter()
                .zip(shaped)
                .map(|(s, g)| Ok(cpu::process(s.clip, &g?)))
                .collect(),
            Backend::Wgpu(gpu) => {
                let good: Vec<(&Clip, &geometry::Geometry)> = scenes
                    .iter()
                    .zip(&shaped)
                    .filter_map(|(s, g)| Some((s.clip, g.as_ref().ok()?)))
                    .collect();
                let mut done = match gpu.process_batch(&good) {
                    Ok(done) => done.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => {
                        let why = format!("{e:#}");
                        good.iter().map(|_| Err(anyhow!("{why}"))).collect()
                    }
                }
                .into_iter();
                shaped
                    .into_iter()
                    .map(|g| match g {
                        Ok(_) => done.next().expect("one result per shaped scene"),
                        Err(e) => Err(e),
                    })
                    .collect()
            }
        }
    }

    /// Command buffers submitted to the wgpu device so far (one per batch); 0 on the CPU.
    pub fn submissions(&self) -> u64 {
        match &self.backend {
            Backend::Cpu => 0,
            Backend::Wgpu(gpu) => gpu.submissions(),
        }
    }
}

/// One scene for [`PostProcessor::process_batch`]: its base frames and the delivered shape.
#[derive(Clone, Copy, Debug)]
pub struct PostInput<'a> {
    /// The model's base frames.
    pub clip: &'a Clip,
    /// Delivered width and height in pixels.
    pub out_size: usize,
    /// Delivered frames.
    pub out_frames: usize,
}

impl fmt::Debug for PostProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Checks that a clip's buffer holds what its header says.
fn check_clip(clip: &Clip) -> Result<()> {
    ensure!(
        clip.frames > 0 && clip.width > 0 && clip.height > 0,
        "empty clip: {} frames of {}x{}",
        clip.frames,
        clip.width,
        clip.height
    );
    ensure!(
        clip.data.len() == clip.frames * clip.width * clip.height * 3,
        "clip data holds {} values, {} frames of {}x{} RGB need {}",
        clip.data.len(),
        clip.frames,
        clip.width,
        clip.height,
        clip.frames * clip.width * clip.height * 3
    );
    Ok(())
}
