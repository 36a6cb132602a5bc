//! The in-process pipeline (`pipeline::inprocess`) end to end: the real dataflow on the shipped
//! checkpoint, CPU post-processing, a temporary data dir.

use std::path::Path;
use std::sync::Arc;

use contract::{TaskEvent, TaskStatus};
use kernels::Model;
use pipeline::engine::EngineConfig;
use pipeline::inprocess::{task_params, Pipeline, PipelineConfig, PipelineError};
use pipeline::planner::RulePlanner;
use pipeline::post::{PostChoice, PostProcessor};
use storage::TaskParams;

fn pipeline(dir: &Path) -> Pipeline {
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint");
    let model = Arc::new(Model::load(&checkpoint).unwrap());
    let post = Arc::new(PostProcessor::new(PostChoice::Cpu).unwrap());
    let config = PipelineConfig::new(EngineConfig::in_dir(dir.to_owned()));
    Pipeline::start(config, model, post, Arc::new(RulePlanner)).unwrap()
}

/// Two scenes of 4 frames (0.5 s at 8 fps), 64 px, 2 steps.
fn small(prompt: &str) -> TaskParams {
    TaskParams {
        num_scenes: 2,
        steps: 2,
        seconds_per_scene: 0.5,
        fps: 8,
        size: 64,
        ..task_params(prompt)
    }
}

#[test]
fn a_task_streams_its_frames_in_order_then_ends() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let task = p
        .submit(small("a red circle moves left, then a blue square grows"))
        .unwrap();
    let id = task.id;
    let events: Vec<TaskEvent> = task.events.collect();
    assert_eq!(events.last(), Some(&TaskEvent::Done(TaskStatus::Completed)));
    let frames: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::Frame { index } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(frames, (0..8).collect::<Vec<_>>());
    let completed = events
        .iter()
        .position(|e| e == &TaskEvent::Status(TaskStatus::Completed))
        .unwrap();
    assert!(events
        .iter()
        .position(|e| matches!(e, TaskEvent::Frame { .. }))
        .is_some_and(|first| first < completed));
    for index in frames {
        let frame = p.frame(id, index).unwrap();
        assert_eq!(
            (frame.width, frame.height, frame.rgb.len()),
            (64, 64, 64 * 64 * 3)
        );
    }
    let record = p.record(id).unwrap();
    assert_eq!(record.artifact.unwrap().frame_count, 8);
    // An ended task's events: only how it ended.
    let again: Vec<TaskEvent> = p.events(id).unwrap().collect();
    assert_eq!(again, [TaskEvent::Done(TaskStatus::Completed)]);
    assert!(matches!(
        p.frame(id, 8),
        Err(PipelineError::Frame { index: 8, .. })
    ));
}

#[test]
fn cancel_ends_a_running_task_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let mut params = small("a red circle moves left");
    (params.num_scenes, params.steps) = (8, 100);
    let mut task = p.submit(params).unwrap();
    // Cancelled at its first step: the rest never runs.
    for event in task.events.by_ref() {
        if let TaskEvent::Step { .. } = event {
            assert_eq!(p.cancel(task.id).unwrap(), TaskStatus::Cancelled);
            break;
        }
    }
    assert_eq!(
        task.events.last(),
        Some(TaskEvent::Done(TaskStatus::Cancelled))
    );
    assert_eq!(p.record(task.id).unwrap().status, TaskStatus::Cancelled);
    // Cancelling again answers how it ended.
    assert_eq!(p.cancel(task.id).unwrap(), TaskStatus::Cancelled);

    let mut bad = small("a red circle");
    bad.size = 70;
    let Err(PipelineError::Invalid(why)) = p.submit(bad) else {
        panic!("a size of 70 is refused");
    };
    assert_eq!(why, "size must be a multiple of 16, got 70");
    assert!(matches!(p.events(999), Err(PipelineError::NotFound(999))));
    assert!(matches!(p.cancel(999), Err(PipelineError::NotFound(999))));
}
