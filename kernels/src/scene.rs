//! Scenes in flight: `SceneState` is one clip being sampled (latent, condition, guidance,
//! solver position). `Model::step` advances any set of scenes by one step in a single batched
//! denoiser pass, conditional and unconditional halves together (classifier-free guidance),
//! so the pipeline can batch continuously: scenes may join and leave at any step, and differ
//! in time, step count, guidance, method and caption.

use crate::cells::cells_to_pixels;
use crate::error::KernelError;
use crate::philox;
use crate::reel::{Clip, Model};
use crate::sampler::{Method, Solver};
use crate::tensor::Tensor;

/// One scene being sampled: made by [`Model::start`], advanced by [`Model::step`], turned
/// into frames by [`Model::decode`].
#[derive(Clone, Debug)]
pub struct SceneState {
    /// `[F, L, h, w]`: cells of each frame.
    latent: Vec<f32>,
    cond: Vec<f32>,
    guidance: f32,
    solver: Solver,
}

impl SceneState {
    /// Whether every sampling step has been taken.
    pub fn done(&self) -> bool {
        self.solver.done()
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        self.solver.step_index()
    }

    /// Steps of the whole run.
    pub fn steps(&self) -> usize {
        self.solver.steps()
    }

    /// Classifier-free guidance scale.
    pub fn guidance(&self) -> f32 {
        self.guidance
    }

    /// The solver.
    pub fn method(&self) -> Method {
        self.solver.method()
    }

    /// The current latent, `[F, L, h, w]` (cells of each frame, see cells.rs).
    pub fn latent(&self) -> &[f32] {
        &self.latent
    }

    /// The model's current estimate of the clean latent (x0 of the last step), `[F, L, h, w]`;
    /// `None` before the first step.
    pub fn estimate(&self) -> Option<&[f32]> {
        self.solver.x0()
    }
}

impl Model {
    /// A new scene: the caption's condition and Philox noise of (`seed`, `stream`) as the
    /// initial latent, in `[F, L, h, w]` order.
    pub fn start(
        &self,
        caption: &str,
        seed: u64,
        stream: u64,
        steps: usize,
        guidance: f32,
        method: Method,
    ) -> Result<SceneState, KernelError> {
        if steps == 0 {
            return Err(KernelError::InvalidArgument(
                "a scene needs at least one sampling step".into(),
            ));
        }
        if !guidance.is_finite() {
            return Err(KernelError::InvalidArgument(format!(
                "guidance {guidance} is not a finite number"
            )));
        }
        let ids = self.tokenize(caption)?;
        let cond = self.nets.text(&[ids]).data;
        let latent = philox::gaussian(seed, stream, self.config.latent_len());
        let solver = Solver::new(method, self.config.prediction, steps);
        Ok(SceneState {
            latent,
            cond,
            guidance,
            solver,
        })
    }

    /// Advances every unfinished scene of `batch` by one sampler step, in one forward pass
    /// over `2 * n` clips (`n` conditional, then the same `n` unconditional). Finished scenes
    /// are left as they are.
    pub fn step(&self, batch: &mut [&mut SceneState]) {
        let mut active: Vec<&mut SceneState> = batch
            .iter_mut()
            .map(|s| &mut **s)
            .filter(|s| !s.done())
            .collect();
        let n = active.len();
        if n == 0 {
            return;
        }
        let len = self.config.latent_len();
        let emb = self.config.emb;
        let mut z = Vec::with_capacity(2 * n * len);
        let mut cond = Vec::with_capacity(2 * n * emb);
        for s in &active {
            assert!(
                s.latent.len() == len && s.cond.len() == emb,
                "scene started by a model of another shape"
            );
            z.extend_from_slice(&s.latent);
            cond.extend_from_slice(&s.cond);
        }
        z.extend_from_within(..n * len);
        for _ in 0..n {
            cond.extend_from_slice(&self.null_cond);
        }
        let t: Vec<f32> = active
            .iter()
            .map(|s| s.solver.t() as f32)
            .cycle()
            .take(2 * n)
            .collect();
        let c = &self.config;
        let shape = [
            2 * n,
            c.frames,
            c.latent_channels,
            c.latent_size(),
            c.latent_size(),
        ];
        let out = self.nets.denoise(
            &Tensor::new(&shape, z),
            &t,
            &Tensor::new(&[2 * n, emb], cond),
        );
        let (oc, ou) = out.data.split_at(n * len);
        for (i, s) in active.iter_mut().enumerate() {
            let (oc, ou) = (&oc[i * len..(i + 1) * len], &ou[i * len..(i + 1) * len]);
            let g = s.guidance;
            let guided: Vec<f32> = oc.iter().zip(ou).map(|(&c, &u)| u + g * (c - u)).collect();
            s.solver.advance(&mut s.latent, &guided);
        }
    }

    /// The scene's frames: cells to pixels, mapped from [-1, 1] to [0, 1] and clamped. Valid
    /// at any step (the pipeline may preview).
    pub fn decode(&self, state: &SceneState) -> Clip {
        self.to_clip(state.latent.clone(), self.config.frames)
    }

    /// [`Model::decode`] of a finished scene's latent cells (`[F, L, h, w]`, as
    /// [`SceneState::latent`]); `None` when they are not of this model's shape.
    pub fn decode_cells(&self, cells: &[f32]) -> Option<Clip> {
        (cells.len() == self.config.latent_len())
            .then(|| self.to_clip(cells.to_vec(), self.config.frames))
    }

    /// Frame `frame` (clamped to the clip) of the model's current estimate of the scene's
    /// clean frames ([`SceneState::estimate`]), decoded as [`Model::decode`] does: what a
    /// preview shows mid-run. `None` before the first step.
    pub fn decode_estimate(&self, state: &SceneState, frame: usize) -> Option<Clip> {
        let x0 = state.estimate()?;
        let per_frame = x0.len() / self.config.frames.max(1);
        let f = frame.min(self.config.frames.saturating_sub(1));
        Some(self.to_clip(x0[f * per_frame..(f + 1) * per_frame].to_vec(), 1))
    }

    /// `frames` frames of cells -> pixels in [0, 1].
    fn to_clip(&self, cells: Vec<f32>, frames: usize) -> Clip {
        let c = &self.config;
        let z = Tensor::new(
            &[frames, c.latent_channels, c.latent_size(), c.latent_size()],
            cells,
        );
        let x = cells_to_pixels(&z, c.patch);
        let data = x
            .data
            .iter()
            .map(|v| ((v + 1.0) / 2.0).clamp(0.0, 1.0))
            .collect();
        Clip {
            frames,
            width: x.shape[2],
            height: x.shape[1],
            data,
        }
    }

    /// Samples and decodes several scenes batched: scene `i` uses noise stream `i` of `seed`.
    pub fn generate(
        &self,
        captions: &[&str],
        seed: u64,
        steps: usize,
        guidance: f32,
        method: Method,
    ) -> Result<Vec<Clip>, KernelError> {
        let mut scenes = captions
            .iter()
            .enumerate()
            .map(|(i, caption)| self.start(caption, seed, i as u64, steps, guidance, method))
            .collect::<Result<Vec<_>, _>>()?;
        while scenes.iter().any(|s| !s.done()) {
            self.step(&mut scenes.iter_mut().collect::<Vec<_>>());
        }
        Ok(scenes.iter().map(|s| self.decode(s)).collect())
    }
}
