//! The non-GEMM ops of the CPU backend: the fused group norm / FiLM / SiLU prologue, SiLU,
//! add, frame embedding. All parallelise over images or fixed chunks on the backend's pool.

use rayon::prelude::*;

use super::conv::dims4;
use crate::backend::Norm;
use crate::tensor::Tensor;

/// Elements per rayon job of the elementwise ops: big enough to amortise the scheduling.
const CHUNK: usize = 1 << 14;

pub(crate) fn norm_silu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    norm: Norm,
    film: Option<(&Tensor, usize)>,
) -> Tensor {
    let [n, h, w, c] = dims4(x);
    let groups = norm.groups;
    crate::shapes::norm_silu(
        [n, h, w, c],
        groups,
        gamma.numel(),
        beta.numel(),
        film.map(|(ss, f)| (&ss.shape[..], f)),
    );
    let per = c / groups;
    let count = (h * w * per) as f64;
    let mut y = x.clone();
    y.data
        .par_chunks_mut(h * w * c)
        .enumerate()
        .for_each(|(img, data)| {
            // Statistics in f64: exact enough that the one-pass variance loses nothing here.
            let mut sum = vec![0.0f64; groups];
            let mut sq = vec![0.0f64; groups];
            for px in data.chunks_exact(c) {
                for (g, vals) in px.chunks_exact(per).enumerate() {
                    for &v in vals {
                        sum[g] += v as f64;
                        sq[g] += (v as f64) * (v as f64);
                    }
                }
            }
            // Normalised value = x * scale + shift per channel (scale = gamma * rstd,
            // shift = beta - mean * scale); FiLM's (1 + scale) is rounded first, as in PyTorch.
            let mut scale = vec![0.0f32; c];
            let mut shift = vec![0.0f32; c];
            let (mut gain, mut offset) = (vec![1.0f32; c], vec![0.0f32; c]);
            for ch in 0..c {
                let g = ch / per;
                let mean = sum[g] / count;
                let var = (sq[g] / count - mean * mean).max(0.0);
                let s = gamma.data[ch] as f64 / (var + norm.eps as f64).sqrt();
                scale[ch] = s as f32;
                shift[ch] = (beta.data[ch] as f64 - mean * s) as f32;
                if let Some((ss, frames)) = film {
                    let clip = &ss.data[(img / frames) * 2 * c..(img / frames + 1) * 2 * c];
                    (gain[ch], offset[ch]) = (1.0 + clip[ch], clip[c + ch]);
                }
            }
            for px in data.chunks_exact_mut(c) {
                for (ch, v) in px.iter_mut().enumerate() {
                    let mut a = *v * scale[ch] + shift[ch];
                    if film.is_some() {
                        a = a * gain[ch] + offset[ch];
                    }
                    *v = a / (1.0 + (-a).exp());
                }
            }
        });
    y
}

pub(crate) fn silu(x: &mut Tensor) {
    x.data.par_chunks_mut(CHUNK).for_each(|part| {
        for v in part {
            *v /= 1.0 + (-*v).exp();
        }
    });
}

pub(crate) fn add(x: &mut Tensor, y: &Tensor) {
    assert_eq!(x.shape, y.shape, "add of different shapes");
    x.data
        .par_chunks_mut(CHUNK)
        .zip(y.data.par_chunks(CHUNK))
        .for_each(|(a, b)| {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        });
}

pub(crate) fn add_frame_embedding(x: &mut Tensor, emb: &Tensor) {
    let [n, h, w, c] = dims4(x);
    let frames = emb.shape[0];
    assert!(
        emb.shape == [frames, c] && n % frames == 0,
        "frame embedding {:?} for {:?}",
        emb.shape,
        x.shape
    );
    x.data
        .par_chunks_mut(h * w * c)
        .enumerate()
        .for_each(|(img, data)| {
            let e = &emb.data[(img % frames) * c..(img % frames + 1) * c];
            for px in data.chunks_exact_mut(c) {
                for (v, b) in px.iter_mut().zip(e) {
                    *v += b;
                }
            }
        });
}
