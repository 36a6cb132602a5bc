//! Multi-head scaled dot-product attention in tiles with an online softmax, shared by umT5
//! (relative position bias, key mask, no scaling) and the Wan transformer (plain
//! `softmax(q k^T / sqrt(d)) v`, self- and cross-attention).
//!
//! For each head and query `i`: `out_i = sum_j p_ij v_j / sum_j p_ij` with
//! `p_ij = exp(s_ij - max_j s_ij)` and `s_ij = scale * (q_i . k_j) + bias(h, i, j)`, masked
//! keys left out. A block of [`TILE_Q`] queries meets one block of [`TILE_K`] keys at a
//! time: the block's scores are one small matrix product (`Q_b K_b^T`, `TILE_Q x dk` by `dk
//! x TILE_K`) on the CPU backend's GEMM, and so is its share of the output (`P_b V_b`,
//! `TILE_Q x TILE_K` by `TILE_K x dk`), each key block's `K^T` and `V` packed once per call
//! for all query blocks. Each query keeps a running max, sum and weighted sum of values,
//! rescaled when the max grows (online softmax), so no `queries x keys` score matrix is ever
//! held: `O(sq sk d)` time, `O(sq d + sk d)` memory. Query blocks run in parallel on the
//! current rayon pool.

use rayon::prelude::*;

use crate::cpu::gemm::{gemm, Operand, PackedB};

/// Queries per block: a multiple of the GEMM's 12-row register block.
const TILE_Q: usize = 48;
/// Keys per block: two of the GEMM's 32-column panels.
const TILE_K: usize = 64;

/// Rows of a row-major matrix holding every head side by side: row `i` of head `h` is
/// `data[i * ld + h * head_dim..][..head_dim]`.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub data: &'a [f32],
    pub ld: usize,
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
    let key_blocks = sk.div_ceil(TILE_K);
    // Per head and key block, `K_b^T` (`dk x tk`) and `V_b` (`tk x dk`) packed for the GEMM.
    let packed: Vec<(PackedB, PackedB)> = (0..heads * key_blocks)
        .into_par_iter()
        .map(|hb| {
            let (h, k0) = (hb / key_blocks, (hb % key_blocks) * TILE_K);
            let tk = TILE_K.min(sk - k0);
            let kt = Operand {
                data: &k.data[k0 * k.ld + h * dk..],
                row_stride: 1,
                col_stride: k.ld,
            };
            let vb = Operand {
                data: &v.data[k0 * v.ld + h * dk..],
                row_stride: v.ld,
                col_stride: 1,
            };
            (PackedB::new(dk, tk, kt), PackedB::new(tk, dk, vb))
        })
        .collect();
    // The row length the P_b V_b product writes: dk padded to whole GEMM panels.
    let ldv = packed.first().map_or(dk, |(_, vb)| vb.padded_n());
    out.par_chunks_mut(TILE_Q * inner)
        .enumerate()
        .for_each(|(t, out)| {
            let q0 = t * TILE_Q;
            let tq = out.len() / inner;
            let mut scores = vec![0.0f32; TILE_Q * TILE_K];
            let mut max = [f32::NEG_INFINITY; TILE_Q];
            let mut sum = [0.0f32; TILE_Q];
            let mut acc = vec![0.0f32; TILE_Q * dk];
            let mut tile_acc = vec![0.0f32; TILE_Q * ldv];
            for h in 0..heads {
                max.fill(f32::NEG_INFINITY);
                sum.fill(0.0);
                acc.fill(0.0);
                for (kb, (kt, vb)) in packed[h * key_blocks..(h + 1) * key_blocks]
                    .iter()
                    .enumerate()
                {
                    let k0 = kb * TILE_K;
                    let tk = TILE_K.min(sk - k0);
                    if any_kept {
                        gemm(
                            tq,
                            &q.data[q0 * q.ld + h * dk..],
                            q.ld,
                            kt,
                            &mut scores,
                            TILE_K,
                            false,
                        );
                    }
                    for qi in 0..tq {
                        let i = q0 + qi;
                        let row = &mut scores[qi * TILE_K..qi * TILE_K + tk];
                        // The block's scores, or -inf for a masked key.
                        for (kj, score) in row.iter_mut().enumerate() {
                            let j = k0 + kj;
                            *score = if !any_kept {
                                0.0
                            } else if keep.is_some_and(|keep| !keep[j]) {
                                f32::NEG_INFINITY
                            } else {
                                *score * scale + bias(h, i, j)
                            };
                        }
                        // Online softmax: rescale the running state when the max grows,
                        // then the block's weights in place of its scores.
                        let tile_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        if tile_max == f32::NEG_INFINITY {
                            row.fill(0.0);
                            continue;
                        }
                        if tile_max > max[qi] {
                            let rescale = (max[qi] - tile_max).exp();
                            sum[qi] *= rescale;
                            for a in &mut acc[qi * dk..(qi + 1) * dk] {
                                *a *= rescale;
                            }
                            max[qi] = tile_max;
                        }
                        // The block's terms summed apart, then added to the running sums:
                        // blocked summation, whose rounding grows with the block length
                        // plus the number of blocks rather than with the number of keys
                        // (512 text rows in one f32 sum were 4x further from an f64
                        // reference than PyTorch).
                        sum[qi] += exp_shifted(row, max[qi]);
                    }
                    gemm(tq, &scores, TILE_K, vb, &mut tile_acc, ldv, false);
                    for (a, t) in acc
                        .chunks_exact_mut(dk)
                        .zip(tile_acc.chunks_exact(ldv))
                        .take(tq)
                    {
                        for (a, t) in a.iter_mut().zip(t) {
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

/// `row[j] = exp(row[j] - max)` (0 for a masked `-inf`), returning their sum.
fn exp_shifted(row: &mut [f32], max: f32) -> f32 {
    let mut total = 0.0f32;
    for s in row.iter_mut() {
        *s = (*s - max).exp();
        total += *s;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-2, 2).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = (i as u32 ^ seed).wrapping_mul(2_654_435_761) >> 8;
                2.0 * (h as f32 / (1u32 << 23) as f32 - 1.0)
            })
            .collect()
    }

    /// Attention computed plainly in f64, the whole score row at once.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        ld: usize,
        shape: Shape,
        bias: impl Fn(usize, usize, usize) -> f32,
        keep: &[bool],
    ) -> Vec<f32> {
        let Shape {
            queries,
            keys,
            heads,
            dk,
            scale,
        } = shape;
        let mut out = vec![0.0f32; queries * heads * dk];
        for h in 0..heads {
            for i in 0..queries {
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        let dot: f64 = (0..dk)
                            .map(|c| q[i * ld + h * dk + c] as f64 * k[j * ld + h * dk + c] as f64)
                            .sum();
                        dot * scale as f64 + bias(h, i, j) as f64
                    })
                    .collect();
                let max = (0..keys)
                    .filter(|&j| keep[j])
                    .map(|j| scores[j])
                    .fold(f64::NEG_INFINITY, f64::max);
                let p: Vec<f64> = (0..keys)
                    .map(|j| {
                        if keep[j] {
                            (scores[j] - max).exp()
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let total: f64 = p.iter().sum();
                for c in 0..dk {
                    let o: f64 = (0..keys)
                        .map(|j| p[j] * v[j * ld + h * dk + c] as f64)
                        .sum();
                    out[(i * heads + h) * dk + c] = (o / total) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn blocks_match_a_plain_softmax_with_bias_and_mask() {
        // 100 queries (2 blocks, the last partial) over 150 keys (3 blocks, the last
        // partial), rows padded (ld > heads * dk), a bias, and a mask that drops the whole
        // second key block and scattered keys besides.
        let (queries, keys, heads, dk, ld) = (100, 150, 3, 20, 64);
        let q = values(queries * ld, 1);
        let k = values(keys * ld, 2);
        let v = values(keys * ld, 3);
        let keep: Vec<bool> = (0..keys)
            .map(|j| !(TILE_K..2 * TILE_K).contains(&j) && j % 7 != 3)
            .collect();
        let bias = |h: usize, i: usize, j: usize| ((h + 2 * i + 3 * j) % 11) as f32 * 0.1;
        let shape = Shape {
            queries,
            keys,
            heads,
            dk,
            scale: 0.3,
        };
        let mut out = vec![0.0f32; queries * heads * dk];
        let rows = |data| Rows { data, ld };
        attention(
            rows(&q),
            rows(&k),
            rows(&v),
            shape,
            bias,
            Some(&keep),
            &mut out,
        );
        let want = reference(&q, &k, &v, ld, shape, bias, &keep);
        let err = out
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-5, "max abs error {err}");

        // No key kept: every query averages all the values (the reference's large negative
        // mask), which the plain softmax gives with no mask and no scores.
        let none = vec![false; keys];
        attention(
            rows(&q),
            rows(&k),
            rows(&v),
            shape,
            bias,
            Some(&none),
            &mut out,
        );
        let flat = Shape {
            scale: 0.0,
            ..shape
        };
        let want = reference(&q, &k, &v, ld, flat, |_, _, _| 0.0, &vec![true; keys]);
        let err = out
            .iter()
            .zip(&want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-5, "all masked: max abs error {err}");
    }
}
