//! Scenes in flight: `SceneState` is one clip being sampled (latent, condition, guidance,
//! solver position). `Model::step` advances any set of scenes by one step in a single batched
//! denoiser pass, conditional and unconditional halves together (classifier-free guidance),
//! so the pipeline can batch continuously: scenes may join and leave at any step, and differ
//! in time, step count, guidance, method and caption.
//!
//! By default a scene's latent lives on the host: each step uploads the batch's latents,
//! downloads the denoiser's output and runs the solver (`sampler.rs`) on the host. A model
//! made with [`Model::with_resident_steps`] starts scenes whose latent and x0 estimate stay
//! on its backend instead (channels-last, as the denoiser reads them): a step runs the pass on
//! them and then the backend's [`crate::Backend::guided_step`], which rounds as the host
//! solver does, so both paths give the same latents bit for bit on the CPU backend. The host
//! sees a resident scene's latent only when asked ([`SceneState::latent`],
//! [`SceneState::estimate`], decoding), each a download cached until the next step.

use std::sync::OnceLock;

use crate::cells::cells_to_pixels;
use crate::error::KernelError;
use crate::model::ResidentLatents;
use crate::philox;
use crate::reel::{Clip, Model};
use crate::sampler::{timesteps, Method, Solver};
use crate::scene_step::SceneStep;
use crate::tensor::Tensor;

/// One scene being sampled: made by [`Model::start`], advanced by [`Model::step`], turned
/// into frames by [`Model::decode`].
#[derive(Clone, Debug)]
pub struct SceneState {
    cond: Vec<f32>,
    guidance: f32,
    latents: Latents,
}

/// Where a scene's latent lives, and its solver.
#[derive(Clone, Debug)]
enum Latents {
    /// On the host, `[F, L, h, w]` (cells of each frame), stepped by a host [`Solver`].
    Host { latent: Vec<f32>, solver: Solver },
    /// On the model's backend ([`Model::with_resident_steps`]).
    Resident(Resident),
}

/// A scene kept on the backend: its tensors, its place in the run (the solver's memory is
/// the x0 tensor beside the latent) and host copies made when asked.
struct Resident {
    method: Method,
    steps: usize,
    step: usize,
    tensors: Box<dyn ResidentLatents>,
    /// [`SceneState::latent`]'s download, `[F, L, h, w]`; emptied by every step.
    latent: OnceLock<Vec<f32>>,
    /// [`SceneState::estimate`]'s download, likewise.
    estimate: OnceLock<Vec<f32>>,
}

impl Clone for Resident {
    fn clone(&self) -> Resident {
        Resident {
            method: self.method,
            steps: self.steps,
            step: self.step,
            tensors: self.tensors.duplicate(),
            latent: self.latent.clone(),
            estimate: self.estimate.clone(),
        }
    }
}

impl std::fmt::Debug for Resident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Resident({:?}, step {} of {}, on {})",
            self.method,
            self.step,
            self.steps,
            self.tensors.backend_name()
        )
    }
}

impl SceneState {
    /// Whether every sampling step has been taken.
    pub fn done(&self) -> bool {
        self.step_index() == self.steps()
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        match &self.latents {
            Latents::Host { solver, .. } => solver.step_index(),
            Latents::Resident(r) => r.step,
        }
    }

    /// Steps of the whole run.
    pub fn steps(&self) -> usize {
        match &self.latents {
            Latents::Host { solver, .. } => solver.steps(),
            Latents::Resident(r) => r.steps,
        }
    }

    /// Classifier-free guidance scale.
    pub fn guidance(&self) -> f32 {
        self.guidance
    }

    /// The solver.
    pub fn method(&self) -> Method {
        match &self.latents {
            Latents::Host { solver, .. } => solver.method(),
            Latents::Resident(r) => r.method,
        }
    }

    /// Whether the latent stays on the model's backend between steps
    /// ([`Model::with_resident_steps`]).
    pub fn is_resident(&self) -> bool {
        matches!(self.latents, Latents::Resident(_))
    }

    /// The current latent, `[F, L, h, w]` (cells of each frame, see cells.rs). A resident
    /// scene downloads it (once per step).
    pub fn latent(&self) -> &[f32] {
        match &self.latents {
            Latents::Host { latent, .. } => latent,
            Latents::Resident(r) => r.latent.get_or_init(|| r.tensors.latent()),
        }
    }

    /// The model's current estimate of the clean latent (x0 of the last step), `[F, L, h, w]`;
    /// `None` before the first step. A resident scene downloads it (once per step).
    pub fn estimate(&self) -> Option<&[f32]> {
        match &self.latents {
            Latents::Host { solver, .. } => solver.x0(),
            Latents::Resident(r) => {
                (r.step > 0).then(|| &r.estimate.get_or_init(|| r.tensors.estimate())[..])
            }
        }
    }

    /// The time the next step evaluates the network at.
    fn t(&self) -> f64 {
        match &self.latents {
            Latents::Host { solver, .. } => solver.t(),
            Latents::Resident(r) => timesteps(r.steps)[r.step],
        }
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
        let latents = if self.resident {
            let c = &self.config;
            let side = c.latent_size();
            let shape = [c.frames, c.latent_channels, side, side];
            Latents::Resident(Resident {
                method,
                steps,
                step: 0,
                tensors: self.nets.resident(&Tensor::new(&shape, latent)),
                latent: OnceLock::new(),
                estimate: OnceLock::new(),
            })
        } else {
            Latents::Host {
                latent,
                solver: Solver::new(method, self.config.prediction, steps),
            }
        };
        Ok(SceneState {
            cond,
            guidance,
            latents,
        })
    }

    /// This model, its scenes started from now on kept on its backend between steps (see
    /// the module docs): the denoiser pass and the sampler step both run there, and only a
    /// scene's condition and times travel per step. The latents are the host path's, bit for
    /// bit on the CPU backend; `false` (the default) is the host path.
    pub fn with_resident_steps(mut self, resident: bool) -> Model {
        self.resident = resident;
        self
    }

    /// Whether scenes started now keep their latents on the backend.
    pub fn resident_steps(&self) -> bool {
        self.resident
    }

    /// Advances every unfinished scene of `batch` by one sampler step, in one forward pass
    /// over `2 * n` clips (`n` conditional, then the same `n` unconditional). Finished scenes
    /// are left as they are. Resident scenes ([`Model::with_resident_steps`]) and host ones
    /// in one batch take a pass each.
    pub fn step(&self, batch: &mut [&mut SceneState]) {
        let (resident, host): (Vec<&mut SceneState>, Vec<&mut SceneState>) = batch
            .iter_mut()
            .map(|s| &mut **s)
            .filter(|s| !s.done())
            .partition(|s| s.is_resident());
        if !host.is_empty() {
            self.step_host(host);
        }
        if !resident.is_empty() {
            self.step_resident(resident);
        }
    }

    /// The batch's conditions, `n` then the unconditional one `n` times (`[2n, emb]`), and
    /// its times, the `n` scenes' twice.
    fn guided_inputs(&self, active: &[&mut SceneState]) -> (Tensor, Vec<f32>) {
        let (n, emb) = (active.len(), self.config.emb);
        let mut cond = Vec::with_capacity(2 * n * emb);
        for s in active {
            assert!(
                s.cond.len() == emb,
                "scene started by a model of another shape"
            );
            cond.extend_from_slice(&s.cond);
        }
        for _ in 0..n {
            cond.extend_from_slice(&self.null_cond);
        }
        let t: Vec<f32> = active
            .iter()
            .map(|s| s.t() as f32)
            .cycle()
            .take(2 * n)
            .collect();
        (Tensor::new(&[2 * n, emb], cond), t)
    }

    /// [`Model::step`] of host scenes: latents up, the prediction down, the solver here.
    fn step_host(&self, mut active: Vec<&mut SceneState>) {
        let n = active.len();
        let len = self.config.latent_len();
        let (cond, t) = self.guided_inputs(&active);
        let mut z = Vec::with_capacity(2 * n * len);
        for s in &active {
            let latent = s.latent();
            assert!(
                latent.len() == len,
                "scene started by a model of another shape"
            );
            z.extend_from_slice(latent);
        }
        z.extend_from_within(..n * len);
        let c = &self.config;
        let shape = [
            2 * n,
            c.frames,
            c.latent_channels,
            c.latent_size(),
            c.latent_size(),
        ];
        let out = self.nets.denoise(&Tensor::new(&shape, z), &t, &cond);
        let (oc, ou) = out.data.split_at(n * len);
        for (i, s) in active.iter_mut().enumerate() {
            let (oc, ou) = (&oc[i * len..(i + 1) * len], &ou[i * len..(i + 1) * len]);
            let g = s.guidance;
            let guided: Vec<f32> = oc.iter().zip(ou).map(|(&c, &u)| u + g * (c - u)).collect();
            let Latents::Host { latent, solver } = &mut s.latents else {
                unreachable!("step_host takes host scenes")
            };
            solver.advance(latent, &guided);
        }
    }

    /// [`Model::step`] of resident scenes: the pass and the sampler on the backend.
    fn step_resident(&self, mut active: Vec<&mut SceneState>) {
        let (cond, t) = self.guided_inputs(&active);
        let steps: Vec<SceneStep> = active
            .iter()
            .map(|s| SceneStep::of(s, self.config.prediction))
            .collect();
        let mut tensors: Vec<&mut dyn ResidentLatents> = Vec::with_capacity(active.len());
        for s in &mut active {
            let Latents::Resident(r) = &mut s.latents else {
                unreachable!("step_resident takes resident scenes")
            };
            r.step += 1;
            r.latent = OnceLock::new();
            r.estimate = OnceLock::new();
            tensors.push(&mut *r.tensors);
        }
        self.nets.step_resident(&mut tensors, &t, &cond, &steps);
    }

    /// The scene's frames: cells to pixels, mapped from [-1, 1] to [0, 1] and clamped. Valid
    /// at any step (the pipeline may preview).
    pub fn decode(&self, state: &SceneState) -> Clip {
        self.to_clip(state.latent().to_vec(), self.config.frames)
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
