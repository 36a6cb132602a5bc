//! The wgpu backend: the four stages as compute shaders, chained on the device.
//!
//! Device, pipelines and buffers are made once and reused; buffers grow when a bigger scene
//! comes. Per scene: one upload of the base frames, one command buffer with the four
//! dispatches and the copies into one staging buffer, one read-back.

use std::borrow::Cow;
use std::sync::{mpsc, Mutex};

use anyhow::{anyhow, ensure, Context as _, Result};
use kernels::Clip;

use super::analyse::FrameMotion;
use super::geometry::{Geometry, Params};
use super::{Processed, Yuv420};

const COMMON: &str = include_str!("common.wgsl");
const ANALYSE: &str = include_str!("analyse.wgsl");
const SIDES: &str = include_str!("sides.wgsl");
const RESAMPLE: &str = include_str!("resample.wgsl");
const YUV: &str = include_str!("yuv.wgsl");

/// Workgroup width of `find_sides`, `resample` and `to_yuv` (`@workgroup_size(64)`).
const GROUP: usize = 64;
/// Words of one `Motion` in `common.wgsl`.
const MOTION_WORDS: usize = 8;
/// Words of one cell of the side table (four `vec4<f32>` in `common.wgsl`).
const SIDE_WORDS: usize = 16;

pub(crate) struct GpuPost {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    layout: wgpu::BindGroupLayout,
    analyse: wgpu::ComputePipeline,
    sides: wgpu::ComputePipeline,
    resample: wgpu::ComputePipeline,
    yuv: wgpu::ComputePipeline,
    buffers: Mutex<Option<Buffers>>,
}

/// The device-side working set; `sizes` are what each buffer holds, in bytes.
struct Buffers {
    sizes: Sizes,
    params: wgpu::Buffer,
    clip: wgpu::Buffer,
    motion: wgpu::Buffer,
    rgb: wgpu::Buffer,
    yuv: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sizes {
    clip: u64,
    motion: u64,
    sides: u64,
    rgb: u64,
    yuv: u64,
}

impl Sizes {
    fn of(g: &Geometry) -> Sizes {
        let bytes = |words: usize| (words * 4) as u64;
        Sizes {
            clip: bytes(g.frames * g.in_w * g.in_h * 3),
            motion: bytes(g.frames * MOTION_WORDS),
            sides: bytes(g.frames * g.cells() * SIDE_WORDS),
            rgb: bytes(g.out_frames * g.rgb_words()),
            yuv: bytes(g.out_frames * g.yuv_words()),
        }
    }

    fn covers(&self, need: &Sizes) -> bool {
        self.clip >= need.clip
            && self.motion >= need.motion
            && self.sides >= need.sides
            && self.rgb >= need.rgb
            && self.yuv >= need.yuv
    }

    fn max(&self, other: &Sizes) -> Sizes {
        Sizes {
            clip: self.clip.max(other.clip),
            motion: self.motion.max(other.motion),
            sides: self.sides.max(other.sides),
            rgb: self.rgb.max(other.rgb),
            yuv: self.yuv.max(other.yuv),
        }
    }

    fn readback(&self) -> u64 {
        self.motion + self.rgb + self.yuv
    }
}

impl GpuPost {
    pub(crate) fn new(adapter: wgpu::Adapter) -> Result<GpuPost> {
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("reel post"),
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .with_context(|| format!("creating a wgpu device on {}", info.name))?;

        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("post"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, false),
                storage(3, false),
                storage(4, false),
                storage(5, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("post"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |stage: &str, entry: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(format!("{COMMON}\n{stage}"))),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let analyse = pipeline(ANALYSE, "analyse");
        let sides = pipeline(SIDES, "find_sides");
        let resample = pipeline(RESAMPLE, "resample");
        let yuv = pipeline(YUV, "to_yuv");
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(anyhow!("building the post-processing shaders: {e}"));
        }
        Ok(GpuPost {
            device,
            queue,
            info,
            layout,
            analyse,
            sides,
            resample,
            yuv,
            buffers: Mutex::new(None),
        })
    }

    /// Adapter name, API and device type.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} / {:?} / {:?}",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    fn check_limits(&self, g: &Geometry, sizes: &Sizes) -> Result<()> {
        let limits = self.device.limits();
        let biggest = sizes.clip.max(sizes.sides).max(sizes.rgb).max(sizes.yuv);
        ensure!(
            biggest <= limits.max_storage_buffer_binding_size
                && sizes.readback() <= limits.max_buffer_size,
            "scene too large for the device: {biggest} byte buffer, limit {}",
            limits.max_storage_buffer_binding_size
        );
        let groups = [
            g.frames,
            g.cells().div_ceil(GROUP),
            g.quads().div_ceil(GROUP),
            g.out_frames,
            (g.y_words() + g.c_words()).div_ceil(GROUP),
        ];
        ensure!(
            groups
                .iter()
                .all(|&n| n as u64 <= limits.max_compute_workgroups_per_dimension as u64),
            "scene too large for one dispatch: {groups:?} workgroups, limit {}",
            limits.max_compute_workgroups_per_dimension
        );
        Ok(())
    }

    /// Makes (or grows) the working set so that it holds `need`.
    fn buffers(&self, need: &Sizes) -> Buffers {
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let make = |label, size: u64, usage| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        let params = make(
            "params",
            std::mem::size_of::<Params>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let clip = make("clip", need.clip, storage);
        let motion = make("motion", need.motion, storage);
        // Only the shaders touch the side table; the bind group keeps it alive.
        let sides = make("sides", need.sides, storage);
        let rgb = make("rgb", need.rgb, storage);
        let yuv = make("yuv", need.yuv, storage);
        let readback = make(
            "readback",
            need.readback(),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("post"),
            layout: &self.layout,
            entries: &[&params, &clip, &motion, &rgb, &yuv, &sides]
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        Buffers {
            sizes: *need,
            params,
            clip,
            motion,
            rgb,
            yuv,
            readback,
            bind_group,
        }
    }

    pub(crate) fn process(&self, clip: &Clip, g: &Geometry) -> Result<Processed> {
        let need = Sizes::of(g);
        self.check_limits(g, &need)?;
        let mut guard = self
            .buffers
            .lock()
            .map_err(|_| anyhow!("post-processing buffers poisoned"))?;
        let buf = match guard.take() {
            Some(b) if b.sizes.covers(&need) => b,
            old => self.buffers(&old.map_or(need, |b| b.sizes.max(&need))),
        };
        let out = self.run(guard.insert(buf), clip, g, &need);
        if out.is_err() {
            // The staging buffer may still be mapped: start afresh next time.
            *guard = None;
        }
        out
    }

    /// One scene through the chain: upload, four dispatches, copies, one read-back.
    fn run(&self, buf: &Buffers, clip: &Clip, g: &Geometry, need: &Sizes) -> Result<Processed> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.queue
            .write_buffer(&buf.params, 0, bytemuck::bytes_of(&g.params()));
        self.queue
            .write_buffer(&buf.clip, 0, bytemuck::cast_slice(&clip.data));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_bind_group(0, &buf.bind_group, &[]);
            pass.set_pipeline(&self.analyse);
            pass.dispatch_workgroups(g.frames as u32, 1, 1);
            pass.set_pipeline(&self.sides);
            pass.dispatch_workgroups(g.cells().div_ceil(GROUP) as u32, g.frames as u32, 1);
            pass.set_pipeline(&self.resample);
            pass.dispatch_workgroups(g.quads().div_ceil(GROUP) as u32, g.out_frames as u32, 1);
            pass.set_pipeline(&self.yuv);
            pass.dispatch_workgroups(
                (g.y_words() + g.c_words()).div_ceil(GROUP) as u32,
                g.out_frames as u32,
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&buf.motion, 0, &buf.readback, 0, need.motion);
        encoder.copy_buffer_to_buffer(&buf.rgb, 0, &buf.readback, need.motion, need.rgb);
        encoder.copy_buffer_to_buffer(&buf.yuv, 0, &buf.readback, need.motion + need.rgb, need.yuv);
        self.queue.submit([encoder.finish()]);

        let slice = buf.readback.slice(0..need.readback());
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver lives until the poll below has returned.
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .context("waiting for post-processing on the device")?;
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(anyhow!("post-processing on the device: {e}"));
        }
        rx.recv()
            .context("device dropped the read-back")?
            .context("mapping the post-processing results")?;
        let out = {
            let view = slice
                .get_mapped_range()
                .context("reading the post-processing results")?;
            unpack(&view, g, need)
        };
        buf.readback.unmap();
        Ok(out)
    }
}

/// Splits the staging buffer (motion, packed RGB8 frames, packed Y'CbCr frames) into frames.
fn unpack(bytes: &[u8], g: &Geometry, sizes: &Sizes) -> Processed {
    let (motion, rest) = bytes.split_at(sizes.motion as usize);
    let (rgb, yuv) = rest.split_at(sizes.rgb as usize);
    let motion: Vec<f32> = bytemuck::pod_collect_to_vec(motion);
    let n = g.pixels();
    let cs = g.chroma_side();
    let (y_bytes, c_bytes) = (g.y_words() * 4, g.c_words() * 4);
    Processed {
        motion: motion
            .chunks_exact(MOTION_WORDS)
            .map(FrameMotion::from_words)
            .collect(),
        rgb: rgb
            .chunks_exact(g.rgb_words() * 4)
            .map(|f| f[..n * 3].to_vec())
            .collect(),
        yuv: yuv
            .chunks_exact(g.yuv_words() * 4)
            .map(|f| Yuv420 {
                width: g.out_size,
                height: g.out_size,
                y: f[..n].to_vec(),
                u: f[y_bytes..y_bytes + cs * cs].to_vec(),
                v: f[y_bytes + c_bytes..y_bytes + c_bytes + cs * cs].to_vec(),
            })
            .collect(),
    }
}
