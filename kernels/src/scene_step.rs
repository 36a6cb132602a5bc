//! One sampler step of a batch of scenes as a backend op ([`crate::Backend::guided_step`]):
//! where each scene stands ([`SceneStep`]) and the f32 factors of its update, computed in f64
//! exactly as `sampler.rs` computes them and rounded to f32 at the same points, so a backend
//! applying them in `Solver::advance`'s order of operations reproduces the host sampler bit
//! for bit.
//!
//! A scene's factors depend only on its method, prediction, step count and step index (the
//! schedule is fixed, and DPM-Solver++'s memory is the previous step's time), so a backend
//! needs no solver state besides the previous x0 estimate itself.

use crate::error::KernelError;
use crate::sampler::{alpha_sigma, timesteps, Method, Prediction};
use crate::scene::SceneState;

/// Where one scene stands, all a backend's sampler step needs to know about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SceneStep {
    /// The solver.
    pub method: Method,
    /// What the denoiser predicts.
    pub prediction: Prediction,
    /// Steps of the whole run (at least 1).
    pub steps: usize,
    /// The step being taken (below `steps`): 0 is the first.
    pub step: usize,
    /// Classifier-free guidance scale.
    pub guidance: f32,
}

impl SceneStep {
    /// The next step of `scene`, whose model predicts `prediction` (`ModelConfig::prediction`).
    pub fn of(scene: &SceneState, prediction: Prediction) -> SceneStep {
        SceneStep {
            method: scene.method(),
            prediction,
            steps: scene.steps(),
            step: scene.step_index(),
            guidance: scene.guidance(),
        }
    }
}

/// Which update a step applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// DDIM, and every solver's last step (to t = 0).
    Ddim = 0,
    /// DPM-Solver++(2M)'s first step.
    DpmFirst = 1,
    /// DPM-Solver++(2M) with the previous x0.
    DpmSecond = 2,
}

/// One scene's f32 factors, as `Solver::advance` rounds them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Coefficients {
    pub(crate) update: Update,
    /// alpha, sigma at t.
    pub(crate) af: f32,
    pub(crate) sf: f32,
    /// alpha, sigma at the next t.
    pub(crate) an: f32,
    pub(crate) sn: f32,
    /// DPM-Solver++'s factors of z and of the data term.
    pub(crate) zf: f32,
    pub(crate) df: f32,
    /// The second-order blend of this and the previous x0.
    pub(crate) c0: f32,
    pub(crate) c1: f32,
}

/// `Solver::advance`'s scalar arithmetic for step `step` of a `steps`-step run.
pub(crate) fn coefficients(method: Method, steps: usize, step: usize) -> Coefficients {
    let times = timesteps(steps);
    let (t, tn) = (times[step], times[step + 1]);
    let (a, s) = alpha_sigma(t);
    let (an, sn) = alpha_sigma(tn);
    let mut c = Coefficients {
        update: Update::Ddim,
        af: a as f32,
        sf: s as f32,
        an: an as f32,
        sn: sn as f32,
        zf: 0.0,
        df: 0.0,
        c0: 0.0,
        c1: 0.0,
    };
    if method == Method::Ddim || tn == 0.0 {
        return c;
    }
    let (lam, lam_n) = ((a / s).ln(), (an / sn).ln());
    let h = lam_n - lam;
    c.zf = (sn / s) as f32;
    c.df = (an * (-h).exp_m1()) as f32;
    if step == 0 {
        c.update = Update::DpmFirst;
    } else {
        // The solver's memory: (alpha, sigma) of the step before, at times[step - 1].
        let (pa, ps) = alpha_sigma(times[step - 1]);
        let r = (lam - (pa / ps).ln()) / h;
        c.update = Update::DpmSecond;
        c.c0 = (1.0 + 1.0 / (2.0 * r)) as f32;
        c.c1 = (1.0 / (2.0 * r)) as f32;
    }
    c
}

/// Errors on a scene past its last step, a run of no steps or a guidance that is not finite.
pub(crate) fn validate(scenes: &[SceneStep]) -> Result<(), KernelError> {
    match scenes
        .iter()
        .enumerate()
        .find(|(_, s)| s.steps == 0 || s.step >= s.steps || !s.guidance.is_finite())
    {
        Some((i, s)) => Err(KernelError::InvalidArgument(format!(
            "scene {i}: step {} of {} with guidance {} cannot be taken",
            s.step, s.steps, s.guidance
        ))),
        None => Ok(()),
    }
}

/// The slab geometry of a `guided_step` call: `latents` and `x0` hold `scenes` equal
/// non-empty slabs, `out` twice as many. Returns the slab length. An empty call (no scenes,
/// empty tensors) is `Ok(0)`.
pub(crate) fn slab_len(
    scenes: usize,
    latents: usize,
    x0: usize,
    out: usize,
) -> Result<usize, KernelError> {
    if scenes == 0 && latents == 0 && x0 == 0 && out == 0 {
        return Ok(0);
    }
    if scenes == 0
        || scenes > 65_535
        || latents == 0
        || !latents.is_multiple_of(scenes)
        || x0 != latents
        || out != 2 * latents
    {
        return Err(KernelError::InvalidArgument(format!(
            "guided_step of {scenes} scenes (at most 65535) over latents of {latents} values, x0 \
             of {x0} and output of {out}: want n equal non-empty slabs, as many in x0, twice as \
             many in the output"
        )));
    }
    Ok(latents / scenes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_follow_the_solver_s_branches() {
        let kind = |method, steps, step| coefficients(method, steps, step).update;
        assert_eq!(kind(Method::Ddim, 4, 0), Update::Ddim);
        assert_eq!(kind(Method::DpmPP2M, 4, 0), Update::DpmFirst);
        assert_eq!(kind(Method::DpmPP2M, 4, 2), Update::DpmSecond);
        // The last step lands on t = 0, where lambda is infinite: DDIM's formula for everyone.
        assert_eq!(kind(Method::DpmPP2M, 4, 3), Update::Ddim);
        assert_eq!(kind(Method::DpmPP2M, 1, 0), Update::Ddim);
    }

    #[test]
    fn slabs_must_split_evenly() {
        assert_eq!(slab_len(0, 0, 0, 0).unwrap(), 0);
        assert_eq!(slab_len(2, 10, 10, 20).unwrap(), 5);
        for (n, z, x, o) in [
            (0, 4, 4, 8),
            (3, 10, 10, 20),
            (2, 10, 8, 20),
            (2, 10, 10, 10),
        ] {
            assert!(matches!(
                slab_len(n, z, x, o),
                Err(KernelError::InvalidArgument(_))
            ));
        }
    }
}
