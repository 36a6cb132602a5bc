//! The built-in model as a [`VideoModel`]: its scenes are [`SceneState`]s, stepped together
//! in one batched pass (every scene has the model's one latent shape), decoded to the
//! model's base frames in one piece (post-processing then upscales and interpolates them).

use std::path::Path;

use contract::{ModelKind, ModelSpec};

use crate::error::KernelError;
use crate::reel::{Clip, Model};
use crate::scene::SceneState;
use crate::video_model::{Latent, SceneRequest, SceneRun, VideoModel};

/// The spec of the built-in model `id` whose weights file is `bytes` (read from `path`).
pub(crate) fn builtin_spec(id: &str, bytes: &[u8], path: &Path) -> Result<ModelSpec, KernelError> {
    let tensors = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| KernelError::Weights(format!("{}: {e}", path.display())))?;
    let parameters = tensors
        .tensors()
        .iter()
        .map(|(_, t)| t.shape().iter().product::<usize>() as u64)
        .sum();
    Ok(ModelSpec {
        id: id.to_string(),
        kind: ModelKind::Builtin,
        parameters,
        weight_bytes: bytes.len() as u64,
        free_form: None,
    })
}

impl VideoModel for Model {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn describe(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "name": "reel built-in",
            "id": self.spec.id,
            "parameters": self.spec.parameters,
            "weight_bytes": self.spec.weight_bytes,
            "frames": c.frames,
            "base_size": c.base_size,
            "backend": self.backend_name(),
            "resident_steps": self.resident_steps(),
        })
    }

    fn backend_name(&self) -> String {
        Model::backend_name(self)
    }

    fn start(&self, scene: &SceneRequest<'_>) -> Result<SceneRun, KernelError> {
        if scene.free_form.is_some() {
            return Err(KernelError::InvalidArgument(
                "the built-in model takes no width, height, num_frames, negative prompt or \
                 scheduler"
                    .into(),
            ));
        }
        let method = self.config.sampler.method;
        let state = Model::start(
            self,
            scene.caption,
            scene.seed,
            scene.stream,
            scene.steps,
            scene.guidance,
            method,
        )?;
        Ok(SceneRun::new(state, scene.steps, self.config.frames))
    }

    fn step(&self, batch: &mut [&mut SceneRun]) {
        let mut active = SceneRun::unfinished(batch);
        let mut states: Vec<&mut SceneState> = active
            .iter_mut()
            .map(|r| r.state_mut::<SceneState>())
            .collect();
        Model::step(self, &mut states);
        for r in active {
            r.advanced();
        }
    }

    fn preview(&self, run: &SceneRun) -> Option<Clip> {
        self.decode_estimate(run.state::<SceneState>(), self.config.frames / 2)
    }

    fn latent(&self, run: &SceneRun) -> Latent {
        let c = &self.config;
        let side = c.latent_size();
        Latent {
            shape: vec![c.frames, c.latent_channels, side, side],
            data: run.state::<SceneState>().latent().to_vec(),
        }
    }

    fn decode(&self, latent: &Latent, sink: &mut dyn FnMut(Clip) -> bool) {
        if let Some(clip) = self.decode_cells(&latent.data) {
            sink(clip);
        }
    }
}
