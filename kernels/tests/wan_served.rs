//! `kernels::wan::WanModel`, the served Wan2.1 path (`reel serve --model wan:DIR`), against
//! diffusers' `WanPipeline` on the tiny checkpoint: from the prompt's text to the frames,
//! through the tokenizer, umT5, the guided UniPC loop and the VAE decoding one latent frame
//! at a time, starting from the reference's own latents.

mod common;

use common::wan::{max_abs_diff, tiny_dir, Goldens};
use kernels::wan::WanModel;
use kernels::{Clip, FreeFormScene, SceneRequest, SceneRun, VideoModel};

fn request<'a>(caption: &'a str, steps: usize, scheduler: &'a str) -> SceneRequest<'a> {
    SceneRequest {
        caption,
        seed: 7,
        stream: 0,
        steps,
        guidance: 5.0,
        free_form: Some(FreeFormScene {
            width: 48,
            height: 32,
            num_frames: 5,
            negative_prompt: "",
            scheduler,
        }),
    }
}

fn run_to_end(model: &WanModel, run: &mut SceneRun) {
    while !run.done() {
        model.step(&mut [run]);
    }
}

/// Every piece the decode hands over, in order.
fn decoded(model: &WanModel, run: &SceneRun) -> Vec<Clip> {
    let mut pieces = Vec::new();
    model.decode(&model.latent(run), &mut |clip| {
        pieces.push(clip);
        true
    });
    pieces
}

#[test]
fn the_served_path_makes_the_pipelines_frames() {
    let model = WanModel::load(&tiny_dir()).expect("tiny checkpoint");
    let goldens = Goldens::load();
    let prompt = goldens.metadata()["prompt.en"].clone();
    let start = goldens.f32("pipeline.latents");
    let mut run = model
        .start_from(&request(&prompt, 4, "unipc"), start)
        .expect("start");
    run_to_end(&model, &mut run);
    assert_eq!(run.step_index(), 4);
    let pieces = decoded(&model, &run);
    // Two latent frames: the first decodes to one frame, the second to four.
    let counts: Vec<usize> = pieces.iter().map(|c| c.frames).collect();
    assert_eq!(counts, [1, 4]);
    assert!(pieces.iter().all(|c| (c.width, c.height) == (48, 32)));
    let frames: Vec<f32> = pieces.into_iter().flat_map(|c| c.data).collect();
    let want = goldens.f32_shaped("pipeline.video", &[1, 5, 32, 48, 3]);
    let err = max_abs_diff(&frames, &want);
    eprintln!("served frames: max abs error {err:e}");
    assert!(err <= 1e-4, "served frames off by {err}");
}

#[test]
fn seeds_decide_the_video_and_requests_are_checked() {
    let model = WanModel::load(&tiny_dir()).expect("tiny checkpoint");
    let spec = model.spec().free_form.clone().expect("free-form");
    assert_eq!((spec.width_multiple, spec.height_multiple), (24, 16));
    assert_eq!(spec.frame_multiple, 4);
    assert_eq!(spec.schedulers, ["unipc", "euler"]);
    assert!(spec.width.is_multiple_of(24) && spec.height.is_multiple_of(16));
    assert!((spec.num_frames - 1).is_multiple_of(4));

    let video = |seed: u64, scheduler: &str| {
        let mut req = request("a fox in the snow", 2, scheduler);
        req.seed = seed;
        let mut run = model.start(&req).expect("start");
        run_to_end(&model, &mut run);
        assert!(model.preview(&run).is_some(), "a preview after a step");
        decoded(&model, &run)
            .into_iter()
            .flat_map(|c| c.data)
            .collect::<Vec<f32>>()
    };
    let a = video(1, "unipc");
    assert_eq!(a, video(1, "unipc"), "the same seed, the same video");
    assert!(max_abs_diff(&a, &video(2, "unipc")) > 1e-3, "another seed");
    assert!(
        max_abs_diff(&a, &video(1, "euler")) > 1e-6,
        "another sampler"
    );

    for (mut req, why) in [
        (request("x", 2, "unipc"), "width"),
        (request("x", 2, "unipc"), "num_frames"),
        (request("x", 2, "ddim"), "scheduler"),
        (request("x", 0, "unipc"), "steps"),
    ] {
        let f = req.free_form.as_mut().unwrap();
        match why {
            "width" => f.width = 40,
            "num_frames" => f.num_frames = 6,
            _ => {}
        }
        let err = model.start(&req).expect_err(why).to_string();
        eprintln!("{why}: {err}");
        assert!(!err.is_empty());
    }
    let mut no_shape = request("x", 2, "unipc");
    no_shape.free_form = None;
    assert!(model.start(&no_shape).is_err());
}

#[test]
fn decoding_stops_when_the_sink_says_so() {
    let model = WanModel::load(&tiny_dir()).expect("tiny checkpoint");
    let mut req = request("a fox", 1, "unipc");
    req.free_form.as_mut().unwrap().num_frames = 9;
    let mut run = model.start(&req).expect("start");
    run_to_end(&model, &mut run);
    assert_eq!(decoded(&model, &run).len(), 3, "three latent frames");
    let mut seen = 0;
    model.decode(&model.latent(&run), &mut |_| {
        seen += 1;
        false
    });
    assert_eq!(seen, 1);
}

#[test]
fn the_step_cache_skips_what_its_threshold_allows_and_nothing_more() {
    // guidance above 1: two passes (prompt, negative prompt) per step.
    let mut req = request("a fox", 6, "unipc");
    req.guidance = 5.0;
    let frames = |model: &WanModel| {
        let mut run = model.start(&req).expect("start");
        run_to_end(model, &mut run);
        decoded(model, &run)
            .into_iter()
            .flat_map(|c| c.data)
            .collect::<Vec<f32>>()
    };
    let plain = WanModel::load(&tiny_dir()).expect("tiny checkpoint");
    let want = frames(&plain);
    assert_eq!(plain.passes(), (12, 0));
    // A threshold nothing reaches: only the first and last steps compute.
    let all = WanModel::load(&tiny_dir()).unwrap().with_step_cache(1e9);
    let skipped = frames(&all);
    assert_eq!(all.passes(), (4, 8));
    assert!(skipped.iter().all(|v| v.is_finite()));
    assert!(
        skipped != want,
        "reusing 4 steps' residuals changed nothing"
    );
    // A threshold every change passes: every pass computes, and the frames are the same.
    let none = WanModel::load(&tiny_dir()).unwrap().with_step_cache(1e-12);
    assert_eq!(frames(&none), want);
    assert_eq!(none.passes(), (12, 0));
}
