//! What the served model accepts: the API validates requests against it and `/readyz` shows
//! it; the engine's model (`kernels::VideoModel`) describes itself with it.

use serde::Serialize;

/// How a model is asked for video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// reel's built-in model: captions of `shared/WORLD.md`'s scenes, square frames of a
    /// fixed base size that post-processing upscales and interpolates to the request's `size`,
    /// `seconds_per_scene` and `fps`.
    Builtin,
    /// A free-form text-to-video model (Wan2.1): any scene prompt, frames made at the
    /// request's `width` x `height` and `num_frames`, delivered as they are.
    FreeForm,
}

/// The defaults and rules of a free-form model's requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FreeFormSpec {
    /// Frame width when a request names none.
    pub width: u32,
    /// Frame height when a request names none.
    pub height: u32,
    /// Frames per scene when a request names none.
    pub num_frames: usize,
    /// Frames per second of the video (the model's own rate) when a request names none.
    pub fps: u32,
    /// Denoising steps when a request names none.
    pub steps: usize,
    /// Guidance scale when a request names none.
    pub guidance: f32,
    /// Width must be a multiple of this (the VAE's scale times the patch's).
    pub width_multiple: u32,
    /// Height must be a multiple of this.
    pub height_multiple: u32,
    /// `num_frames` must be `1 + k * frame_multiple` (the VAE's time scale).
    pub frame_multiple: usize,
    /// The schedulers a request may name; the first is the checkpoint's own.
    pub schedulers: Vec<String>,
}

/// The model being served, as the API and clients see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelSpec {
    /// Its id: changes with its weights (cache keys carry it).
    pub id: String,
    /// How requests ask it for video.
    pub kind: ModelKind,
    /// Parameters in all (every component).
    pub parameters: u64,
    /// Bytes of its weights as stored.
    pub weight_bytes: u64,
    /// For a free-form model, its request defaults and rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_form: Option<FreeFormSpec>,
}

impl ModelSpec {
    /// Whether requests name free-form scenes (width, height, num_frames...).
    pub fn is_free_form(&self) -> bool {
        self.kind == ModelKind::FreeForm
    }
}
