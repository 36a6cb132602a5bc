//! Step caching for the Wan transformer, in the manner of TeaCache: between two sampler steps
//! the transformer's blocks change the hidden state by much the same residual when their
//! input changed little, so a pass may reuse the last computed residual instead of running
//! the blocks.
//!
//! What is compared is the first block's time-modulated input, `LN(x) * (1 + scale) +
//! shift` of the patch-embedded latent (it moves with both the latent and the timestep). Its
//! relative L1 change since the previous pass, `sum |m - m_prev| / sum |m_prev|`, is added up
//! over the passes since the blocks last ran; while that sum stays under the threshold, the
//! pass is `x + residual` with the residual (blocks' output minus their input) of the last
//! computed pass, and the output head runs as usual. When it reaches the threshold, the
//! blocks run, the residual is kept and the sum starts again. TeaCache also rescales the
//! change by a polynomial fitted per model; this keeps it raw, so a threshold here is the
//! accumulated relative change itself. One [`StepCache`] per stream of passes: a scene's
//! prompt and its negative prompt each have their own.

/// What one stream of forward passes (one scene's prompt, or its negative prompt) keeps
/// between sampler steps.
#[derive(Debug, Default, Clone)]
pub struct StepCache {
    /// The previous pass's first-block modulated input (dense, tokens x d).
    modulated: Option<Vec<f32>>,
    /// The last computed pass's blocks' residual (tokens x the hidden row stride).
    residual: Option<Vec<f32>>,
    /// Relative change of the modulated input summed since the blocks last ran.
    accumulated: f64,
    /// Passes decided `Compute` so far.
    computed: u64,
}

/// Whether the blocks run for one pass, and what the cache needs afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the blocks; keep their residual.
    Compute,
    /// Add the kept residual instead.
    Reuse,
}

impl StepCache {
    /// Decides this pass from its first-block modulated input `modulated` (dense): reuse
    /// while the change summed since the last computed pass stays under `threshold` (and a
    /// residual exists), unless `force` (the run's first and last steps always compute).
    pub fn decide(&mut self, modulated: Vec<f32>, threshold: f32, force: bool) -> Decision {
        let change = match &self.modulated {
            Some(prev) if prev.len() == modulated.len() => relative_l1(&modulated, prev),
            _ => f64::INFINITY,
        };
        self.modulated = Some(modulated);
        self.accumulated += change;
        if force || self.residual.is_none() || self.accumulated >= threshold as f64 {
            self.accumulated = 0.0;
            self.computed += 1;
            Decision::Compute
        } else {
            Decision::Reuse
        }
    }

    /// Keeps the residual of a computed pass.
    pub fn keep(&mut self, residual: Vec<f32>) {
        self.residual = Some(residual);
    }

    /// Passes that computed so far.
    pub fn computed(&self) -> u64 {
        self.computed
    }

    /// The residual to reuse (after [`Decision::Reuse`]).
    pub fn residual(&self) -> Option<&[f32]> {
        self.residual.as_deref()
    }
}

/// `sum |a - b| / sum |b|`, in f64.
fn relative_l1(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).sum();
    let den: f64 = b.iter().map(|y| y.abs() as f64).sum();
    num / den.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_while_the_summed_change_stays_under_the_threshold() {
        let mut c = StepCache::default();
        // Nothing kept yet: compute.
        assert_eq!(c.decide(vec![1.0; 4], 0.25, false), Decision::Compute);
        c.keep(vec![0.5; 4]);
        // 10% change: reuse; another 10%: still under 25%; a third: 30%, compute again.
        assert_eq!(c.decide(vec![1.1; 4], 0.25, false), Decision::Reuse);
        assert_eq!(c.decide(vec![1.21; 4], 0.25, false), Decision::Reuse);
        assert_eq!(c.decide(vec![1.331; 4], 0.25, false), Decision::Compute);
        // The sum restarted; forced passes compute whatever the change.
        assert_eq!(c.decide(vec![1.331; 4], 0.25, true), Decision::Compute);
        assert_eq!(c.decide(vec![1.331; 4], 0.25, false), Decision::Reuse);
        assert_eq!(c.residual(), Some(&[0.5; 4][..]));
    }
}
