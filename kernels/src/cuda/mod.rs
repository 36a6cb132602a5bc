//! The CUDA backend: the `Backend` ops on an NVIDIA GPU through `cudarc`, with libcuda,
//! libnvrtc and libcublas opened at run time, so this module builds everywhere and
//! `CudaBackend::try_new` answers an error (never a panic) where CUDA is missing.
//!
//! - GEMM-shaped work goes to cuBLAS sgemm (plain FP32, no TF32): `linear`, the 3x3 conv as
//!   im2col (`conv.cu`) + one GEMM, and the temporal conv as three GEMMs over frame-shifted
//!   views of the input (no im2col: a frame's neighbours are whole contiguous images).
//!   The bias is broadcast first and the GEMMs accumulate onto it (beta = 1), so the
//!   temporal conv adds itself onto the block's residual with no extra pass.
//! - Everything else is a custom kernel in a `.cu` file beside this one (`ptx.rs` compiles
//!   them with NVRTC for the card found and caches the PTX). `norm_silu` is one kernel
//!   (group norm, FiLM, SiLU in one pass over memory).
//! - By default the sampler (guidance combine and solver update) runs on the host, as with
//!   the CPU backend: each `Model::step` uploads the latents and downloads the denoiser
//!   output. The backend's `guided_step` (`sampler.cu`) is the same step on the device, which
//!   `Model::with_resident_steps` uses to keep the latents there between steps.
//! - Opt-in paths ([`CudaOptions`], [`CudaBackend::with_options`]): both convolutions as
//!   implicit GEMMs on TF32 tensor cores (`implicit_conv.cu`: input patches gathered into
//!   shared memory, no im2col copy, the bias and the residual sum fused), instead of FP32
//!   cuBLAS. The defaults are the FP32 paths above.
//! - All work is queued on the context's default stream in call order; `download` waits for it.
//!   The `Backend` ops cannot return errors, so a failing CUDA call (a lost device, memory
//!   exhausted) panics with the driver's message; everything that can fail at start-up is an
//!   error of `try_new` instead.

mod conv_tiles;
mod device_sampler;
mod ptx;
pub mod wan;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, CudaView, CudaViewMut, LaunchArgs,
    LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use crate::backend::{Backend, Norm};
use crate::error::KernelError;
use crate::tensor::Tensor;
use conv_tiles::ConvGemm;
use std::ops::Range;

pub use crate::scene_step::SceneStep;
pub use ptx::{
    all_sources, compile_all_sources, nvrtc_available, nvrtc_version, CompiledSource, Source,
    SOURCES,
};

/// Launches the grid-stride kernel `$name` of `$be` over `$n` elements with `$arg`s.
macro_rules! launch {
    ($be:expr, $name:literal, $n:expr, $($arg:expr),+ $(,)?) => {{
        let mut l = $be.stream.launch_builder($be.kernel($name));
        $(l.arg($arg);)+
        $be.run_grid(l, $n, $name)
    }};
}

/// Threads per block of the elementwise kernels.
const THREADS: u32 = 256;
/// Grid cap of the grid-stride kernels: enough blocks to fill any current GPU.
const MAX_BLOCKS: usize = 1 << 16;

/// Whether a `CudaBackend` can start: libcuda, libnvrtc and libcublas load and the driver
/// sees at least one device. Never panics.
pub fn cuda_available() -> bool {
    missing_libraries().is_empty() && CudaContext::device_count().is_ok_and(|n| n > 0)
}

/// The CUDA libraries that cannot be loaded, named for an error message.
fn missing_libraries() -> Vec<&'static str> {
    // SAFETY: each call only tries to dlopen the library by name.
    let present = unsafe {
        [
            (
                "libcuda (the NVIDIA driver)",
                cudarc::driver::sys::is_culib_present(),
            ),
            ("libnvrtc", cudarc::nvrtc::sys::is_culib_present()),
            ("libcublas", cudarc::cublas::sys::is_culib_present()),
        ]
    };
    present
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect()
}

/// A tensor in GPU memory: a shape and a dense row-major buffer.
pub struct CudaTensor {
    shape: Vec<usize>,
    data: CudaSlice<f32>,
}

impl CudaTensor {
    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of values.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// How a convolution (`conv2d`, `temporal_conv_residual`) is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvPath {
    /// FP32 cuBLAS sgemm (no TF32): the 3x3 conv as im2col + one GEMM, the temporal conv as
    /// three GEMMs over frame-shifted views. Sums in f32 of exact f32 products.
    #[default]
    Sgemm,
    /// One implicit-GEMM kernel on tensor cores (`implicit_conv.cu`): products of inputs
    /// rounded to TF32 (10-bit mantissa), summed in f32. Needs compute capability 8.0+.
    ImplicitTf32,
}

impl ConvPath {
    /// The name the benchmarks take and print: `sgemm` or `tf32`.
    pub fn name(self) -> &'static str {
        match self {
            ConvPath::Sgemm => "sgemm",
            ConvPath::ImplicitTf32 => "tf32",
        }
    }

    /// The path called [`ConvPath::name`].
    pub fn from_name(name: &str) -> Option<ConvPath> {
        [ConvPath::Sgemm, ConvPath::ImplicitTf32]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

/// Choices of a [`CudaBackend`] between equivalent ways of computing its ops. The default is
/// what [`CudaBackend::try_new`] uses (and what docs/PERFORMANCE.md measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CudaOptions {
    /// The 3x3 convolution (`conv2d`).
    pub conv: ConvPath,
    /// The temporal convolution (`temporal_conv_residual`).
    pub temporal_conv: ConvPath,
}

/// The CUDA backend: one device, its compiled kernels and a cuBLAS handle.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: HashMap<&'static str, CudaFunction>,
    ordinal: usize,
    device: String,
    /// NVML's spelling, for [`crate::GpuMonitor`].
    uuid: String,
    arch: String,
    options: CudaOptions,
}

impl CudaBackend {
    /// A backend on GPU `ordinal`: opens the device, compiles (or finds in the PTX cache) the
    /// kernels for its architecture and creates a cuBLAS handle. Fails cleanly when a CUDA
    /// library is missing, the device does not exist, or NVRTC rejects a kernel.
    pub fn try_new(ordinal: usize) -> Result<CudaBackend, KernelError> {
        CudaBackend::with_options(ordinal, CudaOptions::default())
    }

    /// [`CudaBackend::try_new`] with `options`; an error (`InvalidArgument`) where the device
    /// cannot run a chosen path (TF32 before compute capability 8.0).
    pub fn with_options(ordinal: usize, options: CudaOptions) -> Result<CudaBackend, KernelError> {
        let ctx = open_device(ordinal)?;
        let device = ctx
            .name()
            .map_err(cuda_error("cannot read the device name"))?;
        let uuid = ctx
            .uuid()
            .map_err(cuda_error("cannot read the device UUID"))?;
        let uuid = crate::gpu_usage::nvml_uuid(&uuid.bytes.map(|b| b as u8));
        let arch = device_arch(&ctx)?;
        let tf32 = [options.conv, options.temporal_conv].contains(&ConvPath::ImplicitTf32);
        if tf32 && !supports_tf32(&arch) {
            return Err(KernelError::InvalidArgument(format!(
                "{options:?} needs TF32 tensor cores (compute capability 8.0+); {device} is {arch}"
            )));
        }
        let stream = ctx.default_stream();
        let blas =
            CudaBlas::new(stream.clone()).map_err(cuda_error("cannot create a cuBLAS handle"))?;
        let kernels = load_kernels(&ctx, SOURCES, &arch)?;
        Ok(CudaBackend {
            stream,
            blas,
            kernels,
            ordinal,
            device,
            uuid,
            arch,
            options,
        })
    }

    /// The paths this backend computes with.
    pub fn options(&self) -> CudaOptions {
        self.options
    }

    /// The device's UUID as NVML spells it (`GPU-...`), to find it with [`crate::GpuMonitor`].
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The virtual architecture the kernels were compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Waits until every queued op has finished (for benchmarks; `download` waits by itself).
    pub fn synchronize(&self) {
        check(self.stream.synchronize(), "synchronize");
    }

    /// `out = conv(x) + bias` (3x3, `kernel` = conv3x3_tf32) or `out += conv(x) + bias`
    /// (temporal, tconv_tf32_residual) as one implicit GEMM; `extents` are the kernel's two
    /// shape arguments after the row count ((H, W), or (frames, H * W)).
    fn implicit_conv(
        &self,
        kernel: &'static str,
        [x, w, bias]: [&CudaTensor; 3],
        out: &mut CudaTensor,
        gemm: ConvGemm,
        extents: (usize, usize),
    ) {
        if gemm.rows == 0 {
            return; // an empty batch: nothing to write, and a grid cannot be empty
        }
        let cfg = gemm.launch().unwrap_or_else(|e| panic!("{kernel}: {e}"));
        // launch() checked that rows, channels and K fit an i32; extents are at most rows.
        let int = |v: usize| v as i32;
        let (rows, e0, e1, cin, cout) = (
            int(gemm.rows),
            int(extents.0),
            int(extents.1),
            int(gemm.cin),
            int(gemm.cout),
        );
        let mut l = self.stream.launch_builder(self.kernel(kernel));
        l.arg(&x.data)
            .arg(&w.data)
            .arg(&bias.data)
            .arg(&mut out.data);
        l.arg(&rows).arg(&e0).arg(&e1).arg(&cin).arg(&cout);
        // SAFETY: the callers check x [rows / (H W), H, W, cin] (or its frames), w
        // [taps, cin, cout], bias [cout] and out [rows, cout]; the grid covers rows x cout and
        // the kernel bounds every load and store by rows, taps * cin and cout.
        check(unsafe { l.launch(cfg) }, kernel);
    }

    /// An uninitialised `shape` tensor, for outputs a kernel writes in full.
    fn alloc(&self, shape: &[usize]) -> CudaTensor {
        // SAFETY: every caller overwrites all elements before the tensor is read.
        let data = check(
            unsafe { self.stream.alloc::<f32>(shape.iter().product()) },
            "alloc",
        );
        CudaTensor {
            shape: shape.to_vec(),
            data,
        }
    }

    fn kernel(&self, name: &str) -> &CudaFunction {
        self.kernels
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is not in SOURCES"))
    }

    /// Launches `l`, a grid-stride kernel, over `n` elements (nothing to do when `n` is 0).
    fn run_grid(&self, mut l: LaunchArgs<'_>, n: usize, name: &str) {
        if n == 0 {
            return;
        }
        let blocks = n.div_ceil(THREADS as usize).min(MAX_BLOCKS) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every kernel of elementwise.cu / conv.cu is a grid-stride loop
        // over exactly the element counts its caller passes, the callers check that the
        // buffers hold that many elements, and argument types match the kernel signatures.
        check(unsafe { l.launch(cfg) }, name);
    }

    /// `[rows, width]` rows all equal to `row`: the starting point of a biased GEMM.
    fn bias_rows(&self, row: &CudaTensor, rows: usize) -> CudaTensor {
        let mut out = self.alloc(&[rows, row.numel()]);
        self.add_rows(&mut out, row, false);
        out
    }

    /// `out[r, ..] = row` (or `+= row` when `accumulate`) for every row of `out`.
    fn add_rows(&self, out: &mut CudaTensor, row: &CudaTensor, accumulate: bool) {
        let (len, width) = (out.numel(), row.numel());
        assert!(
            width > 0 && len.is_multiple_of(width),
            "{len} values are not rows of {width}"
        );
        let (rows, width, accumulate) = ((len / width) as u64, width as u64, accumulate as i32);
        launch!(
            self,
            "bias_rows",
            len,
            &mut out.data,
            &row.data,
            &rows,
            &width,
            &accumulate
        );
    }

    /// `c[rows, cols] += a[rows, k] @ b` (all row-major) for `batch` matrices `a` and `c` at
    /// strides `stride_a` and `stride_c` elements, `b` shared: `[k, cols]`, or `[cols, k]`
    /// read transposed when `b_transposed`. cuBLAS is column-major, so it computes
    /// `c^T = b^T @ a^T`, where each row-major matrix already is its column-major transpose.
    fn gemm_acc(
        &self,
        shape: GemmShape,
        a: &CudaView<f32>,
        b: &CudaView<f32>,
        c: &mut CudaViewMut<f32>,
    ) {
        let GemmShape {
            rows,
            k,
            cols,
            b_transposed,
            batch,
            stride_a,
            stride_c,
        } = shape;
        assert!(
            a.len() >= (batch - 1) * stride_a + rows * k
                && c.len() >= (batch - 1) * stride_c + rows * cols
                && b.len() >= k * cols,
            "GEMM operands too short"
        );
        let int = |v: usize| {
            i32::try_from(v)
                .unwrap_or_else(|_| panic!("GEMM dimension {v} exceeds cuBLAS's 32-bit range"))
        };
        let gemm = GemmConfig {
            transa: if b_transposed {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            },
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: int(cols),
            n: int(rows),
            k: int(k),
            alpha: 1.0f32,
            lda: int(if b_transposed { k } else { cols }),
            ldb: int(k),
            beta: 1.0f32,
            ldc: int(cols),
        };
        let cfg = StridedBatchedConfig {
            gemm,
            batch_size: int(batch),
            stride_a: 0,
            stride_b: stride_a as i64,
            stride_c: stride_c as i64,
        };
        // SAFETY: the assert above keeps every matrix cuBLAS addresses inside the three views.
        check(
            unsafe { self.blas.gemm_strided_batched(cfg, b, a, c) },
            "cuBLAS sgemm",
        );
    }
}

/// The dimensions of one `gemm_acc` call.
#[derive(Clone, Copy)]
struct GemmShape {
    rows: usize,
    k: usize,
    cols: usize,
    b_transposed: bool,
    batch: usize,
    stride_a: usize,
    stride_c: usize,
}

impl GemmShape {
    fn single(rows: usize, k: usize, cols: usize, b_transposed: bool) -> GemmShape {
        GemmShape {
            rows,
            k,
            cols,
            b_transposed,
            batch: 1,
            stride_a: 0,
            stride_c: 0,
        }
    }
}

impl Backend for CudaBackend {
    type Tensor = CudaTensor;

    fn name(&self) -> String {
        let CudaOptions {
            conv,
            temporal_conv,
        } = self.options;
        // The default paths go unnamed, so the default backend's name is what it always was.
        let paths: String = [("conv", conv), ("temporal conv", temporal_conv)]
            .into_iter()
            .filter(|&(_, path)| path != ConvPath::default())
            .map(|(op, path)| format!(", {op} {}", path.name()))
            .collect();
        format!(
            "cuda:{} ({}, {}{paths})",
            self.ordinal, self.device, self.arch
        )
    }

    fn upload(&self, host: &Tensor) -> CudaTensor {
        CudaTensor {
            shape: host.shape.clone(),
            data: check(self.stream.clone_htod(&host.data), "upload"),
        }
    }

    fn download(&self, t: &CudaTensor) -> Tensor {
        let data = check(self.stream.clone_dtoh(&t.data), "download");
        self.synchronize();
        Tensor::new(&t.shape, data)
    }

    fn conv2d(&self, x: &CudaTensor, w: &CudaTensor, bias: &CudaTensor) -> CudaTensor {
        let [n, h, wd, cin] = dims4(x);
        assert_eq!(
            &w.shape[..3],
            &[3, 3, cin],
            "conv2d weight {:?} for {cin} input channels",
            w.shape
        );
        let cout = w.shape[3];
        assert_eq!(bias.numel(), cout, "conv2d bias of the wrong size");
        let rows = n * h * wd;
        if self.options.conv == ConvPath::ImplicitTf32 {
            let mut out = self.alloc(&[n, h, wd, cout]);
            let gemm = ConvGemm {
                rows,
                taps: 9,
                cin,
                cout,
            };
            self.implicit_conv("conv3x3_tf32", [x, w, bias], &mut out, gemm, (h, wd));
            return out;
        }
        let mut col = self.alloc(&[rows, 9 * cin]);
        let (images, hh, ww, ci) = (n as u64, h as u64, wd as u64, cin as u64);
        launch!(
            self,
            "im2col_3x3",
            rows * 9 * cin,
            &x.data,
            &mut col.data,
            &images,
            &hh,
            &ww,
            &ci
        );
        let mut out = self.bias_rows(bias, rows);
        let shape = GemmShape::single(rows, 9 * cin, cout, false);
        self.gemm_acc(
            shape,
            &col.data.as_view(),
            &w.data.as_view(),
            &mut out.data.as_view_mut(),
        );
        out.shape = vec![n, h, wd, cout];
        out
    }

    fn temporal_conv_residual(
        &self,
        residual: &mut CudaTensor,
        x: &CudaTensor,
        w: &CudaTensor,
        bias: &CudaTensor,
        frames: usize,
    ) {
        let [n, h, wd, cin] = dims4(x);
        crate::shapes::temporal_conv([n, h, wd, cin], &w.shape, &residual.shape, frames);
        let cout = w.shape[2];
        assert_eq!(bias.numel(), cout, "temporal conv bias of the wrong size");
        let hw = h * wd;
        if self.options.temporal_conv == ConvPath::ImplicitTf32 {
            let gemm = ConvGemm {
                rows: n * hw,
                taps: 3,
                cin,
                cout,
            };
            let extents = (frames, hw);
            self.implicit_conv("tconv_tf32_residual", [x, w, bias], residual, gemm, extents);
            return;
        }
        let tap = |k: usize| w.data.slice(k * cin * cout..(k + 1) * cin * cout);
        self.add_rows(residual, bias, true);
        // Centre tap: every frame reads itself, one GEMM over all rows.
        let centre = GemmShape::single(n * hw, cin, cout, false);
        self.gemm_acc(
            centre,
            &x.data.as_view(),
            &tap(1),
            &mut residual.data.as_view_mut(),
        );
        if frames > 1 {
            // Side taps, one GEMM per clip (batched): output frames 1.. read input frames
            // ..F-1 through tap 0, output frames ..F-1 read input frames 1.. through tap 2; the
            // frames outside a clip are the zero padding, so they are simply not summed.
            let shifted = GemmShape {
                rows: (frames - 1) * hw,
                k: cin,
                cols: cout,
                b_transposed: false,
                batch: n / frames,
                stride_a: frames * hw * cin,
                stride_c: frames * hw * cout,
            };
            self.gemm_acc(
                shifted,
                &x.data.as_view(),
                &tap(0),
                &mut residual.data.slice_mut(hw * cout..),
            );
            self.gemm_acc(
                shifted,
                &x.data.slice(hw * cin..),
                &tap(2),
                &mut residual.data.as_view_mut(),
            );
        }
    }

    fn linear(&self, x: &CudaTensor, w: &CudaTensor, bias: &CudaTensor) -> CudaTensor {
        let (n, k) = match x.shape[..] {
            [n, k] => (n, k),
            _ => panic!("linear input must be [N, in], got {:?}", x.shape),
        };
        let out = bias.numel();
        crate::shapes::linear(&x.shape, &w.shape, out);
        let mut y = self.bias_rows(bias, n);
        let shape = GemmShape::single(n, k, out, true);
        self.gemm_acc(
            shape,
            &x.data.as_view(),
            &w.data.as_view(),
            &mut y.data.as_view_mut(),
        );
        y
    }

    fn norm_silu(
        &self,
        x: &CudaTensor,
        gamma: &CudaTensor,
        beta: &CudaTensor,
        norm: Norm,
        film: Option<(&CudaTensor, usize)>,
    ) -> CudaTensor {
        let [n, h, w, c] = dims4(x);
        let groups = norm.groups;
        crate::shapes::norm_silu(
            [n, h, w, c],
            groups,
            gamma.numel(),
            beta.numel(),
            film.map(|(ss, f)| (&ss.shape[..], f)),
        );
        assert!(
            c <= 1024,
            "group norm over {c} channels: the CUDA kernel holds at most 1024"
        );
        let mut y = self.alloc(&x.shape);
        let lanes = (THREADS as usize / c).max(1);
        let cfg = LaunchConfig {
            grid_dim: (n as u32, 1, 1),
            block_dim: ((lanes * c) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // Without FiLM the kernel never reads its table; gamma stands in as a valid pointer.
        let (table, frames) = film.map_or((&gamma.data, 1), |(ss, f)| (&ss.data, f));
        let (has_film, frames, hw, c, groups) = (
            film.is_some() as i32,
            frames as u64,
            (h * w) as u64,
            c as i32,
            groups as i32,
        );
        let mut l = self.stream.launch_builder(self.kernel("norm_silu"));
        l.arg(&x.data)
            .arg(&mut y.data)
            .arg(&gamma.data)
            .arg(&beta.data);
        l.arg(table).arg(&has_film).arg(&frames);
        l.arg(&hw).arg(&c).arg(&groups).arg(&norm.eps);
        // SAFETY: one block per image of x and y (both [n, h, w, c]); gamma and beta hold c
        // values and the FiLM table [n / frames, 2c] (checked above); blockDim = lanes * c
        // <= 1024 threads, a multiple of c as the kernel requires.
        check(unsafe { l.launch(cfg) }, "norm_silu");
        y
    }

    fn silu(&self, x: &mut CudaTensor) {
        let (len, n) = (x.numel(), x.numel() as u64);
        launch!(self, "silu", len, &mut x.data, &n);
    }

    fn add(&self, x: &mut CudaTensor, y: &CudaTensor) {
        assert_eq!(x.shape, y.shape, "add of different shapes");
        let (len, n) = (x.numel(), x.numel() as u64);
        launch!(self, "add", len, &mut x.data, &y.data, &n);
    }

    fn add_frame_embedding(&self, x: &mut CudaTensor, emb: &CudaTensor) {
        let [n, h, w, c] = dims4(x);
        let frames = emb.shape[0];
        assert!(
            emb.shape == [frames, c] && frames > 0 && n % frames == 0,
            "frame embedding {:?} for {:?}",
            emb.shape,
            x.shape
        );
        let (len, count, c, image_len, frames) = (
            x.numel(),
            x.numel() as u64,
            c as u64,
            (h * w * c) as u64,
            frames as u64,
        );
        launch!(
            self,
            "add_frame_embedding",
            len,
            &mut x.data,
            &emb.data,
            &count,
            &c,
            &image_len,
            &frames
        );
    }

    fn concat(&self, parts: &[&CudaTensor]) -> CudaTensor {
        let shapes: Vec<&[usize]> = parts.iter().map(|p| &p.shape[..]).collect();
        let mut out = self.alloc(&crate::backend::concat_shape(&shapes));
        let mut at = 0;
        for part in parts {
            let len = part.numel();
            let mut dst = out.data.slice_mut(at..at + len);
            check(self.stream.memcpy_dtod(&part.data, &mut dst), "concat copy");
            at += len;
        }
        out
    }

    fn slice(&self, x: &CudaTensor, rows: Range<usize>) -> CudaTensor {
        let (shape, values) = crate::backend::slice_shape(&x.shape, rows);
        let mut out = self.alloc(&shape);
        if !values.is_empty() {
            check(
                self.stream
                    .memcpy_dtod(&x.data.slice(values), &mut out.data),
                "slice copy",
            );
        }
        out
    }

    /// The `guided_step` kernel of `sampler.cu`: grid (slab blocks, scenes), the per-scene
    /// coefficients packed by `device_sampler.rs` and uploaded with each call.
    fn guided_step(
        &self,
        latents: &mut CudaTensor,
        x0: &mut CudaTensor,
        out: &CudaTensor,
        scenes: &[SceneStep],
    ) -> Result<(), KernelError> {
        let table = device_sampler::pack(scenes)?;
        let n = scenes.len();
        let len = crate::scene_step::slab_len(n, latents.numel(), x0.numel(), out.numel())?;
        if len == 0 {
            return Ok(());
        }
        let table = check(self.stream.clone_htod(&table), "upload of the step table");
        let cfg = LaunchConfig {
            grid_dim: (
                len.div_ceil(THREADS as usize).min(MAX_BLOCKS) as u32,
                n as u32,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let (len, scenes) = (len as u64, n as u64);
        let mut l = self.stream.launch_builder(self.kernel("guided_step"));
        l.arg(&mut latents.data).arg(&mut x0.data).arg(&out.data);
        l.arg(&table).arg(&len).arg(&scenes);
        // SAFETY: grid y = n scenes (at most 65535, checked by slab_len), each block strides
        // over its scene's len values; latents and x0 hold n * len values, out 2 * n * len,
        // table n * STEP_WORDS (checked above and by pack); the argument types match
        // sampler.cu.
        check(unsafe { l.launch(cfg) }, "guided_step");
        Ok(())
    }
}

/// Opens GPU `ordinal` after checking that every CUDA library loads (cudarc panics, rather
/// than failing, when libcuda is missing), with cudarc's per-buffer event tracking off: each
/// backend queues everything on one stream, so the events would have nothing to order.
fn open_device(ordinal: usize) -> Result<Arc<CudaContext>, KernelError> {
    let missing = missing_libraries();
    if !missing.is_empty() {
        return Err(KernelError::Cuda(format!(
            "cannot load {}: no usable CUDA installation (if the libraries are installed, add their directory to LD_LIBRARY_PATH)",
            missing.join(", ")
        )));
    }
    let ctx = CudaContext::new(ordinal)
        .map_err(cuda_error(&format!("cannot open CUDA device {ordinal}")))?;
    // SAFETY: see above; saves two event creations per allocation.
    unsafe { ctx.disable_event_tracking() };
    Ok(ctx)
}

/// Whether a virtual architecture (`compute_XY`, [`CudaBackend::arch`]) has TF32 tensor
/// cores: compute capability 8.0 or newer.
fn supports_tf32(arch: &str) -> bool {
    arch.strip_prefix("compute_")
        .and_then(|cc| cc.get(..cc.len().saturating_sub(1)))
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 8)
}

/// The virtual architecture of the device, e.g. `compute_90`.
fn device_arch(ctx: &Arc<CudaContext>) -> Result<String, KernelError> {
    let (major, minor) = ctx
        .compute_capability()
        .map_err(cuda_error("cannot read the compute capability"))?;
    Ok(format!("compute_{major}{minor}"))
}

/// Every kernel of `sources`, compiled for `arch` (or found in the PTX cache) and loaded.
fn load_kernels(
    ctx: &Arc<CudaContext>,
    sources: &[Source],
    arch: &str,
) -> Result<HashMap<&'static str, CudaFunction>, KernelError> {
    let (nv_major, nv_minor) = nvrtc_version()?;
    let mut kernels = HashMap::new();
    for source in sources {
        let ptx = ptx::load_or_compile(source, arch)?;
        // The driver JIT-compiles PTX and refuses PTX newer than itself.
        let context = format!(
            "cannot load {} for {arch} (PTX from NVRTC {nv_major}.{nv_minor}: the driver must be at least as new)",
            source.file
        );
        let module = ctx
            .load_module(Ptx::from_src(ptx))
            .map_err(cuda_error(&context))?;
        for &name in source.kernels {
            let function = module.load_function(name).map_err(cuda_error(&format!(
                "kernel {name} missing from {}",
                source.file
            )))?;
            kernels.insert(name, function);
        }
    }
    Ok(kernels)
}

fn dims4(x: &CudaTensor) -> [usize; 4] {
    match x.shape[..] {
        [n, h, w, c] => [n, h, w, c],
        _ => panic!("expected a [N, H, W, C] tensor, got {:?}", x.shape),
    }
}

/// The value of a CUDA call inside an infallible `Backend` op, or a panic naming the op.
fn check<T, E: Debug>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("CUDA {what} failed: {e:?}"))
}

fn cuda_error<E: Debug>(context: &str) -> impl FnOnce(E) -> KernelError + '_ {
    move |e| KernelError::Cuda(format!("{context}: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_needs_compute_capability_8() {
        for (arch, tf32) in [
            ("compute_70", false),
            ("compute_75", false),
            ("compute_80", true),
            ("compute_86", true),
            ("compute_90", true),
            ("compute_100", true),
            ("compute_", false),
            ("sm_90", false),
        ] {
            assert_eq!(supports_tf32(arch), tf32, "{arch}");
        }
    }

    #[test]
    fn the_default_options_are_the_fp32_paths() {
        let o = CudaOptions::default();
        assert_eq!(
            (o.conv, o.temporal_conv),
            (ConvPath::Sgemm, ConvPath::Sgemm)
        );
        for p in [ConvPath::Sgemm, ConvPath::ImplicitTf32] {
            assert_eq!(ConvPath::from_name(p.name()), Some(p));
        }
        assert_eq!(ConvPath::from_name("fp16"), None);
    }
}
