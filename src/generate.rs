//! `reel generate` (one task in-process, with a progress bar) and `reel plan`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use contract::TaskEvent;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::plan::Planner;
use pipeline::planner::RulePlanner;
use storage::{NewTask, TaskParams, TaskStatus};
use tasks::Subscription;
use tokio::sync::broadcast::error::RecvError;

use crate::config::Settings;
use crate::runtime;

#[derive(Args)]
pub struct SceneArgs {
    /// Scenes in the video (1-8)
    #[arg(long, default_value_t = TaskParams::DEFAULT_NUM_SCENES)]
    num_scenes: usize,
    /// Seed of every random choice (same seed, prompt and parameters: same video)
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// What the video shows, in English or Chinese
    prompt: String,
    /// Where to write the MP4
    #[arg(short, long, default_value = "out.mp4")]
    output: PathBuf,
    #[command(flatten)]
    scenes: SceneArgs,
    /// Denoising steps per scene
    #[arg(long, default_value_t = TaskParams::DEFAULT_STEPS)]
    steps: usize,
    /// Classifier-free guidance scale
    #[arg(long, default_value_t = TaskParams::DEFAULT_GUIDANCE)]
    guidance: f32,
    /// Seconds per scene
    #[arg(long, default_value_t = TaskParams::DEFAULT_SECONDS_PER_SCENE)]
    seconds_per_scene: f32,
    /// Delivered frames per second
    #[arg(long, default_value_t = TaskParams::DEFAULT_FPS)]
    fps: u32,
    /// Delivered frame side in pixels
    #[arg(long, default_value_t = TaskParams::DEFAULT_SIZE)]
    size: u32,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
pub struct PlanArgs {
    /// The prompt to plan
    prompt: String,
    #[command(flatten)]
    scenes: SceneArgs,
}

pub fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let plan = RulePlanner.plan(&args.prompt, args.scenes.num_scenes, args.scenes.seed);
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let settings = args.settings.resolve()?;
    let rt = runtime::start(&settings)?;
    let params = TaskParams {
        prompt: args.prompt,
        num_scenes: args.scenes.num_scenes,
        seed: args.scenes.seed,
        steps: args.steps,
        guidance: args.guidance,
        seconds_per_scene: args.seconds_per_scene,
        fps: args.fps,
        size: args.size,
    };
    params.validate().map_err(|e| anyhow::anyhow!(e))?;
    let task = rt.tasks.create(NewTask::anonymous(params))?;
    let Some(Subscription::Live { mut events, .. }) = rt.tasks.subscribe(task.id)? else {
        bail!("task {} ended before it started", task.id);
    };
    rt.engine.submit(&task)?;

    let bar = ProgressBar::new(1000);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {msg:16} [{bar:40}] {percent:>3}% {elapsed}",
    )?);
    bar.set_message("queued");
    let status = loop {
        match events.blocking_recv() {
            Ok(TaskEvent::Status(s)) => bar.set_message(s.name()),
            Ok(TaskEvent::Step { overall, .. }) => bar.set_position((overall * 1000.0) as u64),
            Ok(TaskEvent::Frame { .. }) => {}
            Ok(TaskEvent::Done(s)) => break s,
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => {
                break rt
                    .tasks
                    .store()
                    .get(task.id)?
                    .map_or(TaskStatus::Failed, |r| r.status)
            }
        }
    };
    bar.finish_with_message(status.name());
    let record = rt
        .tasks
        .store()
        .get(task.id)?
        .context("task vanished from storage")?;
    let Some(artifact) = record.artifact.filter(|_| status == TaskStatus::Completed) else {
        bail!(
            "task {} ended {}: {}",
            task.id,
            status.name(),
            record.error.unwrap_or_default()
        );
    };
    std::fs::copy(settings.data_dir.join(&artifact.video), &args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} frames, {} bytes); timings {}",
        args.output.display(),
        artifact.frame_count,
        artifact.video_bytes,
        serde_json::to_string(&record.timings_ms)?
    );
    Ok(())
}
