//! The non-GEMM ops of the CPU backend: the fused group norm / FiLM / SiLU prologue, SiLU,
//! add, frame embedding. All parallelise over images or fixed chunks on the backend's pool;
//! the loops that compute (norm, SiLU) are compiled for AVX-512 / AVX2 as well and vectorise
//! over channels (channels-last: a pixel's channels are contiguous).

use multiversion::multiversion;
use rayon::prelude::*;

use super::conv::dims4;
use super::math;
use crate::backend::Norm;
use crate::tensor::Tensor;

/// Elements per rayon job of the elementwise ops: big enough to amortise the scheduling.
const CHUNK: usize = 1 << 14;

/// `Backend::norm_silu` into `y` (any contents: every value is written).
pub(crate) fn norm_silu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    norm: Norm,
    film: Option<(&Tensor, usize)>,
    mut y: Vec<f32>,
) -> Tensor {
    let [n, h, w, c] = dims4(x);
    crate::shapes::norm_silu(
        [n, h, w, c],
        norm.groups,
        gamma.numel(),
        beta.numel(),
        film.map(|(ss, f)| (&ss.shape[..], f)),
    );
    y.resize(x.numel(), 0.0);
    let image = h * w * c;
    if image == 0 {
        return Tensor::new(&x.shape, y);
    }
    y.par_chunks_mut(image)
        .zip(x.data.par_chunks(image))
        .enumerate()
        .for_each_init(
            || NormScratch::new(c, norm.groups),
            |s, (img, (out, src))| {
                // FiLM's (1 + scale) is rounded first, as in PyTorch; without FiLM the
                // identity (gain 1, offset 0) leaves every value as it was.
                match film {
                    Some((ss, frames)) => {
                        let clip = &ss.data[(img / frames) * 2 * c..(img / frames + 1) * 2 * c];
                        let (scale, shift) = clip.split_at(c);
                        s.gain.iter_mut().zip(scale).for_each(|(g, s)| *g = 1.0 + s);
                        s.offset.copy_from_slice(shift);
                    }
                    None => {
                        s.gain.fill(1.0);
                        s.offset.fill(0.0);
                    }
                }
                norm_image(src, out, &gamma.data, &beta.data, norm, s)
            },
        );
    Tensor::new(&x.shape, y)
}

/// Per-thread buffers of `norm_image`, one value per channel (per group for `mean`).
struct NormScratch {
    sum: Vec<f64>,
    center: Vec<f64>,
    mean: Vec<f64>,
    scale: Vec<f32>,
    shift: Vec<f32>,
    gain: Vec<f32>,
    offset: Vec<f32>,
}

impl NormScratch {
    fn new(c: usize, groups: usize) -> NormScratch {
        NormScratch {
            sum: vec![0.0; c],
            center: vec![0.0; c],
            mean: vec![0.0; groups],
            scale: vec![0.0; c],
            shift: vec![0.0; c],
            gain: vec![0.0; c],
            offset: vec![0.0; c],
        }
    }
}

/// One image `x [H * W, C]` -> `y = silu((x * scale + shift) * gain + offset)`, where scale and
/// shift fold the group statistics into gamma and beta, and `s.gain` / `s.offset` are FiLM's.
/// Statistics in f64, two-pass (mean, then squared deviations): exact enough whatever the
/// image size, and still vector code over channels.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn norm_image(
    x: &[f32],
    y: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    norm: Norm,
    s: &mut NormScratch,
) {
    let c = gamma.len();
    let per = c / norm.groups;
    let count = (x.len() / c * per) as f64;
    s.sum.fill(0.0);
    for px in x.chunks_exact(c) {
        s.sum.iter_mut().zip(px).for_each(|(a, &v)| *a += v as f64);
    }
    for ((mean, sums), center) in s
        .mean
        .iter_mut()
        .zip(s.sum.chunks_exact(per))
        .zip(s.center.chunks_exact_mut(per))
    {
        *mean = sums.iter().sum::<f64>() / count;
        center.fill(*mean);
    }
    s.sum.fill(0.0);
    for px in x.chunks_exact(c) {
        for ((a, &v), m) in s.sum.iter_mut().zip(px).zip(&s.center) {
            let d = v as f64 - m;
            *a += d * d;
        }
    }
    for (g, &mean) in s.mean.iter().enumerate() {
        let var = s.sum[g * per..(g + 1) * per].iter().sum::<f64>() / count;
        let rstd = 1.0 / (var + norm.eps as f64).sqrt();
        for ch in g * per..(g + 1) * per {
            let scale = gamma[ch] as f64 * rstd;
            s.scale[ch] = scale as f32;
            s.shift[ch] = (beta[ch] as f64 - mean * scale) as f32;
        }
    }
    for (out, px) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        let pixel = out
            .iter_mut()
            .zip(px)
            .zip(s.scale.iter().zip(&s.shift))
            .zip(s.gain.iter().zip(&s.offset));
        for (((o, &v), (&scale, &shift)), (&gain, &offset)) in pixel {
            *o = math::silu((v * scale + shift) * gain + offset);
        }
    }
}

pub(crate) fn silu(x: &mut Tensor) {
    x.data.par_chunks_mut(CHUNK).for_each(silu_slice);
}

#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn silu_slice(x: &mut [f32]) {
    for v in x {
        *v = math::silu(*v);
    }
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
