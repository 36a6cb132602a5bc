//! The Markdown report and its SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::figures::{goals, pacing, targets, Verdict};
use super::gate::GateResult;
use super::plots::{draw, plain, pow10, Panel, Series};
use super::results::Results;
use crate::monitor::{ProcessUsage, MIB};
use crate::storage_load::Workload;
use crate::tally::Summary;

fn verdict_table(out: &mut String, rows: &[Verdict]) {
    out.push_str("| target | measured | verdict |\n|---|---|---|\n");
    for v in rows {
        let mark = match v.pass {
            Some(true) => "**pass**",
            Some(false) => "**FAIL**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {mark} |", v.target, v.measured);
    }
    out.push('\n');
}

fn usage_cells(u: &ProcessUsage) -> String {
    format!(
        "{:.0}% | {:.0} MiB",
        u.cpu_mean_machine_percent(),
        u.rss_max_bytes as f64 / MIB
    )
}

fn summary_cells(s: &Summary) -> String {
    let l = &s.latency_ms;
    format!(
        "{} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {} | {}",
        s.requests, l.p50, l.p95, l.p99, l.max, s.throughput_rps, s.errors, s.rejected_429
    )
}

const SUMMARY_HEAD: &str =
    "requests | p50 ms | p95 ms | p99 ms | max ms | req/s | errors | 429 | server CPU (of machine) | server RSS";

/// Draws the plots into `plots_dir` and returns the Markdown that shows them, by section.
struct Plots<'a> {
    dir: &'a Path,
    /// How the Markdown file refers to `dir`.
    link: String,
}

impl Plots<'_> {
    fn put(&self, out: &mut String, file: &str, alt: &str, panels: &[Panel]) -> Result<()> {
        draw(&self.dir.join(file), panels)?;
        let _ = writeln!(out, "![{alt}]({}/{file})\n", self.link);
        Ok(())
    }
}

fn over_time(u: &ProcessUsage, cpu: bool) -> Vec<(f64, f64)> {
    let cores = u.cores.max(1) as f64;
    u.samples
        .iter()
        .map(|s| {
            let y = if cpu {
                s.cpu_percent as f64 / cores
            } else {
                s.rss_bytes as f64 / MIB
            };
            (s.t_s, y)
        })
        .collect()
}

fn time_panels(runs: &[(String, &ProcessUsage)], what: &str) -> [Panel; 2] {
    let series = |cpu| {
        runs.iter()
            .map(|(name, u)| Series::new(name.clone(), over_time(u, cpu)))
            .collect()
    };
    [
        Panel {
            title: format!("{what} CPU over time"),
            x_label: "seconds into the scenario".into(),
            y_label: "% of the machine".into(),
            series: series(true),
            x_format: plain,
        },
        Panel {
            title: format!("{what} RSS over time"),
            x_label: "seconds into the scenario".into(),
            y_label: "MiB".into(),
            series: series(false),
            x_format: plain,
        },
    ]
}

/// Writes the report for `r` to `out_md`, its plots into `plots_dir`. `command` is how the
/// run was started; `gate` the regression check, if one was asked for.
pub fn write(
    r: &Results,
    out_md: &Path,
    plots_dir: &Path,
    command: &str,
    gate: Option<&GateResult>,
) -> Result<()> {
    std::fs::create_dir_all(plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    let md_dir = out_md.parent().unwrap_or(Path::new("."));
    let link = plots_dir
        .strip_prefix(md_dir)
        .unwrap_or(plots_dir)
        .display()
        .to_string();
    let plots = Plots {
        dir: plots_dir,
        link: if link.is_empty() { ".".into() } else { link },
    };
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# reel benchmark report\n\nMeasured {} on {}.\nRelease build; every HTTP scenario \
         runs against a fresh `reel serve` on loopback, started by the bench; the whole run took \
         {:.0} s. Written by\n\n    {command}\n\nCPU figures are the server's mean over the \
         scenario as a share of the whole machine ({} cores); RSS is the server's largest.\n",
        r.date,
        r.machine.describe(),
        r.wall_s,
        r.machine.cores
    );
    if !r.kept.is_empty() {
        let _ = writeln!(
            o,
            "Taken from other runs on the same machine: {}.\n",
            r.kept.join(", ")
        );
    }
    o.push_str("## The original targets\n\n");
    verdict_table(&mut o, &targets(r));
    o.push_str("## The goals of issue 6, on this machine\n\n");
    verdict_table(&mut o, &goals(r));

    let mut timelines: Vec<(String, &ProcessUsage)> = Vec::new();
    if !r.api.is_empty() || r.api_busy.is_some() {
        let ops: Vec<String> = crate::http_load::OPS
            .iter()
            .map(|op| format!("`{op}`"))
            .collect();
        let _ = write!(
            o,
            "## API\n\nEach user cycles through every endpoint: {} (`{{id}}` a task of its own, `{{done}}` a finished one; the POST is a cached one-scene task, the MJPEG stream is timed to its head).",
            ops.join(", ")
        );
        o.push_str(" The user counts alone send back to back (a closed-loop stress, whose latency is mostly queueing: users / throughput); the run while generating paces its users like Locust users, arriving spread over one pause, while the bench keeps default tasks unfinished so that generation saturates the compute throughout.\n\n");
        let _ = writeln!(o, "| users | {SUMMARY_HEAD} |\n|---|{}", "---|".repeat(10));
        for m in &r.api {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                m.result.users,
                summary_cells(&m.result.total),
                usage_cells(&m.server)
            );
            timelines.push((format!("api, {} users", m.result.users), &m.server));
        }
        if let Some(m) = &r.api_busy {
            let _ = writeln!(
                o,
                "| {}, {}, while {} default tasks are kept generating | {} | {} |",
                m.result.users,
                pacing(m.result.think_ms),
                m.result.background_tasks,
                summary_cells(&m.result.total),
                usage_cells(&m.server)
            );
            timelines.push(("api while generating".into(), &m.server));
        }
        o.push('\n');
        if let Some(m) = &r.api_busy {
            let _ = writeln!(
                o,
                "By endpoint, while generating ({:.0}% of the run had a task in generation; the MJPEG stream is timed to its head, since it replays the video at its frame rate):\n\n| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms | req/s | errors | 429 |\n|---|---|---|---|---|---|---|---|---|",
                m.result.generation_busy_share * 100.0
            );
            for (op, s) in &m.result.by_op {
                let _ = writeln!(o, "| `{op}` | {} |", summary_cells(s));
            }
            o.push('\n');
        }
        let pts = |f: fn(&Summary) -> f64| -> Vec<(f64, f64)> {
            r.api
                .iter()
                .map(|m| (m.result.users as f64, f(&m.result.total)))
                .collect()
        };
        if !r.api.is_empty() {
            plots.put(
                &mut o,
                "api.svg",
                "API latency and throughput by users",
                &[
                    Panel {
                        title: "API latency percentiles".into(),
                        x_label: "concurrent users".into(),
                        y_label: "ms".into(),
                        series: vec![
                            Series::new("p50", pts(|s| s.latency_ms.p50)),
                            Series::new("p95", pts(|s| s.latency_ms.p95)),
                            Series::new("p99", pts(|s| s.latency_ms.p99)),
                        ],
                        x_format: plain,
                    },
                    Panel {
                        title: "API throughput".into(),
                        x_label: "concurrent users".into(),
                        y_label: "requests/s".into(),
                        series: vec![Series::new("all endpoints", pts(|s| s.throughput_rps))],
                        x_format: plain,
                    },
                ],
            )?;
        }
    }
    if let Some(m) = &r.burst {
        let _ = writeln!(
            o,
            "## Burst\n\n{} clients, each on its own connection, send one `GET /api/tasks` at the \
             same moment.\n\n| {SUMMARY_HEAD} |\n|{}\n| {} | {} |\n",
            m.result.connections,
            "---|".repeat(10),
            summary_cells(&m.result.total),
            usage_cells(&m.server)
        );
        o.push_str(
            "The slowest connections wait for a retransmitted SYN (about 1 s on Linux) when \
             the server's accept queue overflows; see `docs/PERFORMANCE.md`, section \"Load, \
             storage and soak\".\n\n",
        );
    }
    if !r.generate.is_empty() {
        o.push_str("## Generation\n\nOne task alone, then k tasks submitted together (distinct seeds, so no cache hits).\n\n| scenes | steps | tasks | makespan s | median first frame s | scenes/s | vs one task | all completed | server CPU (of machine) | server RSS |\n|---|---|---|---|---|---|---|---|---|---|\n");
        let mut makespan = Vec::new();
        for m in &r.generate {
            let g = &m.result;
            let first = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                o,
                "| {} | {} | 1 | {:.2} | {} | {:.2} | 1.00x | {} | {} |",
                g.shape.scenes,
                g.shape.steps,
                g.single.wall_s,
                first(g.single.first_frame_median_s()),
                g.single.scenes_per_s,
                g.single.all_completed,
                usage_cells(&m.server)
            );
            for c in &g.concurrent {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {:.2} | {} | {:.2} | {:.2}x | {} | |",
                    g.shape.scenes,
                    g.shape.steps,
                    c.tasks,
                    c.wall_s,
                    first(c.first_frame_median_s()),
                    c.scenes_per_s,
                    g.speedup(c),
                    c.all_completed
                );
            }
            let mut pts = vec![(1.0, g.single.wall_s)];
            pts.extend(g.concurrent.iter().map(|c| (c.tasks as f64, c.wall_s)));
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            makespan.push(Series::new(format!("{} scenes", g.shape.scenes), pts));
            timelines.push((format!("generate, {} scenes", g.shape.scenes), &m.server));
        }
        o.push('\n');
        plots.put(
            &mut o,
            "generate.svg",
            "generation makespan by concurrent tasks",
            &[Panel {
                title: "Generation makespan".into(),
                x_label: "concurrent tasks".into(),
                y_label: "seconds".into(),
                series: makespan,
                x_format: plain,
            }],
        )?;
    }
    if let Some(m) = &r.storage {
        let s = &m.result;
        o.push_str("## Storage\n\nreel's sled store driven directly (no HTTP) by concurrent client threads; the store is filled with `create_task` to each size in turn. Reads: `get`, a `list` page, a cache lookup; writes: `create_task` (flushed), progress `update`, status-changing `update` (flushed); mixed: 80% reads. CPU and RSS are the bench process's.\n\n| filled to | seconds | tasks/s |\n|---|---|---|\n");
        for p in &s.preload {
            let _ = writeln!(o, "| {} | {:.1} | {:.0} |", p.stored, p.secs, p.tasks_per_s);
        }
        let _ = writeln!(
            o,
            "\n| stored | workload | clients | ops | p50 ms | p95 ms | p99 ms | max ms | ops/s | errors | 429 | CPU (of machine) | RSS |\n|---|---|---|{}",
            "---|".repeat(10)
        );
        for run in &s.runs {
            let _ = writeln!(
                o,
                "| {} | {:?} | {} | {} | {} |",
                run.stored,
                run.workload,
                run.clients,
                summary_cells(&run.summary),
                usage_cells(&run.process)
            );
        }
        o.push('\n');
        let most = s.runs.iter().map(|r| r.clients).max().unwrap_or(0);
        let line = |w: Workload, f: fn(&Summary) -> f64| {
            let pts = s
                .runs
                .iter()
                .filter(|r| r.workload == w && r.clients == most)
                .map(|r| ((r.stored.max(1) as f64).log10(), f(&r.summary)))
                .collect();
            Series::new(format!("{w:?}"), pts)
        };
        let all = |f: fn(&Summary) -> f64| {
            [Workload::Read, Workload::Write, Workload::Mixed]
                .into_iter()
                .map(|w| line(w, f))
                .filter(|s| !s.points.is_empty())
                .collect()
        };
        plots.put(
            &mut o,
            "storage.svg",
            "storage latency and throughput by stored tasks",
            &[
                Panel {
                    title: format!("Storage p99 latency, {most} clients"),
                    x_label: "stored tasks (log scale)".into(),
                    y_label: "ms".into(),
                    series: all(|s| s.latency_ms.p99),
                    x_format: pow10,
                },
                Panel {
                    title: format!("Storage throughput, {most} clients"),
                    x_label: "stored tasks (log scale)".into(),
                    y_label: "thousand ops/s".into(),
                    series: all(|s| s.throughput_rps / 1e3),
                    x_format: pow10,
                },
            ],
        )?;
    }
    if let Some(m) = &r.soak {
        let s = &m.result;
        let st = &s.stats;
        // Runs from before the back-to-back probes have none: leave them out rather than print zeros.
        let (pairs, warm_row) = match st.back_to_back_p99() {
            Some((first, last)) => (
                ", each sent twice back to back: the first pays for the machine waking from idle, the second is reel's own cost",
                format!("| probe p99 back to back, first / last quarter | {first:.2} / {last:.2} ms |\n"),
            ),
            None => ("", String::new()),
        };
        let _ = writeln!(
            o,
            "## Soak\n\nA {}-scene task ({} steps, distinct seeds) every {} s for {:.0} s; the server's RSS and CPU and two probes (`GET /api/tasks`, `GET /api/tasks/{{latest}}`{pairs}) sampled every {} s: {} samples, {} tasks posted, {} completed, {} probe errors, {} post errors. The figures leave out the first {:.0} s (start-up: the first tasks fill the allocator's arenas and the model's buffers).\n\n| figure | value |\n|---|---|\n| RSS, first quarter mean | {:.1} MiB |\n| RSS, last quarter mean | {:.1} MiB |\n| RSS growth | {:+.2}% |\n| memory slope (least squares) | {:+.2} MB/hour |\n| probe p99, first quarter | {:.2} ms |\n| probe p99, last quarter | {:.2} ms |\n| latency drift (last / first) | {:.2}x |\n{warm_row}| server CPU, mean | {:.0}% of one core |\n| whole machine busy (every process), first / last quarter | {:.0}% / {:.0}% |\n\nThe same scenario runs for an hour or a day with `load --scenario soak --duration-secs 3600` (or `86400`), or `report --soak-secs 3600`.\n",
            s.config.scenes, s.config.steps, s.config.task_every_s, s.wall_s, s.config.sample_every_s,
            s.samples.len(), s.samples.last().map_or(0, |x| x.tasks_posted), s.tasks_completed,
            s.probes.errors, s.posts.errors, s.config.warmup_s,
            st.rss_first_quarter_mb, st.rss_last_quarter_mb, st.rss_growth_percent,
            st.memory_slope_mb_per_hour, st.p99_first_quarter_ms, st.p99_last_quarter_ms,
            st.latency_drift_ratio,
            st.cpu_mean_percent, st.machine_cpu_first_quarter_percent, st.machine_cpu_last_quarter_percent,
        );
        let rss: Vec<(f64, f64)> = s
            .samples
            .iter()
            .map(|x| (x.t_s, x.rss_bytes as f64 / MIB))
            .collect();
        let analysed: Vec<(f64, f64)> = rss
            .iter()
            .copied()
            .filter(|&(t, _)| t >= s.config.warmup_s)
            .collect();
        let fit = crate::soak::linear_fit(
            &analysed
                .iter()
                .map(|&(t, y)| (t / 3600.0, y))
                .collect::<Vec<_>>(),
        );
        let mut rss_series = vec![Series::new("RSS", rss.clone())];
        if let (Some((a, b)), Some(first), Some(last)) = (fit, analysed.first(), analysed.last()) {
            let at = |t: f64| (t, a * t / 3600.0 + b);
            rss_series.push(Series::new(
                "least-squares fit",
                vec![at(first.0), at(last.0)],
            ));
        }
        let probe = s
            .samples
            .iter()
            .map(|x| (x.t_s, x.probe_ms.iter().copied().fold(0.0, f64::max)))
            .collect();
        let cpu = s
            .samples
            .iter()
            .map(|x| (x.t_s, x.cpu_percent as f64 / m.server.cores.max(1) as f64))
            .collect();
        let machine = s
            .samples
            .iter()
            .map(|x| (x.t_s, x.machine_cpu_percent as f64))
            .collect();
        plots.put(
            &mut o,
            "soak.svg",
            "soak: RSS, probe latency and CPU over time",
            &[
                Panel {
                    title: "Soak: server RSS".into(),
                    x_label: "seconds".into(),
                    y_label: "MiB".into(),
                    series: rss_series,
                    x_format: plain,
                },
                Panel {
                    title: "Soak: slowest probe of each sample".into(),
                    x_label: "seconds".into(),
                    y_label: "ms".into(),
                    series: vec![Series::new("probe latency", probe)],
                    x_format: plain,
                },
                Panel {
                    title: "Soak: CPU".into(),
                    x_label: "seconds".into(),
                    y_label: "% of the machine".into(),
                    series: vec![
                        Series::new("server", cpu),
                        Series::new("whole machine", machine),
                    ],
                    x_format: plain,
                },
            ],
        )?;
    }
    if !timelines.is_empty() {
        o.push_str("## Server CPU and memory over time\n\n");
        plots.put(
            &mut o,
            "server.svg",
            "server CPU and RSS over each scenario",
            &time_panels(&timelines, "Server"),
        )?;
    }
    if let Some(g) = gate {
        let _ = writeln!(
            o,
            "## Regression gate\n\nAgainst the baseline of {} with a margin of {:.0}% (plus each figure's absolute slack): **{}**.\n",
            g.baseline_date,
            g.margin * 100.0,
            if g.passed() { "passed" } else { "FAILED" }
        );
        o.push_str("| figure | baseline | now | |\n|---|---|---|---|\n");
        for c in &g.compared {
            let _ = writeln!(
                o,
                "| {} | {:.3} {} | {:.3} {} | {} |",
                c.label,
                c.baseline,
                c.unit,
                c.now,
                c.unit,
                if c.regressed { "**regressed**" } else { "ok" }
            );
        }
        o.push('\n');
    }
    std::fs::write(out_md, o).with_context(|| format!("writing {}", out_md.display()))
}
