//! `Backend::guided_step` against the host solver, for every backend's tests (tests/ops.rs
//! on the CPU, tests/cuda_parity.rs on a GPU), each with its own tolerance.

use kernels::sampler::Solver;
use kernels::{Backend, KernelError, Method, Prediction, SceneStep, Tensor};

use super::{randn, rel_err};

/// Four scenes of every method and prediction, different step counts and guidance in one
/// batch, slabs of an odd length, five steps (three scenes finish on the way and leave the
/// batch): latents and x0 estimates after every step against the host solver,
/// within `tol` (see `rel_err`).
pub fn check<B: Backend>(be: &B, tol: f64) {
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
            let exact = got == want;
            eprintln!("step {step} {what}: relative error {err:e} (bit-identical: {exact})");
            assert!(
                err <= tol,
                "step {step} {what}: relative error {err:e} > {tol:e}"
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
