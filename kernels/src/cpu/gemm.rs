//! The GEMM every matrix product of the CPU backend goes through. The right-hand side is
//! always a weight, so it is packed once (`PackedB`, cached on the weight tensor) into column
//! panels of `NR` that the micro-kernel streams from L1; the left-hand side (activations, or
//! Winograd tiles) is read in place, row by row, so nothing is packed per call. The
//! micro-kernel keeps an `MR x NR` block of sums in vector registers: plain Rust over fixed
//! arrays, compiled for AVX-512 and AVX2 + FMA as well (`multiversion`) and vectorised by
//! the compiler. It runs single-threaded: callers split their work over the rayon pool.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;

/// Columns per panel: two AVX-512 registers.
const NR: usize = 32;
/// Rows per register block: with NR = 32, 24 of AVX-512's 32 registers hold sums.
const MR: usize = 12;

/// Strided view of a matrix: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// A `[k, n]` right-hand matrix in panels of `NR` columns, each `[k, NR]` row-major, the
/// last zero-padded.
#[derive(Debug)]
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    pub(crate) fn new(k: usize, n: usize, b: Operand) -> PackedB {
        if k > 0 && n > 0 {
            let last = (k - 1) * b.row_stride + (n - 1) * b.col_stride;
            assert!(last < b.data.len(), "PackedB: matrix too short");
        }
        let mut data = vec![0.0f32; n.div_ceil(NR) * k * NR];
        for (p, panel) in data.chunks_exact_mut(k * NR).enumerate() {
            for (r, row) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, v) in row.iter_mut().enumerate().take(n - p * NR) {
                    *v = b.data[r * b.row_stride + (p * NR + j) * b.col_stride];
                }
            }
        }
        PackedB { k, n, data }
    }

    /// Packs a dense row-major `k x n` matrix (a weight stored as [in, out]).
    pub(crate) fn row_major(k: usize, n: usize, data: &[f32]) -> PackedB {
        let b = Operand {
            data,
            row_stride: n,
            col_stride: 1,
        };
        PackedB::new(k, n, b)
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// Columns rounded up to whole panels: the row length `gemm` writes.
    pub(crate) fn padded_n(&self) -> usize {
        self.n.next_multiple_of(NR)
    }
}

/// `c[m, n] = a[m, k] @ b`, or `+=` when `accumulate`; rows of `a` are `lda` apart (each
/// `k` long), rows of `c` `ldc` apart and padded to whole panels (`b.padded_n()` columns):
/// the padding columns get zeros (or keep their values, when accumulating).
pub(crate) fn gemm(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &PackedB,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let (k, n) = (b.k, b.padded_n());
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * lda + k <= a.len(), "gemm: left operand too short");
    assert!(
        n <= ldc && (m - 1) * ldc + n <= c.len(),
        "gemm: output too short"
    );
    gemm_panels(m, k, a, lda, &b.data, c, ldc, accumulate);
}

#[allow(clippy::too_many_arguments)]
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn gemm_panels(
    m: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    bp: &[f32],
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    // One panel of B (k x NR, in L1) against every row block of A, then the next panel.
    for (p, panel) in bp.chunks_exact(k * NR).enumerate() {
        let j0 = p * NR;
        for i0 in (0..m).step_by(MR) {
            // A short last block repeats the last row; those sums are not stored.
            let rows: [&[f32]; MR] = std::array::from_fn(|r| {
                let i = (i0 + r).min(m - 1);
                &a[i * lda..i * lda + k]
            });
            let mut acc = [[0.0f32; NR]; MR];
            for kk in 0..k {
                let bk: &[f32; NR] = panel[kk * NR..(kk + 1) * NR]
                    .try_into()
                    .expect("panels hold NR-wide rows");
                // Index loops of constant trip count: unrolled, the sums kept in registers.
                #[allow(clippy::needless_range_loop)]
                for r in 0..MR {
                    let av = rows[r][kk];
                    for j in 0..NR {
                        acc[r][j] = if target_cfg_f!(target_feature = "fma") {
                            av.mul_add(bk[j], acc[r][j])
                        } else {
                            av * bk[j] + acc[r][j]
                        };
                    }
                }
            }
            // Whole panels only (c is padded to them), constant indices into `acc` only: a
            // dynamic one would keep the sums in memory instead of registers.
            #[allow(clippy::needless_range_loop)]
            for r in 0..MR {
                if i0 + r >= m {
                    break;
                }
                let row = (i0 + r) * ldc + j0;
                let out: &mut [f32; NR] = (&mut c[row..row + NR])
                    .try_into()
                    .expect("c rows hold whole panels");
                for j in 0..NR {
                    out[j] = if accumulate {
                        out[j] + acc[r][j]
                    } else {
                        acc[r][j]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes around the register block (MR, NR) and its tails, against an f64 triple loop.
    #[test]
    fn gemm_matches_naive_product() {
        for (m, k, n) in [
            (1, 1, 1),
            (13, 7, 33),
            (12, 64, 32),
            (25, 96, 108),
            (40, 3, 5),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 13) as f32 * 0.25).collect();
            // b given transposed ([n, k] storage) to exercise the strides too.
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let packed = PackedB::new(
                k,
                n,
                Operand {
                    data: &bt,
                    row_stride: 1,
                    col_stride: k,
                },
            );
            let ldc = packed.padded_n() + 3;
            let mut c = vec![1.0f32; m * ldc];
            gemm(m, &a, k, &packed, &mut c, ldc, true);
            for i in 0..m {
                for j in 0..ldc {
                    // Columns past n accumulate zeros.
                    let want = 1.0
                        + (0..k)
                            .filter(|_| j < n)
                            .map(|x| a[i * k + x] as f64 * b[x * n + j] as f64)
                            .sum::<f64>();
                    assert!(
                        (c[i * ldc + j] as f64 - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "({m}, {k}, {n}) at [{i}, {j}]: {} vs {want}",
                        c[i * ldc + j]
                    );
                }
            }
        }
    }
}
