//! Wan2.1's attention on the tensor cores (`wan_attention.cu`): `softmax(Q K^T / sqrt(D)) V`
//! per batch item and head in one pass over K and V (FlashAttention-2's online softmax), bf16
//! in and out, f32 scores, statistics and accumulators. No mask: Wan's self-attention over
//! video tokens and its cross-attention over the text rows are both unmasked.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::WanCuda;
use crate::cuda::check;
use crate::cuda::ptx::Source;
use crate::error::KernelError;

/// The `wan_attention.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_attention.cu",
    code: wan_source!("wan_attention.cu"),
    kernels: &["wan_attention_d64", "wan_attention_d128"],
};

/// Query rows per block (`BQ` in the `.cu`): 4 warps of 16.
const QUERY_TILE: usize = 64;
/// Key and value rows per shared-memory tile (`BKV`).
const KEY_TILE: usize = 64;
/// Threads per block: 4 warps.
const THREADS: u32 = 128;
/// The largest `gridDim.y` and `gridDim.z` CUDA allows (heads and batch items).
const MAX_GRID_YZ: usize = 65_535;

/// The kernel serving `head_dim` and the padded width it was compiled for: the narrowest of
/// 64 and 128 that holds it (the tiny checkpoint's 14 runs padded to 64, the 1.3B's 128 as
/// is). Errors for 0 and above 128.
pub(crate) fn attention_kernel(head_dim: usize) -> Result<(&'static str, usize), KernelError> {
    match head_dim {
        1..=64 => Ok(("wan_attention_d64", 64)),
        65..=128 => Ok(("wan_attention_d128", 128)),
        _ => Err(KernelError::InvalidArgument(format!(
            "attention head dim {head_dim}: the kernels take 1 to 128"
        ))),
    }
}

/// Dynamic shared memory of the kernel for padded width `dp`: one K and one V tile of 64 rows,
/// each row `dp + 8` bf16 (the 8 of padding spread ldmatrix's rows over the banks).
pub(crate) fn attention_smem_bytes(dp: usize) -> usize {
    2 * KEY_TILE * (dp + 8) * std::mem::size_of::<u16>()
}

/// The launch grid: (query tiles of 64, heads, batch items). Errors where heads or batch
/// items exceed CUDA's grid limits.
pub(crate) fn attention_grid(
    batch: usize,
    q_len: usize,
    heads: usize,
) -> Result<(u32, u32, u32), KernelError> {
    let tiles = q_len.div_ceil(QUERY_TILE);
    if heads > MAX_GRID_YZ || batch > MAX_GRID_YZ || tiles > u32::MAX as usize {
        return Err(KernelError::InvalidArgument(format!(
            "attention grid of {tiles} query tiles x {heads} heads x {batch} items is too large"
        )));
    }
    Ok((tiles as u32, heads as u32, batch as u32))
}

/// The largest size the kernels take: they index in `int` and round sizes up to whole tiles
/// (at most 128 past the end), which must not overflow.
const MAX_SIZE: usize = i32::MAX as usize - 128;

/// `v` as the kernels' `int`, or an error naming it when it exceeds [`MAX_SIZE`].
fn int(v: usize, what: &str) -> Result<i32, KernelError> {
    match v {
        0..=MAX_SIZE => Ok(v as i32),
        _ => Err(KernelError::InvalidArgument(format!(
            "attention {what} = {v} exceeds the kernels' range ({MAX_SIZE})"
        ))),
    }
}

/// An error unless a buffer of `len` values holds `[batch, rows, heads, head_dim]`.
fn holds(len: usize, dims: [usize; 4], what: &str) -> Result<(), KernelError> {
    let need = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match need {
        Some(need) if len >= need => Ok(()),
        _ => Err(KernelError::InvalidArgument(format!(
            "attention {what} holds {len} values, too few for {dims:?}"
        ))),
    }
}

impl WanCuda {
    /// `out = softmax(q k^T / sqrt(head_dim)) v` for every batch item and head, unmasked:
    /// `q` and `out` bf16 `[batch, q_len, heads, head_dim]`, `k` and `v` bf16 `[batch,
    /// kv_len, heads, head_dim]` (the `[B, L, heads * head_dim]` rows the projections write).
    /// Scores, softmax statistics and accumulation in f32; the probabilities are rounded to
    /// bf16 for the product with `v`, as in FlashAttention. Errors, launching nothing, when
    /// `head_dim` is not in 1..=128, `kv_len` is 0 while there are queries, a buffer is too
    /// short or a size exceeds the kernels' range; buffers may be longer than needed.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaSlice<u16>,
        k: &CudaSlice<u16>,
        v: &CudaSlice<u16>,
        out: &mut CudaSlice<u16>,
        batch: usize,
        q_len: usize,
        kv_len: usize,
        heads: usize,
        head_dim: usize,
    ) -> Result<(), KernelError> {
        let (name, dp) = attention_kernel(head_dim)?;
        holds(q.len(), [batch, q_len, heads, head_dim], "queries")?;
        holds(k.len(), [batch, kv_len, heads, head_dim], "keys")?;
        holds(v.len(), [batch, kv_len, heads, head_dim], "values")?;
        holds(out.len(), [batch, q_len, heads, head_dim], "output")?;
        let grid_dim = attention_grid(batch, q_len, heads)?;
        let (lq, lk, h, d) = (
            int(q_len, "query length")?,
            int(kv_len, "key length")?,
            int(heads, "heads")?,
            int(head_dim, "head dim")?,
        );
        if batch == 0 || q_len == 0 || heads == 0 {
            return Ok(());
        }
        if kv_len == 0 {
            return Err(KernelError::InvalidArgument(
                "attention over 0 keys: the softmax is undefined".into(),
            ));
        }
        let scale_log2 = (std::f64::consts::LOG2_E / (head_dim as f64).sqrt()) as f32;
        let cfg = LaunchConfig {
            grid_dim,
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: attention_smem_bytes(dp) as u32,
        };
        let mut l = self.stream.launch_builder(self.kernel(name));
        l.arg(q).arg(k).arg(v).arg(out);
        l.arg(&lq).arg(&lk).arg(&h).arg(&d).arg(&scale_log2);
        // SAFETY: argument types match the kernel signature (bf16 as u16 bits, sizes as i32);
        // head_dim <= dp, the width the kernel was compiled for; blocks read q, k and v and
        // write out only at (item < batch, row < q_len or kv_len, head < heads, column <
        // head_dim), inside the buffers (checked above); the shared memory asked for is what
        // the kernel carves (2 tiles of 64 x (dp + 8) bf16), under the 48 KiB default.
        check(unsafe { l.launch(cfg) }, name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dynamic shared memory a kernel may use without opting in to more.
    const SMEM_LIMIT: usize = 48 * 1024;

    #[test]
    fn head_dims_pick_the_narrowest_padded_kernel() {
        assert_eq!(attention_kernel(14).unwrap(), ("wan_attention_d64", 64));
        assert_eq!(attention_kernel(1).unwrap().1, 64);
        assert_eq!(attention_kernel(64).unwrap().1, 64);
        assert_eq!(attention_kernel(65).unwrap(), ("wan_attention_d128", 128));
        assert_eq!(attention_kernel(128).unwrap().1, 128);
        assert!(attention_kernel(0).is_err());
        assert!(attention_kernel(129).is_err());
    }

    #[test]
    fn shared_memory_fits_the_default_limit() {
        assert_eq!(attention_smem_bytes(64), 2 * 64 * 72 * 2);
        assert_eq!(attention_smem_bytes(128), 34_816);
        assert!(attention_smem_bytes(128) <= SMEM_LIMIT);
        // ldmatrix needs 16-byte aligned rows: a padded row is a whole number of 16 bytes.
        for dp in [64, 128] {
            assert_eq!((dp + 8) * 2 % 16, 0);
        }
    }

    #[test]
    fn grid_has_a_block_per_query_tile_head_and_item() {
        // The tiny checkpoint: 77 queries, 2 heads, 1 item.
        assert_eq!(attention_grid(1, 77, 2).unwrap(), (2, 2, 1));
        assert_eq!(attention_grid(1, 64, 2).unwrap(), (1, 2, 1));
        // The 1.3B at 81 x 480 x 832, CFG as a batch of 2: 32,760 tokens, 12 heads.
        assert_eq!(attention_grid(2, 32_760, 12).unwrap(), (512, 12, 2));
        assert!(attention_grid(MAX_GRID_YZ + 1, 1, 1).is_err());
        assert!(attention_grid(1, 1, MAX_GRID_YZ + 1).is_err());
    }

    #[test]
    fn buffer_lengths_are_checked() {
        assert!(holds(2 * 77 * 2 * 14, [2, 77, 2, 14], "q").is_ok());
        assert!(holds(2 * 77 * 2 * 14 - 1, [2, 77, 2, 14], "q").is_err());
        assert!(holds(0, [usize::MAX, 2, 1, 1], "q").is_err());
        assert!(int(MAX_SIZE + 1, "heads").is_err());
    }
}
