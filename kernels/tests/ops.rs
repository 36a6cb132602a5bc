//! Every `Backend` op against a naive f64 reference written straight from the PyTorch
//! definitions (index loops, no GEMM, no tiling), with explicit tolerances. `backend_tests!`
//! instantiates the whole suite for one backend; a new backend joins with one more line.

mod common;

use common::{randn, rel_err};
use kernels::sampler::Solver;
use kernels::{Backend, CpuBackend, KernelError, Method, Norm, Prediction, SceneStep, Tensor};

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

/// Four scenes of every method and prediction, different step counts and guidance in one
/// batch, slabs of an odd length, five steps (three scenes finish on the way and leave the
/// batch): latents and x0 estimates after every step against the host solver.
fn check_guided_step<B: Backend>(be: &B) {
    let len = 1031;
    let mut runs = vec![
        (Method::DpmPP2M, Prediction::X0, 4, 4.0f32),
        (Method::Ddim, Prediction::V, 6, 1.5),
        (Method::DpmPP2M, Prediction::V, 5, 7.0),
        (Method::Ddim, Prediction::X0, 3, 0.0),
    ];
    let mut solvers: Vec<Solver> = runs
        .iter()
        .map(|&(m, p, steps, _)| Solver::new(m, p, steps))
        .collect();
    let mut host: Vec<Vec<f32>> = (0..4).map(|i| randn(&[len], 20 + i).data).collect();
    let mut z = be.upload(&Tensor::new(&[4 * len], host.concat()));
    let mut x0 = be.upload(&Tensor::new(&[4 * len], vec![0.0; 4 * len]));
    for step in 0..5 {
        let n = runs.len();
        let seed = |i: usize, half: u64| 100 * step as u64 + 10 * half + i as u64;
        let cond: Vec<Vec<f32>> = (0..n).map(|i| randn(&[len], seed(i, 1)).data).collect();
        let uncond: Vec<Vec<f32>> = (0..n).map(|i| randn(&[len], seed(i, 2)).data).collect();
        let mut scenes = Vec::new();
        for (i, &(method, prediction, steps, guidance)) in runs.iter().enumerate() {
            let guided: Vec<f32> = cond[i]
                .iter()
                .zip(&uncond[i])
                .map(|(&c, &u)| u + guidance * (c - u))
                .collect();
            solvers[i].advance(&mut host[i], &guided);
            scenes.push(SceneStep {
                method,
                prediction,
                steps,
                step,
                guidance,
            });
        }
        let out = be.upload(&Tensor::new(
            &[2 * n * len],
            [cond.concat(), uncond.concat()].concat(),
        ));
        be.guided_step(&mut z, &mut x0, &out, &scenes)
            .expect("guided_step");
        let host_x0: Vec<f32> = solvers
            .iter()
            .flat_map(|s| s.x0().unwrap())
            .copied()
            .collect();
        let (got_z, got_x0) = (be.download(&z), be.download(&x0));
        for (what, got, want) in [
            ("latents", &got_z.data, &host.concat()),
            ("x0", &got_x0.data, &host_x0),
        ] {
            let err = rel_err(got, want);
            assert!(
                err <= SAMPLER_TOL,
                "step {step} {what}: relative error {err:e}"
            );
        }
        // Finished scenes leave the batch, as Model::step leaves them out.
        let keep: Vec<usize> = (0..n).filter(|&i| !solvers[i].done()).collect();
        let pick = |t: &Tensor| -> Vec<f32> {
            keep.iter()
                .flat_map(|&i| t.data[i * len..(i + 1) * len].to_vec())
                .collect()
        };
        let m = keep.len();
        z = be.upload(&Tensor::new(&[m * len], pick(&got_z)));
        x0 = be.upload(&Tensor::new(&[m * len], pick(&got_x0)));
        runs = keep.iter().map(|&i| runs[i]).collect();
        solvers = keep.iter().map(|&i| solvers[i].clone()).collect();
        host = keep.iter().map(|&i| host[i].clone()).collect();
    }
    assert_eq!(runs.len(), 1, "three scenes finished on the way");

    // Sizes that do not split into the scenes, a scene past its last step, and no scenes.
    let scene = SceneStep {
        method: Method::Ddim,
        prediction: Prediction::X0,
        steps: 2,
        step: 0,
        guidance: 1.0,
    };
    let mut z = be.upload(&Tensor::new(&[2 * len], vec![1.0; 2 * len]));
    let mut x0 = be.upload(&Tensor::new(&[2 * len], vec![0.0; 2 * len]));
    let short = be.upload(&Tensor::new(&[len], vec![0.0; len]));
    let out = be.upload(&Tensor::new(&[4 * len], vec![0.0; 4 * len]));
    for (scenes, out) in [
        (&[scene, scene][..], &short),
        (&[scene, scene, scene][..], &out),
        (&[scene, SceneStep { step: 2, ..scene }][..], &out),
        (&[][..], &out),
    ] {
        assert!(matches!(
            be.guided_step(&mut z, &mut x0, out, scenes),
            Err(KernelError::InvalidArgument(_))
        ));
    }
    assert_eq!(
        be.download(&z).data,
        vec![1.0; 2 * len],
        "an error writes nothing"
    );
    let mut empty = be.upload(&Tensor::new(&[0], vec![]));
    let (mut e2, none) = (
        be.upload(&Tensor::new(&[0], vec![])),
        be.upload(&Tensor::new(&[0], vec![])),
    );
    be.guided_step(&mut empty, &mut e2, &none, &[])
        .expect("an empty batch is nothing to do");
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
                check_guided_step(&$make);
            }
        }
    };
}

backend_tests!(cpu_two_threads, CpuBackend::new(2));
backend_tests!(cpu_one_thread, CpuBackend::new(1));
