//! The evaluator on the renderer's ground truth: every scene of the world at 64x64 / 8
//! frames, a sample at the delivered 256x256 / 48 frames, and blurred, noisy copies; then the
//! report and the prompt suite.

use std::collections::HashSet;

use eval::render::{render, render_into, seeded_start};
use eval::{evaluate, prompt_suite, report, Verdict, ATTRS};
use kernels::Clip;
use pipeline::plan::Attr;
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size, HELD_OUT};
use rayon::prelude::*;

fn every_scene() -> Vec<Scene> {
    let mut out = Vec::new();
    for &color in Color::ALL {
        for &shape in Shape::ALL {
            for &size in Size::ALL {
                for &motion in Motion::ALL {
                    for &background in Background::ALL {
                        out.push(Scene {
                            size,
                            color,
                            shape,
                            motion,
                            background,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Verdicts on ground truth; `damage` may blur / add noise to the clip first.
fn judge(
    scenes: &[Scene],
    size: usize,
    frames: usize,
    seed: u64,
    damage: fn(&mut Clip, u64),
) -> Vec<Verdict> {
    let empty = || Clip {
        frames: 0,
        width: 0,
        height: 0,
        data: Vec::new(),
    };
    scenes
        .par_iter()
        .enumerate()
        .map_init(empty, |clip, (i, s)| {
            render_into(s, seeded_start(s, seed, i as u64), size, frames, clip);
            damage(clip, i as u64);
            evaluate(clip, s)
        })
        .collect()
}

fn failures(verdicts: &[Verdict]) -> Vec<String> {
    verdicts
        .iter()
        .filter(|v| !v.all_pass())
        .map(|v| {
            format!(
                "{} failed {:?}: {:?}",
                v.expected.caption(),
                v.failures(),
                v.measured
            )
        })
        .collect()
}

fn intact(_: &mut Clip, _: u64) {}

#[test]
fn every_scene_at_model_resolution_is_judged_right() {
    let scenes = every_scene();
    assert_eq!(scenes.len(), 2688);
    let verdicts = judge(&scenes, 64, 8, 2024, intact);
    let bad = failures(&verdicts);
    assert!(
        bad.is_empty(),
        "{} of 2688 fail:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn delivered_resolution_sample_is_judged_right() {
    // A stride coprime with every attribute's count walks through all their values.
    let scenes: Vec<Scene> = every_scene().into_iter().step_by(29).collect();
    assert!(scenes.len() > 90);
    let verdicts = judge(&scenes, 256, 48, 7, intact);
    let bad = failures(&verdicts);
    assert!(bad.is_empty(), "{} fail:\n{}", bad.len(), bad.join("\n"));
}

/// A 3x3 box blur per frame (separable: rows, then columns), then Gaussian noise of 0.03
/// (about 8 levels of 255).
fn blur_and_noise(clip: &mut Clip, stream: u64) {
    let (w, h) = (clip.width, clip.height);
    let noise = kernels::philox::gaussian(99, stream, clip.data.len());
    let mean3 = |get: &dyn Fn(usize) -> f32, i: usize, n: usize| {
        let (lo, hi) = (i.saturating_sub(1), (i + 2).min(n));
        (lo..hi).map(get).sum::<f32>() / (hi - lo) as f32
    };
    for frame in clip.data.chunks_exact_mut(w * h * 3) {
        let src = frame.to_vec();
        let mut rows = vec![0.0; src.len()];
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    rows[(y * w + x) * 3 + c] = mean3(&|xx| src[(y * w + xx) * 3 + c], x, w);
                }
            }
        }
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    frame[(y * w + x) * 3 + c] = mean3(&|yy| rows[(yy * w + x) * 3 + c], y, h);
                }
            }
        }
    }
    for (v, n) in clip.data.iter_mut().zip(noise) {
        *v = (*v + 0.03 * n).clamp(0.0, 1.0);
    }
}

#[test]
fn blurred_noisy_frames_are_judged_right() {
    let scenes: Vec<Scene> = every_scene().into_iter().step_by(7).collect();
    let small = judge(&scenes, 64, 8, 11, blur_and_noise);
    let bad = failures(&small);
    assert!(
        bad.is_empty(),
        "64x64: {} of {} fail:\n{}",
        bad.len(),
        scenes.len(),
        bad.join("\n")
    );
    let few: Vec<Scene> = scenes.into_iter().step_by(9).collect();
    let large = judge(&few, 256, 4, 12, blur_and_noise);
    let bad = failures(&large);
    assert!(
        bad.is_empty(),
        "256x256: {} fail:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn a_wrong_expectation_fails_exactly_its_attribute() {
    let truth = Scene {
        size: Size::Medium,
        color: Color::Green,
        shape: Shape::Diamond,
        motion: Motion::Up,
        background: Background::Beige,
    };
    let clip = render(&truth, seeded_start(&truth, 1, 0), 64, 8);
    assert!(evaluate(&clip, &truth).all_pass());
    let wrong = [
        (
            Attr::Background,
            Scene {
                background: Background::Gray,
                ..truth
            },
        ),
        (
            Attr::Color,
            Scene {
                color: Color::Cyan,
                ..truth
            },
        ),
        (
            Attr::Shape,
            Scene {
                shape: Shape::Circle,
                ..truth
            },
        ),
        (
            Attr::Size,
            Scene {
                size: Size::Large,
                ..truth
            },
        ),
        (
            Attr::Motion,
            Scene {
                motion: Motion::Grow,
                ..truth
            },
        ),
    ];
    for (attr, expected) in wrong {
        assert_eq!(evaluate(&clip, &expected).failures(), vec![attr]);
    }
}

#[test]
fn blank_and_empty_clips_show_no_object() {
    let s = Scene {
        size: Size::Small,
        color: Color::White,
        shape: Shape::Circle,
        motion: Motion::Still,
        background: Background::Navy,
    };
    let navy = [20.0 / 255.0, 30.0 / 255.0, 80.0 / 255.0];
    let blank = Clip {
        frames: 2,
        width: 32,
        height: 32,
        data: navy.repeat(2 * 32 * 32),
    };
    let v = evaluate(&blank, &s);
    assert!(v.measured.object.is_none());
    assert_eq!(
        v.failures(),
        vec![Attr::Color, Attr::Shape, Attr::Size, Attr::Motion]
    );
    let empty = Clip {
        frames: 0,
        width: 0,
        height: 0,
        data: Vec::new(),
    };
    assert!(evaluate(&empty, &s).measured.object.is_none());
    let short = Clip {
        frames: 3,
        width: 8,
        height: 8,
        data: vec![0.5; 10],
    };
    assert!(evaluate(&short, &s).measured.object.is_none());
}

#[test]
fn report_counts_each_subset() {
    let scenes: Vec<Scene> = every_scene().into_iter().step_by(7).collect();
    let verdicts = judge(&scenes, 64, 4, 3, intact);
    // Make every other verdict expect the wrong motion.
    let verdicts: Vec<Verdict> = verdicts
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            if i % 2 == 1 {
                let m = v.expected.motion;
                v.expected.motion = if m == Motion::Still {
                    Motion::Left
                } else {
                    Motion::Still
                };
            }
            v
        })
        .collect();
    let rows = report::rows(&verdicts);
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "all",
            "held-out pairs",
            "size small",
            "size medium",
            "size large"
        ]
    );
    let all = &rows[0];
    assert_eq!(all.n, verdicts.len());
    let motion = ATTRS
        .iter()
        .position(|&a| a == Attr::Motion)
        .unwrap_or(usize::MAX);
    let want = (verdicts.len() / 2 + verdicts.len() % 2) as f64 / verdicts.len() as f64;
    assert!((all.accuracy[motion] - want).abs() < 1e-9);
    assert!((all.all - want).abs() < 1e-9);
    assert!(all
        .accuracy
        .iter()
        .enumerate()
        .all(|(k, &a)| k == motion || a == 1.0));
    let held = verdicts
        .iter()
        .filter(|v| HELD_OUT.contains(&(v.expected.color, v.expected.shape)))
        .count();
    assert_eq!(rows[1].n, held);
    assert_eq!(rows[2].n + rows[3].n + rows[4].n, verdicts.len());
    let md = report::markdown(&rows);
    assert_eq!(md.lines().count(), 2 + rows.len());
    assert!(md.contains("| all | "));
    assert!(md.contains("| 100.0% |"));
}

#[test]
fn prompt_suite_covers_the_world() {
    for (n, min_held) in [(200, 5), (240, 6), (41, 1)] {
        let suite = prompt_suite(n, 17);
        assert_eq!(suite.len(), n);
        assert_eq!(suite, prompt_suite(n, 17));
        assert_ne!(suite, prompt_suite(n, 18));
        let seen = |f: fn(&Scene) -> String| suite.iter().map(f).collect::<HashSet<_>>().len();
        assert_eq!(seen(|s| s.color.name().into()), Color::ALL.len());
        assert_eq!(seen(|s| s.shape.name().into()), Shape::ALL.len());
        assert_eq!(seen(|s| s.size.name().into()), Size::ALL.len());
        assert_eq!(seen(|s| s.motion.name().into()), Motion::ALL.len());
        assert_eq!(seen(|s| s.background.name().into()), Background::ALL.len());
        for pair in HELD_OUT {
            let count = suite.iter().filter(|s| (s.color, s.shape) == *pair).count();
            assert!(count >= min_held, "n {n}: {pair:?} only {count} times");
        }
    }
    // Balanced: in 200 scenes no motion is more than twice as frequent as another.
    let suite = prompt_suite(200, 5);
    let counts: Vec<usize> = Motion::ALL
        .iter()
        .map(|m| suite.iter().filter(|s| s.motion == *m).count())
        .collect();
    let (lo, hi) = (counts.iter().min(), counts.iter().max());
    assert!(hi <= lo.map(|l| 2 * l).as_ref(), "{counts:?}");
}

#[test]
fn stray_pixels_near_the_edge_are_counted_and_a_clean_edge_has_only_its_ramp() {
    use eval::artifacts::{edge_artifacts, BAND};
    use eval::render::draw_start;
    let scene = Scene {
        size: Size::Large,
        color: Color::Blue,
        shape: Shape::Square,
        motion: Motion::Right,
        background: Background::Beige,
    };
    let clean = render(&scene, draw_start(&scene, 0.5, 0.5), 128, 4);
    let base = edge_artifacts(&clean).expect("an object");
    // The band is a ring about the square's outline, 2 * BAND + 1 wide, in every frame.
    assert!(base.band > 4 * 40 * (2 * BAND + 1), "{base:?}");
    // Only the anti-aliasing ramp is of neither colour: a small share.
    assert!(base.share() < 0.15, "{base:?}");
    // Speckles of a third colour right at the edge (every other row, where a pixel differs
    // from its right neighbour), and one far from it: the first are counted, the last not.
    let (w, h) = (clean.width, clean.height);
    let frame = w * h * 3;
    let canvas = [clean.data[0], clean.data[1], clean.data[2]];
    let centre = (h / 2 * w + w / 2) * 3;
    let object = &clean.data[centre..centre + 3];
    let red = if canvas[0] > 0.5 {
        canvas[0] - 0.4
    } else {
        canvas[0] + 0.4
    };
    let speckle = [red, canvas[1], canvas[2]];
    let dist = |a: &[f32], b: &[f32]| -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y) * (x - y))
            .sum::<f32>()
            .sqrt()
    };
    assert!(dist(&speckle, &canvas) > 0.3 && dist(&speckle, object) > 0.3);
    let mut speckled = clean.clone();
    let mut added = 0;
    for f in 0..clean.frames {
        for y in (0..h).step_by(2) {
            for x in 0..w - 1 {
                let i = f * frame + (y * w + x) * 3;
                if dist(&clean.data[i..i + 3], &clean.data[i + 3..i + 6]) > 0.3 {
                    speckled.data[i..i + 3].copy_from_slice(&speckle);
                    added += 1;
                }
            }
        }
        speckled.data[f * frame..f * frame + 3].copy_from_slice(&speckle);
    }
    let got = edge_artifacts(&speckled).unwrap();
    eprintln!(
        "clean {base:?} ({:.4}), speckled {got:?}, {added} added",
        base.share()
    );
    assert!(added > 40, "{added}");
    assert!(
        got.stray >= base.stray + added / 2,
        "{got:?} vs {base:?}, {added} added"
    );
    assert!(
        got.stray <= base.stray + added,
        "{got:?} vs {base:?}, {added} added"
    );
    // Nothing stands out: no measure.
    let blank = Clip {
        frames: 1,
        width: 8,
        height: 8,
        data: vec![0.5; 8 * 8 * 3],
    };
    assert!(edge_artifacts(&blank).is_none());
}
