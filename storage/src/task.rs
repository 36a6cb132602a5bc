//! The persisted shape of a task: what was asked, where it stands, what it produced.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use contract::TaskStatus;

/// The validated parameters of a task, every default filled in (the API does that).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskParams {
    /// The prompt, English or Simplified Chinese.
    pub prompt: String,
    /// Scenes of the video.
    pub num_scenes: usize,
    /// Seed of the plan's guesses and of the sampling noise.
    pub seed: u64,
    /// Denoising steps per scene.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f32,
    /// Duration of each scene.
    pub seconds_per_scene: f32,
    /// Delivered frames per second.
    pub fps: u32,
    /// Delivered frame side in pixels (square frames) of the built-in model.
    pub size: u32,
    /// What a free-form model (Wan2.1) is asked for: frame size, frame count, negative
    /// prompt, scheduler. `None` for the built-in model (and in records from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_form: Option<FreeForm>,
}

/// A free-form model's scene shape and conditioning, every default filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FreeForm {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per scene.
    pub num_frames: usize,
    /// What guidance steers away from (empty: the unconditioned prompt).
    pub negative_prompt: String,
    /// The sampler, one of the model's ([`contract::FreeFormSpec::schedulers`]).
    pub scheduler: String,
}

/// A request as a client names it, every field but the prompt optional: the HTTP API and the
/// command line fill one in, and [`TaskRequest::resolve`] turns it into [`TaskParams`] for the
/// served model, its defaults filled in and its rules checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskRequest {
    /// The prompt.
    pub prompt: String,
    /// Scenes (default 3 for the built-in model, 1 for a free-form one).
    pub num_scenes: Option<usize>,
    /// Seed (drawn at random when `None`).
    pub seed: Option<u64>,
    /// Denoising steps per scene.
    pub steps: Option<usize>,
    /// Guidance scale.
    pub guidance: Option<f32>,
    /// Built-in model: seconds per scene.
    pub seconds_per_scene: Option<f32>,
    /// Frames per second of the video.
    pub fps: Option<u32>,
    /// Built-in model: the square frame side.
    pub size: Option<u32>,
    /// Free-form model: frame width.
    pub width: Option<u32>,
    /// Free-form model: frame height.
    pub height: Option<u32>,
    /// Free-form model: frames per scene.
    pub num_frames: Option<usize>,
    /// Free-form model: what guidance steers away from.
    pub negative_prompt: Option<String>,
    /// Free-form model: the sampler.
    pub scheduler: Option<String>,
}

impl TaskRequest {
    /// The task's parameters for `model`: defaults filled in (a missing seed from `seed`),
    /// then checked ([`TaskParams::validate_for`]). A field the model does not take is an
    /// error naming it. The prompt is checked as sent and stored trimmed.
    pub fn resolve(
        self,
        model: &contract::ModelSpec,
        seed: impl FnOnce() -> u64,
    ) -> Result<TaskParams, String> {
        let free_form = match &model.free_form {
            None => {
                let named = [
                    ("width", self.width.is_some()),
                    ("height", self.height.is_some()),
                    ("num_frames", self.num_frames.is_some()),
                    ("negative_prompt", self.negative_prompt.is_some()),
                    ("scheduler", self.scheduler.is_some()),
                ];
                if let Some((name, _)) = named.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "{name} is for free-form models; the served model ({}) takes size, \
                         seconds_per_scene and fps",
                        model.id
                    ));
                }
                None
            }
            Some(spec) => {
                for (name, set, instead) in [
                    ("size", self.size.is_some(), "width and height"),
                    (
                        "seconds_per_scene",
                        self.seconds_per_scene.is_some(),
                        "num_frames",
                    ),
                ] {
                    if set {
                        return Err(format!(
                            "{name} is for the built-in model; the served model ({}) is \
                             free-form: it takes {instead}",
                            model.id
                        ));
                    }
                }
                Some(FreeForm {
                    width: self.width.unwrap_or(spec.width),
                    height: self.height.unwrap_or(spec.height),
                    num_frames: self.num_frames.unwrap_or(spec.num_frames),
                    negative_prompt: self.negative_prompt.unwrap_or_default(),
                    scheduler: self
                        .scheduler
                        .or_else(|| spec.schedulers.first().cloned())
                        .unwrap_or_default(),
                })
            }
        };
        let spec = model.free_form.as_ref();
        let mut params = TaskParams {
            prompt: self.prompt,
            num_scenes: self.num_scenes.unwrap_or(if spec.is_some() {
                1
            } else {
                TaskParams::DEFAULT_NUM_SCENES
            }),
            seed: self.seed.unwrap_or_else(seed),
            steps: self
                .steps
                .unwrap_or(spec.map_or(TaskParams::DEFAULT_STEPS, |s| s.steps)),
            guidance: self
                .guidance
                .unwrap_or(spec.map_or(TaskParams::DEFAULT_GUIDANCE, |s| s.guidance)),
            seconds_per_scene: self
                .seconds_per_scene
                .unwrap_or(TaskParams::DEFAULT_SECONDS_PER_SCENE),
            fps: self
                .fps
                .unwrap_or(spec.map_or(TaskParams::DEFAULT_FPS, |s| s.fps)),
            size: self.size.unwrap_or(TaskParams::DEFAULT_SIZE),
            free_form,
        };
        params.validate_for(model)?;
        params.prompt = params.prompt.trim().to_owned();
        Ok(params)
    }
}

/// The directory of task `id`'s files, relative to the data dir: `frames/` (one PNG per
/// delivered frame, named by [`frame_file`], written as they are made) and `video.mp4`.
pub fn task_dir(id: u64) -> String {
    format!("artifacts/{id}")
}

/// `data_dir/rel` when `rel` is a plain relative path (no `..`, no root): records never name
/// files outside the data dir, so nothing reads or deletes any.
pub fn inside(data_dir: &Path, rel: impl AsRef<Path>) -> Option<PathBuf> {
    let p = rel.as_ref();
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !p.as_os_str().is_empty()).then(|| data_dir.join(p))
}

/// The file name of delivered frame `n` inside a frames directory.
pub fn frame_file(n: usize) -> String {
    format!("{n:05}.png")
}

/// Where a finished task's files are, relative to the data dir.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The MP4.
    pub video: String,
    /// The directory of the delivered frames as PNG.
    pub frames_dir: String,
    /// Frames in the video.
    pub frame_count: usize,
    /// Size of the MP4.
    pub video_bytes: u64,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

/// One task as stored in sled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Creation order, from 1.
    pub id: u64,
    /// Where it stands.
    pub status: TaskStatus,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Time of the last change, Unix milliseconds.
    pub updated_ms: u64,
    /// What was asked.
    pub params: TaskParams,
    /// The scene plan (pipeline::plan::Plan as JSON) once planned.
    pub plan: Option<serde_json::Value>,
    /// Finished scenes so far (progress within a scene lives in the engine's memory).
    pub scenes_done: usize,
    /// Milliseconds per stage: plan, queue, denoise, post_process, encode, total.
    pub timings_ms: BTreeMap<String, u64>,
    /// Whether the result came from the result cache (an earlier task's artifact).
    pub cached: bool,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Its files, once completed.
    pub artifact: Option<Artifact>,
    /// Id of the API key that created the task; `None` when made without keys (open mode,
    /// the command line). Records from before keys existed read as `None`.
    #[serde(default)]
    pub owner: Option<String>,
    /// Scheduling priority, higher first (see [`TaskParams::PRIORITY`]).
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Where to tell of the task's progress, if anywhere.
    #[serde(default)]
    pub webhook: Option<Webhook>,
}

/// A task's webhook: a URL and the events it wants (as Cog's `webhook` and
/// `webhook_events_filter`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// An http or https URL.
    pub url: String,
    /// Which events are delivered.
    pub events: Vec<WebhookEvent>,
}

/// What a webhook delivery tells of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// Work began (planning).
    Start,
    /// A stage began (generating, post-processing, encoding).
    Progress,
    /// The task ended without error: completed, or cancelled.
    Completed,
    /// The task failed.
    Failed,
}

impl WebhookEvent {
    /// Every event, the default filter.
    pub const ALL: &'static [WebhookEvent] = &[
        WebhookEvent::Start,
        WebhookEvent::Progress,
        WebhookEvent::Completed,
        WebhookEvent::Failed,
    ];

    /// The event a move to `status` is, if any (back to queued, after a restart, is none).
    pub fn of(status: TaskStatus) -> Option<WebhookEvent> {
        match status {
            TaskStatus::Queued => None,
            TaskStatus::Planning => Some(WebhookEvent::Start),
            TaskStatus::Generating | TaskStatus::PostProcessing | TaskStatus::Encoding => {
                Some(WebhookEvent::Progress)
            }
            TaskStatus::Completed | TaskStatus::Cancelled => Some(WebhookEvent::Completed),
            TaskStatus::Failed => Some(WebhookEvent::Failed),
        }
    }

    /// The snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            WebhookEvent::Start => "start",
            WebhookEvent::Progress => "progress",
            WebhookEvent::Completed => "completed",
            WebhookEvent::Failed => "failed",
        }
    }

    /// The event with this name.
    pub fn parse(s: &str) -> Option<WebhookEvent> {
        WebhookEvent::ALL.iter().copied().find(|e| e.name() == s)
    }
}

fn default_priority() -> u8 {
    TaskParams::DEFAULT_PRIORITY
}

/// Who asks for a new task and how urgently; the rest of a record starts empty.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The validated request.
    pub params: TaskParams,
    /// The creating key's id (`None` without keys).
    pub owner: Option<String>,
    /// Scheduling priority, higher first.
    pub priority: u8,
    /// Where to tell of its progress.
    pub webhook: Option<Webhook>,
}

impl NewTask {
    /// A task with no owner and no webhook at the default priority (the command line, tests).
    pub fn anonymous(params: TaskParams) -> NewTask {
        NewTask {
            params,
            owner: None,
            priority: TaskParams::DEFAULT_PRIORITY,
            webhook: None,
        }
    }
}

impl TaskParams {
    /// Default scene count.
    pub const DEFAULT_NUM_SCENES: usize = 3;
    /// Default denoising steps.
    pub const DEFAULT_STEPS: usize = 20;
    /// Default guidance scale.
    pub const DEFAULT_GUIDANCE: f32 = 4.0;
    /// Default scene duration.
    pub const DEFAULT_SECONDS_PER_SCENE: f32 = 2.0;
    /// Default frame rate.
    pub const DEFAULT_FPS: u32 = 24;
    /// Default frame side.
    pub const DEFAULT_SIZE: u32 = 256;

    /// Accepted ranges, shared by the HTTP API and the command line.
    pub const PROMPT_MAX_CHARS: usize = 2000;
    /// The characters a prompt is trimmed of: Unicode White_Space, what `str::trim` removes,
    /// as inclusive ranges. A prompt of nothing else is empty.
    pub const PROMPT_BLANKS: &'static [(char, char)] = &[
        ('\u{9}', '\u{d}'),
        (' ', ' '),
        ('\u{85}', '\u{85}'),
        ('\u{a0}', '\u{a0}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{2000}', '\u{200a}'),
        ('\u{2028}', '\u{2029}'),
        ('\u{202f}', '\u{202f}'),
        ('\u{205f}', '\u{205f}'),
        ('\u{3000}', '\u{3000}'),
    ];
    /// Accepted scene counts, inclusive.
    pub const NUM_SCENES: (usize, usize) = (1, 8);
    /// Accepted step counts, inclusive.
    pub const STEPS: (usize, usize) = (1, 100);
    /// Accepted guidance scales, inclusive.
    pub const GUIDANCE: (f32, f32) = (0.0, 20.0);
    /// Accepted scene durations, inclusive.
    pub const SECONDS_PER_SCENE: (f32, f32) = (0.5, 10.0);
    /// Accepted frame rates, inclusive.
    pub const FPS: (u32, u32) = (1, 60);
    /// Accepted frame sides, inclusive (also a multiple of 16).
    pub const SIZE: (u32, u32) = (64, 512);
    /// `size` must be a multiple of this (the model's cells and the encoder's macroblocks).
    pub const SIZE_MULTIPLE: u32 = 16;
    /// Scheduling priorities, higher first; a request or a key may set one.
    pub const PRIORITY: (u8, u8) = (0, 9);
    /// The priority of a request that names none, under a key that names none.
    pub const DEFAULT_PRIORITY: u8 = 5;

    /// A regular expression (JSON Schema's dialect; Python's reads it the same) that a
    /// prompt matches when it is not empty once trimmed: one character outside
    /// [`TaskParams::PROMPT_BLANKS`]. The API's schema publishes it, so that generated clients
    /// and fuzzers know which prompts are blank.
    pub fn prompt_pattern() -> String {
        let ranges: String = Self::PROMPT_BLANKS
            .iter()
            .map(|&(lo, hi)| {
                let (lo, hi) = (lo as u32, hi as u32);
                if lo == hi {
                    format!("\\u{lo:04x}")
                } else {
                    format!("\\u{lo:04x}-\\u{hi:04x}")
                }
            })
            .collect();
        format!("[^{ranges}]")
    }

    /// Accepted free-form frame widths and heights, inclusive (also multiples of the
    /// model's `width_multiple` and `height_multiple`).
    pub const FREE_FORM_SIDE: (u32, u32) = (16, 1280);
    /// Accepted free-form frame counts per scene, inclusive (also `1 + k * frame_multiple`).
    pub const NUM_FRAMES: (usize, usize) = (1, 161);

    /// Frames the task delivers per scene: a free-form model's `num_frames`, else the
    /// scene's duration at its rate (at least 2).
    pub fn frames_per_scene(&self) -> usize {
        match &self.free_form {
            Some(f) => f.num_frames,
            None => ((self.seconds_per_scene * self.fps as f32).round() as usize).max(2),
        }
    }

    /// Delivered frame width and height.
    pub fn frame_size(&self) -> (u32, u32) {
        match &self.free_form {
            Some(f) => (f.width, f.height),
            None => (self.size, self.size),
        }
    }

    /// Pixels the task delivers in all (frames x width x height), what a task budget caps.
    pub fn total_pixels(&self) -> u64 {
        let (w, h) = self.frame_size();
        (self.num_scenes * self.frames_per_scene()) as u64 * u64::from(w) * u64::from(h)
    }

    /// [`TaskParams::validate`], then the rules of the model that will run the task: a
    /// free-form model's requests carry [`FreeForm`] fields within its rules, the built-in
    /// model's none. The message names the field and the rule.
    pub fn validate_for(&self, model: &contract::ModelSpec) -> Result<(), String> {
        self.validate()?;
        match (&self.free_form, &model.free_form) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(format!(
                "width, height, num_frames, negative_prompt and scheduler are for free-form \
                 models; the served model ({}) takes size, seconds_per_scene and fps",
                model.id
            )),
            (None, Some(_)) => Err(format!(
                "the served model ({}) is free-form: it takes width, height and num_frames",
                model.id
            )),
            (Some(f), Some(spec)) => {
                for (name, v, m) in [
                    ("width", f.width, spec.width_multiple.max(1)),
                    ("height", f.height, spec.height_multiple.max(1)),
                ] {
                    if !v.is_multiple_of(m) {
                        return Err(format!("{name} must be a multiple of {m}, got {v}"));
                    }
                }
                let k = spec.frame_multiple.max(1);
                if !(f.num_frames - 1).is_multiple_of(k) {
                    return Err(format!(
                        "num_frames must be 1 more than a multiple of {k} (1, {}, {}, ...), got {}",
                        1 + k,
                        1 + 2 * k,
                        f.num_frames
                    ));
                }
                if !spec.schedulers.contains(&f.scheduler) {
                    return Err(format!(
                        "scheduler must be one of {}, got {:?}",
                        spec.schedulers.join(", "),
                        f.scheduler
                    ));
                }
                Ok(())
            }
        }
    }

    /// Checks every field against its range; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        fn within<T: PartialOrd + std::fmt::Display>(
            name: &str,
            v: T,
            (lo, hi): (T, T),
        ) -> Result<(), String> {
            if v >= lo && v <= hi {
                Ok(())
            } else {
                Err(format!("{name} must be between {lo} and {hi}, got {v}"))
            }
        }
        if self.prompt.trim().is_empty() {
            return Err("prompt must not be empty".into());
        }
        // Counted before trimming, as the schema's maxLength counts.
        within(
            "prompt length",
            self.prompt.chars().count(),
            (1, Self::PROMPT_MAX_CHARS),
        )?;
        within("num_scenes", self.num_scenes, Self::NUM_SCENES)?;
        within("steps", self.steps, Self::STEPS)?;
        within("guidance", self.guidance, Self::GUIDANCE)?;
        within(
            "seconds_per_scene",
            self.seconds_per_scene,
            Self::SECONDS_PER_SCENE,
        )?;
        within("fps", self.fps, Self::FPS)?;
        within("size", self.size, Self::SIZE)?;
        if !self.size.is_multiple_of(Self::SIZE_MULTIPLE) {
            return Err(format!(
                "size must be a multiple of {}, got {}",
                Self::SIZE_MULTIPLE,
                self.size
            ));
        }
        if let Some(f) = &self.free_form {
            within("width", f.width, Self::FREE_FORM_SIDE)?;
            within("height", f.height, Self::FREE_FORM_SIDE)?;
            within("num_frames", f.num_frames, Self::NUM_FRAMES)?;
            within(
                "negative_prompt length",
                f.negative_prompt.chars().count(),
                (0, Self::PROMPT_MAX_CHARS),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{TaskParams, TaskRequest};

    fn builtin() -> contract::ModelSpec {
        contract::ModelSpec {
            id: "reel-test".into(),
            kind: contract::ModelKind::Builtin,
            parameters: 1,
            weight_bytes: 4,
            free_form: None,
        }
    }

    fn wan() -> contract::ModelSpec {
        contract::ModelSpec {
            id: "wan2.1-test".into(),
            kind: contract::ModelKind::FreeForm,
            free_form: Some(contract::FreeFormSpec {
                width: 48,
                height: 32,
                num_frames: 9,
                fps: 16,
                steps: 50,
                guidance: 5.0,
                width_multiple: 24,
                height_multiple: 16,
                frame_multiple: 4,
                schedulers: vec!["unipc".into(), "euler".into()],
            }),
            ..builtin()
        }
    }

    fn ask(prompt: &str) -> TaskRequest {
        TaskRequest {
            prompt: prompt.into(),
            ..TaskRequest::default()
        }
    }

    #[test]
    fn requests_take_the_served_models_defaults() {
        let p = ask(" a fox ").resolve(&builtin(), || 9).unwrap();
        assert_eq!((p.prompt.as_str(), p.num_scenes, p.seed), ("a fox", 3, 9));
        assert_eq!((p.steps, p.size, p.free_form), (20, 256, None));
        let p = ask("a fox").resolve(&wan(), || 9).unwrap();
        assert_eq!((p.num_scenes, p.steps, p.guidance, p.fps), (1, 50, 5.0, 16));
        let f = p.free_form.clone().unwrap();
        assert_eq!((f.width, f.height, f.num_frames), (48, 32, 9));
        assert_eq!(
            (f.scheduler.as_str(), f.negative_prompt.as_str()),
            ("unipc", "")
        );
        assert_eq!(p.frames_per_scene(), 9);
        assert_eq!(p.frame_size(), (48, 32));
        assert_eq!(p.total_pixels(), 9 * 48 * 32);
    }

    #[test]
    fn requests_break_the_served_models_rules_with_a_reason() {
        let err = |r: TaskRequest, m: &contract::ModelSpec| r.resolve(m, || 1).unwrap_err();
        let e = err(
            TaskRequest {
                width: Some(48),
                ..ask("x")
            },
            &builtin(),
        );
        assert!(e.starts_with("width is for free-form models"), "{e}");
        let e = err(
            TaskRequest {
                size: Some(64),
                ..ask("x")
            },
            &wan(),
        );
        assert!(e.contains("takes width and height"), "{e}");
        let e = err(
            TaskRequest {
                seconds_per_scene: Some(1.0),
                ..ask("x")
            },
            &wan(),
        );
        assert!(e.contains("takes num_frames"), "{e}");
        let e = err(
            TaskRequest {
                width: Some(40),
                ..ask("x")
            },
            &wan(),
        );
        assert_eq!(e, "width must be a multiple of 24, got 40");
        let e = err(
            TaskRequest {
                height: Some(40),
                ..ask("x")
            },
            &wan(),
        );
        assert_eq!(e, "height must be a multiple of 16, got 40");
        let e = err(
            TaskRequest {
                num_frames: Some(8),
                ..ask("x")
            },
            &wan(),
        );
        assert_eq!(
            e,
            "num_frames must be 1 more than a multiple of 4 (1, 5, 9, ...), got 8"
        );
        let e = err(
            TaskRequest {
                num_frames: Some(0),
                ..ask("x")
            },
            &wan(),
        );
        assert!(e.starts_with("num_frames must be between 1 and 161"), "{e}");
        let e = err(
            TaskRequest {
                width: Some(2400),
                ..ask("x")
            },
            &wan(),
        );
        assert!(e.starts_with("width must be between 16 and 1280"), "{e}");
        let e = err(
            TaskRequest {
                scheduler: Some("ddim".into()),
                ..ask("x")
            },
            &wan(),
        );
        assert_eq!(e, "scheduler must be one of unipc, euler, got \"ddim\"");
        let long = "n".repeat(TaskParams::PROMPT_MAX_CHARS + 1);
        let e = err(
            TaskRequest {
                negative_prompt: Some(long),
                ..ask("x")
            },
            &wan(),
        );
        assert!(e.starts_with("negative_prompt length"), "{e}");
        let ok = TaskRequest {
            num_frames: Some(1),
            scheduler: Some("euler".into()),
            ..ask("x")
        };
        assert!(ok.resolve(&wan(), || 1).is_ok());
    }

    #[test]
    fn prompt_blanks_are_exactly_what_trim_removes() {
        let blank = |c: char| {
            TaskParams::PROMPT_BLANKS
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&c))
        };
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(blank(c), c.is_whitespace(), "U+{:04X}", c as u32);
        }
        assert!(TaskParams::prompt_pattern().starts_with(r"[^\u0009-\u000d\u0020\u0085"));
    }
}
