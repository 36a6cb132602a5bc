//! A custom dataflow operator on reel's frames: a per-scene statistic computed as the frames
//! stream out of the in-process pipeline (`pipeline::inprocess::Pipeline`).
//!
//! cargo run --release --example scene_statistic -- "a red circle moves left, then a blue square grows"
//!
//! The engine's own dataflow is private to the `pipeline` crate; this example runs a timely
//! dataflow of its own downstream of it. Each delivered frame enters at the timestamp of its
//! scene; the `scene_statistic` operator (a plain timely `unary` operator, as the engine's
//! stages are written: `pipeline/src/dataflow/`) keeps a running sum per scene and, the moment
//! a scene's last frame is in, emits the scene's mean colour and how far its object's centroid
//! moved, while later scenes are still being sampled.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use contract::TaskEvent;
use kernels::Model;
use pipeline::engine::EngineConfig;
use pipeline::inprocess::{task_params, Frame, Pipeline, PipelineConfig};
use pipeline::planner::RulePlanner;
use pipeline::post::{PostChoice, PostProcessor};
use storage::TaskParams;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline as Local;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle, StreamVec};

/// One delivered frame, tagged with its scene.
#[derive(Clone)]
struct SceneFrame {
    scene: usize,
    frame: Arc<Frame>,
}

/// What the operator reports per scene.
#[derive(Clone, Debug)]
struct SceneStat {
    scene: usize,
    frames: usize,
    /// Mean RGB over all the scene's pixels, in [0, 1].
    mean_rgb: [f32; 3],
    /// The object's centroid (pixels unlike the frame's corner) in the first and last frame,
    /// as fractions of the frame.
    centroid: [(f32, f32); 2],
}

/// Running sums of one scene.
#[derive(Default)]
struct Acc {
    frames: usize,
    sum: [f64; 3],
    pixels: u64,
    first: Option<(f32, f32)>,
    last: Option<(f32, f32)>,
}

/// Centroid of the pixels that differ from the top-left pixel (the canvas) by more than 0.2.
fn centroid(f: &Frame) -> Option<(f32, f32)> {
    let bg = &f.rgb[..3];
    let (mut sx, mut sy, mut n) = (0.0f64, 0.0f64, 0u64);
    for (i, px) in f.rgb.chunks_exact(3).enumerate() {
        let d: i32 = px
            .iter()
            .zip(bg)
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .sum();
        if d > 3 * 51 {
            sx += (i % f.width) as f64;
            sy += (i / f.width) as f64;
            n += 1;
        }
    }
    (n > 0).then(|| {
        (
            (sx / n as f64 / f.width as f64) as f32,
            (sy / n as f64 / f.height as f64) as f32,
        )
    })
}

fn main() -> anyhow::Result<()> {
    let prompt = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "a red circle moves left, then a blue square grows".into());
    let params = TaskParams {
        num_scenes: 2,
        steps: 10,
        seconds_per_scene: 1.0,
        fps: 8,
        size: 64,
        ..task_params(prompt)
    };
    let per_scene = params.frames_per_scene();

    let model = Arc::new(
        Model::load(Path::new("model/checkpoint")).context("run from the repository root")?,
    );
    let post = Arc::new(PostProcessor::new(PostChoice::Cpu)?);
    let dir = std::env::temp_dir().join(format!("reel-scene-statistic-{}", std::process::id()));
    let config = PipelineConfig::new(EngineConfig::in_dir(dir.clone()));
    let pipeline = Pipeline::start(config, model, post, Arc::new(RulePlanner))?;
    let task = pipeline.submit(params)?;
    let id = task.id;

    let result = timely::execute_directly(move |worker| -> anyhow::Result<()> {
        let mut input = InputHandle::<usize, CapacityContainerBuilder<Vec<SceneFrame>>>::new();
        let probe = ProbeHandle::new();
        worker.dataflow::<usize, _, _>(|scope| {
            let stats: StreamVec<'_, usize, SceneStat> =
                scope
                    .input_from(&mut input)
                    .unary(Local, "scene_statistic", move |_cap, _info| {
                        let mut scenes = HashMap::<usize, Acc>::new();
                        move |input, output| {
                            input.for_each_stamp(|cap, data| {
                                let mut session = output.session(&cap);
                                for sf in data.flat_map(|d| d.drain(..)) {
                                    let acc = scenes.entry(sf.scene).or_default();
                                    for px in sf.frame.rgb.chunks_exact(3) {
                                        for (s, &v) in acc.sum.iter_mut().zip(px) {
                                            *s += f64::from(v) / 255.0;
                                        }
                                    }
                                    acc.pixels += (sf.frame.width * sf.frame.height) as u64;
                                    let c = centroid(&sf.frame);
                                    acc.first = acc.first.or(c);
                                    acc.last = c.or(acc.last);
                                    acc.frames += 1;
                                    if acc.frames == per_scene {
                                        let acc = scenes.remove(&sf.scene).unwrap_or_default();
                                        let mean =
                                            acc.sum.map(|s| (s / acc.pixels.max(1) as f64) as f32);
                                        session.give(SceneStat {
                                            scene: sf.scene,
                                            frames: acc.frames,
                                            mean_rgb: mean,
                                            centroid: [
                                                acc.first.unwrap_or_default(),
                                                acc.last.unwrap_or_default(),
                                            ],
                                        });
                                    }
                                }
                            });
                        }
                    });
            stats
                .inspect(|s: &SceneStat| {
                    let [(x0, y0), (x1, y1)] = s.centroid;
                    println!(
                        "scene {}: {} frames, mean rgb {:.3?}, object moved ({:+.2}, {:+.2}) of \
                         the frame",
                        s.scene + 1,
                        s.frames,
                        s.mean_rgb,
                        x1 - x0,
                        y1 - y0
                    );
                })
                .probe_with(&probe);
        });
        for event in task.events {
            match event {
                TaskEvent::Frame { index } => {
                    let scene = index / per_scene;
                    let frame = Arc::new(pipeline.frame(id, index)?);
                    input.send(SceneFrame { scene, frame });
                    if (index + 1) % per_scene == 0 {
                        // The scene's last frame: move on, and run until its statistic is out.
                        input.advance_to(scene + 1);
                        worker.step_while(|| probe.less_than(input.time()));
                    } else {
                        worker.step();
                    }
                }
                TaskEvent::Done(status) => println!("task {id} {}", status.name()),
                _ => {}
            }
        }
        input.close();
        while worker.step() {}
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
