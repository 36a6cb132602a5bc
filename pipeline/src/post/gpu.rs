//! The wgpu backend: the four stages as compute shaders, chained on the device.
//!
//! Device, pipelines and buffers are made once and reused; buffers grow when a bigger batch
//! comes. A batch of scenes is one submission: each scene's base frames are uploaded into its
//! slot of the shared buffers, one command buffer holds every scene's four dispatches (each
//! scene bound to its slots) and the copies into one staging buffer, and one read-back brings
//! them all home. So the fixed cost of a submission and a device round trip (which dominated
//! small scenes) is paid once per batch instead of once per scene.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Command buffers submitted so far (one per batch).
    submissions: AtomicU64,
}

/// The device-side working set; `sizes` are what each buffer holds, in bytes.
struct Buffers {
    sizes: Sizes,
    params: wgpu::Buffer,
    clip: wgpu::Buffer,
    motion: wgpu::Buffer,
    sides: wgpu::Buffer,
    rgb: wgpu::Buffer,
    yuv: wgpu::Buffer,
    readback: wgpu::Buffer,
}

/// Bytes per buffer: what one scene needs, where a scene's slot starts, or a whole batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sizes {
    params: u64,
    clip: u64,
    motion: u64,
    sides: u64,
    rgb: u64,
    yuv: u64,
    /// The staging buffer: motion, RGB and Y'CbCr back to back.
    readback: u64,
}

impl Sizes {
    fn of(g: &Geometry) -> Sizes {
        let bytes = |words: usize| (words * 4) as u64;
        let (motion, rgb, yuv) = (
            bytes(g.frames * MOTION_WORDS),
            bytes(g.out_frames * g.rgb_words()),
            bytes(g.out_frames * g.yuv_words()),
        );
        Sizes {
            params: std::mem::size_of::<Params>() as u64,
            clip: bytes(g.frames * g.in_w * g.in_h * 3),
            motion,
            sides: bytes(g.frames * g.cells() * SIDE_WORDS),
            rgb,
            yuv,
            readback: motion + rgb + yuv,
        }
    }

    fn fields(&self) -> [u64; 7] {
        [
            self.params,
            self.clip,
            self.motion,
            self.sides,
            self.rgb,
            self.yuv,
            self.readback,
        ]
    }

    fn from_fields([params, clip, motion, sides, rgb, yuv, readback]: [u64; 7]) -> Sizes {
        Sizes {
            params,
            clip,
            motion,
            sides,
            rgb,
            yuv,
            readback,
        }
    }

    fn covers(&self, need: &Sizes) -> bool {
        self.fields()
            .iter()
            .zip(need.fields())
            .all(|(&a, b)| a >= b)
    }

    fn max(&self, other: &Sizes) -> Sizes {
        let (a, b) = (self.fields(), other.fields());
        Sizes::from_fields(std::array::from_fn(|i| a[i].max(b[i])))
    }

    /// Reserves a slot of `need` at the end of a batch of `self` (each slot starting at a
    /// multiple of `align`); returns the slot's offsets.
    fn place(&mut self, need: &Sizes, align: u64) -> Sizes {
        let (end, need) = (self.fields(), need.fields());
        let at: [u64; 7] = std::array::from_fn(|i| end[i].next_multiple_of(align));
        *self = Sizes::from_fields(std::array::from_fn(|i| at[i] + need[i]));
        Sizes::from_fields(at)
    }
}

/// One scene of a batch: its shape, what it needs, and where its slot starts.
struct Slot<'a> {
    clip: &'a Clip,
    g: &'a Geometry,
    need: Sizes,
    at: Sizes,
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
            submissions: AtomicU64::new(0),
        })
    }

    /// Adapter name, API and device type.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} / {:?} / {:?}",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Command buffers submitted so far: one per batch.
    pub(crate) fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Where slots may start: every binding offset the device accepts for uniforms and
    /// storage, and the 8 bytes a mapped range must start on.
    fn alignment(&self) -> u64 {
        let limits = self.device.limits();
        u64::from(limits.min_uniform_buffer_offset_alignment)
            .max(u64::from(limits.min_storage_buffer_offset_alignment))
            .max(wgpu::MAP_ALIGNMENT)
    }

    fn check_limits(&self, g: &Geometry, sizes: &Sizes) -> Result<()> {
        let limits = self.device.limits();
        let biggest = sizes.clip.max(sizes.sides).max(sizes.rgb).max(sizes.yuv);
        ensure!(
            biggest <= limits.max_storage_buffer_binding_size
                && sizes.readback <= limits.max_buffer_size,
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
            need.params,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let clip = make("clip", need.clip, storage);
        let motion = make("motion", need.motion, storage);
        let sides = make("sides", need.sides, storage);
        let rgb = make("rgb", need.rgb, storage);
        let yuv = make("yuv", need.yuv, storage);
        let readback = make(
            "readback",
            need.readback,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        Buffers {
            sizes: *need,
            params,
            clip,
            motion,
            sides,
            rgb,
            yuv,
            readback,
        }
    }

    /// The bind group of one scene's slot (bindings as in `common.wgsl`).
    fn bind_slot(&self, buf: &Buffers, slot: &Slot<'_>) -> wgpu::BindGroup {
        let (at, need) = (&slot.at, &slot.need);
        let ranges = [
            (&buf.params, at.params, need.params),
            (&buf.clip, at.clip, need.clip),
            (&buf.motion, at.motion, need.motion),
            (&buf.rgb, at.rgb, need.rgb),
            (&buf.yuv, at.yuv, need.yuv),
            (&buf.sides, at.sides, need.sides),
        ];
        let entries: Vec<wgpu::BindGroupEntry> = ranges
            .iter()
            .enumerate()
            .map(|(i, &(buffer, offset, size))| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer,
                    offset,
                    // Every stage's size is positive: `Geometry::new` refuses empty scenes.
                    size: NonZeroU64::new(size),
                }),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("post slot"),
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Several scenes through the chain in one submission (in as few as the device's buffer
    /// size allows); the results in the order given. An error fails the whole batch.
    pub(crate) fn process_batch(&self, scenes: &[(&Clip, &Geometry)]) -> Result<Vec<Processed>> {
        let align = self.alignment();
        let max_buffer = self.device.limits().max_buffer_size;
        let mut out = Vec::with_capacity(scenes.len());
        let mut batch: Vec<Slot<'_>> = Vec::new();
        let mut total = Sizes::default();
        for &(clip, g) in scenes {
            let need = Sizes::of(g);
            self.check_limits(g, &need)?;
            let mut grown = total;
            grown.place(&need, align);
            if !batch.is_empty() && grown.fields().iter().any(|&b| b > max_buffer) {
                out.extend(self.submit(&batch, &total)?);
                (batch, total) = (Vec::new(), Sizes::default());
            }
            let at = total.place(&need, align);
            batch.push(Slot { clip, g, need, at });
        }
        if !batch.is_empty() {
            out.extend(self.submit(&batch, &total)?);
        }
        Ok(out)
    }

    /// One batch whose slots fill `total`, on the working set (grown first if needed).
    fn submit(&self, batch: &[Slot<'_>], total: &Sizes) -> Result<Vec<Processed>> {
        let mut guard = self
            .buffers
            .lock()
            .map_err(|_| anyhow!("post-processing buffers poisoned"))?;
        let buf = match guard.take() {
            Some(b) if b.sizes.covers(total) => b,
            old => self.buffers(&old.map_or(*total, |b| b.sizes.max(total))),
        };
        let out = self.run(guard.insert(buf), batch, total);
        if out.is_err() {
            // The staging buffer may still be mapped: start afresh next time.
            *guard = None;
        }
        out
    }

    /// A batch through the chain: uploads, every scene's four dispatches and copies in one
    /// command buffer, one read-back.
    fn run(&self, buf: &Buffers, batch: &[Slot<'_>], total: &Sizes) -> Result<Vec<Processed>> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        for slot in batch {
            let params = slot.g.params();
            self.queue
                .write_buffer(&buf.params, slot.at.params, bytemuck::bytes_of(&params));
            self.queue.write_buffer(
                &buf.clip,
                slot.at.clip,
                bytemuck::cast_slice(&slot.clip.data),
            );
        }
        let groups: Vec<wgpu::BindGroup> = batch.iter().map(|s| self.bind_slot(buf, s)).collect();
        let mut encoder = self.device.create_command_encoder(&Default::default());
        // Each scene's copies follow its own dispatches (a pass per scene), so they read its
        // results while they are fresh rather than after the whole batch has gone through.
        for (slot, group) in batch.iter().zip(&groups) {
            let g = slot.g;
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_bind_group(0, group, &[]);
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
            let (at, need) = (&slot.at, &slot.need);
            let back = at.readback;
            encoder.copy_buffer_to_buffer(&buf.motion, at.motion, &buf.readback, back, need.motion);
            let back = back + need.motion;
            encoder.copy_buffer_to_buffer(&buf.rgb, at.rgb, &buf.readback, back, need.rgb);
            let back = back + need.rgb;
            encoder.copy_buffer_to_buffer(&buf.yuv, at.yuv, &buf.readback, back, need.yuv);
        }
        self.queue.submit([encoder.finish()]);
        self.submissions.fetch_add(1, Ordering::Relaxed);

        let slice = buf.readback.slice(0..total.readback);
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
            batch
                .iter()
                .map(|slot| {
                    let start = slot.at.readback as usize;
                    let bytes = &view[start..start + slot.need.readback as usize];
                    unpack(bytes, slot.g, &slot.need)
                })
                .collect()
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
