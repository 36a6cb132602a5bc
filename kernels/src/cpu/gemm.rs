//! GEMM plumbing of the CPU backend: a safe wrapper over `matrixmultiply::sgemm`, and the
//! "gathered GEMM" that every convolution here reduces to: each output row (one pixel of one
//! image) gathers its receptive field into a row of a small im2col tile, and the tile is
//! multiplied by the `[K, Cout]` weight matrix. Tiles stay in cache and are spread over the
//! backend's rayon pool, so the full im2col matrix never exists.

use rayon::prelude::*;

/// Strided view of a row-major-or-not matrix operand: `data[r * row_stride + c * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Operand<'a> {
    pub data: &'a [f32],
    pub row_stride: usize,
    pub col_stride: usize,
}

/// `c[m, n] = a[m, k] @ b[k, n] + beta * c` with `c` dense row-major.
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: Operand,
    b: Operand,
    beta: f32,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |o: Operand, rows: usize, cols: usize| {
        (rows - 1) * o.row_stride + (cols - 1) * o.col_stride
    };
    assert!(
        k == 0 || last(a, m, k) < a.data.len(),
        "sgemm: operand a too short"
    );
    assert!(
        k == 0 || last(b, k, n) < b.data.len(),
        "sgemm: operand b too short"
    );
    assert!(m * n <= c.len(), "sgemm: output too short");
    // SAFETY: the asserts above keep every index matrixmultiply forms, `i * stride` for i below
    // the given extents, inside the three slices; `c` is borrowed mutably, so it aliases nothing.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out[rows, Cout] += im2col[rows, K] @ w[K, Cout] + bias`, where `gather(row, dst)` writes
/// row `row` of the im2col matrix (`dst.len() == K`). Runs on the current rayon pool.
pub(crate) fn gathered_gemm<G>(
    out: &mut [f32],
    k: usize,
    w: &[f32],
    bias: &[f32],
    threads: usize,
    gather: G,
) where
    G: Fn(usize, &mut [f32]) + Sync,
{
    let cout = bias.len();
    assert_eq!(w.len(), k * cout, "weight is not [K, Cout]");
    let rows = out.len() / cout;
    // Enough tiles to keep every thread busy, small enough that a tile sits in L2.
    let tile = rows.div_ceil(4 * threads).clamp(16, 128);
    out.par_chunks_mut(tile * cout).enumerate().for_each_init(
        Vec::new,
        |col: &mut Vec<f32>, (t, out_tile)| {
            let m = out_tile.len() / cout;
            col.resize(m * k, 0.0);
            for (r, dst) in col.chunks_exact_mut(k).enumerate() {
                gather(t * tile + r, dst);
            }
            for row in out_tile.chunks_exact_mut(cout) {
                row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
            }
            let a = Operand {
                data: col,
                row_stride: k,
                col_stride: 1,
            };
            let b = Operand {
                data: w,
                row_stride: cout,
                col_stride: 1,
            };
            sgemm(m, k, cout, a, b, 1.0, out_tile);
        },
    );
}
