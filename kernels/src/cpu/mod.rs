//! The CPU backend: host tensors (`CpuTensor`, which caches each weight packed for the GEMM),
//! one register-blocked GEMM over packed weights (`gemm.rs`) under every op (3x3 convs by
//! Winograd F(2x2, 3x3), temporal convs as frame-shifted GEMMs, linears), vector loops
//! compiled for AVX-512 / AVX2 when the CPU has them, and its own rayon pool so the caller
//! picks the thread count (work is split over images, clips and frames, never inside a GEMM).

mod conv;
pub(crate) mod gemm;
mod math;
mod pointwise;
mod sampler;
mod tensor;
mod winograd;

use crate::backend::{Backend, Norm};
use crate::error::KernelError;
use crate::scene_step::{slab_len, validate, SceneStep};
use crate::tensor::Tensor;
use gemm::{Operand, PackedB};
use std::ops::Range;
use std::sync::Arc;
use tensor::Buffers;
pub use tensor::CpuTensor;

/// The CPU backend: its own rayon pool and a store of reusable buffers.
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    buffers: Arc<Buffers>,
}

impl CpuBackend {
    /// A backend computing on `threads` threads (0: one per CPU).
    pub fn new(threads: usize) -> CpuBackend {
        CpuBackend::build(threads, false)
    }

    /// As [`CpuBackend::new`], its threads at background priority
    /// ([`crate::lower_current_thread_priority`]): for a server, whose request threads must
    /// stay responsive while the model saturates the cores.
    pub fn background(threads: usize) -> CpuBackend {
        CpuBackend::build(threads, true)
    }

    fn build(threads: usize, background: bool) -> CpuBackend {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kernels-cpu-{i}"))
            .start_handler(move |_| {
                if background {
                    crate::lower_current_thread_priority();
                }
            })
            .build()
            .unwrap_or_else(|e| panic!("cannot start {threads} compute threads: {e}"));
        CpuBackend {
            pool,
            threads,
            buffers: Arc::default(),
        }
    }

    /// Threads of its pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    fn tensor(&self, host: Tensor) -> CpuTensor {
        CpuTensor::new(host, &self.buffers)
    }
}

impl Default for CpuBackend {
    fn default() -> CpuBackend {
        CpuBackend::new(0)
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;

    fn name(&self) -> String {
        format!("cpu ({} threads)", self.threads)
    }

    fn run<R: Send>(&self, pass: impl FnOnce() -> R + Send) -> R {
        self.pool.install(pass)
    }

    fn upload(&self, host: &Tensor) -> CpuTensor {
        let mut data = self.buffers.take(host.numel());
        data.copy_from_slice(&host.data);
        self.tensor(Tensor::new(&host.shape, data))
    }

    fn download(&self, t: &CpuTensor) -> Tensor {
        t.host().clone()
    }

    fn conv2d(&self, x: &CpuTensor, w: &CpuTensor, bias: &CpuTensor) -> CpuTensor {
        let u = w.packed("conv2d", winograd::transform_weights);
        let [n, h, wd, _] = conv::dims4(x.host());
        let out = self.buffers.take(n * h * wd * bias.host().numel());
        let y = self
            .pool
            .install(|| winograd::conv2d(x.host(), u, &bias.host().data, self.threads, out));
        self.tensor(y)
    }

    fn temporal_conv_residual(
        &self,
        residual: &mut CpuTensor,
        x: &CpuTensor,
        w: &CpuTensor,
        bias: &CpuTensor,
        frames: usize,
    ) {
        let taps = w.packed("temporal conv", conv::pack_taps);
        let residual = residual.host_mut();
        self.pool.install(|| {
            conv::temporal_conv_residual(
                residual,
                x.host(),
                &w.host().shape,
                taps,
                bias.host(),
                frames,
            )
        })
    }

    fn linear(&self, x: &CpuTensor, w: &CpuTensor, bias: &CpuTensor) -> CpuTensor {
        let (xh, bias) = (x.host(), bias.host());
        let (n, k, out) = (xh.shape[0], xh.shape[1], bias.numel());
        crate::shapes::linear(&xh.shape, &w.host().shape, out);
        // w is [out, k]: packed as its transpose [k, out].
        let wt = &w.packed("linear", |w| {
            let wt = Operand {
                data: &w.data,
                row_stride: 1,
                col_stride: k,
            };
            vec![PackedB::new(k, out, wt)]
        })[0];
        // Rows padded to whole GEMM panels, then cut back to `out`.
        let pad = wt.padded_n();
        let mut y = vec![0.0f32; n * pad];
        gemm::gemm(n, &xh.data, k, wt, &mut y, pad, false);
        let y = y
            .chunks_exact(pad)
            .flat_map(|row| row.iter().zip(&bias.data).map(|(v, b)| v + b))
            .collect();
        self.tensor(Tensor::new(&[n, out], y))
    }

    fn norm_silu(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        norm: Norm,
        film: Option<(&CpuTensor, usize)>,
    ) -> CpuTensor {
        let out = self.buffers.take(x.host().numel());
        let y = self.pool.install(|| {
            pointwise::norm_silu(
                x.host(),
                gamma.host(),
                beta.host(),
                norm,
                film.map(|(ss, frames)| (ss.host(), frames)),
                out,
            )
        });
        self.tensor(y)
    }

    fn silu(&self, x: &mut CpuTensor) {
        let x = x.host_mut();
        self.pool.install(|| pointwise::silu(x))
    }

    fn add(&self, x: &mut CpuTensor, y: &CpuTensor) {
        let x = x.host_mut();
        self.pool.install(|| pointwise::add(x, y.host()))
    }

    fn add_frame_embedding(&self, x: &mut CpuTensor, emb: &CpuTensor) {
        let x = x.host_mut();
        self.pool
            .install(|| pointwise::add_frame_embedding(x, emb.host()))
    }

    fn concat(&self, parts: &[&CpuTensor]) -> CpuTensor {
        let shapes: Vec<&[usize]> = parts.iter().map(|p| &p.host().shape[..]).collect();
        let shape = crate::backend::concat_shape(&shapes);
        let mut data = self.buffers.take(shape.iter().product());
        let mut at = 0;
        for part in parts {
            let src = &part.host().data;
            data[at..at + src.len()].copy_from_slice(src);
            at += src.len();
        }
        self.tensor(Tensor::new(&shape, data))
    }

    fn slice(&self, x: &CpuTensor, rows: Range<usize>) -> CpuTensor {
        let x = x.host();
        let (shape, values) = crate::backend::slice_shape(&x.shape, rows);
        let mut data = self.buffers.take(values.len());
        data.copy_from_slice(&x.data[values]);
        self.tensor(Tensor::new(&shape, data))
    }

    fn guided_step(
        &self,
        latents: &mut CpuTensor,
        x0: &mut CpuTensor,
        out: &CpuTensor,
        scenes: &[SceneStep],
    ) -> Result<(), KernelError> {
        validate(scenes)?;
        let len = slab_len(
            scenes.len(),
            latents.host().numel(),
            x0.host().numel(),
            out.host().numel(),
        )?;
        if len == 0 {
            return Ok(());
        }
        let (z, x0, out) = (
            &mut latents.host_mut().data,
            &mut x0.host_mut().data,
            &out.host().data,
        );
        self.pool
            .install(|| sampler::guided_step(z, x0, out, scenes, len));
        Ok(())
    }
}
