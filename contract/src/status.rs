//! A task's lifecycle and the one table of its legal transitions.

use serde::{Deserialize, Serialize};

/// Lifecycle of a task. `Completed`, `Failed` and `Cancelled` are final.
/// Ordered by lifecycle stage (declaration order), which keys per-status counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted, waiting for the engine.
    Queued,
    /// The prompt is being planned into scenes.
    Planning,
    /// Scenes are being denoised.
    Generating,
    /// Frames are being upscaled, interpolated and stored.
    PostProcessing,
    /// The MP4 is being written.
    Encoding,
    /// The video is ready.
    Completed,
    /// It ended with an error (see the task's `error`).
    Failed,
    /// A client cancelled it.
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

    /// Completed, failed or cancelled: nothing leaves these.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// The transition table. Forward one stage at a time (planning may complete at once from
    /// the result cache); failed or cancelled from any live status; back to queued from a
    /// live stage only when the engine takes a task again (a restart); nothing leaves a final
    /// status, and no status "becomes" itself.
    pub fn can_become(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        if self.is_final() {
            return false;
        }
        matches!(
            (self, to),
            (Queued, Planning)
                | (Planning, Generating)
                | (Planning, Completed)
                | (Generating, PostProcessing)
                | (PostProcessing, Encoding)
                | (Encoding, Completed)
                | (Planning | Generating | PostProcessing | Encoding, Queued)
                | (_, Failed)
                | (_, Cancelled)
        )
    }

    /// The snake_case name used in the API and the metrics.
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

    /// The status with this name.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.iter().copied().find(|t| t.name() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::TaskStatus::{self, *};

    #[test]
    fn the_table_allows_exactly_the_lifecycle() {
        let legal: &[(TaskStatus, TaskStatus)] = &[
            (Queued, Planning),
            (Planning, Generating),
            (Planning, Completed),
            (Generating, PostProcessing),
            (PostProcessing, Encoding),
            (Encoding, Completed),
            (Planning, Queued),
            (Generating, Queued),
            (PostProcessing, Queued),
            (Encoding, Queued),
        ];
        for &from in TaskStatus::ALL {
            for &to in TaskStatus::ALL {
                let expected = !from.is_final()
                    && (legal.contains(&(from, to)) || matches!(to, Failed | Cancelled));
                assert_eq!(from.can_become(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for &s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.name()), Some(s));
        }
        assert_eq!(TaskStatus::parse("done"), None);
    }
}
