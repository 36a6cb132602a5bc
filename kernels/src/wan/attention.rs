//! Multi-head scaled dot-product attention in tiles with an online softmax, shared by umT5
//! (relative position bias, key mask, no scaling) and the Wan transformer (plain
//! `softmax(q k^T / sqrt(d)) v`, self- and cross-attention).
//!
//! For each head and query `i`: `out_i = sum_j p_ij v_j / sum_j p_ij` with
//! `p_ij = exp(s_ij - max_j s_ij)` and `s_ij = scale * (q_i . k_j) + bias(h, i, j)`, masked
//! keys left out. A tile of [`TILE_Q`] queries meets one tile of [`TILE_K`] keys at a time
//! (their scores in a `TILE_Q x TILE_K` scratch) and each query keeps a running max, sum and
//! weighted sum of values, rescaled when the max grows, so no `queries x keys` score matrix
//! is ever held: `O(sq sk d)` time, `O(sq d)` memory. Query tiles run in parallel on the
//! current rayon pool.

use multiversion::multiversion;
use rayon::prelude::*;

/// Queries per attention tile.
const TILE_Q: usize = 32;
/// Keys per attention tile.
const TILE_K: usize = 64;

/// Rows of a row-major matrix holding every head side by side: row `i` of head `h` is
/// `data[i * ld + h * head_dim..][..head_dim]`.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub data: &'a [f32],
    pub ld: usize,
}

impl Rows<'_> {
    fn head(&self, i: usize, h: usize, dk: usize) -> &[f32] {
        &self.data[i * self.ld + h * dk..][..dk]
    }
}

/// The shapes of one attention call.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    /// Number of queries (`sq`).
    pub queries: usize,
    /// Number of keys and values (`sk`).
    pub keys: usize,
    /// Number of heads.
    pub heads: usize,
    /// Width of one head.
    pub dk: usize,
    /// Factor on `q . k` (`1 / sqrt(dk)` for SDPA, 1 for T5).
    pub scale: f32,
}

/// Attention of `sq` queries `q` over `sk` keys `k` / values `v` (`shape`), every head; writes each
/// query's heads side by side into `out` (`sq x heads * dk`, dense). `bias(h, i, j)` is added
/// to the score of head `h`, query `i`, key `j`; keys with `keep[j] == false` are left out
/// (when no key is kept, every score counts as 0 and each query averages all values, as the
/// reference's large negative mask does).
pub(crate) fn attention<B>(
    q: Rows<'_>,
    k: Rows<'_>,
    v: Rows<'_>,
    shape: Shape,
    bias: B,
    keep: Option<&[bool]>,
    out: &mut [f32],
) where
    B: Fn(usize, usize, usize) -> f32 + Sync,
{
    let Shape {
        queries: sq,
        keys: sk,
        heads,
        dk,
        scale,
    } = shape;
    let inner = heads * dk;
    assert_eq!(out.len(), sq * inner, "attention: output size");
    if sq == 0 {
        return;
    }
    let any_kept = keep.is_none_or(|keep| keep.iter().any(|&k| k));
    out.par_chunks_mut(TILE_Q * inner)
        .enumerate()
        .for_each(|(t, out)| {
            let q0 = t * TILE_Q;
            let tq = out.len() / inner;
            let mut scores = vec![0.0f32; TILE_Q * TILE_K];
            let mut max = [f32::NEG_INFINITY; TILE_Q];
            let mut sum = [0.0f32; TILE_Q];
            let mut acc = vec![0.0f32; TILE_Q * dk];
            let mut tile_acc = vec![0.0f32; dk];
            for h in 0..heads {
                max.fill(f32::NEG_INFINITY);
                sum.fill(0.0);
                acc.fill(0.0);
                for k0 in (0..sk).step_by(TILE_K) {
                    let tk = TILE_K.min(sk - k0);
                    // Scores of the tile, or -inf for a masked key.
                    for qi in 0..tq {
                        let i = q0 + qi;
                        let qv = q.head(i, h, dk);
                        let row = &mut scores[qi * TILE_K..qi * TILE_K + tk];
                        for (kj, score) in row.iter_mut().enumerate() {
                            let j = k0 + kj;
                            *score = if !any_kept {
                                0.0
                            } else if keep.is_some_and(|keep| !keep[j]) {
                                f32::NEG_INFINITY
                            } else {
                                dot(qv, k.head(j, h, dk)) * scale + bias(h, i, j)
                            };
                        }
                    }
                    // Online softmax update of each query's running state.
                    for qi in 0..tq {
                        let row = &scores[qi * TILE_K..qi * TILE_K + tk];
                        let tile_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        if tile_max == f32::NEG_INFINITY {
                            continue;
                        }
                        let a = &mut acc[qi * dk..(qi + 1) * dk];
                        if tile_max > max[qi] {
                            let rescale = (max[qi] - tile_max).exp();
                            sum[qi] *= rescale;
                            for v in a.iter_mut() {
                                *v *= rescale;
                            }
                            max[qi] = tile_max;
                        }
                        // The tile's terms summed apart, then added to the running sums:
                        // blocked summation, whose rounding grows with the tile length plus
                        // the number of tiles rather than with the number of keys (512 text
                        // rows in one f32 sum were 4x further from an f64 reference than
                        // PyTorch).
                        let mut tile_sum = 0.0f32;
                        tile_acc.fill(0.0);
                        for (kj, &score) in row.iter().enumerate() {
                            if score == f32::NEG_INFINITY {
                                continue;
                            }
                            let p = (score - max[qi]).exp();
                            tile_sum += p;
                            axpy(p, v.head(k0 + kj, h, dk), &mut tile_acc);
                        }
                        sum[qi] += tile_sum;
                        for (a, t) in a.iter_mut().zip(&tile_acc) {
                            *a += t;
                        }
                    }
                }
                for qi in 0..tq {
                    let o = &mut out[qi * inner + h * dk..][..dk];
                    for (o, a) in o.iter_mut().zip(&acc[qi * dk..(qi + 1) * dk]) {
                        *o = a / sum[qi];
                    }
                }
            }
        });
}

/// `a . b` with 16 independent partial sums, so that it vectorises (a plain running sum
/// keeps the additions in order and cannot).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `acc += p * v`.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn axpy(p: f32, v: &[f32], acc: &mut [f32]) {
    for (a, v) in acc.iter_mut().zip(v) {
        *a += p * v;
    }
}
