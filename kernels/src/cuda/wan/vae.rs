//! The Wan2.1 VAE decoder's ops on the GPU (`wan_vae.cu`): what `crate::wan::vae`,
//! `vae_blocks` and `conv3d` compute on the CPU, in their layout (frames channels-last,
//! `[T, H, W, C]`).
//!
//! - [`WanCuda::vae_conv`]: a causal 3D convolution (`kt` x `k` x `k` taps, `kt` = 1 for the
//!   per-frame ones) as an implicit GEMM on bf16 tensor cores with f32 accumulation, reading
//!   its time taps from the conv's feature cache and the new chunk (two buffers, never
//!   concatenated), then updating the cache on the device. Optionally adds a residual in its
//!   epilogue (the residual block's `h + conv2(..)`, the attention block's `x + proj(..)`) and
//!   writes a bf16 copy of its output for a following conv (the shortcut, the time conv).
//! - [`WanCuda::vae_rms_norm`]: the RMS norm (an L2 normalisation times `sqrt(C) * gamma`),
//!   fused with the SiLU the residual blocks put after it, writing the next conv's bf16 input.
//! - [`WanCuda::vae_upsample`]: the upsampler's channel-to-time reshuffle and nearest 2x
//!   spatial upsampling in one pass.
//! - [`WanCuda::vae_attention`]: the mid block's single-head attention per frame (a naive
//!   kernel: one block per query, online softmax over chunks of keys).
//! - [`WanCuda::vae_clamp`]: the final clamp to `[-1, 1]`.
//!
//! The feature cache of a causal conv is `[kt - 1, H, W, Cin]` bf16 on the device
//! ([`WanCuda::vae_conv_cache`]), zeros before the first chunk: the CPU decoder's causal
//! padding (`Slot::Empty`, and `Slot::Rep` for a temporal upsampler that skipped the first
//! latent frame, whose conv simply is not called then) reads as zeros too.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::WanCuda;
use crate::cuda::check;
use crate::cuda::ptx::Source;
use crate::error::KernelError;

/// The `wan_vae.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_vae.cu",
    code: wan_source!("wan_vae.cu"),
    kernels: &[
        "wan_vae_conv3d",
        "wan_vae_cache_update",
        "wan_vae_rms_norm",
        "wan_vae_upsample",
        "wan_vae_attention",
        "wan_vae_clamp",
    ],
};

/// Output pixels per block of `wan_vae_conv3d` (its `BM`).
const CONV_TILE_M: usize = 64;
/// Output channels per block of `wan_vae_conv3d` (its `BN`).
const CONV_TILE_N: usize = 64;
/// Threads of `wan_vae_conv3d` (its `CONV_THREADS`: 4 warps).
const CONV_THREADS: u32 = 128;
/// Threads per block of the grid-stride kernels and of `wan_vae_rms_norm` (8 warps, one
/// pixel each).
const THREADS: u32 = 256;
/// Grid cap of the grid-stride kernels: enough blocks to fill any current GPU.
const MAX_BLOCKS: usize = 1 << 16;
/// Threads of `wan_vae_attention` (its `ATT_THREADS`).
const ATTENTION_THREADS: u32 = 128;
/// Widest attention `wan_vae_attention` takes (its `ATT_MAX_C`; the real VAE's is 384).
pub const VAE_ATTENTION_MAX_CHANNELS: usize = 512;
/// Largest grid y dimension CUDA allows.
const MAX_GRID_Y: usize = 65_535;

/// `wan_vae_conv3d`'s launch over `m` output pixels and `cout` channels: a 64 x 64 tile of
/// the output per block, pixels along x (up to 2^31 - 1 blocks), channels along y.
fn conv_launch(m: usize, cout: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            m.div_ceil(CONV_TILE_M) as u32,
            cout.div_ceil(CONV_TILE_N) as u32,
            1,
        ),
        block_dim: (CONV_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A grid-stride kernel's launch over `n` elements.
fn grid_stride_launch(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            n.div_ceil(THREADS as usize).clamp(1, MAX_BLOCKS) as u32,
            1,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `wan_vae_rms_norm`'s launch: one warp per pixel.
fn norm_launch(pixels: usize) -> LaunchConfig {
    let per_block = THREADS as usize / 32;
    LaunchConfig {
        grid_dim: (pixels.div_ceil(per_block) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `wan_vae_attention`'s launch: one block per (query, frame).
fn attention_launch(frames: usize, pixels: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (pixels as u32, frames as u32, 1),
        block_dim: (ATTENTION_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A PyTorch conv weight `[cout, cin, kt, k, k]` repacked as the implicit GEMM's B operand,
/// `[cout, kt, k, k, cin]`: output channel `n`'s row is GEMM column-major, and its column
/// `kk = ((dt * k + dy) * k + dx) * cin + ci` follows the channels-last input, so runs of input
/// channels of one tap are contiguous in both operands.
fn pack_conv_weight(weight: &[f32], cin: usize, cout: usize, kt: usize, k: usize) -> Vec<f32> {
    let taps = kt * k * k;
    let mut packed = vec![0.0f32; weight.len()];
    for n in 0..cout {
        for ci in 0..cin {
            for tap in 0..taps {
                packed[(n * taps + tap) * cin + ci] = weight[(n * cin + ci) * taps + tap];
            }
        }
    }
    packed
}

fn invalid(message: String) -> KernelError {
    KernelError::InvalidArgument(message)
}

/// `value` as a kernel's `int`, or an error naming `what`.
fn as_i32(value: usize, what: &str) -> Result<i32, KernelError> {
    i32::try_from(value).map_err(|_| invalid(format!("{what} = {value} exceeds the kernel's int")))
}

fn check_len(what: &str, len: usize, want: usize) -> Result<(), KernelError> {
    if len == want {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} holds {len} values, expected {want}"
        )))
    }
}

/// A VAE convolution's weights on the device: bf16 weights packed for the implicit GEMM,
/// f32 bias. Made by [`WanCuda::upload_vae_conv`].
pub struct VaeConv {
    cin: usize,
    cout: usize,
    kt: usize,
    k: usize,
    weight: CudaSlice<u16>,
    bias: CudaSlice<f32>,
}

impl VaeConv {
    /// Input channels.
    pub fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Taps in time (3 for a causal conv, 1 for a per-frame one).
    pub fn kt(&self) -> usize {
        self.kt
    }

    /// Taps along height and width (3 or 1; zero padding `k / 2`).
    pub fn k(&self) -> usize {
        self.k
    }
}

impl WanCuda {
    /// Uploads a VAE conv: `weight` in PyTorch's layout `[cout, cin, kt, k, k]` (a 2D conv's
    /// `[cout, cin, k, k]` with `kt` = 1), rounded to bf16 and repacked for the implicit GEMM;
    /// `bias` `[cout]` in f32. `k` must be odd (the padding is `k / 2`).
    pub fn upload_vae_conv(
        &self,
        cin: usize,
        cout: usize,
        kt: usize,
        k: usize,
        weight: &[f32],
        bias: &[f32],
    ) -> Result<VaeConv, KernelError> {
        if cin == 0 || cout == 0 || kt == 0 || k.is_multiple_of(2) {
            return Err(invalid(format!(
                "vae conv {cin} -> {cout} with {kt} x {k} x {k} taps: channels and kt must be \
                 positive, k odd"
            )));
        }
        check_len("vae conv weight", weight.len(), cout * cin * kt * k * k)?;
        check_len("vae conv bias", bias.len(), cout)?;
        Ok(VaeConv {
            cin,
            cout,
            kt,
            k,
            weight: self.upload_bf16(&pack_conv_weight(weight, cin, cout, kt, k)),
            bias: self.upload_f32(bias),
        })
    }

    /// A fresh feature cache for `conv` over `height x width` frames: its `kt - 1` last input
    /// frames, `[kt - 1, height, width, cin]` bf16, zeros (the causal padding before the first
    /// chunk). `None` for a conv with no extent in time.
    pub fn vae_conv_cache(
        &self,
        conv: &VaeConv,
        height: usize,
        width: usize,
    ) -> Option<CudaSlice<u16>> {
        (conv.kt > 1).then(|| self.zeros_bf16((conv.kt - 1) * height * width * conv.cin))
    }

    /// `conv` over a chunk `x` of `frames` new frames (bf16 `[frames, height, width, cin]`):
    /// `out` (f32 `[frames, height, width, cout]`) = the conv + bias (+ `residual`, same shape,
    /// when given), also rounded into `out_bf16` when given. The stream the conv's time taps
    /// read is `cache` (its last `kt - 1` input frames, required when `kt` > 1) followed by
    /// `x`; the cache is then updated on the device to the stream's last `kt - 1` frames
    /// (vae_blocks.rs `causal`). With `kt` = 1 there is no cache (`per_frame`).
    #[allow(clippy::too_many_arguments)]
    pub fn vae_conv(
        &self,
        conv: &VaeConv,
        x: &CudaSlice<u16>,
        (frames, height, width): (usize, usize, usize),
        cache: Option<&mut CudaSlice<u16>>,
        residual: Option<&CudaSlice<f32>>,
        out: &mut CudaSlice<f32>,
        out_bf16: Option<&mut CudaSlice<u16>>,
    ) -> Result<(), KernelError> {
        let pixels = frames * height * width;
        let keep = conv.kt - 1;
        check_len("vae conv input", x.len(), pixels * conv.cin)?;
        check_len("vae conv output", out.len(), pixels * conv.cout)?;
        if let Some(r) = residual {
            check_len("vae conv residual", r.len(), pixels * conv.cout)?;
        }
        if let Some(o) = &out_bf16 {
            check_len("vae conv bf16 output", o.len(), pixels * conv.cout)?;
        }
        match &cache {
            Some(c) if keep > 0 => {
                check_len("vae conv cache", c.len(), keep * height * width * conv.cin)?
            }
            None if keep == 0 => {}
            Some(_) => return Err(invalid("a cache for a conv with kt = 1".into())),
            None => {
                return Err(invalid(format!(
                    "a causal conv (kt = {}) needs its cache",
                    conv.kt
                )))
            }
        }
        let k_len = conv.kt * conv.k * conv.k * conv.cin;
        // The kernel's column index runs up to a tile past K; pixel offsets are 64-bit.
        as_i32(k_len + 2 * CONV_TILE_M, "conv K")?;
        as_i32(pixels, "conv output pixels")?;
        if conv.cout.div_ceil(CONV_TILE_N) > MAX_GRID_Y {
            return Err(invalid(format!("{} output channels", conv.cout)));
        }
        if pixels == 0 {
            // Nothing new: the stream's tail is the cache as it is.
            return Ok(());
        }
        let dims = [
            as_i32(frames, "frames")?,
            as_i32(height, "height")?,
            as_i32(width, "width")?,
            as_i32(conv.cin, "cin")?,
            as_i32(conv.cout, "cout")?,
            as_i32(conv.kt, "kt")?,
            as_i32(conv.k, "k")?,
        ];
        let null = 0u64;
        {
            let mut l = self.stream.launch_builder(self.kernel("wan_vae_conv3d"));
            l.arg(x);
            match cache.as_deref() {
                Some(c) => l.arg(c),
                None => l.arg(&null),
            };
            l.arg(&conv.weight).arg(&conv.bias);
            match residual {
                Some(r) => l.arg(r),
                None => l.arg(&null),
            };
            l.arg(&mut *out);
            match out_bf16 {
                Some(o) => l.arg(o),
                None => l.arg(&null),
            };
            for d in &dims {
                l.arg(d);
            }
            // SAFETY: x, cache, residual, out and out_bf16 have the lengths checked above for
            // [frames, height, width, c] and [kt - 1, height, width, cin]; the weight is
            // [cout, kt * k * k * cin] and the bias [cout] (VaeConv); the kernel bounds every
            // pixel by M and every channel by cout, and the grid covers M x cout with
            // 64 x 64 tiles of 128 threads, as it assumes.
            check(
                unsafe { l.launch(conv_launch(pixels, conv.cout)) },
                "wan_vae_conv3d",
            );
        }
        if let Some(cache) = cache {
            let frame_len = (height * width * conv.cin) as u64;
            let (keep, frames) = (dims[5] - 1, dims[0]);
            let mut l = self
                .stream
                .launch_builder(self.kernel("wan_vae_cache_update"));
            l.arg(cache).arg(x).arg(&keep).arg(&frames).arg(&frame_len);
            // SAFETY: cache holds keep frames and x `frames` frames of frame_len values
            // (checked above); the kernel strides over one frame's elements.
            check(
                unsafe { l.launch(grid_stride_launch(frame_len as usize)) },
                "wan_vae_cache_update",
            );
        }
        Ok(())
    }

    /// The decoder's RMS norm of every pixel of `x` (f32 `[pixels, channels]`):
    /// `x / max(||x||, 1e-12) * sqrt(channels) * gamma` (`gamma` f32 `[channels]`), then SiLU
    /// when `silu`, into `out` (bf16, same shape: the next conv's input).
    pub fn vae_rms_norm(
        &self,
        x: &CudaSlice<f32>,
        channels: usize,
        gamma: &CudaSlice<f32>,
        silu: bool,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        if channels == 0 || !x.len().is_multiple_of(channels) {
            return Err(invalid(format!(
                "vae norm over {channels} channels of {} values",
                x.len()
            )));
        }
        check_len("vae norm gamma", gamma.len(), channels)?;
        check_len("vae norm output", out.len(), x.len())?;
        let pixels = x.len() / channels;
        if pixels == 0 {
            return Ok(());
        }
        if pixels.div_ceil(THREADS as usize / 32) > u32::MAX as usize {
            return Err(invalid(format!("{pixels} pixels")));
        }
        let (c, silu, n) = (
            as_i32(channels, "channels")?,
            i32::from(silu),
            pixels as u64,
        );
        let mut l = self.stream.launch_builder(self.kernel("wan_vae_rms_norm"));
        l.arg(x).arg(gamma).arg(out).arg(&n).arg(&c).arg(&silu);
        // SAFETY: x and out hold pixels * c values and gamma c (checked above); one warp per
        // pixel, the grid covering every pixel.
        check(unsafe { l.launch(norm_launch(pixels)) }, "wan_vae_rms_norm");
        Ok(())
    }

    /// The upsampler's input (vae_blocks.rs `Upsample::forward`): `x` f32
    /// `[frames, height, width, split * channels]` to `out` bf16
    /// `[frames * split, 2 height, 2 width, channels]`, where output frame `t * split + s` is
    /// channels `s * channels..` of input frame `t` (`split` = 2 after the time conv, 1 where
    /// time is not upsampled) and output pixel `(y, x)` reads input pixel `(y / 2, x / 2)`.
    pub fn vae_upsample(
        &self,
        x: &CudaSlice<f32>,
        (frames, height, width): (usize, usize, usize),
        channels: usize,
        split: usize,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        if !(1..=2).contains(&split) {
            return Err(invalid(format!("vae upsample split {split}: 1 or 2")));
        }
        let pixels = frames * height * width;
        check_len("vae upsample input", x.len(), pixels * split * channels)?;
        check_len(
            "vae upsample output",
            out.len(),
            4 * pixels * split * channels,
        )?;
        if out.is_empty() {
            return Ok(());
        }
        let dims = [
            as_i32(frames, "frames")?,
            as_i32(height, "height")?,
            as_i32(width, "width")?,
            as_i32(channels, "channels")?,
            split as i32,
        ];
        let n = out.len();
        let mut l = self.stream.launch_builder(self.kernel("wan_vae_upsample"));
        l.arg(x).arg(out);
        for d in &dims {
            l.arg(d);
        }
        // SAFETY: x and out have the lengths checked above for these dims; the kernel strides
        // over out's elements and reads x inside its frames.
        check(
            unsafe { l.launch(grid_stride_launch(n)) },
            "wan_vae_upsample",
        );
        Ok(())
    }

    /// The mid block's attention (vae_blocks.rs `attend`) on each of `frames` frames of
    /// `pixels` pixels: `qkv` f32 `[frames, pixels, 3 channels]` (each pixel's `q | k | v`)
    /// to `out` bf16 `[frames, pixels, channels]` = `softmax(q k^T / sqrt(channels)) v`, in f32.
    /// At most [`VAE_ATTENTION_MAX_CHANNELS`] channels.
    pub fn vae_attention(
        &self,
        qkv: &CudaSlice<f32>,
        frames: usize,
        pixels: usize,
        channels: usize,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        if channels == 0 || channels > VAE_ATTENTION_MAX_CHANNELS {
            return Err(invalid(format!(
                "vae attention over {channels} channels: 1 to {VAE_ATTENTION_MAX_CHANNELS}"
            )));
        }
        if frames > MAX_GRID_Y {
            return Err(invalid(format!("vae attention over {frames} frames")));
        }
        check_len(
            "vae attention qkv",
            qkv.len(),
            frames * pixels * 3 * channels,
        )?;
        check_len(
            "vae attention output",
            out.len(),
            frames * pixels * channels,
        )?;
        if out.is_empty() {
            return Ok(());
        }
        let (p, c) = (as_i32(pixels, "pixels")?, as_i32(channels, "channels")?);
        let mut l = self.stream.launch_builder(self.kernel("wan_vae_attention"));
        l.arg(qkv).arg(out).arg(&p).arg(&c);
        // SAFETY: qkv and out hold frames x pixels rows of 3c and c values (checked above),
        // c <= ATT_MAX_C; one block per (query, frame).
        check(
            unsafe { l.launch(attention_launch(frames, pixels)) },
            "wan_vae_attention",
        );
        Ok(())
    }

    /// The decoder's final `clamp(-1, 1)`, in place.
    pub fn vae_clamp(&self, x: &mut CudaSlice<f32>) {
        let len = x.len();
        if len == 0 {
            return;
        }
        let n = len as u64;
        let mut l = self.stream.launch_builder(self.kernel("wan_vae_clamp"));
        l.arg(x).arg(&n);
        // SAFETY: the kernel strides over the n values of x.
        check(
            unsafe { l.launch(grid_stride_launch(len)) },
            "wan_vae_clamp",
        );
    }
}

/// The kernels' index arithmetic, written again in Rust, step for step, for the unit tests
/// below (the kernels themselves cannot run here).
#[cfg(test)]
mod mirror {
    /// One conv call's shape.
    #[derive(Clone, Copy, Debug)]
    pub(super) struct Geometry {
        pub frames: usize,
        pub height: usize,
        pub width: usize,
        pub cin: usize,
        pub kt: usize,
        pub k: usize,
    }

    impl Geometry {
        /// GEMM rows: the chunk's output pixels.
        pub fn m(&self) -> usize {
            self.frames * self.height * self.width
        }

        /// GEMM depth.
        pub fn k_len(&self) -> usize {
            self.kt * self.k * self.k * self.cin
        }
    }

    /// Where an element of A (or of the updated cache) comes from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) enum Tap {
        Zero,
        Cache(usize),
        Chunk(usize),
    }

    /// `decode_row`.
    fn decode_row(m: usize, height: usize, width: usize) -> (usize, usize, usize) {
        let hw = height * width;
        let t = m / hw;
        let p = m - t * hw;
        let y = p / width;
        (t, y, p - y * width)
    }

    /// `decode_col`.
    fn decode_col(kk: usize, cin: usize, k: usize) -> (usize, usize, usize, usize) {
        let tap = kk / cin;
        let ci = kk - tap * cin;
        let kk2 = k * k;
        let dt = tap / kk2;
        let r = tap - dt * kk2;
        let dy = r / k;
        (dt, dy, r - dy * k, ci)
    }

    /// `tap_source`.
    fn tap_source(
        g: &Geometry,
        (t, y, x): (usize, usize, usize),
        (dt, dy, dx, ci): (usize, usize, usize, usize),
    ) -> Tap {
        let pad = (g.k >> 1) as isize;
        let yy = (y + dy) as isize - pad;
        let xx = (x + dx) as isize - pad;
        if yy < 0 || yy >= g.height as isize || xx < 0 || xx >= g.width as isize {
            return Tap::Zero;
        }
        let s = t + dt;
        let pix = yy as usize * g.width + xx as usize;
        let hw = g.height * g.width;
        if s < g.kt - 1 {
            Tap::Cache((s * hw + pix) * g.cin + ci)
        } else {
            Tap::Chunk(((s - (g.kt - 1)) * hw + pix) * g.cin + ci)
        }
    }

    /// A[m][kk] of `wan_vae_conv3d`'s implicit GEMM.
    pub(super) fn conv_gather(g: &Geometry, m: usize, kk: usize) -> Tap {
        tap_source(
            g,
            decode_row(m, g.height, g.width),
            decode_col(kk, g.cin, g.k),
        )
    }

    /// Frame `j` of `wan_vae_cache_update`'s cache after a chunk of `frames`: a frame of the
    /// cache as it is at that point of the loop, or of the chunk.
    pub(super) fn cache_source(frames: usize, keep: usize, j: usize) -> Tap {
        let s = frames + j;
        if s < keep {
            Tap::Cache(s)
        } else {
            Tap::Chunk(s - keep)
        }
    }

    /// The input element `wan_vae_upsample` reads for output element `e`.
    pub(super) fn upsample_source(
        e: usize,
        (height, width): (usize, usize),
        c: usize,
        split: usize,
    ) -> usize {
        let (ow, oh) = (2 * width, 2 * height);
        let ch = e % c;
        let mut r = e / c;
        let xo = r % ow;
        r /= ow;
        let yo = r % oh;
        let f = r / oh;
        let (t, s) = (f / split, f % split);
        ((t * height + yo / 2) * width + xo / 2) * (split * c) + s * c + ch
    }
}

#[cfg(test)]
mod tests {
    use super::mirror::{cache_source, conv_gather, upsample_source, Geometry, Tap};
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.5 - 1.0)
            .collect()
    }

    /// Shapes of the decoder's convs (tiny: 5, 12, 9, 6, 4, 3 channels; 3x3x3, 3x1x1, 1x1x1,
    /// 1x3x3), odd sizes, chunks of 1 to 3 frames, Cin a multiple of 8 (the vector path).
    const SHAPES: [(usize, usize, usize, usize, usize, usize, usize); 8] = [
        // frames, height, width, cin, cout, kt, k
        (1, 3, 5, 5, 12, 3, 3),
        (2, 4, 3, 12, 6, 3, 3),
        (3, 2, 3, 9, 4, 1, 3),
        (2, 3, 2, 6, 12, 3, 1),
        (1, 3, 3, 4, 5, 1, 1),
        (2, 2, 2, 3, 3, 3, 3),
        (1, 2, 3, 16, 3, 3, 3),
        (4, 1, 1, 2, 2, 3, 3),
    ];

    /// The implicit GEMM — A gathered by the kernel's index arithmetic from the cache and the
    /// chunk, B the packed weight — equals the convolution's formula over the stream
    /// (cache frames, then the chunk), as conv3d.rs states it.
    #[test]
    fn implicit_gemm_is_the_causal_convolution() {
        for (case, &(frames, height, width, cin, cout, kt, k)) in SHAPES.iter().enumerate() {
            let g = Geometry {
                frames,
                height,
                width,
                cin,
                kt,
                k,
            };
            let frame_len = height * width * cin;
            let cache = values((kt - 1) * frame_len, 3 * case);
            let chunk = values(frames * frame_len, 3 * case + 1);
            let weight: Vec<f32> = values(cout * cin * kt * k * k, 3 * case + 2)
                .into_iter()
                .map(|v| v as f32)
                .collect();
            let packed = pack_conv_weight(&weight, cin, cout, kt, k);
            let (m_len, k_len) = (g.m(), g.k_len());
            assert_eq!(packed.len(), cout * k_len);
            let stream = |s: usize| -> &[f64] {
                if s < kt - 1 {
                    &cache[s * frame_len..][..frame_len]
                } else {
                    &chunk[(s - (kt - 1)) * frame_len..][..frame_len]
                }
            };
            let pad = k / 2;
            for m in 0..m_len {
                let (t, y, x) = (m / (height * width), m / width % height, m % width);
                for n in 0..cout {
                    let gemm: f64 = (0..k_len)
                        .map(|kk| {
                            let a = match conv_gather(&g, m, kk) {
                                Tap::Zero => 0.0,
                                Tap::Cache(o) => cache[o],
                                Tap::Chunk(o) => chunk[o],
                            };
                            a * packed[n * k_len + kk] as f64
                        })
                        .sum();
                    let mut direct = 0.0f64;
                    for dt in 0..kt {
                        let frame = stream(t + dt);
                        for dy in 0..k {
                            for dx in 0..k {
                                let (yy, xx) = (y + dy, x + dx);
                                if yy < pad || xx < pad || yy - pad >= height || xx - pad >= width {
                                    continue;
                                }
                                let pix = (yy - pad) * width + xx - pad;
                                for ci in 0..cin {
                                    let w = weight[(((n * cin + ci) * kt + dt) * k + dy) * k + dx];
                                    direct += frame[pix * cin + ci] * w as f64;
                                }
                            }
                        }
                    }
                    assert!(
                        (gemm - direct).abs() < 1e-9,
                        "shape {case} m {m} n {n}: {gemm} vs {direct}"
                    );
                }
            }
        }
    }

    /// The kernel's 16-byte path (Cin a multiple of 8): every 8 columns from a multiple of 8
    /// are 8 consecutive elements of one buffer starting 8-aligned, or all padding.
    #[test]
    fn vector_gathers_are_eight_aligned_contiguous_channels() {
        for &(frames, height, width, cin, kt, k) in &[
            (2, 3, 5, 8, 3, 3),
            (1, 4, 3, 16, 3, 1),
            (3, 2, 2, 24, 1, 3),
            (1, 1, 3, 96, 3, 3),
        ] {
            let g = Geometry {
                frames,
                height,
                width,
                cin,
                kt,
                k,
            };
            assert_eq!(g.k_len() % 8, 0);
            for m in 0..g.m() {
                for kk in (0..g.k_len()).step_by(8) {
                    let first = conv_gather(&g, m, kk);
                    for j in 1..8 {
                        let want = match first {
                            Tap::Zero => Tap::Zero,
                            Tap::Cache(o) => Tap::Cache(o + j),
                            Tap::Chunk(o) => Tap::Chunk(o + j),
                        };
                        assert_eq!(conv_gather(&g, m, kk + j), want, "{g:?} m {m} kk {kk}");
                    }
                    if let Tap::Cache(o) | Tap::Chunk(o) = first {
                        assert_eq!(o % 8, 0, "{g:?} m {m} kk {kk}");
                    }
                }
            }
        }
    }

    /// Running the update loop in place, in its order, leaves the last `keep` frames of the
    /// stream (old cache, then chunk) in the cache, for chunks shorter and longer than it.
    #[test]
    fn cache_update_keeps_the_stream_tail() {
        for keep in 0..4 {
            for frames in 1..5 {
                // Frame ids: the old cache is 0..keep, the chunk keep..keep + frames.
                let mut cache: Vec<usize> = (0..keep).collect();
                for j in 0..keep {
                    cache[j] = match cache_source(frames, keep, j) {
                        Tap::Cache(s) => cache[s],
                        Tap::Chunk(f) => keep + f,
                        Tap::Zero => unreachable!(),
                    };
                }
                let stream: Vec<usize> = (0..keep + frames).collect();
                assert_eq!(cache, stream[frames..], "keep {keep} frames {frames}");
            }
        }
    }

    /// The upsample's index arithmetic against vae_blocks.rs's construction: frames
    /// `[f, f[c..]]` of a `2c`-wide conv output (or the frames as they are), each upsampled
    /// by repeating every pixel 2 x 2.
    #[test]
    fn upsample_reads_the_reshuffled_nearest_pixel() {
        let (frames, height, width, c) = (2, 3, 5, 4);
        for split in 1..=2 {
            let ld = split * c;
            let input: Vec<usize> = (0..frames * height * width * ld).collect();
            let mut want = Vec::new();
            for t in 0..frames {
                for s in 0..split {
                    for y in 0..2 * height {
                        for x in 0..2 * width {
                            let p = (t * height + y / 2) * width + x / 2;
                            want.extend_from_slice(&input[p * ld + s * c..][..c]);
                        }
                    }
                }
            }
            let got: Vec<usize> = (0..want.len())
                .map(|e| input[upsample_source(e, (height, width), c, split)])
                .collect();
            assert_eq!(got, want, "split {split}");
        }
    }

    /// The conv grid covers every output pixel and channel with 64 x 64 tiles and no more.
    #[test]
    fn conv_launch_covers_the_output() {
        for (m, cout) in [(1, 1), (64, 64), (65, 3), (9 * 13, 96), (4 * 60 * 104, 384)] {
            let cfg = conv_launch(m, cout);
            let (gx, gy) = (cfg.grid_dim.0 as usize, cfg.grid_dim.1 as usize);
            assert!(gx * CONV_TILE_M >= m && (gx - 1) * CONV_TILE_M < m, "{m}");
            assert!(
                gy * CONV_TILE_N >= cout && (gy - 1) * CONV_TILE_N < cout,
                "{cout}"
            );
            assert_eq!(cfg.block_dim, (CONV_THREADS, 1, 1));
            // 2 chunks of 8 of A and of B per thread fill a 64 x 32 tile of each.
            assert_eq!(CONV_THREADS as usize * 2 * 8, CONV_TILE_M * 32);
            assert_eq!(CONV_THREADS as usize * 2 * 8, CONV_TILE_N * 32);
        }
    }

    /// Grid-stride launches have at least one block and at most the cap; the norm's covers
    /// every pixel with one warp each.
    #[test]
    fn elementwise_launches_cover_their_work() {
        assert_eq!(grid_stride_launch(1).grid_dim.0, 1);
        assert_eq!(grid_stride_launch(257).grid_dim.0, 2);
        assert_eq!(
            grid_stride_launch(usize::MAX / 2).grid_dim.0 as usize,
            MAX_BLOCKS
        );
        for pixels in [1, 8, 9, 117, 1000] {
            let cfg = norm_launch(pixels);
            let warps = cfg.grid_dim.0 as usize * (cfg.block_dim.0 as usize / 32);
            assert!(warps >= pixels && warps < pixels + 8, "{pixels}");
        }
        let cfg = attention_launch(2, 117);
        assert_eq!((cfg.grid_dim.0, cfg.grid_dim.1), (117, 2));
    }
}
