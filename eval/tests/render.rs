//! The Rust renderer against model/world.py (fixtures/world_frames.json, written by
//! fixtures/world_frames.py) and against the geometry WORLD.md fixes.

use eval::render::{draw_start, render, render_into, seeded_start, size_at, start_range};
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    scene: Scene,
    start: [f32; 2],
    size: usize,
    frames: usize,
    rgb_hex: String,
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("fixture hex"))
        .collect()
}

#[test]
fn matches_python_world_renderer() {
    let text = include_str!("fixtures/world_frames.json");
    let fixture: Fixture = serde_json::from_str(text).expect("fixture json");
    assert!(fixture.cases.len() >= 4);
    for case in &fixture.cases {
        let clip = render(
            &case.scene,
            (case.start[0], case.start[1]),
            case.size,
            case.frames,
        );
        let expected = hex_bytes(&case.rgb_hex);
        assert_eq!(clip.data.len(), expected.len(), "{:?}", case.scene);
        let worst = clip
            .data
            .iter()
            .zip(&expected)
            .map(|(&got, &want)| (got - f32::from(want) / 255.0).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= 1.0 / 255.0 + 1e-6,
            "{:?}: off by {}",
            case.scene,
            worst * 255.0
        );
        // The object is really there: some pixels differ from the canvas.
        let bg = case.scene.background.rgb();
        assert!(expected.chunks(3).any(|px| px != bg), "{:?}", case.scene);
    }
}

fn scene(size: Size, shape: Shape, motion: Motion) -> Scene {
    Scene {
        size,
        color: Color::Orange,
        shape,
        motion,
        background: Background::Navy,
    }
}

/// The object's pixel bounding box in frame `f` (pixels not equal to the canvas).
fn bbox(clip: &kernels::Clip, f: usize, bg: [u8; 3]) -> (usize, usize, usize, usize) {
    let bg = bg.map(|v| f32::from(v) / 255.0);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..clip.height {
        for x in 0..clip.width {
            let i = ((f * clip.height + y) * clip.width + x) * 3;
            if clip.data[i..i + 3]
                .iter()
                .zip(bg)
                .any(|(a, b)| (a - b).abs() > 0.02)
            {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    (x0, y0, x1, y1)
}

#[test]
fn objects_stay_inside_and_move_as_told() {
    for &motion in Motion::ALL {
        for &size in Size::ALL {
            let s = scene(size, Shape::Square, motion);
            for (u, v) in [(0.0, 0.0), (0.999, 0.999), (0.5, 0.25)] {
                let start = draw_start(&s, u, v);
                let clip = render(&s, start, 100, 5);
                let bg = s.background.rgb();
                let first = bbox(&clip, 0, bg);
                let last = bbox(&clip, 4, bg);
                let width = |b: (usize, usize, usize, usize)| (b.2 - b.0 + 1) as f64;
                let centre = |b: (usize, usize, usize, usize)| {
                    (0.5 * (b.0 + b.2) as f64, 0.5 * (b.1 + b.3) as f64)
                };
                // Wholly inside the frame all scene long: never cut by an edge.
                for f in 0..5 {
                    let want = 100.0 * size_at(&s, f as f64 / 4.0);
                    let got = width(bbox(&clip, f, bg));
                    assert!(
                        (got - want).abs() <= 2.0,
                        "{s:?} {start:?} frame {f}: {got} vs {want}"
                    );
                }
                let (dx, dy) = (
                    centre(last).0 - centre(first).0,
                    centre(last).1 - centre(first).1,
                );
                let expected = match motion {
                    Motion::Left => (-45.0, 0.0),
                    Motion::Right => (45.0, 0.0),
                    Motion::Up => (0.0, -45.0),
                    Motion::Down => (0.0, 45.0),
                    _ => (0.0, 0.0),
                };
                assert!(
                    (dx - expected.0).abs() <= 1.5 && (dy - expected.1).abs() <= 1.5,
                    "{s:?}"
                );
                let ratio = width(last) / width(first);
                let want = size_at(&s, 1.0) / size_at(&s, 0.0);
                assert!((ratio - want).abs() < 0.1, "{s:?}: width ratio {ratio}");
                assert!((width(first) - 100.0 * f64::from(size.fraction())).abs() <= 2.0);
            }
        }
    }
}

#[test]
fn start_range_leaves_room_for_travel() {
    let s = scene(Size::Large, Shape::Circle, Motion::Left);
    let [(xl, xh), (yl, yh)] = start_range(&s);
    assert!((xl - (0.17 + 0.45)).abs() < 1e-6 && (xh - 0.83).abs() < 1e-6);
    assert!((yl - 0.17).abs() < 1e-6 && (yh - 0.83).abs() < 1e-6);
    let grow = scene(Size::Large, Shape::Circle, Motion::Grow);
    let [(gl, gh), _] = start_range(&grow);
    assert!((gl - 0.34).abs() < 1e-6 && (gh - 0.66).abs() < 1e-6);
}

#[test]
fn seeded_starts_are_deterministic_in_range_and_spread() {
    let s = scene(Size::Small, Shape::Diamond, Motion::Down);
    let [(xl, xh), (yl, yh)] = start_range(&s);
    let mut xs = Vec::new();
    for index in 0..64 {
        let a = seeded_start(&s, 7, index);
        assert_eq!(a, seeded_start(&s, 7, index));
        assert!(a.0 >= xl && a.0 <= xh && a.1 >= yl && a.1 <= yh);
        xs.push(a.0);
    }
    assert_ne!(seeded_start(&s, 7, 0), seeded_start(&s, 8, 0));
    let mean = xs.iter().sum::<f32>() / xs.len() as f32;
    assert!(
        (mean - 0.5 * (xl + xh)).abs() < 0.1 * (xh - xl) + 0.02,
        "mean {mean}"
    );
}

#[test]
fn one_frame_and_empty_clips() {
    let s = scene(Size::Medium, Shape::Triangle, Motion::Grow);
    let one = render(&s, (0.5, 0.5), 16, 1);
    assert_eq!(one.data.len(), 16 * 16 * 3);
    let none = render(&s, (0.5, 0.5), 16, 0);
    assert!(none.data.is_empty());
}

#[test]
fn render_into_reuses_a_clip_and_matches_render() {
    let a = scene(Size::Large, Shape::Circle, Motion::Grow);
    let b = scene(Size::Small, Shape::Triangle, Motion::Left);
    let mut clip = render(&a, (0.5, 0.5), 48, 6);
    render_into(&b, (0.7, 0.4), 32, 3, &mut clip);
    assert_eq!(clip, render(&b, (0.7, 0.4), 32, 3));
}
