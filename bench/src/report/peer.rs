//! reel side by side with its peer (`bench/peer/`: FastAPI + Celery + Redis + SQLite + the
//! model in PyTorch): both systems' [`Results`] of one run, the adherence of both systems'
//! videos under reel's evaluator ([`adherence`]), and the Markdown table of the two with
//! their ratios ([`markdown`]).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use eval::ATTRS;
use kernels::Clip;
use pipeline::world::Scene;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::results::Results;
use crate::http_load::{TaskGroup, CONTRACT_OPS};
use crate::monitor::{ProcessUsage, MIB};
use crate::server::Server;
use crate::tally::Summary;

/// One run of both systems.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// How the run was started.
    pub command: String,
    /// reel's results.
    pub reel: Results,
    /// The peer's results (same scenarios, same sizes, same seeds).
    pub peer: Results,
    /// reel's videos judged by the evaluator, if measured.
    pub reel_adherence: Option<Adherence>,
    /// The peer's videos judged by the evaluator, if measured.
    pub peer_adherence: Option<Adherence>,
}

impl Comparison {
    /// Reads a comparison saved as JSON.
    pub fn load(path: &Path) -> Result<Comparison> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the comparison as pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Moves what `part` measured into `into` (a run of one scenario into the system's whole run).
pub fn absorb(into: &mut Results, part: Results) {
    into.api.extend(part.api);
    into.api_busy = into.api_busy.take().or(part.api_busy);
    into.burst = into.burst.take().or(part.burst);
    into.generate.extend(part.generate);
    into.storage = into.storage.take().or(part.storage);
    into.soak = into.soak.take().or(part.soak);
    into.wall_s += part.wall_s;
}

/// A system's videos of a prompt suite, judged against the scenes asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Adherence {
    /// Scenes asked for (one one-scene task each).
    pub scenes: usize,
    /// Tasks that completed with a video.
    pub completed: usize,
    /// Per scene, in suite order: whether each attribute passed (in `eval::ATTRS` order);
    /// `None` for a task without a video.
    pub passes: Vec<Option<[bool; 5]>>,
}

impl Adherence {
    /// Fraction of the scenes passing each attribute, then every attribute.
    pub fn accuracy(&self) -> [f64; 6] {
        let mut out = [0.0; 6];
        let n = self.scenes.max(1) as f64;
        for p in self.passes.iter().flatten() {
            for (o, &ok) in out.iter_mut().zip(p) {
                *o += f64::from(u8::from(ok)) / n;
            }
            out[5] += f64::from(u8::from(p.iter().all(|&ok| ok))) / n;
        }
        out
    }
}

/// Frames of `size` x `size` RGB8 decoded from an MP4 by ffmpeg, as a clip in [0, 1] (the
/// evaluation reads videos through it too: `--bin evaluate`).
pub fn decode(mp4: &[u8], size: usize) -> Result<Clip> {
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), mp4)?;
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file.path())
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .stdin(Stdio::null())
        .output()
        .context("running ffmpeg")?;
    let frame = size * size * 3;
    if !out.status.success() || out.stdout.is_empty() || out.stdout.len() % frame != 0 {
        bail!(
            "ffmpeg could not decode the video: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Clip {
        frames: out.stdout.len() / frame,
        width: size,
        height: size,
        data: out.stdout.iter().map(|&v| f32::from(v) / 255.0).collect(),
    })
}

/// Posts one one-scene task per scene of `scenes` (its canonical caption, seed `seed + i`,
/// the default steps, guidance and size), waits for them, downloads each video and judges it
/// with reel's evaluator against the scene asked for.
pub async fn adherence(
    srv: &Server,
    scenes: &[Scene],
    seed: u64,
    deadline: Instant,
) -> Result<Adherence> {
    let http = reqwest::Client::new();
    let size = storage::TaskParams::DEFAULT_SIZE as usize;
    let mut ids = Vec::with_capacity(scenes.len());
    for (i, scene) in scenes.iter().enumerate() {
        let body = json!({"prompt": scene.caption(), "num_scenes": 1, "seed": seed + i as u64});
        let v: Value = http
            .post(srv.url("/api/tasks"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        ids.push(v["id"].as_u64().with_context(|| format!("no task: {v}"))?);
    }
    let mut passes = Vec::with_capacity(scenes.len());
    for (id, scene) in ids.into_iter().zip(scenes) {
        let status = loop {
            let v: Value = http
                .get(srv.url(&format!("/api/tasks/{id}")))
                .send()
                .await?
                .json()
                .await?;
            match v["status"].as_str() {
                Some(s @ ("completed" | "failed" | "cancelled")) => break s.to_owned(),
                _ if Instant::now() >= deadline => break "unfinished".to_owned(),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        if status != "completed" {
            passes.push(None);
            continue;
        }
        let mp4 = http
            .get(srv.url(&format!("/api/tasks/{id}/video")))
            .send()
            .await?
            .bytes()
            .await?;
        let verdict = eval::evaluate(&decode(&mp4, size)?, scene);
        passes.push(Some(ATTRS.map(|a| verdict.pass(a))));
    }
    Ok(Adherence {
        scenes: scenes.len(),
        completed: passes.iter().flatten().count(),
        passes,
    })
}

/// One row of the side-by-side table: reel's figure, the peer's, and how many times better
/// reel is (`None` where a figure is missing or zero).
struct Row {
    what: String,
    reel: Option<f64>,
    peer: Option<f64>,
    unit: &'static str,
    /// Lower is better (latency, memory, time); otherwise higher is.
    lower_better: bool,
}

impl Row {
    fn new(what: impl Into<String>, unit: &'static str, lower_better: bool) -> Row {
        Row {
            what: what.into(),
            reel: None,
            peer: None,
            unit,
            lower_better,
        }
    }

    fn of(mut self, reel: Option<f64>, peer: Option<f64>) -> Row {
        self.reel = reel;
        self.peer = peer;
        self
    }

    /// How many times better reel is: peer / reel for lower-is-better figures.
    fn advantage(&self) -> Option<f64> {
        let (r, p) = (self.reel?, self.peer?);
        let (num, den) = if self.lower_better { (p, r) } else { (r, p) };
        (den > 0.0 && num.is_finite()).then(|| num / den)
    }

    fn cells(&self) -> String {
        let fig = |v: Option<f64>| match v {
            None => "none".to_owned(),
            Some(v) if self.unit.is_empty() => format!("{v:.0}"),
            Some(v) if v.abs() >= 100.0 => format!("{v:.0} {}", self.unit),
            Some(v) => format!("{v:.2} {}", self.unit),
        };
        let ratio = match (self.advantage(), self.reel, self.peer) {
            (Some(a), _, _) if (a - 1.0).abs() < 0.005 => "same".to_owned(),
            (Some(0.0), _, _) => "**peer has none**".to_owned(),
            (Some(a), _, _) if a >= 1.0 => format!("reel {a:.1}x better"),
            (Some(a), _, _) => format!("**peer {:.1}x better**", 1.0 / a),
            (None, Some(r), Some(p)) if r == p => "same".to_owned(),
            (None, Some(0.0), Some(_)) if self.lower_better => "reel has none".to_owned(),
            (None, Some(_), Some(0.0)) if self.lower_better => "**peer has none**".to_owned(),
            _ => "-".to_owned(),
        };
        format!(
            "| {} | {} | {} | {} |",
            self.what,
            fig(self.reel),
            fig(self.peer),
            ratio
        )
    }
}

fn ms(s: &Summary) -> (f64, f64) {
    (s.latency_ms.p50, s.latency_ms.p99)
}

fn errors(s: &Summary) -> f64 {
    s.errors as f64
}

fn refused(s: &Summary) -> f64 {
    s.rejected_429 as f64
}

fn cpu(u: &ProcessUsage) -> f64 {
    u.cpu_mean_machine_percent()
}

fn rss(u: &ProcessUsage) -> f64 {
    u.rss_max_bytes as f64 / MIB
}

/// Median of the wall times of a group's tasks, in seconds.
fn median_task_s(g: &TaskGroup) -> f64 {
    let mut t: Vec<f64> = g.runs.iter().map(|r| r.wall_s).collect();
    t.sort_by(f64::total_cmp);
    t.get(t.len() / 2).copied().unwrap_or(0.0)
}

/// Every row of the comparison, in table order.
fn rows(c: &Comparison) -> Vec<Row> {
    let (r, p) = (&c.reel, &c.peer);
    let mut out = Vec::new();
    for (a, b) in r.api.iter().zip(&p.api) {
        let users = a.result.users;
        let (ra, pa) = (ms(&a.result.total), ms(&b.result.total));
        out.push(Row::new(format!("API x{users}: p50"), "ms", true).of(Some(ra.0), Some(pa.0)));
        out.push(Row::new(format!("API x{users}: p99"), "ms", true).of(Some(ra.1), Some(pa.1)));
        out.push(
            Row::new(format!("API x{users}: throughput"), "req/s", false).of(
                Some(a.result.total.throughput_rps),
                Some(b.result.total.throughput_rps),
            ),
        );
        out.push(
            Row::new(format!("API x{users}: errors"), "", true)
                .of(Some(errors(&a.result.total)), Some(errors(&b.result.total))),
        );
        out.push(
            Row::new(format!("API x{users}: refused (429)"), "", true).of(
                Some(refused(&a.result.total)),
                Some(refused(&b.result.total)),
            ),
        );
    }
    if let (Some(a), Some(b)) = (&r.api_busy, &p.api_busy) {
        let users = a.result.users;
        let (ra, pa) = (ms(&a.result.total), ms(&b.result.total));
        let name = format!("API x{users} while generating");
        out.push(Row::new(format!("{name}: p50"), "ms", true).of(Some(ra.0), Some(pa.0)));
        out.push(Row::new(format!("{name}: p99"), "ms", true).of(Some(ra.1), Some(pa.1)));
        out.push(
            Row::new(format!("{name}: errors"), "", true)
                .of(Some(errors(&a.result.total)), Some(errors(&b.result.total))),
        );
        out.push(Row::new(format!("{name}: refused (429)"), "", true).of(
            Some(refused(&a.result.total)),
            Some(refused(&b.result.total)),
        ));
        out.push(
            Row::new(format!("{name}: share of time generating"), "%", false).of(
                Some(100.0 * a.result.generation_busy_share),
                Some(100.0 * b.result.generation_busy_share),
            ),
        );
    }
    if let (Some(a), Some(b)) = (&r.burst, &p.burst) {
        let n = a.result.connections;
        let (ra, pa) = (ms(&a.result.total), ms(&b.result.total));
        out.push(Row::new(format!("burst x{n}: p99"), "ms", true).of(Some(ra.1), Some(pa.1)));
        out.push(
            Row::new(format!("burst x{n}: errors"), "", true)
                .of(Some(errors(&a.result.total)), Some(errors(&b.result.total))),
        );
        out.push(Row::new(format!("burst x{n}: refused (429)"), "", true).of(
            Some(refused(&a.result.total)),
            Some(refused(&b.result.total)),
        ));
    }
    for (a, b) in r.generate.iter().zip(&p.generate) {
        let scenes = a.result.shape.scenes;
        let steps = a.result.shape.steps;
        let name = format!("{scenes}-scene task ({steps} steps)");
        out.push(
            Row::new(format!("{name}, alone: wall time"), "s", true)
                .of(Some(a.result.single.wall_s), Some(b.result.single.wall_s)),
        );
        out.push(
            Row::new(format!("{name}, alone: first frame"), "s", true).of(
                a.result.single.first_frame_median_s(),
                b.result.single.first_frame_median_s(),
            ),
        );
        for (ga, gb) in a.result.concurrent.iter().zip(&b.result.concurrent) {
            let k = ga.tasks;
            out.push(
                Row::new(format!("{k} x {name}: makespan"), "s", true)
                    .of(Some(ga.wall_s), Some(gb.wall_s)),
            );
            out.push(
                Row::new(format!("{k} x {name}: median task wall time"), "s", true)
                    .of(Some(median_task_s(ga)), Some(median_task_s(gb))),
            );
            out.push(
                Row::new(format!("{k} x {name}: median first frame"), "s", true)
                    .of(ga.first_frame_median_s(), gb.first_frame_median_s()),
            );
            out.push(Row::new(format!("{k} x {name}: completed"), "", false).of(
                Some(ga.runs.iter().filter(|t| t.status == "completed").count() as f64),
                Some(gb.runs.iter().filter(|t| t.status == "completed").count() as f64),
            ));
        }
    }
    if let (Some(a), Some(b)) = (&r.soak, &p.soak) {
        let secs = a.result.config.duration_s;
        let name = format!("soak {secs:.0} s");
        out.push(
            Row::new(
                format!("{name}: RSS growth (first to last quarter)"),
                "%",
                true,
            )
            .of(
                Some(a.result.stats.rss_growth_percent),
                Some(b.result.stats.rss_growth_percent),
            ),
        );
        out.push(Row::new(format!("{name}: probe p99"), "ms", true).of(
            Some(a.result.probes.latency_ms.p99),
            Some(b.result.probes.latency_ms.p99),
        ));
        out.push(Row::new(format!("{name}: errors"), "", true).of(
            Some(errors(&a.result.probes) + errors(&a.result.posts)),
            Some(errors(&b.result.probes) + errors(&b.result.posts)),
        ));
        out.push(Row::new(format!("{name}: tasks completed"), "", false).of(
            Some(a.result.tasks_completed as f64),
            Some(b.result.tasks_completed as f64),
        ));
    }
    // CPU and memory over every scenario: the highest mean CPU and the largest RSS.
    let usages = |x: &Results| -> Vec<ProcessUsage> {
        let mut u: Vec<ProcessUsage> = x.api.iter().map(|m| m.server.clone()).collect();
        u.extend(x.api_busy.iter().map(|m| m.server.clone()));
        u.extend(x.burst.iter().map(|m| m.server.clone()));
        u.extend(x.generate.iter().map(|m| m.server.clone()));
        u.extend(x.soak.iter().map(|m| m.server.clone()));
        u
    };
    let (ur, up) = (usages(r), usages(p));
    let max = |u: &[ProcessUsage], f: fn(&ProcessUsage) -> f64| {
        u.iter()
            .map(f)
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    out.push(
        Row::new(
            "CPU, highest scenario mean (share of the machine)",
            "%",
            true,
        )
        .of(max(&ur, cpu), max(&up, cpu)),
    );
    out.push(Row::new("peak RSS, every scenario", "MiB", true).of(max(&ur, rss), max(&up, rss)));
    if let (Some(a), Some(b)) = (&c.reel_adherence, &c.peer_adherence) {
        out.push(
            Row::new("adherence: scenes passing every attribute", "%", false)
                .of(Some(100.0 * a.accuracy()[5]), Some(100.0 * b.accuracy()[5])),
        );
    }
    out
}

/// The side-by-side table, then each system's adherence by attribute and their agreement.
pub fn markdown(c: &Comparison) -> String {
    let mut s = String::from("| figure | reel | peer | ratio |\n|---|---:|---:|---|\n");
    for row in rows(c) {
        s.push_str(&row.cells());
        s.push('\n');
    }
    if let (Some(a), Some(b)) = (&c.reel_adherence, &c.peer_adherence) {
        s.push_str("\n| system | scenes | completed | background | colour | shape | size | motion | all |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (name, ad) in [("reel", a), ("peer", b)] {
            let _ = write!(s, "| {name} | {} | {} |", ad.scenes, ad.completed);
            for v in ad.accuracy() {
                let _ = write!(s, " {:.1}% |", 100.0 * v);
            }
            s.push('\n');
        }
        let same = a
            .passes
            .iter()
            .zip(&b.passes)
            .filter(|(x, y)| x.is_some() && x == y)
            .count();
        let _ = writeln!(
            s,
            "\nThe two systems' verdicts agree attribute for attribute on {same} of {} scenes.",
            a.scenes
        );
    }
    s
}

/// The endpoints both systems' `api` runs cycle through, for the report's prose.
pub fn contract_ops() -> String {
    CONTRACT_OPS
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_is_how_many_times_better_reel_is() {
        let lat = Row::new("p99", "ms", true).of(Some(2.0), Some(30.0));
        assert_eq!(lat.advantage(), Some(15.0));
        let rps = Row::new("rps", "req/s", false).of(Some(100.0), Some(400.0));
        assert_eq!(rps.advantage(), Some(0.25));
        assert!(rps.cells().contains("peer 4.0x better"));
        let none = Row::new("first frame", "s", true).of(Some(1.0), None);
        assert_eq!(none.advantage(), None);
        assert!(none.cells().contains("none"));
        let zero = Row::new("errors", "", true).of(Some(0.0), Some(3.0));
        assert!(zero.cells().contains("reel has none"));
        let refused = Row::new("429", "", true).of(Some(216.0), Some(0.0));
        assert!(refused.cells().contains("peer has none"));
        assert!(Row::new("done", "", false)
            .of(Some(10.0), Some(10.0))
            .cells()
            .ends_with("| 10 | 10 | same |"));
    }

    #[test]
    fn accuracy_counts_missing_videos_as_failures() {
        let a = Adherence {
            scenes: 4,
            completed: 3,
            passes: vec![
                Some([true; 5]),
                Some([true, true, true, true, false]),
                Some([true; 5]),
                None,
            ],
        };
        let acc = a.accuracy();
        assert_eq!(acc[0], 0.75);
        assert_eq!(acc[4], 0.5);
        assert_eq!(acc[5], 0.5);
    }
}
