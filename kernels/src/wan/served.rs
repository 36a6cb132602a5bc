//! [`WanModel`]: a Wan2.1 checkpoint served behind [`VideoModel`], what `reel serve --model
//! wan:DIR` runs.
//!
//! A scene: the prompt and the negative prompt are cleaned, tokenized (padded to 512 tokens,
//! as `WanPipeline`), encoded by umT5 and turned into the transformer's cross-attention keys
//! and values once each ([`WanTextContext`], kept in a small cache: the empty negative prompt
//! is shared by every task). The latent `[z, 1 + (F - 1) / 4, H / 8, W / 8]` starts as Philox
//! noise of (seed, scene), the same on every backend. Each step predicts the flow for the
//! prompt and, with guidance, for the negative prompt (the scenes of a step whose latent
//! shapes agree go through the transformer together), combines them and takes one sampler
//! step (the checkpoint's UniPC, or flow-matching Euler on request). The VAE decodes the
//! finished latent one latent frame at a time, each piece of frames handed on as it is made.
//! Previews decode the middle latent frame of the last step's clean estimate
//! (`x0 = x - sigma v`) on its own, as a first frame.
//!
//! Prompt cleaning: runs of whitespace become one space and the ends are trimmed, as the
//! pipeline's `whitespace_clean`; its `basic_clean` also unescapes HTML entities and, with
//! `ftfy` installed, repairs mojibake, which this does not.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use contract::{FreeFormSpec, ModelKind, ModelSpec};
use sha1::{Digest, Sha1};

use super::step_cache::StepCache;
use super::{
    prompt_embeds, Umt5Encoder, WanCheckpoint, WanInput, WanLoadError, WanSampler, WanScheduler,
    WanSummary, WanTextContext, WanTransformer, WanVaeDecoder,
};
use crate::error::KernelError;
use crate::philox;
use crate::reel::Clip;
use crate::video_model::{Latent, SceneRequest, SceneRun, VideoModel};

/// Tokens every prompt is padded (or cut) to, `WanPipeline`'s `max_sequence_length`.
pub const TEXT_LEN: usize = 512;

/// Prompts whose text contexts are kept; past it the cache starts afresh. Small: at 1.3B a
/// context is 30 blocks x 512 rows x 2 x 1536 floats, about 190 MB. It is there for the
/// negative prompt every task shares and for a task's scenes that repeat a prompt.
const CONTEXT_CACHE: usize = 4;

/// Wan2.1's request defaults (480p, 81 frames at 16 fps, 50 steps, guidance 5).
const DEFAULT_WIDTH: u32 = 832;
const DEFAULT_HEIGHT: u32 = 480;
const DEFAULT_FRAMES: usize = 81;
const DEFAULT_FPS: u32 = 16;
const DEFAULT_STEPS: usize = 50;
const DEFAULT_GUIDANCE: f32 = 5.0;

/// A Wan2.1 text-to-video pipeline loaded from a diffusers checkpoint, ready to serve.
///
/// One scene from the tiny random-weight checkpoint (`model/wan/tiny`; a real one is loaded
/// the same way), its frames taken as the VAE decodes them:
///
/// ```
/// use std::path::Path;
///
/// use kernels::wan::WanModel;
/// use kernels::{FreeFormScene, SceneRequest, VideoModel};
///
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/wan/tiny");
/// let model = WanModel::load(&dir)?;
/// let scene = SceneRequest {
///     caption: "A red fox runs through fresh snow",
///     seed: 7,
///     stream: 0,
///     steps: 4,
///     guidance: 5.0,
///     free_form: Some(FreeFormScene {
///         width: 48,
///         height: 32,
///         num_frames: 9,
///         negative_prompt: "",
///         scheduler: "unipc",
///     }),
/// };
/// let mut run = model.start(&scene)?;
/// while !run.done() {
///     // Scenes of any tasks can share a step; those of one latent shape, one forward pass.
///     model.step(&mut [&mut run]);
/// }
/// let mut pieces = Vec::new();
/// model.decode(&model.latent(&run), &mut |clip| {
///     pieces.push(clip.frames); // stored and streamed here, while the next is decoded
///     true
/// });
/// assert_eq!(pieces, [1, 4, 4]); // three latent frames: 1 + 4 + 4 = 9 frames
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WanModel {
    spec: ModelSpec,
    summary: WanSummary,
    tokenizer: tokenizers::Tokenizer,
    encoder: Umt5Encoder,
    transformer: WanTransformer,
    vae: WanVaeDecoder,
    /// The samplers a request may name, the checkpoint's first.
    schedulers: Vec<(String, WanScheduler)>,
    contexts: Mutex<HashMap<String, Arc<WanTextContext>>>,
    /// `--step-cache`: the threshold of step caching ([`super::step_cache`]); 0 is off.
    step_cache: f32,
    /// Transformer passes run and passes answered from the step cache.
    passes: [AtomicU64; 2],
}

/// One scene of a [`WanModel`] in a [`SceneRun`].
struct WanScene {
    /// `[C, F, H, W]` as `shape`.
    latents: Vec<f32>,
    shape: [usize; 4],
    sampler: WanSampler,
    timesteps: Vec<f32>,
    sigmas: Vec<f32>,
    prompt: Arc<WanTextContext>,
    negative: Arc<WanTextContext>,
    guidance: f32,
    /// The clean latent the last step's prediction implies, for previews.
    estimate: Option<Vec<f32>>,
    /// Step caching's memory of the prompt's passes and the negative prompt's.
    caches: [StepCache; 2],
}

impl std::fmt::Debug for WanModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WanModel")
            .field("id", &self.spec.id)
            .finish_non_exhaustive()
    }
}

impl WanModel {
    /// Opens, validates and loads the checkpoint in `dir` (see [`WanCheckpoint::open`]).
    pub fn load(dir: &Path) -> Result<WanModel, WanLoadError> {
        let ckpt = WanCheckpoint::open(dir)?;
        let encoder = Umt5Encoder::from_checkpoint(&ckpt)?;
        let transformer = WanTransformer::from_checkpoint(&ckpt)?;
        let vae = WanVaeDecoder::from_checkpoint(&ckpt)?;
        let summary = ckpt.describe();
        let id = checkpoint_id(&ckpt)?;
        let patch = ckpt.transformer_config().patch_size;
        let (s, t) = (vae.spatial_scale(), vae.temporal_scale());
        let (wm, hm) = ((s * patch[2]) as u32, (s * patch[1]) as u32);
        let schedulers = schedulers(ckpt.scheduler());
        let spec = ModelSpec {
            id,
            kind: ModelKind::FreeForm,
            parameters: summary
                .components
                .iter()
                .map(|c| c.weights.parameters)
                .sum(),
            weight_bytes: summary.components.iter().map(|c| c.weights.bytes).sum(),
            free_form: Some(FreeFormSpec {
                // The largest sizes within Wan2.1's 480p that this checkpoint's scales allow.
                width: (DEFAULT_WIDTH / wm).max(1) * wm,
                height: (DEFAULT_HEIGHT / hm).max(1) * hm,
                num_frames: 1 + (DEFAULT_FRAMES - 1) / (t * patch[0]) * (t * patch[0]),
                fps: DEFAULT_FPS,
                steps: DEFAULT_STEPS,
                guidance: DEFAULT_GUIDANCE,
                width_multiple: wm,
                height_multiple: hm,
                frame_multiple: t * patch[0],
                schedulers: schedulers.iter().map(|(n, _)| n.clone()).collect(),
            }),
        };
        Ok(WanModel {
            spec,
            summary,
            tokenizer: ckpt.tokenizer().clone(),
            encoder,
            transformer,
            vae,
            schedulers,
            contexts: Mutex::new(HashMap::new()),
            step_cache: 0.0,
            passes: Default::default(),
        })
    }

    /// Turns step caching on ([`super::step_cache`]): a transformer pass reuses the residual
    /// of the scene's last computed pass while its first-block modulated input has changed,
    /// summed over the passes since, by less than `threshold` (relative L1); a scene's first
    /// and last steps always compute. 0 turns it off (the default).
    pub fn with_step_cache(mut self, threshold: f32) -> WanModel {
        self.step_cache = threshold.max(0.0);
        self
    }

    /// Transformer passes run so far, and passes answered from the step cache instead.
    pub fn passes(&self) -> (u64, u64) {
        (
            self.passes[0].load(Ordering::Relaxed),
            self.passes[1].load(Ordering::Relaxed),
        )
    }

    /// [`predict`] with step caching: each scene's caches go with its passes (taken out of the
    /// scenes for the call and put back).
    fn predict_cached(&self, group: &mut [&mut SceneRun]) -> Vec<Vec<f32>> {
        let mut caches: Vec<[StepCache; 2]> = group
            .iter_mut()
            .map(|r| std::mem::take(&mut r.state_mut::<WanScene>().caches))
            .collect();
        let flows = {
            let scenes: Vec<(&WanScene, usize)> = group
                .iter()
                .map(|r| (r.state::<WanScene>(), r.step_index()))
                .collect();
            let mut items = Vec::new();
            let mut force = Vec::new();
            let mut refs: Vec<&mut StepCache> = Vec::new();
            for (&(s, step), cache) in scenes.iter().zip(caches.iter_mut()) {
                let edge = step == 0 || step + 1 == s.timesteps.len();
                let items_of = scene_items(s, step);
                force.extend(std::iter::repeat_n(edge, items_of.len()));
                refs.extend(cache.iter_mut().take(items_of.len()));
                items.extend(items_of);
            }
            let computed_before = refs.iter().map(|c| c.computed()).sum::<u64>();
            let out =
                self.transformer
                    .forward_batch_cached(&items, &mut refs, self.step_cache, &force);
            let computed = refs.iter().map(|c| c.computed()).sum::<u64>() - computed_before;
            self.passes[0].fetch_add(computed, Ordering::Relaxed);
            self.passes[1].fetch_add(items.len() as u64 - computed, Ordering::Relaxed);
            guided(&scenes, out)
        };
        for (r, c) in group.iter_mut().zip(caches) {
            r.state_mut::<WanScene>().caches = c;
        }
        flows
    }

    /// The checkpoint's summary (components, sizes, types).
    pub fn summary(&self) -> &WanSummary {
        &self.summary
    }

    /// [`VideoModel::start`] from the caller's initial latent (`[C, F, H, W]` of the scene's
    /// shape) instead of Philox noise: how the reference's own starting latents are fed in
    /// to check the whole served path against it.
    pub fn start_from(
        &self,
        scene: &SceneRequest<'_>,
        latents: Vec<f32>,
    ) -> Result<SceneRun, KernelError> {
        let bad = |m: String| Err(KernelError::InvalidArgument(m));
        let Some(f) = scene.free_form else {
            return bad("Wan2.1 needs width, height, num_frames and a scheduler".into());
        };
        let ff = self.spec.free_form.as_ref().expect("a free-form spec");
        let (wm, hm, k) = (
            ff.width_multiple as usize,
            ff.height_multiple as usize,
            ff.frame_multiple,
        );
        if f.width == 0
            || !f.width.is_multiple_of(wm)
            || f.height == 0
            || !f.height.is_multiple_of(hm)
        {
            return bad(format!(
                "{}x{} is not a multiple of {wm}x{hm} (width x height)",
                f.width, f.height
            ));
        }
        if f.num_frames == 0 || !(f.num_frames - 1).is_multiple_of(k) {
            return bad(format!("num_frames {} is not 1 + {k}k", f.num_frames));
        }
        if scene.steps == 0 {
            return bad("a scene needs at least one sampling step".into());
        }
        if !scene.guidance.is_finite() {
            return bad(format!(
                "guidance {} is not a finite number",
                scene.guidance
            ));
        }
        let Some((_, config)) = self.schedulers.iter().find(|(n, _)| n == f.scheduler) else {
            return bad(format!("unknown scheduler {:?}", f.scheduler));
        };
        let s = self.vae.spatial_scale();
        let shape = [
            self.vae.z_dim(),
            1 + (f.num_frames - 1) / self.vae.temporal_scale(),
            f.height / s,
            f.width / s,
        ];
        if latents.len() != shape.iter().product::<usize>() {
            return bad(format!("a starting latent of {shape:?} has the wrong size"));
        }
        let sampler = WanSampler::new(config, scene.steps);
        let prompt = self.context(scene.caption)?;
        let negative = self.context(f.negative_prompt)?;
        let state = WanScene {
            latents,
            shape,
            timesteps: sampler.timesteps(),
            sigmas: match &sampler {
                WanSampler::UniPc(u) => u.sigmas().to_vec(),
                WanSampler::FlowMatchEuler(e) => e.sigmas().to_vec(),
            },
            sampler,
            prompt,
            negative,
            guidance: scene.guidance,
            estimate: None,
            caches: Default::default(),
        };
        Ok(SceneRun::new(state, scene.steps, f.num_frames))
    }

    /// The latent shape `[C, F, H, W]` of a scene of `width` x `height` x `num_frames`.
    pub fn latent_shape(&self, width: usize, height: usize, num_frames: usize) -> [usize; 4] {
        let s = self.vae.spatial_scale();
        let frames = 1 + num_frames.saturating_sub(1) / self.vae.temporal_scale();
        [self.vae.z_dim(), frames, height / s, width / s]
    }

    /// The prompt's cross-attention context, from the cache or made (tokenize, umT5, the
    /// pipeline's zeroing of rows past the prompt, the transformer's text projections).
    fn context(&self, prompt: &str) -> Result<Arc<WanTextContext>, KernelError> {
        let clean = prompt.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(c) = lock(&self.contexts).get(&clean) {
            return Ok(c.clone());
        }
        let encoding = self
            .tokenizer
            .encode(clean.as_str(), true)
            .map_err(|e| KernelError::InvalidArgument(format!("cannot tokenize: {e}")))?;
        let mut ids: Vec<u32> = encoding.get_ids().to_vec();
        if ids.len() > TEXT_LEN {
            // Cut as the tokenizer's truncation does: the end-of-text token stays last.
            let eos = ids[ids.len() - 1];
            ids.truncate(TEXT_LEN - 1);
            ids.push(eos);
        }
        let mut mask = vec![1u32; ids.len()];
        ids.resize(TEXT_LEN, 0);
        mask.resize(TEXT_LEN, 0);
        let embeds = prompt_embeds(
            self.encoder.encode(&ids, &mask),
            self.encoder.d_model(),
            &mask,
        );
        let context = Arc::new(self.transformer.text_context(&embeds));
        let mut cache = lock(&self.contexts);
        if cache.len() >= CONTEXT_CACHE {
            cache.clear();
        }
        cache.insert(clean, context.clone());
        Ok(context)
    }

    /// Latent frame `f` of `latent` (`[C, F, H, W]` as `shape`) as `[C, H, W]`.
    fn latent_frame(latent: &[f32], shape: [usize; 4], f: usize) -> Vec<f32> {
        let [c, frames, h, w] = shape;
        let hw = h * w;
        (0..c)
            .flat_map(|ch| &latent[(ch * frames + f) * hw..][..hw])
            .copied()
            .collect()
    }

    /// Decoded values `[n, H, W, 3]` in `[-1, 1]` as a clip in `[0, 1]`.
    fn clip(&self, mut video: Vec<f32>, h: usize, w: usize) -> Clip {
        super::postprocess_video(&mut video);
        let (height, width) = (h * self.vae.spatial_scale(), w * self.vae.spatial_scale());
        Clip {
            frames: video.len() / (height * width * 3),
            width,
            height,
            data: video,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The samplers a request may name: the checkpoint's own first, then the other one, made
/// from its shift and training steps.
fn schedulers(own: &WanScheduler) -> Vec<(String, WanScheduler)> {
    let (train, shift) = match own {
        WanScheduler::UniPc(c) => (c.num_train_timesteps, c.flow_shift),
        WanScheduler::FlowMatchEuler(c) => (c.num_train_timesteps, c.shift),
    };
    let euler = serde_json::json!({
        "_class_name": "FlowMatchEulerDiscreteScheduler",
        "num_train_timesteps": train, "shift": shift,
    });
    let unipc = serde_json::json!({
        "_class_name": "UniPCMultistepScheduler",
        "num_train_timesteps": train, "flow_shift": shift, "prediction_type": "flow_prediction",
        "use_flow_sigmas": true, "solver_order": 2, "solver_type": "bh2",
        "lower_order_final": true, "predict_x0": true, "final_sigmas_type": "zero",
    });
    let other = |v: serde_json::Value| -> WanScheduler {
        serde_json::from_value(v).expect("a scheduler config of known fields")
    };
    match own {
        WanScheduler::UniPc(_) => vec![
            ("unipc".into(), own.clone()),
            ("euler".into(), other(euler)),
        ],
        WanScheduler::FlowMatchEuler(_) => vec![
            ("euler".into(), own.clone()),
            ("unipc".into(), other(unipc)),
        ],
    }
}

/// `wan2.1-` and 12 hex digits of a SHA-1 over every config, the tokenizer and each weights
/// file's length, header and last MiB: it changes when the checkpoint does (cached results
/// carry it) without reading gigabytes at start-up.
fn checkpoint_id(ckpt: &WanCheckpoint) -> Result<String, WanLoadError> {
    let mut hash = Sha1::new();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WanLoadError::Io { path, source }
    };
    let mut files = Vec::new();
    for sub in [
        "",
        "scheduler",
        "tokenizer",
        "text_encoder",
        "transformer",
        "vae",
    ] {
        let dir = ckpt.dir.join(sub);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        files.extend(names);
    }
    for path in files {
        let mut file = std::fs::File::open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        hash.update(
            path.strip_prefix(&ckpt.dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .as_bytes(),
        );
        hash.update(len.to_le_bytes());
        let mut head = vec![0u8; len.min(1 << 20) as usize];
        file.read_exact(&mut head).map_err(io(&path))?;
        hash.update(&head);
        if len > 2 << 20 {
            file.seek(SeekFrom::End(-(1 << 20))).map_err(io(&path))?;
            file.read_exact(&mut head).map_err(io(&path))?;
            hash.update(&head);
        }
    }
    let digest = hash.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("wan2.1-{hex}"))
}

impl VideoModel for WanModel {
    fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "name": "Wan2.1 text-to-video",
            "id": self.spec.id,
            "parameters": self.spec.parameters,
            "weight_bytes": self.spec.weight_bytes,
            "checkpoint": self.summary,
            "backend": self.backend_name(),
            "step_cache": self.step_cache,
        })
    }

    fn backend_name(&self) -> String {
        format!("cpu (f32 math, {} threads)", rayon::current_num_threads())
    }

    fn start(&self, scene: &SceneRequest<'_>) -> Result<SceneRun, KernelError> {
        let Some(f) = scene.free_form else {
            return Err(KernelError::InvalidArgument(
                "Wan2.1 needs width, height, num_frames and a scheduler".into(),
            ));
        };
        let shape = self.latent_shape(f.width, f.height, f.num_frames);
        let noise = philox::gaussian(scene.seed, scene.stream, shape.iter().product());
        self.start_from(scene, noise)
    }

    fn step(&self, batch: &mut [&mut SceneRun]) {
        let mut active = SceneRun::unfinished(batch);
        // Scenes whose latent shapes agree go through the transformer together.
        let mut shapes: Vec<[usize; 4]> =
            active.iter().map(|r| r.state::<WanScene>().shape).collect();
        shapes.sort();
        shapes.dedup();
        for shape in shapes {
            let mut group: Vec<&mut SceneRun> = active
                .iter_mut()
                .filter(|r| r.state::<WanScene>().shape == shape)
                .map(|r| &mut **r)
                .collect();
            let velocities = if self.step_cache > 0.0 {
                self.predict_cached(&mut group)
            } else {
                let scenes: Vec<(&WanScene, usize)> = group
                    .iter()
                    .map(|r| (r.state::<WanScene>(), r.step_index()))
                    .collect();
                let passes = scenes.iter().map(|(s, _)| branches(s)).sum::<usize>();
                self.passes[0].fetch_add(passes as u64, Ordering::Relaxed);
                predict(&self.transformer, &scenes)
            };
            for (run, v) in group.iter_mut().zip(velocities) {
                let i = run.step_index();
                let s = run.state_mut::<WanScene>();
                let sigma = s.sigmas[i];
                s.estimate = Some(
                    s.latents
                        .iter()
                        .zip(&v)
                        .map(|(x, v)| x - sigma * v)
                        .collect(),
                );
                s.latents = s.sampler.step(&v, &s.latents);
                run.advanced();
            }
        }
    }

    fn preview(&self, run: &SceneRun) -> Option<Clip> {
        let s = run.state::<WanScene>();
        let x0 = s.estimate.as_ref()?;
        let [_, frames, h, w] = s.shape;
        let mut state = self.vae.start(h, w);
        let latent = Self::latent_frame(x0, s.shape, frames / 2);
        Some(self.clip(self.vae.decode_frame(&mut state, &latent), h, w))
    }

    fn latent(&self, run: &SceneRun) -> Latent {
        let s = run.state::<WanScene>();
        Latent {
            shape: s.shape.to_vec(),
            data: s.latents.clone(),
        }
    }

    fn decode(&self, latent: &Latent, sink: &mut dyn FnMut(Clip) -> bool) {
        let Ok(shape) = <[usize; 4]>::try_from(latent.shape.as_slice()) else {
            return;
        };
        if !latent.is_whole() || shape[0] != self.vae.z_dim() {
            return;
        }
        let [_, frames, h, w] = shape;
        let mut state = self.vae.start(h, w);
        for f in 0..frames {
            let latent = Self::latent_frame(&latent.data, shape, f);
            let piece = self.clip(self.vae.decode_frame(&mut state, &latent), h, w);
            if !sink(piece) {
                return;
            }
        }
    }
}

/// The transformer passes a scene takes at `step`: the prompt's, and with guidance above 1
/// the negative prompt's.
fn scene_items(s: &WanScene, step: usize) -> Vec<WanInput<'_>> {
    let contexts = if s.guidance > 1.0 {
        vec![&*s.prompt, &*s.negative]
    } else {
        vec![&*s.prompt]
    };
    contexts
        .into_iter()
        .map(|context| WanInput {
            latent: &s.latents,
            shape: s.shape,
            timestep: s.timesteps[step],
            context,
        })
        .collect()
}

/// How many passes a scene takes per step.
fn branches(s: &WanScene) -> usize {
    if s.guidance > 1.0 {
        2
    } else {
        1
    }
}

/// Each scene's guided flow from its passes' predictions (in [`scene_items`] order):
/// `v_neg + g (v - v_neg)` with guidance above 1.
fn guided(scenes: &[(&WanScene, usize)], flows: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let mut flows = flows.into_iter();
    scenes
        .iter()
        .map(|&(s, _)| {
            let mut v = flows.next().expect("one flow per item");
            if s.guidance > 1.0 {
                let uncond = flows.next().expect("one flow per item");
                let g = s.guidance;
                for (c, u) in v.iter_mut().zip(uncond) {
                    *c = u + g * (*c - u);
                }
            }
            v
        })
        .collect()
}

/// The guided flow of each scene at its step (all of one latent shape): the
/// prompt's prediction and, with guidance above 1, the negative prompt's, combined as
/// `v_neg + g (v - v_neg)`. Every scene's prompt and negative prompt go through the
/// transformer as one batch, so its weights are read once per step for all of them.
fn predict(transformer: &WanTransformer, scenes: &[(&WanScene, usize)]) -> Vec<Vec<f32>> {
    let items: Vec<WanInput<'_>> = scenes
        .iter()
        .flat_map(|&(s, step)| scene_items(s, step))
        .collect();
    guided(scenes, transformer.forward_batch(&items))
}
