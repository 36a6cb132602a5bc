//! [`VideoModel`]: what the engine drives, whichever model is served. The built-in model
//! ([`crate::Model`]) and Wan2.1 ([`crate::wan::WanModel`]) implement it, so the dataflow,
//! the cache, storage and the streams are the same for both.
//!
//! A scene's life: [`VideoModel::start`] makes a [`SceneRun`] (condition, noise, sampler);
//! [`VideoModel::step`] advances any set of runs by one sampler step, batching those whose
//! latent shapes agree into one forward pass; [`VideoModel::preview`] shows the current
//! estimate of a frame mid-run; [`VideoModel::latent`] takes a finished run's latent out as
//! plain data ([`Latent`]: what a cluster sends from the process that sampled the scene to the
//! one that stores it), and [`VideoModel::decode`] turns a latent into frames, handing them
//! over in pieces as they are made (a causal VAE makes them one latent frame at a time), so
//! they can be stored and streamed before the scene is whole.

use std::any::Any;

use contract::ModelSpec;
use serde::{Deserialize, Serialize};

use crate::error::KernelError;
use crate::reel::Clip;

/// One scene to sample.
#[derive(Clone, Copy, Debug)]
pub struct SceneRequest<'a> {
    /// What the scene shows: a WORLD.md caption for the built-in model, free text for a
    /// free-form one.
    pub caption: &'a str,
    /// The task's seed.
    pub seed: u64,
    /// The noise stream within the seed (the scene's index), so scenes differ.
    pub stream: u64,
    /// Sampler steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// A free-form model's frame size, length, negative prompt and scheduler; `None` for
    /// the built-in model.
    pub free_form: Option<FreeFormScene<'a>>,
}

/// The free-form part of a [`SceneRequest`].
#[derive(Clone, Copy, Debug)]
pub struct FreeFormScene<'a> {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Frames of the scene.
    pub num_frames: usize,
    /// What guidance steers away from.
    pub negative_prompt: &'a str,
    /// The sampler, one of the model's [`contract::FreeFormSpec::schedulers`].
    pub scheduler: &'a str,
}

/// A finished scene's latent, as plain data: what [`VideoModel::decode`] turns into frames.
/// It is a few percent of the frames' size (the built-in model's cells; Wan2.1's VAE latent,
/// 8x smaller per side and 4x in time), which is why a cluster exchanges it rather than
/// frames, and decoding it costs about one percent of sampling it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latent {
    /// The model's own layout: `[F, L, h, w]` cells for the built-in model, `[C, F, H, W]`
    /// for Wan2.1.
    pub shape: Vec<usize>,
    /// The values, row-major in `shape`.
    pub data: Vec<f32>,
}

impl Latent {
    /// Whether `data` holds exactly the values `shape` names (a latent from a peer that
    /// serves another model would not).
    pub fn is_whole(&self) -> bool {
        self.shape.iter().product::<usize>() == self.data.len()
    }
}

/// A scene being sampled: the model's own state, opaque to the engine, and where the run
/// stands. Made by [`VideoModel::start`]; only the model that made it may step or decode it.
pub struct SceneRun {
    state: Box<dyn Any + Send + Sync>,
    step: usize,
    steps: usize,
    frames: usize,
}

impl std::fmt::Debug for SceneRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SceneRun(step {} of {})", self.step, self.steps)
    }
}

impl SceneRun {
    /// A run of `steps` steps over a model's `state`, decoding to `frames` frames.
    pub fn new<S: Any + Send + Sync>(state: S, steps: usize, frames: usize) -> SceneRun {
        SceneRun {
            state: Box::new(state),
            step: 0,
            steps,
            frames,
        }
    }

    /// Frames the scene decodes to (the model's own, before any post-processing).
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// Steps of the whole run.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether every step has been taken.
    pub fn done(&self) -> bool {
        self.step >= self.steps
    }

    /// Records one more step taken (the model calls it from [`VideoModel::step`]).
    pub fn advanced(&mut self) {
        self.step += 1;
    }

    /// The runs of `batch` that still have steps to take: what a [`VideoModel::step`]
    /// advances (a finished run is left as it is).
    pub fn unfinished<'a>(batch: &'a mut [&mut SceneRun]) -> Vec<&'a mut SceneRun> {
        batch
            .iter_mut()
            .map(|r| &mut **r)
            .filter(|r| !r.done())
            .collect()
    }

    /// The model's state. Panics if another model's kind of state is in it: only the model
    /// that started a run may touch it, which the engine keeps to (one model per engine).
    pub fn state<S: Any>(&self) -> &S {
        self.state
            .downcast_ref()
            .expect("a scene run handed to a model that did not start it")
    }

    /// [`SceneRun::state`], mutable.
    pub fn state_mut<S: Any>(&mut self) -> &mut S {
        self.state
            .downcast_mut()
            .expect("a scene run handed to a model that did not start it")
    }
}

/// A text-to-video model as the engine drives it. Every method may be called from any
/// thread; work inside runs on rayon's global pool.
pub trait VideoModel: Send + Sync {
    /// What the model is and what its requests take (the API validates against it).
    fn spec(&self) -> &ModelSpec;

    /// The model in words and figures for logs and `/readyz`: name, components, sizes.
    fn describe(&self) -> serde_json::Value;

    /// Where its math runs, in words.
    fn backend_name(&self) -> String;

    /// A new scene: its condition, initial noise and sampler. Errors are the request's
    /// (a caption the model cannot read, a shape it cannot make).
    fn start(&self, scene: &SceneRequest<'_>) -> Result<SceneRun, KernelError>;

    /// Advances every unfinished run of `batch` by one sampler step; runs whose latent shapes
    /// agree share one batched forward pass. Finished runs are left as they are.
    fn step(&self, batch: &mut [&mut SceneRun]);

    /// One frame (the middle one) of the model's current estimate of the scene's clean
    /// frames, cheap enough to show mid-run; `None` before the first step.
    fn preview(&self, run: &SceneRun) -> Option<Clip>;

    /// The run's current latent (after its last step: the finished scene), as plain data
    /// that [`VideoModel::decode`] takes, in this process or another serving the same model.
    fn latent(&self, run: &SceneRun) -> Latent;

    /// A finished scene's frames, made from its [`Latent`] and handed to `sink` in order,
    /// piece by piece as they are decoded; decoding stops early when `sink` returns false
    /// (the task ended). A latent of another model's shape decodes to nothing.
    fn decode(&self, latent: &Latent, sink: &mut dyn FnMut(Clip) -> bool);
}
