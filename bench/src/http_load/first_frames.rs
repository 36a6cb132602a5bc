//! The `first-frames` scenario: how soon a watcher sees something. Per task, over the
//! server's real socket, an SSE client (`GET /api/tasks/{id}/events`, opened right after the
//! POST) records the time from the POST to the first `preview` event, the first `frame` event
//! and `done`; the task's record then gives the server's own time spent on previews
//! (`timings_ms.preview`) against its total.
//!
//! Several servers ([`Variant`]s: a binary and its `serve` arguments, e.g. the old order
//! with `--scene-stagger=0 --previews=false`) run side by side; every round runs each cell
//! (scenes x concurrent tasks) on each variant in turn, the variants' order rotating from
//! round to round so a machine that drifts favours none. Figures are medians over rounds.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::PROMPT;
use crate::server::Server;

/// One server configuration to compare: `NAME=ARGS`, the arguments split on spaces; an
/// argument `--reel-bin=PATH` names the binary instead of being passed on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Variant {
    /// How the tables name it.
    pub name: String,
    /// Its binary; `None`: the scenario's default.
    pub bin: Option<PathBuf>,
    /// Arguments for `reel serve`.
    pub args: Vec<String>,
}

impl FromStr for Variant {
    type Err = String;

    fn from_str(s: &str) -> Result<Variant, String> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("a variant is NAME=ARGS, not {s:?}"))?;
        let mut bin = None;
        let mut args = Vec::new();
        for a in rest.split_whitespace() {
            match a.strip_prefix("--reel-bin=") {
                Some(p) => bin = Some(PathBuf::from(p)),
                None => args.push(a.to_owned()),
            }
        }
        Ok(Variant {
            name: name.to_owned(),
            bin,
            args,
        })
    }
}

/// The variants compared when none is given: main's order without previews, the staggered
/// order without previews, and the default server (staggered, previews on).
pub fn default_variants() -> Vec<Variant> {
    [
        "before=--scene-stagger=0 --previews=false",
        "stagger=--previews=false",
        "after=",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// What one `first-frames` run covers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FirstFramesConfig {
    /// Scenes per task, one cell each.
    pub scenes: Vec<usize>,
    /// Concurrent tasks, one cell each.
    pub tasks: Vec<usize>,
    /// Denoising steps per scene.
    pub steps: usize,
    /// Rounds; figures are medians over them.
    pub rounds: usize,
}

/// One task's times, in seconds from its POST.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskTimes {
    /// The task's id.
    pub id: u64,
    /// Its final status (`completed` unless something went wrong).
    pub status: String,
    /// The first `preview` event; `None` if there was none.
    pub first_preview_s: Option<f64>,
    /// The first `frame` event.
    pub first_frame_s: Option<f64>,
    /// The `done` event.
    pub done_s: f64,
    /// `preview` events received.
    pub previews: usize,
    /// Their PNGs' bytes in all (decoded from base64).
    pub preview_bytes: usize,
    /// The server's time on this task's previews (`timings_ms.preview`), ms.
    pub preview_ms: u64,
    /// The server's time for the whole task (`timings_ms.total`), ms.
    pub total_ms: u64,
}

/// One cell of one round on one variant: `tasks` tasks of `scenes` scenes posted together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellRun {
    /// The variant's name.
    pub variant: String,
    /// Scenes per task.
    pub scenes: usize,
    /// Tasks posted together.
    pub tasks: usize,
    /// Which round.
    pub round: usize,
    /// Each task, in posting order.
    pub runs: Vec<TaskTimes>,
}

impl CellRun {
    fn median_of(&self, f: impl Fn(&TaskTimes) -> Option<f64>) -> Option<f64> {
        median(self.runs.iter().filter_map(f).collect())
    }

    /// The last task's `done`.
    pub fn makespan_s(&self) -> f64 {
        self.runs.iter().map(|r| r.done_s).fold(0.0, f64::max)
    }
}

/// Medians over the rounds of one cell on one variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellSummary {
    /// The variant's name.
    pub variant: String,
    /// Scenes per task.
    pub scenes: usize,
    /// Tasks posted together.
    pub tasks: usize,
    /// Median (over rounds) of the median task's time to `done`, s.
    pub task_s: f64,
    /// The same for the first `preview`, s (`None`: no previews).
    pub first_preview_s: Option<f64>,
    /// The same for the first `frame`, s.
    pub first_frame_s: Option<f64>,
    /// Median over rounds of the median over tasks of first preview / done.
    pub first_preview_share: Option<f64>,
    /// Median over rounds of the median over tasks of first frame / done.
    pub first_frame_share: Option<f64>,
    /// Median over rounds of the last task's `done`, s.
    pub makespan_s: f64,
    /// Server time on previews against the tasks' total time, all rounds summed.
    pub preview_cost_share: f64,
    /// Previews per task, mean.
    pub previews_per_task: f64,
    /// Bytes per preview PNG, mean.
    pub bytes_per_preview: f64,
}

/// Result of the `first-frames` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FirstFramesResult {
    /// What was run.
    pub config: FirstFramesConfig,
    /// The variants, in the order of `servers` given.
    pub variants: Vec<Variant>,
    /// Every cell of every round.
    pub cells: Vec<CellRun>,
    /// Medians per (scenes, tasks, variant).
    pub summary: Vec<CellSummary>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Follows one task's events until `done`; the clock started at its POST.
async fn watch(
    http: &reqwest::Client,
    base: &str,
    id: u64,
    posted: Instant,
    deadline: Instant,
) -> Result<TaskTimes> {
    let mut res = http
        .get(format!("{base}/api/tasks/{id}/events"))
        .send()
        .await?;
    let mut t = TaskTimes {
        id,
        status: "unknown".into(),
        first_preview_s: None,
        first_frame_s: None,
        done_s: 0.0,
        previews: 0,
        preview_bytes: 0,
        preview_ms: 0,
        total_ms: 0,
    };
    let (mut buf, mut event) = (String::new(), String::new());
    'read: loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, res.chunk())
            .await
            .with_context(|| format!("task {id} not done before the deadline"))??;
        let Some(chunk) = chunk else {
            bail!("the event stream of task {id} ended before done");
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            let line = line.trim_end();
            let now = posted.elapsed().as_secs_f64();
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                match event.as_str() {
                    "preview" => {
                        t.first_preview_s.get_or_insert(now);
                        t.previews += 1;
                        let v: Value = serde_json::from_str(data.trim())?;
                        let url = v["image"].as_str().unwrap_or_default();
                        let b64 = url.trim_start_matches("data:image/png;base64,");
                        t.preview_bytes += b64.len() / 4 * 3;
                    }
                    "frame" => {
                        t.first_frame_s.get_or_insert(now);
                    }
                    "done" => {
                        t.done_s = now;
                        let v: Value = serde_json::from_str(data.trim())?;
                        t.status = v["status"].as_str().unwrap_or("unknown").to_owned();
                        break 'read;
                    }
                    _ => {}
                }
            }
        }
    }
    let rec: Value = http
        .get(format!("{base}/api/tasks/{id}"))
        .send()
        .await?
        .json()
        .await?;
    t.preview_ms = rec["timings_ms"]["preview"].as_u64().unwrap_or(0);
    t.total_ms = rec["timings_ms"]["total"].as_u64().unwrap_or(0);
    Ok(t)
}

/// Posts `k` tasks of `scenes` scenes together, each watched from its POST; returns when
/// all are done, in posting order.
async fn cell(
    srv: &Server,
    scenes: usize,
    steps: usize,
    k: usize,
    seed0: u64,
    deadline: Instant,
) -> Result<Vec<TaskTimes>> {
    let http = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..k {
        let (http, base) = (http.clone(), srv.base().to_owned());
        set.spawn(async move {
            let body = json!({"prompt": PROMPT, "num_scenes": scenes, "steps": steps, "seed": seed0 + i as u64});
            let posted = Instant::now();
            let r = http.post(format!("{base}/api/tasks")).json(&body).send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            let Some(id) = v["id"].as_u64().filter(|_| status.as_u16() == 202) else {
                bail!("POST /api/tasks answered {status}: {v}");
            };
            watch(&http, &base, id, posted, deadline).await.map(|t| (i, t))
        });
    }
    let mut out = Vec::with_capacity(k);
    while let Some(done) = set.join_next().await {
        out.push(done??);
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// Runs every cell of every round on every server (`servers[i]` runs `variants[i]`).
pub async fn first_frames(
    servers: &[Server],
    variants: &[Variant],
    cfg: &FirstFramesConfig,
    deadline: Instant,
    mut progress: impl FnMut(&CellRun),
) -> Result<FirstFramesResult> {
    let mut cells = Vec::new();
    let mut seed = 50_000u64;
    for round in 0..cfg.rounds {
        for &scenes in &cfg.scenes {
            for &k in &cfg.tasks {
                for j in 0..servers.len() {
                    let v = (j + round) % servers.len();
                    let runs = cell(&servers[v], scenes, cfg.steps, k, seed, deadline)
                        .await
                        .with_context(|| {
                            format!("variant {}:\n{}", variants[v].name, servers[v].log_tail())
                        })?;
                    seed += k as u64;
                    let c = CellRun {
                        variant: variants[v].name.clone(),
                        scenes,
                        tasks: k,
                        round,
                        runs,
                    };
                    progress(&c);
                    cells.push(c);
                    // Let the server's post-processing and writes settle between cells.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
    let mut summary = Vec::new();
    for &scenes in &cfg.scenes {
        for &k in &cfg.tasks {
            for v in variants {
                let mine: Vec<&CellRun> = cells
                    .iter()
                    .filter(|c| c.variant == v.name && c.scenes == scenes && c.tasks == k)
                    .collect();
                summary.push(summarize(&v.name, scenes, k, &mine));
            }
        }
    }
    Ok(FirstFramesResult {
        config: cfg.clone(),
        variants: variants.to_vec(),
        cells,
        summary,
    })
}

fn summarize(variant: &str, scenes: usize, tasks: usize, cells: &[&CellRun]) -> CellSummary {
    let over =
        |f: &dyn Fn(&CellRun) -> Option<f64>| median(cells.iter().filter_map(|c| f(c)).collect());
    let all: Vec<&TaskTimes> = cells.iter().flat_map(|c| &c.runs).collect();
    let (preview_ms, total_ms) = all
        .iter()
        .fold((0u64, 0u64), |(p, t), r| (p + r.preview_ms, t + r.total_ms));
    let previews: usize = all.iter().map(|r| r.previews).sum();
    let bytes: usize = all.iter().map(|r| r.preview_bytes).sum();
    CellSummary {
        variant: variant.to_owned(),
        scenes,
        tasks,
        task_s: over(&|c| c.median_of(|r| Some(r.done_s))).unwrap_or(0.0),
        first_preview_s: over(&|c| c.median_of(|r| r.first_preview_s)),
        first_frame_s: over(&|c| c.median_of(|r| r.first_frame_s)),
        first_preview_share: over(&|c| c.median_of(|r| r.first_preview_s.map(|p| p / r.done_s))),
        first_frame_share: over(&|c| c.median_of(|r| r.first_frame_s.map(|f| f / r.done_s))),
        makespan_s: over(&|c| Some(c.makespan_s())).unwrap_or(0.0),
        preview_cost_share: preview_ms as f64 / (total_ms.max(1)) as f64,
        previews_per_task: previews as f64 / all.len().max(1) as f64,
        bytes_per_preview: bytes as f64 / previews.max(1) as f64,
    }
}

/// The summary as a Markdown table, with each variant's task time and makespan against the
/// first variant's.
pub fn table(result: &FirstFramesResult) -> String {
    let mut out = String::from(
        "| scenes | tasks | variant | task s | first preview s (share) | first frame s (share) | makespan s | vs first variant: task, makespan | preview cost | previews/task, bytes each |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let fmt = |v: Option<f64>, share: Option<f64>| match (v, share) {
        (Some(v), Some(s)) => format!("{v:.2} ({:.0}%)", s * 100.0),
        (Some(v), None) => format!("{v:.2}"),
        _ => "-".into(),
    };
    for s in &result.summary {
        let base = result
            .summary
            .iter()
            .find(|b| b.scenes == s.scenes && b.tasks == s.tasks)
            .unwrap_or(s);
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {} | {} | {:.2} | x{:.2}, x{:.2} | {:.1}% | {:.1}, {:.0} |\n",
            s.scenes,
            s.tasks,
            s.variant,
            s.task_s,
            fmt(s.first_preview_s, s.first_preview_share),
            fmt(s.first_frame_s, s.first_frame_share),
            s.makespan_s,
            s.task_s / base.task_s.max(1e-9),
            s.makespan_s / base.makespan_s.max(1e-9),
            s.preview_cost_share * 100.0,
            s.previews_per_task,
            s.bytes_per_preview,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_with_their_binary() {
        let v: Variant = "main=--reel-bin=/x/reel --previews=false".parse().unwrap();
        assert_eq!(v.name, "main");
        assert_eq!(v.bin, Some(PathBuf::from("/x/reel")));
        assert_eq!(v.args, ["--previews=false"]);
        let plain: Variant = "after=".parse().unwrap();
        assert!(plain.args.is_empty() && plain.bin.is_none());
        assert!("no-equals".parse::<Variant>().is_err());
        assert_eq!(default_variants().len(), 3);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
