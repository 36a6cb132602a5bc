//! The CPU backend: host tensors, GEMMs through `matrixmultiply` (convolutions as tiled
//! im2col GEMMs), and its own rayon pool so the caller picks the thread count.

mod conv;
mod gemm;
mod pointwise;

use crate::backend::{Backend, Norm};
use crate::tensor::Tensor;
use gemm::{sgemm, Operand};

pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl CpuBackend {
    /// A backend computing on `threads` threads (0: one per CPU).
    pub fn new(threads: usize) -> CpuBackend {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kernels-cpu-{i}"))
            .build()
            .unwrap_or_else(|e| panic!("cannot start {threads} compute threads: {e}"));
        CpuBackend { pool, threads }
    }

    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Default for CpuBackend {
    fn default() -> CpuBackend {
        CpuBackend::new(0)
    }
}

impl Backend for CpuBackend {
    type Tensor = Tensor;

    fn name(&self) -> String {
        format!("cpu ({} threads)", self.threads)
    }

    fn run<R: Send>(&self, pass: impl FnOnce() -> R + Send) -> R {
        self.pool.install(pass)
    }

    fn upload(&self, host: &Tensor) -> Tensor {
        host.clone()
    }

    fn download(&self, t: &Tensor) -> Tensor {
        t.clone()
    }

    fn conv2d(&self, x: &Tensor, w: &Tensor, bias: &Tensor) -> Tensor {
        self.pool.install(|| conv::conv2d(x, w, bias, self.threads))
    }

    fn temporal_conv_residual(
        &self,
        residual: &mut Tensor,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        frames: usize,
    ) {
        self.pool
            .install(|| conv::temporal_conv_residual(residual, x, w, bias, frames, self.threads))
    }

    fn linear(&self, x: &Tensor, w: &Tensor, bias: &Tensor) -> Tensor {
        let (n, k) = (x.shape[0], x.shape[1]);
        let out = bias.numel();
        crate::shapes::linear(&x.shape, &w.shape, out);
        let mut y: Vec<f32> = bias.data.iter().copied().cycle().take(n * out).collect();
        let a = Operand {
            data: &x.data,
            row_stride: k,
            col_stride: 1,
        };
        let b = Operand {
            data: &w.data,
            row_stride: 1,
            col_stride: k,
        };
        sgemm(n, k, out, a, b, 1.0, &mut y);
        Tensor::new(&[n, out], y)
    }

    fn norm_silu(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        norm: Norm,
        film: Option<(&Tensor, usize)>,
    ) -> Tensor {
        self.pool
            .install(|| pointwise::norm_silu(x, gamma, beta, norm, film))
    }

    fn silu(&self, x: &mut Tensor) {
        self.pool.install(|| pointwise::silu(x))
    }

    fn add(&self, x: &mut Tensor, y: &Tensor) {
        self.pool.install(|| pointwise::add(x, y))
    }

    fn add_frame_embedding(&self, x: &mut Tensor, emb: &Tensor) {
        self.pool.install(|| pointwise::add_frame_embedding(x, emb))
    }
}
