//! The scene API the pipeline drives (start / step / decode / generate) on the exported
//! checkpoint: continuous batching must not change any scene's result, finished scenes stay
//! put, and bad requests are errors, not panics.

mod common;

use std::path::Path;

use common::rel_err;
use kernels::{CpuBackend, KernelError, Method, Model};

fn model() -> Model {
    Model::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint"),
        CpuBackend::new(2),
    )
    .expect("load model/checkpoint")
}

const RED: &str = "a small red circle moving left on a black background";
const BLUE: &str = "a large blue square growing on a beige background";

#[test]
fn batching_does_not_change_a_scene() {
    let m = model();
    let mut alone = m.start(RED, 5, 0, 3, 4.0, Method::DpmPP2M).unwrap();
    let mut together = alone.clone();
    // A companion at another step, with its own guidance, method and step count.
    let mut other = m.start(BLUE, 6, 0, 5, 2.5, Method::Ddim).unwrap();
    m.step(&mut [&mut other]);
    for _ in 0..3 {
        m.step(&mut [&mut alone]);
        m.step(&mut [&mut other, &mut together]);
    }
    assert!(alone.done() && together.done() && !other.done());
    assert_eq!(other.step_index(), 4);
    let err = rel_err(together.latent(), alone.latent());
    assert!(
        err <= 1e-6,
        "batched scene drifted from the lone one: {err:e}"
    );
}

#[test]
fn finished_scenes_are_left_alone() {
    let m = model();
    let mut done = m.start(RED, 1, 0, 1, 4.0, Method::Ddim).unwrap();
    m.step(&mut [&mut done]);
    assert!(done.done());
    let before = done.latent().to_vec();
    let mut other = m.start(BLUE, 1, 1, 2, 4.0, Method::Ddim).unwrap();
    m.step(&mut [&mut done, &mut other]);
    m.step(&mut []);
    assert_eq!(done.latent(), &before[..]);
    assert_eq!((done.step_index(), other.step_index()), (1, 1));
}

#[test]
fn the_estimate_is_a_frame_of_x0_and_the_final_frames_at_the_end() {
    let m = model();
    let mut s = m.start(RED, 3, 0, 4, 4.0, Method::DpmPP2M).unwrap();
    assert!(s.estimate().is_none() && m.decode_estimate(&s, 0).is_none());
    m.step(&mut [&mut s]);
    let early = m.decode_estimate(&s, 3).unwrap();
    let side = m.config().base_size;
    assert_eq!((early.frames, early.width, early.height), (1, side, side));
    assert!(early.data.iter().all(|v| (0.0..=1.0).contains(v)));
    while !s.done() {
        m.step(&mut [&mut s]);
    }
    // The last step lands on its x0 exactly (t = 0), so the estimate is the final frame.
    let last = m.decode(&s);
    let frame = side * side * 3;
    let mid = m.config().frames / 2;
    let est = m.decode_estimate(&s, mid).unwrap();
    assert_eq!(est.data, last.data[mid * frame..(mid + 1) * frame]);
    // Out of range: the last frame.
    let past = m.decode_estimate(&s, usize::MAX).unwrap();
    assert_eq!(past.data, last.data[(last.frames - 1) * frame..]);
}

#[test]
fn generate_is_deterministic_and_sized() {
    let m = model();
    let cfg = m.config().clone();
    let clips = m.generate(&[RED, RED], 9, 2, 4.0, Method::DpmPP2M).unwrap();
    assert_eq!(clips.len(), 2);
    for c in &clips {
        assert_eq!(
            (c.frames, c.width, c.height),
            (cfg.frames, cfg.base_size, cfg.base_size)
        );
        assert_eq!(c.data.len(), c.frames * c.width * c.height * 3);
        assert!(c.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    assert_ne!(
        clips[0], clips[1],
        "streams 0 and 1 must give different noise"
    );
    assert_eq!(
        m.generate(&[RED], 9, 2, 4.0, Method::DpmPP2M).unwrap()[0],
        clips[0]
    );
}

#[test]
fn bad_requests_are_errors() {
    let m = model();
    assert!(
        matches!(m.start("a tiny red circle", 0, 0, 4, 4.0, Method::Ddim), Err(KernelError::UnknownWord { word }) if word == "tiny")
    );
    assert!(matches!(
        m.start(RED, 0, 0, 0, 4.0, Method::Ddim),
        Err(KernelError::InvalidArgument(_))
    ));
    assert!(matches!(
        m.start(RED, 0, 0, 4, f32::NAN, Method::Ddim),
        Err(KernelError::InvalidArgument(_))
    ));
    let long = vec!["a"; m.config().max_tokens + 1].join(" ");
    assert!(matches!(
        m.start(&long, 0, 0, 4, 4.0, Method::Ddim),
        Err(KernelError::TooManyTokens { .. })
    ));
    assert!(matches!(
        Model::load(Path::new("/nonexistent/checkpoint")),
        Err(KernelError::Io { .. })
    ));
}

#[test]
fn config_and_id() {
    let m = model();
    let cfg = m.config();
    assert!(m.id().starts_with(&format!("{}-", cfg.architecture)));
    assert_eq!(m.id().len(), cfg.architecture.len() + 13);
    assert_eq!(cfg.vocab[0], "<pad>");
    assert!(
        cfg.sampler.steps > 0 && cfg.fps > 0.0 && cfg.latent_channels == 3 * cfg.patch * cfg.patch
    );
}

#[test]
fn a_finished_runs_latent_decodes_to_the_same_frames_anywhere() {
    use kernels::{SceneRequest, VideoModel};
    let m = model();
    let request = SceneRequest {
        caption: RED,
        seed: 9,
        stream: 1,
        steps: 3,
        guidance: 4.0,
        free_form: None,
    };
    let mut run = VideoModel::start(&m, &request).unwrap();
    while !run.done() {
        VideoModel::step(&m, &mut [&mut run]);
    }
    // What a cluster sends between processes: plain data, through bincode and back.
    let latent = VideoModel::latent(&m, &run);
    assert!(latent.is_whole());
    let wire = bincode::serialize(&latent).unwrap();
    let received: kernels::Latent = bincode::deserialize(&wire).unwrap();
    let mut pieces = Vec::new();
    VideoModel::decode(&m, &received, &mut |clip| {
        pieces.push(clip);
        true
    });
    let mut state = m
        .start(RED, 9, 1, 3, 4.0, m.config().sampler.method)
        .unwrap();
    while !state.done() {
        m.step(&mut [&mut state]);
    }
    assert_eq!(pieces.len(), 1);
    assert_eq!(pieces[0].data, m.decode(&state).data);
    // A latent of another shape decodes to nothing rather than to garbage.
    let mut short = received.clone();
    short.data.pop();
    short.shape[0] -= 1;
    let mut called = false;
    VideoModel::decode(&m, &short, &mut |_| {
        called = true;
        true
    });
    assert!(!called);
}
