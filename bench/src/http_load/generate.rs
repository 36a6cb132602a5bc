//! The `generate` scenario: one task alone, then several submitted together, timed to their
//! first frame and their end.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::{post_task, PROMPT};
use crate::server::Server;

/// When one task was first seen with a frame and when it ended, from its submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRun {
    /// The task's id.
    pub id: u64,
    /// Its last status seen: `completed`, `failed` or `cancelled`, or an unfinished one if
    /// the deadline came first.
    pub status: String,
    /// Seconds from its group's submission to the first poll (about every 100 ms) that saw a frame
    /// ready; `None` if none did.
    pub first_frame_s: Option<f64>,
    /// Seconds from its group's submission to its last poll: the one that saw it final, or
    /// the last before the deadline.
    pub wall_s: f64,
}

/// The size of the tasks of a `generate` run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TaskShape {
    /// Scenes per task.
    pub scenes: usize,
    /// Denoising steps per scene.
    pub steps: usize,
}

/// Submits `k` tasks at once (distinct seeds from `seed0`) and polls them until each is final
/// or the deadline passes.
async fn run_tasks(
    http: &reqwest::Client,
    srv: &Server,
    shape: TaskShape,
    k: usize,
    seed0: u64,
    deadline: Instant,
) -> Result<Vec<TaskRun>> {
    let started = Instant::now();
    let mut runs = Vec::with_capacity(k);
    for i in 0..k {
        let body = json!({"prompt": PROMPT, "num_scenes": shape.scenes, "steps": shape.steps, "seed": seed0 + i as u64});
        runs.push(TaskRun {
            id: post_task(http, srv, &body).await?,
            status: "queued".into(),
            first_frame_s: None,
            wall_s: 0.0,
        });
    }
    let final_states = ["completed", "failed", "cancelled"];
    let running = |r: &TaskRun| !final_states.contains(&r.status.as_str());
    while Instant::now() < deadline && runs.iter().any(running) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for run in runs.iter_mut().filter(|r| running(r)) {
            let v: Value = http
                .get(srv.url(&format!("/api/tasks/{}", run.id)))
                .send()
                .await?
                .json()
                .await?;
            let now = started.elapsed().as_secs_f64();
            run.status = v["status"].as_str().unwrap_or("unknown").to_owned();
            if run.first_frame_s.is_none()
                && v["progress"]["frames_ready"].as_u64().unwrap_or(0) > 0
            {
                run.first_frame_s = Some(now);
            }
            run.wall_s = now;
        }
    }
    Ok(runs)
}

/// Tasks of one `generate` run: their makespan and scenes per second.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskGroup {
    /// Tasks submitted together.
    pub tasks: usize,
    /// Each task, in submission order.
    pub runs: Vec<TaskRun>,
    /// The makespan: the longest of the tasks' `wall_s`, in seconds.
    pub wall_s: f64,
    /// Scenes of the completed tasks per second of the makespan.
    pub scenes_per_s: f64,
    /// Whether every task completed.
    pub all_completed: bool,
}

impl TaskGroup {
    fn new(runs: Vec<TaskRun>, scenes: usize) -> TaskGroup {
        let wall_s = runs.iter().map(|r| r.wall_s).fold(0.0, f64::max);
        let done = runs.iter().filter(|r| r.status == "completed").count();
        TaskGroup {
            tasks: runs.len(),
            wall_s,
            scenes_per_s: (done * scenes) as f64 / wall_s.max(1e-9),
            all_completed: done == runs.len(),
            runs,
        }
    }

    /// Median time to the first frame of the group's tasks that produced one.
    pub fn first_frame_median_s(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.runs.iter().filter_map(|r| r.first_frame_s).collect();
        t.sort_by(f64::total_cmp);
        t.get(t.len() / 2).copied()
    }
}

/// Result of the `generate` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateResult {
    /// The size of every task of the run.
    pub shape: TaskShape,
    /// One task alone.
    pub single: TaskGroup,
    /// One group per concurrency asked for, in that order.
    pub concurrent: Vec<TaskGroup>,
}

impl GenerateResult {
    /// Scenes per second of `group` against the single task's.
    pub fn speedup(&self, group: &TaskGroup) -> f64 {
        if self.single.scenes_per_s > 0.0 {
            group.scenes_per_s / self.single.scenes_per_s
        } else {
            0.0
        }
    }
}

/// One task of `shape` alone, then, for each `k` of `concurrency`, `k` such tasks together.
/// Seeds count up from `seed0`, so that no task is a cache hit of another.
pub async fn generate(
    srv: &Server,
    shape: TaskShape,
    concurrency: &[usize],
    seed0: u64,
    deadline: Instant,
) -> Result<GenerateResult> {
    let http = reqwest::Client::new();
    let single = TaskGroup::new(
        run_tasks(&http, srv, shape, 1, seed0, deadline).await?,
        shape.scenes,
    );
    let mut seed = seed0 + 1;
    let mut concurrent = Vec::with_capacity(concurrency.len());
    for &k in concurrency {
        let runs = run_tasks(&http, srv, shape, k, seed, deadline).await?;
        seed += k as u64;
        concurrent.push(TaskGroup::new(runs, shape.scenes));
    }
    Ok(GenerateResult {
        shape,
        single,
        concurrent,
    })
}
