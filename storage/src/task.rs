//! The persisted shape of a task: what was asked, where it stands, what it produced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle of a task. `Completed`, `Failed` and `Cancelled` are final.
/// Ordered by lifecycle stage (declaration order), which keys `Store::counts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Queued,
    Planning,
    Generating,
    PostProcessing,
    Encoding,
    Completed,
    Failed,
    Cancelled,
}

impl TaskStatus {
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

    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

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

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.iter().copied().find(|t| t.name() == s)
    }
}

/// The validated parameters of a task, every default filled in (the API does that).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskParams {
    pub prompt: String,
    pub num_scenes: usize,
    pub seed: u64,
    pub steps: usize,
    pub guidance: f32,
    pub seconds_per_scene: f32,
    pub fps: u32,
    /// Delivered frame side in pixels (square frames).
    pub size: u32,
}

/// Where a finished task's files are, relative to the data dir.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub video: String,
    pub frames_dir: String,
    pub frame_count: usize,
    pub video_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One task as stored in sled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: u64,
    pub status: TaskStatus,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub params: TaskParams,
    /// The scene plan (pipeline::plan::Plan as JSON) once planned.
    pub plan: Option<serde_json::Value>,
    /// Finished scenes so far (progress within a scene lives in the engine's memory).
    pub scenes_done: usize,
    /// Milliseconds per stage: plan, queue, denoise, post_process, encode, total.
    pub timings_ms: BTreeMap<String, u64>,
    pub cached: bool,
    pub error: Option<String>,
    pub artifact: Option<Artifact>,
}

impl TaskParams {
    pub const DEFAULT_NUM_SCENES: usize = 3;
    pub const DEFAULT_STEPS: usize = 20;
    pub const DEFAULT_GUIDANCE: f32 = 4.0;
    pub const DEFAULT_SECONDS_PER_SCENE: f32 = 2.0;
    pub const DEFAULT_FPS: u32 = 24;
    pub const DEFAULT_SIZE: u32 = 256;

    /// Accepted ranges, shared by the HTTP API and the command line.
    pub const PROMPT_MAX_CHARS: usize = 2000;
    pub const NUM_SCENES: (usize, usize) = (1, 8);
    pub const STEPS: (usize, usize) = (1, 100);
    pub const GUIDANCE: (f32, f32) = (0.0, 20.0);
    pub const SECONDS_PER_SCENE: (f32, f32) = (0.5, 10.0);
    pub const FPS: (u32, u32) = (1, 60);
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
