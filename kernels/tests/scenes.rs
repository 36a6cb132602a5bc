//! The scene API the pipeline drives (start / step / decode / generate) on the exported
//! checkpoint: continuous batching must not change any scene's result, finished scenes stay
//! put, and bad requests are errors, not panics.

mod common;

use std::path::Path;

use common::rel_err;
use kernels::{CpuBackend, KernelError, Method, Model, Prediction, SceneState};

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

/// The checkpoint on the CPU backend, predicting `prediction`: the shipped config with its
/// `prediction` replaced (v with x0-trained weights predicts nonsense, but the sampler
/// arithmetic of both paths is what is compared).
fn model_predicting(prediction: Prediction) -> Model {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let name = serde_json::to_string(&prediction).unwrap();
    let config = config.replace("\"prediction\": \"x0\"", &format!("\"prediction\": {name}"));
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let m = Model::from_bytes_with(&config, &weights, CpuBackend::new(2)).unwrap();
    assert_eq!(m.config().prediction, prediction);
    m
}

/// A host scene and its resident twin stand at the same place with the same floats.
fn assert_twins(host: &SceneState, resident: &SceneState, what: &str) {
    assert!(
        !host.is_resident() && resident.is_resident(),
        "{what}: kinds"
    );
    assert_eq!(
        (host.step_index(), host.done()),
        (resident.step_index(), resident.done()),
        "{what}: progress"
    );
    assert!(host.latent() == resident.latent(), "{what}: latents differ");
    assert!(
        host.estimate() == resident.estimate(),
        "{what}: x0 estimates differ"
    );
}

/// `Model::with_resident_steps` on the CPU backend against the host path, bit for bit, for
/// x0 and v prediction: one batch of DPM-Solver++(2M) and DDIM scenes of 2, 3 and 5 steps
/// and different guidance, the 2-step one finishing mid-batch (and staying put), a scene
/// cancelled after its first step (dropped), another joining at the third step, and one step
/// taken with host and resident scenes in the same call; latents and estimates after every
/// step, then the decoded frames and previews.
#[test]
fn resident_steps_give_the_host_path_s_latents_bit_for_bit() {
    for prediction in [Prediction::X0, Prediction::V] {
        let mut m = model_predicting(prediction);
        assert!(!m.resident_steps(), "the host path is the default");
        let runs = [
            (RED, 2, 4.0, Method::DpmPP2M),
            (BLUE, 3, 2.5, Method::Ddim),
            (RED, 5, 7.0, Method::DpmPP2M),
            (BLUE, 4, 3.0, Method::DpmPP2M), // cancelled after one step
        ];
        let mut pairs: Vec<(SceneState, SceneState)> = Vec::new();
        for (i, &(caption, steps, guidance, method)) in runs.iter().enumerate() {
            let start = |m: &Model| m.start(caption, 11, i as u64, steps, guidance, method);
            let host = start(&m).unwrap();
            m = m.with_resident_steps(true);
            let resident = start(&m).unwrap();
            m = m.with_resident_steps(false);
            assert_twins(&host, &resident, "at the start");
            pairs.push((host, resident));
        }
        for step in 0..5 {
            if step == 1 {
                pairs.remove(3);
            }
            if step == 2 {
                let start = |m: &Model| m.start(BLUE, 12, 0, 3, 5.0, Method::Ddim);
                let host = start(&m).unwrap();
                m = m.with_resident_steps(true);
                let resident = start(&m).unwrap();
                m = m.with_resident_steps(false);
                pairs.push((host, resident));
            }
            let (mut host, mut resident): (Vec<_>, Vec<_>) =
                pairs.iter_mut().map(|(h, r)| (h, r)).unzip();
            if step == 3 {
                // Both kinds in one call: a pass each, as if stepped apart.
                let mut all: Vec<&mut SceneState> = host.into_iter().collect();
                all.extend(resident);
                m.step(&mut all);
            } else {
                m.step(&mut host);
                m.step(&mut resident);
            }
            for (i, (h, r)) in pairs.iter().enumerate() {
                assert_twins(h, r, &format!("{prediction:?} step {step} scene {i}"));
            }
        }
        assert!(pairs.iter().all(|(h, _)| h.done()));
        for (h, r) in &pairs {
            assert_eq!(m.decode(h), m.decode(r));
            assert_eq!(m.decode_estimate(h, 3), m.decode_estimate(r, 3));
        }
    }
}

/// A resident scene's clone is a copy on the backend: stepping one leaves the other put, and
/// each goes on as its host twin does.
#[test]
fn a_resident_scene_clones_on_the_backend() {
    let m = model();
    let mut host = m.start(RED, 4, 0, 3, 4.0, Method::DpmPP2M).unwrap();
    let m = m.with_resident_steps(true);
    let mut resident = m.start(RED, 4, 0, 3, 4.0, Method::DpmPP2M).unwrap();
    m.step(&mut [&mut host]);
    m.step(&mut [&mut resident]);
    let (host_copy, resident_copy) = (host.clone(), resident.clone());
    assert_twins(&host_copy, &resident_copy, "clones");
    while !resident.done() {
        m.step(&mut [&mut host]);
        m.step(&mut [&mut resident]);
        assert_twins(&host, &resident, "the original, stepped");
        assert_twins(&host_copy, &resident_copy, "the clones, left");
    }
    assert_eq!(resident_copy.step_index(), 1);
    assert!(format!("{resident_copy:?}").contains("cpu"));
}

/// What the engine drives ([`kernels::VideoModel`]) on a resident model: the same previews,
/// latent and frames as on the host path.
#[test]
fn the_engine_s_view_of_a_resident_model_is_the_host_path_s() {
    use kernels::{SceneRequest, VideoModel};
    let request = SceneRequest {
        caption: BLUE,
        seed: 3,
        stream: 2,
        steps: 3,
        guidance: 4.0,
        free_form: None,
    };
    let run_with = |m: &Model| {
        let mut run = VideoModel::start(m, &request).unwrap();
        let mut previews = vec![VideoModel::preview(m, &run)];
        while !run.done() {
            VideoModel::step(m, &mut [&mut run]);
            previews.push(VideoModel::preview(m, &run));
        }
        (previews, VideoModel::latent(m, &run))
    };
    let m = model();
    let (host_previews, host_latent) = run_with(&m);
    let m = m.with_resident_steps(true);
    let (previews, latent) = run_with(&m);
    assert!(previews[0].is_none() && previews[1].is_some());
    assert_eq!(previews, host_previews);
    assert_eq!(latent, host_latent);
}
