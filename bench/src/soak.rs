//! The `soak` scenario: a task every few seconds for a set time against a real server, with
//! the server's RSS and CPU and an API latency probe sampled every second. It answers whether
//! reel leaks (memory slope, RSS growth) or slows down (p99 drift) as it keeps working.
//!
//! Each sample reads the server's RSS and CPU, the whole machine's CPU (so that other work on
//! the machine, which slows the probes, shows in the record) and times two probe requests
//! (`GET /api/tasks` and `GET /api/tasks/{latest}`), each twice back to back. The first of a
//! pair comes after up to a second of idle and pays for the machine waking up: on the 2-core
//! VM here even Python's `http.server` answers in 0.6 ms back to back, 2.5 ms after 100 ms
//! idle and 5 ms after 500 ms, and that wake-up cost moves with the host's load
//! (docs/PERFORMANCE.md, "Soak"). The second is reel's own cost, so drift is judged on it.
//!
//! The analysis ([`SoakStats::of`]) fits a least-squares line to RSS over time (MB per hour),
//! compares the mean RSS of the last quarter of the run with the first quarter's, and the
//! probes' p99 likewise, leaving out the samples of a warm-up period.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http_load::{outcome, timed, PROMPT};
use crate::monitor::{ProcessProbe, MIB};
use crate::server::Server;
use crate::tally::{Percentiles, Summary, Tally};

/// How long a soak runs and how often it posts a task and samples.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SoakConfig {
    /// How long the soak runs, in seconds.
    pub duration_s: f64,
    /// Seconds between posted tasks (the first at the start).
    pub task_every_s: f64,
    /// Seconds between samples.
    pub sample_every_s: f64,
    /// Samples before this are kept but left out of the analysis: the first tasks fill the
    /// allocator's arenas and the model's buffers, which is start-up, not a leak.
    pub warmup_s: f64,
    /// Scenes and denoising steps of each posted task (distinct seeds: no cache hits).
    pub scenes: usize,
    /// Denoising steps per scene of each posted task.
    pub steps: usize,
}

/// One reading, `t_s` seconds into the soak.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoakSample {
    /// Seconds since the soak started.
    pub t_s: f64,
    /// The server's resident set size, in bytes.
    pub rss_bytes: u64,
    /// Percent of one core since the previous sample.
    pub cpu_percent: f32,
    /// Percent of the whole machine busy since the previous sample, every process counted.
    #[serde(default)]
    pub machine_cpu_percent: f32,
    /// Latencies of this sample's probe requests, each the first of its pair.
    pub probe_ms: Vec<f64>,
    /// The same requests repeated at once (the machine awake).
    #[serde(default)]
    pub warm_probe_ms: Vec<f64>,
    /// Tasks the server accepted (202) since the soak started.
    pub tasks_posted: u64,
    /// Bytes of every file under the server's data dir (sled and artifacts): what retention
    /// must keep bounded. 0 in runs from before it was recorded.
    #[serde(default)]
    pub store_bytes: u64,
}

/// What the samples say about leaks and drift.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SoakStats {
    /// Least-squares slope of RSS over time.
    pub memory_slope_mb_per_hour: f64,
    /// Mean RSS over the first quarter of the samples after the warm-up, in MiB.
    pub rss_first_quarter_mb: f64,
    /// Mean RSS over the last quarter of the samples after the warm-up, in MiB.
    pub rss_last_quarter_mb: f64,
    /// Last quarter's mean RSS against the first quarter's, in percent.
    pub rss_growth_percent: f64,
    /// p99 of the first quarter's probes (the first of each pair), in ms.
    pub p99_first_quarter_ms: f64,
    /// p99 of the last quarter's probes (the first of each pair), in ms.
    pub p99_last_quarter_ms: f64,
    /// Last quarter's probe p99 over the first quarter's.
    pub latency_drift_ratio: f64,
    /// The back-to-back probes' p99 in the first and last quarters (0 in runs before them).
    #[serde(default)]
    pub warm_p99_first_quarter_ms: f64,
    /// The back-to-back probes' p99 in the last quarter, in ms (0 in runs before them).
    #[serde(default)]
    pub warm_p99_last_quarter_ms: f64,
    /// The server's mean CPU over the samples after the warm-up, in percent of one core.
    pub cpu_mean_percent: f64,
    /// Mean share of the whole machine busy (every process) in the first and last quarters:
    /// a probe drift that comes with a rise here came from outside the server.
    #[serde(default)]
    pub machine_cpu_first_quarter_percent: f64,
    /// Mean share of the whole machine busy (every process) in the last quarter, in percent.
    #[serde(default)]
    pub machine_cpu_last_quarter_percent: f64,
    /// Mean size of the data dir (sled and artifacts) in the first quarter, MiB: bounded when
    /// retention keeps up (0 in runs before it was recorded, as the two below).
    #[serde(default)]
    pub store_first_quarter_mb: f64,
    /// The same in the last quarter, MiB.
    #[serde(default)]
    pub store_last_quarter_mb: f64,
    /// The data dir's largest sample, MiB.
    #[serde(default)]
    pub store_max_mb: f64,
}

/// Result of the `soak` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SoakResult {
    /// What the soak was asked to do.
    pub config: SoakConfig,
    /// Seconds the soak took.
    pub wall_s: f64,
    /// Every sample, the warm-up's included.
    pub samples: Vec<SoakSample>,
    /// The analysis of the samples after the warm-up.
    pub stats: SoakStats,
    /// The probe requests, all together.
    pub probes: Summary,
    /// The task submissions.
    pub posts: Summary,
    /// Tasks completed by the end, as the server's `/api/stats` counts them.
    pub tasks_completed: u64,
}

/// Least-squares `(slope, intercept)` of `y` over `x`; `None` with under two distinct x.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| (sxy / sxx, my - sxy / sxx * mx))
}

impl SoakSample {
    /// Whether this is the first sample of a minute (progress printing).
    pub fn starts_minute(&self, cfg: &SoakConfig) -> bool {
        self.t_s % 60.0 < cfg.sample_every_s
    }

    /// One line of progress: time, RSS, tasks posted, slowest probe, machine CPU.
    pub fn progress_line(&self) -> String {
        format!(
            "t={:.0}s rss={:.1} MiB store={:.1} MiB posted={} probe max {:.2} ms, machine busy {:.0}%",
            self.t_s,
            self.rss_bytes as f64 / MIB,
            self.store_bytes as f64 / MIB,
            self.tasks_posted,
            self.probe_ms.iter().copied().fold(0.0, f64::max),
            self.machine_cpu_percent,
        )
    }
}

impl SoakStats {
    /// The analysis of a run's samples from `warmup_s` on (at least 4 are needed).
    pub fn of(samples: &[SoakSample], warmup_s: f64) -> Result<SoakStats> {
        let samples: Vec<SoakSample> = samples
            .iter()
            .filter(|s| s.t_s >= warmup_s)
            .cloned()
            .collect();
        anyhow::ensure!(
            samples.len() >= 4,
            "a soak needs at least 4 samples after its warm-up, got {}",
            samples.len()
        );
        let mb = |s: &SoakSample| s.rss_bytes as f64 / MIB;
        let points: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s / 3600.0, mb(s))).collect();
        let (slope, _) = linear_fit(&points).context("soak samples all at one instant")?;
        let q = samples.len() / 4;
        let (first, last) = (&samples[..q], &samples[samples.len() - q..]);
        let mean = |part: &[SoakSample], f: &dyn Fn(&SoakSample) -> f64| {
            part.iter().map(f).sum::<f64>() / part.len() as f64
        };
        let p99 = |part: &[SoakSample], warm: bool| {
            let mut ms: Vec<f64> = part
                .iter()
                .flat_map(|s| if warm { &s.warm_probe_ms } else { &s.probe_ms })
                .copied()
                .collect();
            if ms.is_empty() {
                return 0.0;
            }
            Percentiles::of(&mut ms).p99
        };
        let machine = |s: &SoakSample| s.machine_cpu_percent as f64;
        let store = |s: &SoakSample| s.store_bytes as f64 / MIB;
        let (rss0, rss1) = (mean(first, &mb), mean(last, &mb));
        let (p0, p1) = (p99(first, false), p99(last, false));
        Ok(SoakStats {
            memory_slope_mb_per_hour: slope,
            rss_first_quarter_mb: rss0,
            rss_last_quarter_mb: rss1,
            rss_growth_percent: (rss1 - rss0) / rss0.max(1e-9) * 100.0,
            p99_first_quarter_ms: p0,
            p99_last_quarter_ms: p1,
            latency_drift_ratio: p1 / p0.max(1e-9),
            warm_p99_first_quarter_ms: p99(first, true),
            warm_p99_last_quarter_ms: p99(last, true),
            cpu_mean_percent: samples.iter().map(|s| s.cpu_percent as f64).sum::<f64>()
                / samples.len() as f64,
            machine_cpu_first_quarter_percent: mean(first, &machine),
            machine_cpu_last_quarter_percent: mean(last, &machine),
            store_first_quarter_mb: mean(first, &store),
            store_last_quarter_mb: mean(last, &store),
            store_max_mb: samples.iter().map(store).fold(0.0, f64::max),
        })
    }

    /// The back-to-back probes' p99, first and last quarter; `None` for runs from before
    /// them (stored as zeros).
    pub fn back_to_back_p99(&self) -> Option<(f64, f64)> {
        (self.warm_p99_first_quarter_ms > 0.0).then_some((
            self.warm_p99_first_quarter_ms,
            self.warm_p99_last_quarter_ms,
        ))
    }

    /// One printed line: RSS, slope, probe p99s and drift, CPU and the machine's load.
    pub fn line(&self) -> String {
        format!(
            "rss {:.1} -> {:.1} MiB ({:+.2}%), slope {:+.2} MB/h; store {:.1} -> {:.1} MiB (max {:.1}); probe p99 {:.2} -> {:.2} ms (x{:.2}), back to back {:.2} -> {:.2} ms; cpu mean {:.0}% of one core; machine busy {:.0}% -> {:.0}%",
            self.rss_first_quarter_mb, self.rss_last_quarter_mb, self.rss_growth_percent,
            self.memory_slope_mb_per_hour, self.store_first_quarter_mb, self.store_last_quarter_mb, self.store_max_mb, self.p99_first_quarter_ms, self.p99_last_quarter_ms,
            self.latency_drift_ratio, self.warm_p99_first_quarter_ms, self.warm_p99_last_quarter_ms,
            self.cpu_mean_percent, self.machine_cpu_first_quarter_percent, self.machine_cpu_last_quarter_percent,
        )
    }
}

/// Bytes of every file under `dir`, recursively (0 for what cannot be read: files come and go
/// while the server runs).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// Runs the soak against `srv` for `cfg.duration_s`; `each` sees every sample (for printing).
pub async fn run(
    srv: &Server,
    cfg: SoakConfig,
    mut each: impl FnMut(&SoakSample),
) -> Result<SoakResult> {
    let http = reqwest::Client::new();
    let mut probe = ProcessProbe::new(srv.pid())?;
    probe.sample(); // primes the CPU measurement
    let (mut probes, mut posts) = (Tally::default(), Tally::default());
    let mut samples = Vec::new();
    let (mut posted, mut latest) = (0u64, None::<u64>);
    let started = Instant::now();
    let end = Duration::from_secs_f64(cfg.duration_s);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(cfg.sample_every_s));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_post = Duration::ZERO;
    loop {
        tick.tick().await;
        let now = started.elapsed();
        if now >= end {
            break;
        }
        if now >= next_post {
            next_post += Duration::from_secs_f64(cfg.task_every_s);
            let body = json!({"prompt": PROMPT, "num_scenes": cfg.scenes, "steps": cfg.steps, "seed": 50_000 + posted});
            let (took, res) = timed(http.post(srv.url("/api/tasks")).json(&body)).await;
            if let Ok((202, body)) = &res {
                latest = serde_json::from_slice::<Value>(body)
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                posted += 1;
            }
            posts.record(took, outcome(&res));
        }
        let (mut probe_ms, mut warm_probe_ms) = (Vec::with_capacity(2), Vec::with_capacity(2));
        let mut paths = vec!["/api/tasks".to_owned()];
        paths.extend(latest.map(|id| format!("/api/tasks/{id}")));
        for path in paths {
            for times in [&mut probe_ms, &mut warm_probe_ms] {
                let (took, res) = timed(http.get(srv.url(&path))).await;
                times.push(took.as_secs_f64() * 1e3);
                probes.record(took, outcome(&res));
            }
        }
        // A server that died is still listed until it is reaped, as a zombie with no memory:
        // a live process always has some resident memory.
        let Some(reading) = probe.sample().filter(|r| r.rss_bytes > 0) else {
            anyhow::bail!("the server exited during the soak:\n{}", srv.log_tail());
        };
        let sample = SoakSample {
            store_bytes: dir_bytes(&srv.data_dir()),
            t_s: now.as_secs_f64(),
            rss_bytes: reading.rss_bytes,
            cpu_percent: reading.cpu_percent.unwrap_or(0.0),
            machine_cpu_percent: reading.machine_cpu_percent.unwrap_or(0.0),
            probe_ms,
            warm_probe_ms,
            tasks_posted: posted,
        };
        each(&sample);
        samples.push(sample);
    }
    let wall = started.elapsed();
    let stats: Value = http.get(srv.url("/api/stats")).send().await?.json().await?;
    Ok(SoakResult {
        config: cfg,
        wall_s: wall.as_secs_f64(),
        stats: SoakStats::of(&samples, cfg.warmup_s)?,
        samples,
        probes: probes.summary(wall),
        posts: posts.summary(wall),
        tasks_completed: stats["tasks"]["completed"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, mib: f64, probe: f64) -> SoakSample {
        SoakSample {
            t_s,
            rss_bytes: (mib * MIB) as u64,
            cpu_percent: 10.0,
            machine_cpu_percent: t_s as f32 / 36.0,
            probe_ms: vec![probe],
            warm_probe_ms: vec![probe / 2.0],
            tasks_posted: 0,
            store_bytes: 0,
        }
    }

    #[test]
    fn fit_recovers_a_line() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 2.0)).collect();
        let (a, b) = linear_fit(&pts).expect("a fit");
        assert!((a - 3.0).abs() < 1e-9 && (b - 2.0).abs() < 1e-9);
        assert!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }

    #[test]
    fn stats_measure_growth_and_drift() {
        // 100 MiB growing 1 MiB per 36 s (100 MB/h), probes 1 ms then 3 ms.
        let samples: Vec<SoakSample> = (0..40)
            .map(|i| {
                let t = i as f64 * 36.0;
                sample(t, 100.0 + i as f64, if i < 20 { 1.0 } else { 3.0 })
            })
            .collect();
        let s = SoakStats::of(&samples, 0.0).expect("stats");
        assert!((s.memory_slope_mb_per_hour - 100.0).abs() < 1e-6);
        assert!((s.rss_first_quarter_mb - 104.5).abs() < 1e-6);
        assert!((s.rss_last_quarter_mb - 134.5).abs() < 1e-6);
        assert!((s.latency_drift_ratio - 3.0).abs() < 1e-9);
        assert!((s.warm_p99_first_quarter_ms - 0.5).abs() < 1e-9);
        assert!((s.warm_p99_last_quarter_ms - 1.5).abs() < 1e-9);
        // The machine's share is the sample index here: quarters 0..10 and 30..40.
        assert!((s.machine_cpu_first_quarter_percent - 4.5).abs() < 1e-4);
        assert!((s.machine_cpu_last_quarter_percent - 34.5).abs() < 1e-4);
        assert!(SoakStats::of(&samples[..3], 0.0).is_err());
        // The warm-up drops the first ten samples (t < 360 s): the first quarter moves on.
        let later = SoakStats::of(&samples, 360.0).expect("stats");
        assert!((later.rss_first_quarter_mb - 113.0).abs() < 1e-6);
    }
}
