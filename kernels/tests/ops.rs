//! Every `Backend` op against a naive f64 reference written straight from the PyTorch
//! definitions (index loops, no GEMM, no tiling), with explicit tolerances. `backend_tests!`
//! instantiates the whole suite for one backend; a new backend joins with one more line.

mod common;

use common::{randn, rel_err};
use kernels::{Backend, CpuBackend, Norm, Tensor};

/// Relative tolerance (see `rel_err`) of ops that sum products in f32.
const SUM_TOL: f64 = 1e-5;
/// Relative tolerance of elementwise ops (one or two roundings).
const ELEMENTWISE_TOL: f64 = 1e-6;
/// `guided_step` against the host solver (`Solver::advance` after scene.rs's guidance
/// combine): none. A backend rounds every operation as the host does, in its order, from the
/// same f32 factors, so the results are the same floats; anything else would make a resident
/// run (`Model::with_resident_steps`) drift from the host one.
const SAMPLER_TOL: f64 = 0.0;

fn run<B: Backend>(be: &B, x: &Tensor, op: impl FnOnce(&B, &B::Tensor) -> B::Tensor) -> Tensor {
    be.download(&op(be, &be.upload(x)))
}

fn run_in_place<B: Backend>(be: &B, x: &Tensor, op: impl FnOnce(&B, &mut B::Tensor)) -> Tensor {
    let mut t = be.upload(x);
    op(be, &mut t);
    be.download(&t)
}

fn check(name: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.shape, want.shape, "{name}: shape");
    let err = rel_err(&got.data, &want.data);
    assert!(err <= tol, "{name}: relative error {err:e} > {tol:e}");
}

mod reference {
    //! Naive references on channels-last tensors, in f64.
    use kernels::Tensor;

    fn at(t: &Tensor, i: [usize; 4]) -> f64 {
        let s = &t.shape;
        t.data[((i[0] * s[1] + i[1]) * s[2] + i[2]) * s[3] + i[3]] as f64
    }

    /// w in PyTorch layout [Cout, Cin, 3, 3]; stride 1, padding 1.
    pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let [n, h, wd, cin] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let cout = w.shape[0];
        let mut out = Vec::new();
        for img in 0..n {
            for oy in 0..h {
                for ox in 0..wd {
                    for co in 0..cout {
                        let mut acc = b.data[co] as f64;
                        for ci in 0..cin {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = ((oy + ky) as isize - 1, (ox + kx) as isize - 1);
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd
                                    {
                                        let wv = w.data[((co * cin + ci) * 3 + ky) * 3 + kx] as f64;
                                        acc += wv * at(x, [img, iy as usize, ix as usize, ci]);
                                    }
                                }
                            }
                        }
                        out.push(acc as f32);
                    }
                }
            }
        }
        Tensor::new(&[n, h, wd, cout], out)
    }

    /// w in PyTorch layout [Cout, Cin, 3]; x is [B * F, H, W, C].
    pub fn temporal_conv(x: &Tensor, w: &Tensor, b: &Tensor, frames: usize) -> Tensor {
        let [n, h, wd, cin] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let cout = w.shape[0];
        let mut out = Vec::new();
        for img in 0..n {
            let (clip, f) = (img / frames, img % frames);
            for y in 0..h {
                for xx in 0..wd {
                    for co in 0..cout {
                        let mut acc = b.data[co] as f64;
                        for k in 0..3 {
                            let fi = f as isize + k as isize - 1;
                            if fi < 0 || fi as usize >= frames {
                                continue;
                            }
                            for ci in 0..cin {
                                acc += w.data[(co * cin + ci) * 3 + k] as f64
                                    * at(x, [clip * frames + fi as usize, y, xx, ci]);
                            }
                        }
                        out.push(acc as f32);
                    }
                }
            }
        }
        Tensor::new(&[n, h, wd, cout], out)
    }

    pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let (n, k, m) = (x.shape[0], x.shape[1], w.shape[0]);
        let mut out = Vec::new();
        for i in 0..n {
            for o in 0..m {
                let dot: f64 = (0..k)
                    .map(|j| x.data[i * k + j] as f64 * w.data[o * k + j] as f64)
                    .sum();
                out.push((dot + b.data[o] as f64) as f32);
            }
        }
        Tensor::new(&[n, m], out)
    }

    pub fn group_norm(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        groups: usize,
        eps: f64,
    ) -> Tensor {
        let [n, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        let per = c / groups;
        let mut out = x.clone();
        for img in 0..n {
            for g in 0..groups {
                let vals: Vec<f64> = (0..h * w)
                    .flat_map(|p| (g * per..(g + 1) * per).map(move |ch| (p, ch)))
                    .map(|(p, ch)| at(x, [img, p / w, p % w, ch]))
                    .collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64;
                for p in 0..h * w {
                    for ch in g * per..(g + 1) * per {
                        let i = (img * h * w + p) * c + ch;
                        let norm = (x.data[i] as f64 - mean) / (var + eps).sqrt();
                        out.data[i] = (norm * gamma.data[ch] as f64 + beta.data[ch] as f64) as f32;
                    }
                }
            }
        }
        out
    }

    pub fn map(x: &Tensor, f: impl Fn(usize, f64) -> f64) -> Tensor {
        Tensor::new(
            &x.shape,
            x.data
                .iter()
                .enumerate()
                .map(|(i, &v)| f(i, v as f64) as f32)
                .collect(),
        )
    }
}

/// PyTorch conv weight [Cout, Cin, taps...] -> the backend's [taps..., Cin, Cout].
fn kio(w: &Tensor) -> Tensor {
    match w.shape.len() {
        4 => w.permute(&[2, 3, 1, 0]),
        _ => w.permute(&[2, 1, 0]),
    }
}

fn check_conv2d<B: Backend>(be: &B, [n, h, w, cin, cout]: [usize; 5]) {
    let x = randn(&[n, h, w, cin], 1);
    let wt = randn(&[cout, cin, 3, 3], 2);
    let b = randn(&[cout], 3);
    let (wk, bb) = (be.upload(&kio(&wt)), be.upload(&b));
    let got = run(be, &x, |be, x| be.conv2d(x, &wk, &bb));
    check("conv2d", &got, &reference::conv2d(&x, &wt, &b), SUM_TOL);
}

fn check_temporal_conv_residual<B: Backend>(be: &B) {
    let (clips, frames, c) = (2, 5, 12);
    let x = randn(&[clips * frames, 3, 4, c], 4);
    let wt = randn(&[c, c, 3], 5);
    let b = randn(&[c], 6);
    let residual = randn(&[clips * frames, 3, 4, c], 7);
    let (wk, bb, xd) = (be.upload(&kio(&wt)), be.upload(&b), be.upload(&x));
    let got = run_in_place(be, &residual, |be, r| {
        be.temporal_conv_residual(r, &xd, &wk, &bb, frames)
    });
    let conv = reference::temporal_conv(&x, &wt, &b, frames);
    let want = reference::map(&residual, |i, v| v + conv.data[i] as f64);
    check("temporal_conv_residual", &got, &want, SUM_TOL);
}

fn check_linear<B: Backend>(be: &B) {
    let x = randn(&[5, 33], 7);
    let (w, b) = (randn(&[17, 33], 8), randn(&[17], 9));
    let (wd, bd) = (be.upload(&w), be.upload(&b));
    let got = run(be, &x, |be, x| be.linear(x, &wd, &bd));
    check("linear", &got, &reference::linear(&x, &w, &b), SUM_TOL);
}

fn silu(v: f64) -> f64 {
    v / (1.0 + (-v).exp())
}

fn check_norm_silu<B: Backend>(be: &B) {
    // Offset and scaled input: a one-pass variance in f32 would fail here.
    let (frames, c) = (3, 16);
    let x = reference::map(&randn(&[2 * frames, 5, 6, c], 10), |_, v| 3.0 * v + 20.0);
    let (g, b) = (randn(&[c], 11), randn(&[c], 12));
    let ss = randn(&[2, 2 * c], 13);
    let (gd, bd, ssd) = (be.upload(&g), be.upload(&b), be.upload(&ss));
    let norm = Norm {
        groups: 8,
        eps: 1e-5,
    };
    let normed = reference::group_norm(&x, &g, &b, 8, 1e-5);

    let got = run(be, &x, |be, x| be.norm_silu(x, &gd, &bd, norm, None));
    check(
        "norm_silu",
        &got,
        &reference::map(&normed, |_, v| silu(v)),
        SUM_TOL,
    );

    let got = run(be, &x, |be, x| {
        be.norm_silu(x, &gd, &bd, norm, Some((&ssd, frames)))
    });
    let want = reference::map(&normed, |i, v| {
        let (clip, ch) = (i / (5 * 6 * c) / frames, i % c);
        silu(v * (1.0 + ss.data[clip * 2 * c + ch] as f64) + ss.data[clip * 2 * c + c + ch] as f64)
    });
    check("norm_silu with FiLM", &got, &want, SUM_TOL);
}

fn check_elementwise<B: Backend>(be: &B) {
    let (frames, c) = (4, 6);
    let x = randn(&[2 * frames, 3, 5, c], 13);
    let y = randn(&[2 * frames, 3, 5, c], 14);
    let emb = randn(&[frames, c], 16);
    let img = |i: usize| i / (3 * 5 * c);

    let got = run_in_place(be, &x, |be, t| be.silu(t));
    check(
        "silu",
        &got,
        &reference::map(&x, |_, v| silu(v)),
        ELEMENTWISE_TOL,
    );

    let yd = be.upload(&y);
    let got = run_in_place(be, &x, |be, t| be.add(t, &yd));
    check(
        "add",
        &got,
        &reference::map(&x, |i, v| v + y.data[i] as f64),
        ELEMENTWISE_TOL,
    );

    let embd = be.upload(&emb);
    let got = run_in_place(be, &x, |be, t| be.add_frame_embedding(t, &embd));
    let want = reference::map(&x, |i, v| {
        v + emb.data[(img(i) % frames) * c + i % c] as f64
    });
    check("add_frame_embedding", &got, &want, ELEMENTWISE_TOL);
}

fn check_concat_and_slice<B: Backend>(be: &B) {
    let (a, b) = (randn(&[2, 3, 4, 5], 17), randn(&[3, 3, 4, 5], 18));
    let (ad, bd) = (be.upload(&a), be.upload(&b));
    let both = be.download(&be.concat(&[&ad, &bd, &ad]));
    let want = Tensor::new(&[7, 3, 4, 5], [&a.data[..], &b.data, &a.data].concat());
    assert_eq!(both, want, "concat");
    let rows = be.download(&be.slice(&be.upload(&want), 1..4));
    assert_eq!(rows.shape, [3, 3, 4, 5], "slice: shape");
    assert_eq!(rows.data, want.data[60..240], "slice");
    assert!(
        be.download(&be.slice(&bd, 3..3)).data.is_empty(),
        "an empty slice"
    );
}

/// The op suite for one backend: `backend_tests!(module_name, constructor expression)`.
macro_rules! backend_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn conv2d_small() {
                check_conv2d(&$make, [2, 7, 5, 5, 6]);
            }

            #[test]
            fn conv2d_many_tiles() {
                check_conv2d(&$make, [3, 16, 16, 16, 8]);
            }

            #[test]
            fn temporal_conv_residual() {
                check_temporal_conv_residual(&$make);
            }

            #[test]
            fn linear() {
                check_linear(&$make);
            }

            #[test]
            fn norm_silu() {
                check_norm_silu(&$make);
            }

            #[test]
            fn elementwise() {
                check_elementwise(&$make);
            }

            #[test]
            fn concat_and_slice() {
                check_concat_and_slice(&$make);
            }

            #[test]
            fn guided_step() {
                common::guided_step::check(&$make, SAMPLER_TOL);
            }
        }
    };
}

backend_tests!(cpu_two_threads, CpuBackend::new(2));
backend_tests!(cpu_one_thread, CpuBackend::new(1));
