//! The persisted shape of a task: what was asked, where it stands, what it produced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle of a task. `Completed`, `Failed` and `Cancelled` are final.
/// Ordered by lifecycle stage (declaration order), which keys `Store::counts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Stored, waiting for the engine.
    Queued,
    /// Its prompt is being planned into scenes.
    Planning,
    /// Its scenes are being denoised.
    Generating,
    /// Its last scenes are being post-processed.
    PostProcessing,
    /// Its video is being encoded.
    Encoding,
    /// Done: the artifact is stored.
    Completed,
    /// Stopped by an error, which the record keeps.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: &'static [TaskStatus] = &[
        TaskStatus::Queued,
        TaskStatus::Planning,
        TaskStatus::Generating,
        TaskStatus::PostProcessing,
        TaskStatus::Encoding,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// Whether the task will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The status as the API spells it (`post_processing`, ...), also its serde form.
    pub fn name(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Planning => "planning",
            TaskStatus::Generating => "generating",
            TaskStatus::PostProcessing => "post_processing",
            TaskStatus::Encoding => "encoding",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `s` ([`TaskStatus::name`]), if any.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.iter().copied().find(|t| t.name() == s)
    }
}

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
    /// Delivered frame side in pixels (square frames).
    pub size: u32,
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
        let chars = self.prompt.trim().chars().count();
        if chars == 0 {
            return Err("prompt must not be empty".into());
        }
        within("prompt length", chars, (1, Self::PROMPT_MAX_CHARS))?;
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
        if !self.size.is_multiple_of(16) {
            return Err(format!("size must be a multiple of 16, got {}", self.size));
        }
        Ok(())
    }
}
