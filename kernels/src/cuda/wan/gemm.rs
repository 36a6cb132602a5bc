//! Wan2.1's linear layers on bf16 tensor cores (`wan_gemm.cu`): `A[M, K] · W[N, K]^T` with
//! A the bf16 activations, W the bf16 weights in PyTorch's `Linear` layout, f32 accumulation,
//! and the bias plus what follows the layer fused into the store ([`Epilogue`]).

use cudarc::driver::{CudaSlice, CudaView, LaunchConfig, PushKernelArg};

use super::WanCuda;
use crate::cuda::check;
use crate::cuda::ptx::Source;
use crate::error::KernelError;

/// The `wan_gemm.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_gemm.cu",
    code: wan_source!("wan_gemm.cu"),
    kernels: &[
        "wan_gemm_bias_f32",
        "wan_gemm_bias_bf16",
        "wan_gemm_bias_gelu_bf16",
        "wan_gemm_gated_residual",
    ],
};

/// Rows and columns of `out` one block computes (`BM`, `BN` in the `.cu`).
const TILE: usize = 128;
/// Threads per block: 8 warps, each owning 64 x 32 outputs of the tile.
const THREADS: u32 = 256;
/// The largest `gridDim.y` CUDA allows; the grid's y runs over row tiles.
const MAX_GRID_Y: usize = 65_535;

/// What a GEMM does with its f32 accumulator `acc[m, n] = (A · W^T)[m, n]`, and where the
/// result goes. The bias (f32, `[n]`) is always added first; every sum stays in f32 until the
/// one rounding of a bf16 store.
pub enum Epilogue<'a> {
    /// `out[m, n] = acc + bias[n]` in f32 (`[m, n]`): outputs the reference keeps in f32
    /// (time embedding, modulation table, the head's output).
    BiasF32(&'a mut CudaSlice<f32>),
    /// `out[m, n] = bf16(acc + bias[n])` (`[m, n]`): projections feeding a bf16 consumer
    /// (Q, K, V, the text embedder).
    BiasBf16(&'a mut CudaSlice<u16>),
    /// `out[m, n] = bf16(gelu_tanh(acc + bias[n]))`, GELU in f32 (`[m, n]`): the first
    /// layer of Wan's FFN, `GELU(approximate="tanh")`.
    BiasGeluBf16(&'a mut CudaSlice<u16>),
    /// `residual[m, n] += gate[b * gate_stride + n] * (acc + bias[n])`, `b = m /
    /// rows_per_batch`, all f32: the attention output projection and the FFN's second layer
    /// adding into the residual stream, gated per batch item and channel by the time
    /// modulation. `gate_stride` lets `gate` be one chunk of a per-item table (a view from
    /// its first gate value, stride the table's row length); 0 shares one gate row.
    GatedResidual {
        /// The f32 residual stream, `[m, n]`, added to in place.
        residual: &'a mut CudaSlice<f32>,
        /// The gates, f32: item `b`'s `n` values start at `b * gate_stride`.
        gate: CudaView<'a, f32>,
        /// Values between consecutive items' gates.
        gate_stride: usize,
        /// Rows of `A` per batch item (tokens per item).
        rows_per_batch: usize,
    },
}

/// The launch grid for an `m` x `n` output: (column tiles, row tiles, 1), one 128 x 128 tile
/// per block. Errors where the row tiles exceed CUDA's `gridDim.y` (over 8.3 million rows).
pub(crate) fn gemm_grid(m: usize, n: usize) -> Result<(u32, u32, u32), KernelError> {
    let (cols, rows) = (n.div_ceil(TILE), m.div_ceil(TILE));
    if rows > MAX_GRID_Y || cols > u32::MAX as usize {
        return Err(KernelError::InvalidArgument(format!(
            "GEMM of {m} x {n} outputs needs {rows} x {cols} tiles of {TILE}: too many for one grid"
        )));
    }
    Ok((cols as u32, rows as u32, 1))
}

/// The largest size the kernels take: they index in `int` and round sizes up to whole tiles
/// (at most 128 past the end), which must not overflow.
const MAX_SIZE: usize = i32::MAX as usize - 128;

/// `v` as the kernels' `int`, or an error naming it when it exceeds [`MAX_SIZE`].
fn int(v: usize, what: &str) -> Result<i32, KernelError> {
    match v {
        0..=MAX_SIZE => Ok(v as i32),
        _ => Err(KernelError::InvalidArgument(format!(
            "GEMM {what} = {v} exceeds the kernels' range ({MAX_SIZE})"
        ))),
    }
}

/// An error unless `len` holds at least `need` values (`need` None: it overflowed usize).
fn holds(len: usize, need: Option<usize>, what: &str) -> Result<(), KernelError> {
    match need {
        Some(need) if len >= need => Ok(()),
        _ => Err(KernelError::InvalidArgument(format!(
            "GEMM {what} holds {len} values, needs {need:?}"
        ))),
    }
}

impl WanCuda {
    /// `A[m, k] · W[n, k]^T` (`m` rows: tokens of all batch items; `n` output features; `k`
    /// input features) on the tensor cores, f32 accumulation, finished by `epilogue`
    /// (which also says where the result goes): `a` holds bf16 `[m, k]` row-major, `w` bf16
    /// `[n, k]` (PyTorch's `Linear.weight`), `bias` f32 `[n]`. Any sizes work (tiles past
    /// the edges are zero-filled and not stored); buffers may be longer than needed. Errors,
    /// launching nothing, when a buffer is too short or a size exceeds the kernels' range;
    /// nothing to do when `m` or `n` is 0.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        a: &CudaSlice<u16>,
        w: &CudaSlice<u16>,
        bias: &CudaSlice<f32>,
        m: usize,
        n: usize,
        k: usize,
        mut epilogue: Epilogue<'_>,
    ) -> Result<(), KernelError> {
        holds(a.len(), m.checked_mul(k), "A")?;
        holds(w.len(), n.checked_mul(k), "W")?;
        holds(bias.len(), Some(n), "bias")?;
        let out_len = match &epilogue {
            Epilogue::BiasF32(out) | Epilogue::GatedResidual { residual: out, .. } => out.len(),
            Epilogue::BiasBf16(out) | Epilogue::BiasGeluBf16(out) => out.len(),
        };
        holds(out_len, m.checked_mul(n), "output")?;
        let (mi, ni, ki) = (int(m, "m")?, int(n, "n")?, int(k, "k")?);
        let grid_dim = gemm_grid(m, n)?;
        // The gated epilogue's extra arguments, checked before anything is launched.
        let (mut stride, mut per_batch) = (0i32, 0i32);
        if let Epilogue::GatedResidual {
            gate,
            gate_stride,
            rows_per_batch,
            ..
        } = &epilogue
        {
            if *rows_per_batch == 0 {
                return Err(KernelError::InvalidArgument(
                    "GEMM gated residual with 0 rows per batch item".into(),
                ));
            }
            // The last row's item reads n gates from `gate_stride` times its index.
            let last = m.saturating_sub(1) / rows_per_batch;
            let need = last
                .checked_mul(*gate_stride)
                .and_then(|v| v.checked_add(n));
            holds(gate.len(), need, "gate")?;
            stride = int(*gate_stride, "gate stride")?;
            per_batch = int(*rows_per_batch, "rows per batch item")?;
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        let name = match &epilogue {
            Epilogue::BiasF32(_) => "wan_gemm_bias_f32",
            Epilogue::BiasBf16(_) => "wan_gemm_bias_bf16",
            Epilogue::BiasGeluBf16(_) => "wan_gemm_bias_gelu_bf16",
            Epilogue::GatedResidual { .. } => "wan_gemm_gated_residual",
        };
        let mut l = self.stream.launch_builder(self.kernel(name));
        l.arg(a).arg(w).arg(bias);
        match &mut epilogue {
            Epilogue::BiasF32(out) => {
                l.arg(&mut **out);
            }
            Epilogue::BiasBf16(out) | Epilogue::BiasGeluBf16(out) => {
                l.arg(&mut **out);
            }
            Epilogue::GatedResidual { residual, gate, .. } => {
                l.arg(&mut **residual)
                    .arg(&*gate)
                    .arg(&stride)
                    .arg(&per_batch);
            }
        }
        l.arg(&mi).arg(&ni).arg(&ki);
        let cfg = LaunchConfig {
            grid_dim,
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: argument types match the kernel signatures (bf16 as u16 bits, sizes as
        // i32); every kernel reads A at rows < m and columns < k, W at rows < n, bias (and
        // the gates of items <= (m - 1) / rows_per_batch) at columns < n, and writes the
        // output at [< m, < n] only: all inside the buffers (checked above).
        check(unsafe { l.launch(cfg) }, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_every_output_with_whole_tiles() {
        // The tiny checkpoint: 37 tokens, dim 28 -> one block.
        assert_eq!(gemm_grid(37, 28).unwrap(), (1, 1, 1));
        // Exact multiples and one past them.
        assert_eq!(gemm_grid(128, 256).unwrap(), (2, 1, 1));
        assert_eq!(gemm_grid(129, 257).unwrap(), (3, 2, 1));
        // The 1.3B's FFN over a CFG batch of 2 x 32,760 tokens: 8960 / 128 = 70 column tiles.
        assert_eq!(gemm_grid(65_520, 8960).unwrap(), (70, 512, 1));
        // Nothing to compute: an empty grid (the launch is skipped).
        assert_eq!(gemm_grid(0, 1536).unwrap(), (12, 0, 1));
    }

    #[test]
    fn grid_rejects_more_row_tiles_than_cuda_allows() {
        assert!(gemm_grid(MAX_GRID_Y * TILE, 1).is_ok());
        assert!(matches!(
            gemm_grid(MAX_GRID_Y * TILE + 1, 1),
            Err(KernelError::InvalidArgument(_))
        ));
    }

    #[test]
    fn lengths_and_ranges_are_checked() {
        assert!(holds(10, Some(10), "x").is_ok());
        assert!(holds(9, Some(10), "x").is_err());
        assert!(holds(usize::MAX, None, "x").is_err());
        assert_eq!(int(MAX_SIZE, "m").unwrap() as usize, MAX_SIZE);
        assert!(int(MAX_SIZE + 1, "m").is_err());
    }
}
