//! `apply_reports`: what `denoise` reports, told to the task service in process 0.
//!
//! Input: [`Report`], exchanged to the task's home worker (process 0) from whichever worker,
//! in whichever process, denoised. No output. A step moves each of its scenes' progress (one
//! `TaskEvent::Step` per task), a preview goes to the watchers it was made for, a failure
//! fails the task (process 0 then tells every denoiser it ended, through `Control`), a load
//! updates `Home::load` and `reel_scenes_in_flight{process, state}` (scenes waiting and being
//! denoised in each process, kept as the denoisers report changes: nothing is rescanned).
//! `reel_run_steps_total{process}` counts sampler steps by the process that took them: one per
//! run, however many tasks share it; `reel_cluster_bytes_in_total{kind="report"}` the bytes of
//! reports from other processes. Capabilities: none (a sink; the task service ignores a
//! report about a task that has ended meanwhile).

use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::context::{Context, Home};
use super::messages::{count_bytes_in, Report, Reported};

/// The `apply_reports` operator on the stream of `denoise`'s reports.
///
/// Input: [`Report`], exchanged by its route to the home worker. Output: none.
/// Capabilities: none held.
pub trait ApplyReports {
    /// Hands each report to the task service (steps, previews, failures).
    fn apply_reports(self, ctx: Arc<Context>);
}

impl ApplyReports for StreamVec<'_, u64, Report> {
    fn apply_reports(self, ctx: Arc<Context>) {
        let layout = ctx.layout;
        let home_of = move |r: &Report| layout.home_worker(r.route);
        let home = ctx.home.clone();
        self.sink(
            Exchange::new(home_of),
            "apply_reports",
            move |(input, _)| {
                input.for_each_stamp(|_, data| {
                    for report in data.flat_map(|d| d.drain(..)) {
                        count_bytes_in("report", report.process, &report);
                        if let Some(home) = home.as_deref() {
                            apply(home, report);
                        }
                    }
                });
            },
        );
    }
}

fn apply(home: &Home, report: Report) {
    match report.what {
        Reported::Step {
            scenes,
            step,
            steps,
        } => {
            let process = report.process.to_string();
            metrics::counter!("reel_run_steps_total", "process" => process).increment(1);
            for (task, index) in scenes {
                home.tasks.step(task, index, step, steps);
            }
        }
        Reported::Preview {
            scenes,
            step,
            steps,
            png,
        } => {
            let png: Arc<[u8]> = png.into();
            for (task, index) in scenes {
                home.tasks.preview(task, index, step, steps, png.clone());
            }
        }
        Reported::Load(load) => {
            let mut all = home.load.lock().unwrap_or_else(|e| e.into_inner());
            all.insert(load.worker, load);
            let of_process = all.values().filter(|l| l.process == load.process);
            let (waiting, running) = of_process.fold((0, 0), |(w, r), l| {
                (w + l.waiting, r + l.running + l.following)
            });
            let process = load.process.to_string();
            metrics::gauge!("reel_scenes_in_flight", "process" => process.clone(), "state" => "waiting")
                .set(waiting as f64);
            metrics::gauge!("reel_scenes_in_flight", "process" => process, "state" => "denoising")
                .set(running as f64);
        }
        Reported::Failed { task, reason } => {
            home.tasks.fail(task, &reason);
        }
    }
}
