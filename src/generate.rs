//! `reel generate` (one task in-process, with a bar per scene on a terminal, plain progress
//! lines otherwise) and `reel plan`.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;
use contract::TaskEvent;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use storage::{TaskParams, TaskRequest, TaskStatus};

use crate::config::Settings;
use crate::runtime;

#[derive(Args)]
pub struct SceneArgs {
    /// Scenes in the video (1-8) [default: 3; 1 for a free-form model]
    #[arg(long)]
    num_scenes: Option<usize>,
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
    /// Denoising steps per scene [default: 20; the model's for a free-form model]
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale [default: 4; the model's for a free-form model]
    #[arg(long)]
    guidance: Option<f32>,
    /// Seconds per scene, built-in model [default: 2]
    #[arg(long)]
    seconds_per_scene: Option<f32>,
    /// Delivered frames per second [default: 24; the model's for a free-form model]
    #[arg(long)]
    fps: Option<u32>,
    /// Delivered frame side in pixels, built-in model [default: 256]
    #[arg(long)]
    size: Option<u32>,
    /// Frame width, free-form model (--model wan:DIR) [default: the model's]
    #[arg(long)]
    width: Option<u32>,
    /// Frame height, free-form model [default: the model's]
    #[arg(long)]
    height: Option<u32>,
    /// Frames per scene (1 + 4k), free-form model [default: the model's]
    #[arg(long)]
    num_frames: Option<usize>,
    /// What guidance steers away from, free-form model [default: empty]
    #[arg(long)]
    negative_prompt: Option<String>,
    /// Sampler, free-form model: unipc or euler [default: the checkpoint's]
    #[arg(long)]
    scheduler: Option<String>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Args)]
pub struct PlanArgs {
    /// The prompt to plan
    prompt: String,
    #[command(flatten)]
    scenes: SceneArgs,
    // The planner settings (`--planner` and its siblings) apply; the others are ignored.
    #[command(flatten)]
    settings: Settings,
}

pub fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let settings = args.settings.resolve()?;
    let planner = runtime::planner(&settings, runtime::wan_dir(&settings).is_some())?;
    let default_scenes = if runtime::wan_dir(&settings).is_some() {
        1
    } else {
        TaskParams::DEFAULT_NUM_SCENES
    };
    let scenes = args.scenes.num_scenes.unwrap_or(default_scenes);
    let plan = planner.plan(&args.prompt, scenes, args.scenes.seed);
    println!("{}", serde_json::to_string_pretty(&plan)?);
    Ok(())
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let settings = args.settings.resolve()?;
    let rt = runtime::start(&settings)?;
    let request = TaskRequest {
        prompt: args.prompt,
        num_scenes: args.scenes.num_scenes,
        seed: Some(args.scenes.seed),
        steps: args.steps,
        guidance: args.guidance,
        seconds_per_scene: args.seconds_per_scene,
        fps: args.fps,
        size: args.size,
        width: args.width,
        height: args.height,
        num_frames: args.num_frames,
        negative_prompt: args.negative_prompt,
        scheduler: args.scheduler,
    };
    let params = request
        .resolve(rt.model.spec(), || args.scenes.seed)
        .map_err(|e| anyhow::anyhow!(e))?;
    let submitted = rt.pipeline.submit(params)?;
    let task = rt.pipeline.record(submitted.id)?;

    let mut shown = Shown::new(task.params.num_scenes);
    let mut status = TaskStatus::Failed;
    for event in submitted.events {
        match event {
            TaskEvent::Status(s) => shown.status(s),
            TaskEvent::Step {
                scene, step, steps, ..
            } => shown.step(scene, step, steps),
            TaskEvent::Frame { .. } | TaskEvent::Preview { .. } => {}
            TaskEvent::Done(s) => status = s,
        }
    }
    shown.finish(status);
    let record = rt.pipeline.record(task.id)?;
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

/// How a running task is shown: on a terminal, a status line and one bar per scene (steps);
/// otherwise plain lines: each status, and each scene at every quarter of its steps.
enum Shown {
    Bars {
        status: ProgressBar,
        scenes: Vec<ProgressBar>,
    },
    Lines {
        /// Per scene, the last quarter reported.
        quarters: Vec<usize>,
    },
}

impl Shown {
    fn new(scenes: usize) -> Shown {
        if !std::io::stderr().is_terminal() {
            return Shown::Lines {
                quarters: vec![0; scenes],
            };
        }
        let multi = MultiProgress::new();
        let status = multi.add(ProgressBar::new_spinner());
        status.set_message("queued");
        let style = ProgressStyle::with_template("scene {prefix:>2} [{bar:40}] {pos}/{len} steps")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let scenes = (0..scenes)
            .map(|i| {
                let bar = multi.add(ProgressBar::new(1).with_style(style.clone()));
                bar.set_prefix((i + 1).to_string());
                bar
            })
            .collect();
        Shown::Bars { status, scenes }
    }

    fn status(&mut self, s: TaskStatus) {
        match self {
            Shown::Bars { status, .. } => status.set_message(s.name()),
            Shown::Lines { .. } => eprintln!("status: {}", s.name()),
        }
    }

    fn step(&mut self, scene: usize, step: usize, steps: usize) {
        match self {
            Shown::Bars { scenes, .. } => {
                if let Some(bar) = scenes.get(scene) {
                    bar.set_length(steps as u64);
                    bar.set_position(step as u64);
                }
            }
            Shown::Lines { quarters } => {
                let q = step * 4 / steps.max(1);
                if let Some(last) = quarters.get_mut(scene).filter(|last| q > **last) {
                    *last = q;
                    eprintln!("scene {}: {step}/{steps} steps", scene + 1);
                }
            }
        }
    }

    fn finish(&mut self, s: TaskStatus) {
        match self {
            Shown::Bars { status, scenes } => {
                scenes.iter().for_each(ProgressBar::finish);
                status.finish_with_message(s.name());
            }
            Shown::Lines { .. } => eprintln!("status: {}", s.name()),
        }
    }
}
