//! The non-GEMM ops of the CPU backend: group norm, SiLU, add, FiLM, frame embedding. All parallelise over images or fixed chunks on the backend's rayon pool.

use rayon::prelude::*;

use super::conv::dims4;
use crate::tensor::Tensor;

/// Elements per rayon job of the elementwise ops: big enough to amortise the scheduling.
const CHUNK: usize = 1 << 14;

pub(crate) fn group_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, groups: usize, eps: f32) -> Tensor {
    let [_, h, w, c] = dims4(x);
    assert!(groups > 0 && c % groups == 0, "{c} channels in {groups} groups");
    assert!(gamma.numel() == c && beta.numel() == c, "group norm affine of the wrong size");
    let per = c / groups;
    let count = (h * w * per) as f64;
    let mut y = x.clone();
    y.data.par_chunks_mut(h * w * c).for_each(|img| {
        // Statistics in f64: exact enough that the one-pass variance loses nothing here.
        let mut sum = vec![0.0f64; groups];
        let mut sq = vec![0.0f64; groups];
        for px in img.chunks_exact(c) {
            for (g, vals) in px.chunks_exact(per).enumerate() {
                for &v in vals {
                    sum[g] += v as f64;
                    sq[g] += (v as f64) * (v as f64);
                }
            }
        }
        // y = x * scale + shift per channel, with scale = gamma * rstd, shift = beta - mean * scale.
        let mut scale = vec![0.0f32; c];
        let mut shift = vec![0.0f32; c];
        for ch in 0..c {
            let g = ch / per;
            let mean = sum[g] / count;
            let var = (sq[g] / count - mean * mean).max(0.0);
            let s = gamma.data[ch] as f64 / (var + eps as f64).sqrt();
            scale[ch] = s as f32;
            shift[ch] = (beta.data[ch] as f64 - mean * s) as f32;
        }
        for px in img.chunks_exact_mut(c) {
            for ((v, s), b) in px.iter_mut().zip(&scale).zip(&shift) {
                *v = *v * s + b;
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
    x.data.par_chunks_mut(CHUNK).zip(y.data.par_chunks(CHUNK)).for_each(|(a, b)| {
        for (a, b) in a.iter_mut().zip(b) {
            *a += b;
        }
    });
}

pub(crate) fn film(x: &mut Tensor, scale_shift: &Tensor, frames: usize) {
    let [n, h, w, c] = dims4(x);
    assert_eq!(scale_shift.shape, [n / frames, 2 * c], "FiLM parameters of the wrong shape");
    x.data.par_chunks_mut(h * w * c).enumerate().for_each(|(img, data)| {
        let params = &scale_shift.data[(img / frames) * 2 * c..(img / frames + 1) * 2 * c];
        let (scale, shift) = params.split_at(c);
        // (1 + scale) rounded first, as PyTorch evaluates it.
        let gain: Vec<f32> = scale.iter().map(|s| 1.0 + s).collect();
        for px in data.chunks_exact_mut(c) {
            for ((v, g), b) in px.iter_mut().zip(&gain).zip(shift) {
                *v = *v * g + b;
            }
        }
    });
}

pub(crate) fn add_frame_embedding(x: &mut Tensor, emb: &Tensor) {
    let [n, h, w, c] = dims4(x);
    let frames = emb.shape[0];
    assert!(emb.shape == [frames, c] && n % frames == 0, "frame embedding {:?} for {:?}", emb.shape, x.shape);
    x.data.par_chunks_mut(h * w * c).enumerate().for_each(|(img, data)| {
        let e = &emb.data[(img % frames) * c..(img % frames + 1) * c];
        for px in data.chunks_exact_mut(c) {
            for (v, b) in px.iter_mut().zip(e) {
                *v += b;
            }
        }
    });
}
