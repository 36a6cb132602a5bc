//! Post-processing: wgpu and CPU agree stage by stage, the upscale beats bicubic against ground
//! truth and draws no ring round objects in noisy frames, the interpolation re-places a moving
//! object instead of cross-fading it, the Y'CbCr output converts back to the RGB it came
//! from, and a batch of scenes (one wgpu submission) gives what each scene gives alone.
//!
//! Ground truth is the world renderer (`eval::render`, the twin of `model/world.py`) drawing
//! the same scene at the base and at the delivered size and rate.
//! The wgpu tests need a Vulkan adapter (without a GPU, lavapipe, which ./test.sh installs);
//! without one they fail.

use std::sync::OnceLock;

use eval::render::{draw_start, render};
use kernels::Clip;
use pipeline::post::yuv::rgb_to_yuv420;
use pipeline::post::{PostChoice, PostInput, PostProcessor, Processed, Yuv420};
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size};

// ---------------------------------------------------------------------------------------------
// Ground truth

/// A scene of the world and where it starts.
#[derive(Clone, Copy, Debug)]
struct Case {
    scene: Scene,
    start: (f32, f32),
}

fn case(
    size: Size,
    color: Color,
    shape: Shape,
    motion: Motion,
    background: Background,
    u: f32,
    v: f32,
) -> Case {
    let scene = Scene {
        size,
        color,
        shape,
        motion,
        background,
    };
    Case {
        scene,
        start: draw_start(&scene, u, v),
    }
}

/// Every shape and every kind of motion.
fn cases() -> Vec<Case> {
    vec![
        case(
            Size::Medium,
            Color::Red,
            Shape::Circle,
            Motion::Right,
            Background::Black,
            0.3,
            0.5,
        ),
        case(
            Size::Small,
            Color::Blue,
            Shape::Triangle,
            Motion::Grow,
            Background::Beige,
            0.5,
            0.4,
        ),
        case(
            Size::Large,
            Color::Yellow,
            Shape::Diamond,
            Motion::Up,
            Background::Navy,
            0.7,
            0.6,
        ),
        case(
            Size::Large,
            Color::White,
            Shape::Square,
            Motion::Shrink,
            Background::Gray,
            0.5,
            0.5,
        ),
        case(
            Size::Small,
            Color::White,
            Shape::Circle,
            Motion::Still,
            Background::Beige,
            0.2,
            0.8,
        ),
    ]
}

impl Case {
    fn clip(&self, side: usize, frames: usize) -> Clip {
        render(&self.scene, self.start, side, frames)
    }

    /// All `frames` frames at `side` x `side`, as RGB8.
    fn frames(&self, side: usize, frames: usize) -> Vec<Vec<u8>> {
        let clip = self.clip(side, frames);
        clip.data
            .chunks_exact(side * side * 3)
            .map(|f| f.iter().map(|v| (v * 255.0).round() as u8).collect())
            .collect()
    }
}

/// A stand-in for generated frames: 3x3 box blur plus uniform noise of +-`amp`.
fn degrade(clip: &Clip, amp: f32, seed: u64) -> Clip {
    let (w, h) = (clip.width, clip.height);
    let mut state = seed | 1;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut data = Vec::with_capacity(clip.data.len());
    for f in 0..clip.frames {
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    let mut sum = 0.0;
                    for (dx, dy) in (-1i32..=1).flat_map(|dy| (-1i32..=1).map(move |dx| (dx, dy))) {
                        let xx = (x as i32 + dx).clamp(0, w as i32 - 1) as usize;
                        let yy = (y as i32 + dy).clamp(0, h as i32 - 1) as usize;
                        sum += clip.data[((f * h + yy) * w + xx) * 3 + c];
                    }
                    data.push((sum / 9.0 + amp * noise()).clamp(0.0, 1.0));
                }
            }
        }
    }
    Clip {
        data,
        ..clip.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics and baselines

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// Gradient-weighted mean gradient of luma: a step of height h spread over w pixels scores h/w,
/// whatever the length of the edges.
fn edge_sharpness(rgb: &[u8], n: usize) -> f64 {
    let luma: Vec<f64> = rgb
        .chunks_exact(3)
        .map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64)
        .collect();
    let (mut g1, mut g2) = (0.0, 0.0);
    for y in 0..n - 1 {
        for x in 0..n - 1 {
            let i = y * n + x;
            for g in [(luma[i + 1] - luma[i]).abs(), (luma[i + n] - luma[i]).abs()] {
                g1 += g;
                g2 += g * g;
            }
        }
    }
    g2 / g1
}

/// Plain Catmull-Rom bicubic of one RGB8 frame, the baseline the upscale must beat.
fn bicubic(rgb: &[u8], n: usize, out: usize) -> Vec<u8> {
    let cubic = |t: f32| {
        let (t2, t3) = (t * t, t * t * t);
        [
            -0.5 * t3 + t2 - 0.5 * t,
            1.5 * t3 - 2.5 * t2 + 1.0,
            -1.5 * t3 + 2.0 * t2 + 0.5 * t,
            0.5 * t3 - 0.5 * t2,
        ]
    };
    let at = |x: i32, y: i32, c: usize| {
        let (x, y) = (
            x.clamp(0, n as i32 - 1) as usize,
            y.clamp(0, n as i32 - 1) as usize,
        );
        rgb[(y * n + x) * 3 + c] as f32
    };
    let scale = n as f32 / out as f32;
    let mut res = Vec::with_capacity(out * out * 3);
    for y in 0..out {
        for x in 0..out {
            let (sx, sy) = (
                (x as f32 + 0.5) * scale - 0.5,
                (y as f32 + 0.5) * scale - 0.5,
            );
            let (fx, fy) = (sx.floor(), sy.floor());
            let (wx, wy) = (cubic(sx - fx), cubic(sy - fy));
            for c in 0..3 {
                let mut v = 0.0;
                for (j, wj) in wy.iter().enumerate() {
                    for (i, wi) in wx.iter().enumerate() {
                        v += wi * wj * at(fx as i32 - 1 + i as i32, fy as i32 - 1 + j as i32, c);
                    }
                }
                res.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    res
}

/// Per pixel, how far it is from the background towards the object colour (0-1).
fn alpha(rgb: &[u8], scene: &Scene) -> Vec<f32> {
    let (fg, bg) = (
        scene.color.rgb().map(f32::from),
        scene.background.rgb().map(f32::from),
    );
    let d = [0, 1, 2].map(|c| fg[c] - bg[c]);
    let dd: f32 = d.iter().map(|v| v * v).sum();
    rgb.chunks_exact(3)
        .map(|p| (0..3).map(|c| (p[c] as f32 - bg[c]) * d[c]).sum::<f32>() / dd)
        .collect()
}

/// Sizes of the connected pieces (4-neighbourhood) of the pixels where `mask` holds.
fn pieces(mask: &[bool], n: usize) -> Vec<usize> {
    let mut seen = vec![false; mask.len()];
    let mut sizes = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut size = 0;
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y) = (i % n, i / n);
            let near = [
                (x > 0, i.wrapping_sub(1)),
                (x + 1 < n, i + 1),
                (y > 0, i.wrapping_sub(n)),
                (y + 1 < n, i + n),
            ];
            for (ok, j) in near {
                if ok && mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        sizes.push(size);
    }
    sizes
}

/// Pieces of `mask` big enough to be an object (a ghost would be), not a frayed edge pixel.
fn objects(mask: &[bool], n: usize, area: f64) -> usize {
    pieces(mask, n)
        .iter()
        .filter(|&&s| s as f64 >= 0.01 * area)
        .count()
}

/// Pixels of `mask` with a 4-neighbour outside it.
fn boundary(mask: &[bool], n: usize) -> usize {
    (0..mask.len())
        .filter(|&i| {
            let (x, y) = (i % n, i / n);
            mask[i]
                && (x == 0
                    || y == 0
                    || x + 1 == n
                    || y + 1 == n
                    || !mask[i - 1]
                    || !mask[i + 1]
                    || !mask[i - n]
                    || !mask[i + n])
        })
        .count()
}

// ---------------------------------------------------------------------------------------------
// Backends

fn cpu() -> &'static PostProcessor {
    static CPU: OnceLock<PostProcessor> = OnceLock::new();
    CPU.get_or_init(|| PostProcessor::new(PostChoice::Cpu).expect("the CPU backend always exists"))
}

/// The Vulkan loader warns when XDG_RUNTIME_DIR is unset; give it a private directory before
/// anything looks for adapters.
fn quiet_vulkan() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let runtime = std::env::temp_dir().join(format!("reel-post-test-{}", std::process::id()));
        std::fs::create_dir_all(&runtime).expect("temp dir");
        std::env::set_var("XDG_RUNTIME_DIR", &runtime);
    });
}

/// The wgpu backend, shared by all tests of this binary (one device, one shader compile).
fn gpu() -> &'static PostProcessor {
    static GPU: OnceLock<PostProcessor> = OnceLock::new();
    GPU.get_or_init(|| {
        quiet_vulkan();
        let p = PostProcessor::new(PostChoice::Wgpu).unwrap_or_else(|e| {
            panic!(
                "no wgpu adapter, so the wgpu post-processing cannot be tested: {e:#}. Run the \
                 tests through ./test.sh, which installs mesa-vulkan-drivers and libvulkan1 \
                 (lavapipe)"
            )
        });
        eprintln!("post-processing on {}", p.describe());
        p
    })
}

/// Every stage of both backends agrees: motion closely, every output byte within 1.
fn assert_backends_agree(what: &str, clip: &Clip, out_size: usize, out_frames: usize) {
    let gpu = gpu();
    let c = cpu().process(clip, out_size, out_frames).expect("cpu");
    let g = gpu.process(clip, out_size, out_frames).expect("wgpu");
    assert_eq!(c.motion.len(), g.motion.len());
    for (i, (a, b)) in c.motion.iter().zip(&g.motion).enumerate() {
        let close = |x: f32, y: f32| (x - y).abs() <= 1e-3 * (1.0 + x.abs());
        assert!(
            a.background
                .iter()
                .zip(&b.background)
                .all(|(x, y)| close(*x, *y))
                && close(a.contrast, b.contrast)
                && close(a.mass, b.mass)
                && a.centroid
                    .iter()
                    .zip(&b.centroid)
                    .all(|(x, y)| close(*x, *y)),
            "{what}: analysis of base frame {i} differs: cpu {a:?}, wgpu {b:?}"
        );
    }
    let max_diff = |x: &[u8], y: &[u8]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| p.abs_diff(*q))
            .max()
            .unwrap_or(0)
    };
    assert_eq!((c.rgb.len(), c.yuv.len()), (out_frames, out_frames));
    assert_eq!((g.rgb.len(), g.yuv.len()), (out_frames, out_frames));
    for j in 0..out_frames {
        assert_eq!(c.rgb[j].len(), g.rgb[j].len());
        let d = max_diff(&c.rgb[j], &g.rgb[j]);
        assert!(d <= 1, "{what}: resampled frame {j} differs by {d}/255");
        let (cy, gy) = (&c.yuv[j], &g.yuv[j]);
        assert_eq!(
            (cy.width, cy.height, cy.u.len()),
            (gy.width, gy.height, gy.u.len())
        );
        for (plane, a, b) in [
            ("Y", &cy.y, &gy.y),
            ("Cb", &cy.u, &gy.u),
            ("Cr", &cy.v, &gy.v),
        ] {
            let d = max_diff(a, b);
            assert!(d <= 1, "{what}: {plane} of frame {j} differs by {d}/255");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn wgpu_matches_cpu_on_rendered_scenes() {
    for (i, c) in cases().iter().enumerate() {
        assert_backends_agree(&format!("scene {i} {c:?}"), &c.clip(64, 8), 256, 48);
    }
}

#[test]
fn wgpu_matches_cpu_on_noisy_blurred_frames() {
    for (i, c) in cases().iter().enumerate() {
        let clip = degrade(&c.clip(64, 8), 0.04, 7 + i as u64);
        assert_backends_agree(&format!("degraded scene {i}"), &clip, 256, 48);
    }
}

#[test]
fn wgpu_matches_cpu_on_odd_shapes() {
    let c = cases()[0];
    // Odd delivered side (partial pixel quads and chroma blocks), one frame, no object.
    assert_backends_agree("odd side", &c.clip(64, 8), 37, 5);
    assert_backends_agree("single frame", &c.clip(64, 1), 130, 1);
    let flat = Clip {
        frames: 2,
        width: 16,
        height: 12,
        data: vec![0.4; 2 * 16 * 12 * 3],
    };
    assert_backends_agree("flat, non-square", &flat, 32, 3);
}

#[test]
fn upscale_beats_bicubic_against_ground_truth() {
    for c in cases() {
        let (base, truth) = (c.frames(64, 8), c.frames(256, 8));
        // As many delivered frames as base frames: delivered frame i is base frame i upscaled.
        let ours = cpu().process(&c.clip(64, 8), 256, 8).expect("cpu");
        let (mut p_ours, mut p_cubic, mut s_ours, mut s_cubic, mut s_truth) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..8 {
            let cubic = bicubic(&base[i], 64, 256);
            p_ours += psnr(&ours.rgb[i], &truth[i]) / 8.0;
            p_cubic += psnr(&cubic, &truth[i]) / 8.0;
            s_ours += edge_sharpness(&ours.rgb[i], 256) / 8.0;
            s_cubic += edge_sharpness(&cubic, 256) / 8.0;
            s_truth += edge_sharpness(&truth[i], 256) / 8.0;
        }
        eprintln!(
            "{}: PSNR ours {p_ours:.2} dB, bicubic {p_cubic:.2} dB; edge sharpness ours {s_ours:.1}, \
             bicubic {s_cubic:.1}, truth {s_truth:.1}",
            c.scene.caption()
        );
        assert!(
            p_ours >= p_cubic,
            "{c:?}: PSNR {p_ours:.2} below bicubic's {p_cubic:.2}"
        );
        assert!(
            s_ours > 1.5 * s_cubic,
            "{c:?}: edges not crisper than bicubic ({s_ours:.1} vs {s_cubic:.1})"
        );
    }
}

#[test]
fn interpolation_re_places_the_object_instead_of_ghosting() {
    for c in cases() {
        let scene = &c.scene;
        let out = cpu().process(&c.clip(64, 8), 256, 48).expect("cpu");
        // Frame 10 of 48 sits at 7*10/47 = 1.49 base frames: halfway between frames 1 and 2.
        let j = 10;
        let truth = &c.frames(256, 48)[j];
        let a_out = alpha(&out.rgb[j], scene);
        let a_truth = alpha(truth, scene);
        let area = |a: &[f32]| a.iter().filter(|&&v| v > 0.5).count() as f64;
        let half = |a: &[f32]| a.iter().filter(|&&v| v > 0.2 && v < 0.8).count();
        let solid: Vec<bool> = a_out.iter().map(|&v| v > 0.5).collect();
        // The true object's outline in pixels: a crisp edge has about that many partial pixels.
        let outline = boundary(&a_truth.iter().map(|&v| v > 0.5).collect::<Vec<_>>(), 256);

        // What a cross-fade of the true neighbouring frames would look like.
        let base = c.frames(256, 8);
        let fade: Vec<u8> = base[1]
            .iter()
            .zip(&base[2])
            .map(|(&x, &y)| ((x as f32 + y as f32) / 2.0).round() as u8)
            .collect();
        let a_fade = alpha(&fade, scene);

        let p = psnr(&out.rgb[j], truth);
        eprintln!(
            "{}: in-between PSNR {p:.2} dB (cross-fade {:.2}), area {} vs {}, half pixels {} \
             (truth {}, cross-fade {}, outline {outline})",
            scene.caption(),
            psnr(&fade, truth),
            area(&a_out),
            area(&a_truth),
            half(&a_out),
            half(&a_truth),
            half(&a_fade)
        );
        assert_eq!(
            pieces(&solid, 256).len(),
            1,
            "{c:?}: the object is not one piece"
        );
        let rel = (area(&a_out) - area(&a_truth)).abs() / area(&a_truth);
        assert!(rel < 0.05, "{c:?}: object area off by {:.1}%", rel * 100.0);
        let h = half(&a_out) as f64;
        assert!(
            h <= 1.5 * outline as f64,
            "{c:?}: {h} half-transparent pixels, outline {outline}"
        );
        assert!(
            p > 30.0,
            "{c:?}: in-between frame only {p:.2} dB from the truth"
        );
        if matches!(
            scene.motion,
            Motion::Left | Motion::Right | Motion::Up | Motion::Down
        ) {
            assert!(
                half(&a_fade) > 3 * outline,
                "the ghost check cannot tell a cross-fade"
            );
        }

        // Generated frames are blurred and noisy: still one object of the right size.
        let rough = cpu()
            .process(&degrade(&c.clip(64, 8), 0.04, 3), 256, 48)
            .expect("cpu");
        let a_rough = alpha(&rough.rgb[j], scene);
        let solid: Vec<bool> = a_rough.iter().map(|&v| v > 0.5).collect();
        assert_eq!(
            objects(&solid, 256, area(&a_truth)),
            1,
            "{c:?}: degraded frames give more than one object"
        );
        let rel = (area(&a_rough) - area(&a_truth)).abs() / area(&a_truth);
        assert!(
            rel < 0.1,
            "{c:?}: object area from degraded frames off by {:.1}%",
            rel * 100.0
        );
    }
}

/// How far past the background, away from the object's colour, the pixels just outside the
/// object go on average (RGB levels along the object-to-background direction; a halo of the
/// object's own colour does not count): background pixels of `truth` (the scene drawn at the
/// delivered size) within `reach` pixels of its object.
fn ring_around_object(rgb: &[u8], truth: &[u8], scene: &Scene, n: usize, reach: usize) -> f64 {
    let (fg, bg) = (
        scene.color.rgb().map(f64::from),
        scene.background.rgb().map(f64::from),
    );
    let away = [0, 1, 2].map(|c| bg[c] - fg[c]);
    let len = away.iter().map(|v| v * v).sum::<f64>().sqrt();
    let a = alpha(truth, scene);
    let near = |x: usize, y: usize| {
        let (x0, y0) = (x.saturating_sub(reach), y.saturating_sub(reach));
        let (x1, y1) = ((x + reach).min(n - 1), (y + reach).min(n - 1));
        (y0..=y1).any(|yy| (x0..=x1).any(|xx| a[yy * n + xx] > 0.5))
    };
    let (mut sum, mut count) = (0.0, 0usize);
    for y in 0..n {
        for x in 0..n {
            let i = y * n + x;
            if a[i].abs() < 0.02 && near(x, y) {
                let past: f64 = (0..3)
                    .map(|c| (rgb[i * 3 + c] as f64 - bg[c]) * away[c])
                    .sum::<f64>()
                    / len;
                sum += past.max(0.0);
                count += 1;
            }
        }
    }
    sum / count.max(1) as f64
}

#[test]
fn noisy_frames_get_no_ring_around_objects() {
    for (i, c) in cases().iter().enumerate() {
        let noisy = degrade(&c.clip(64, 8), 0.05, 11 + i as u64);
        let ours = cpu().process(&noisy, 256, 8).expect("cpu");
        let truth = c.frames(256, 8);
        let (mut ring_ours, mut ring_cubic) = (0.0, 0.0);
        let bases = noisy.data.chunks_exact(64 * 64 * 3);
        for ((base, out), truth) in bases.zip(&ours.rgb).zip(&truth) {
            let base: Vec<u8> = base.iter().map(|v| (v * 255.0).round() as u8).collect();
            let cubic = bicubic(&base, 64, 256);
            ring_ours += ring_around_object(out, truth, &c.scene, 256, 8) / 8.0;
            ring_cubic += ring_around_object(&cubic, truth, &c.scene, 256, 8) / 8.0;
        }
        eprintln!(
            "{}: outside the object, past the background by {ring_ours:.2} levels on average, \
             bicubic {ring_cubic:.2}",
            c.scene.caption()
        );
        // Sharpening towards the per-channel extremes of noisy taps left 6-11 levels here.
        assert!(
            ring_ours <= ring_cubic + 1.0,
            "{c:?}: a ring {ring_ours:.2} levels past the background, bicubic {ring_cubic:.2}"
        );
    }
}

/// BT.601 limited range back to RGB, chroma from the 2x2 block the pixel is in.
fn yuv_to_rgb(f: &Yuv420) -> Vec<u8> {
    let cs = f.width.div_ceil(2);
    let mut out = Vec::with_capacity(f.width * f.height * 3);
    for y in 0..f.height {
        for x in 0..f.width {
            let l = 1.164383 * (f.y[y * f.width + x] as f32 - 16.0);
            let ci = (y / 2) * cs + x / 2;
            let (cb, cr) = (f.u[ci] as f32 - 128.0, f.v[ci] as f32 - 128.0);
            for v in [
                l + 1.596027 * cr,
                l - 0.391762 * cb - 0.812968 * cr,
                l + 2.017232 * cb,
            ] {
                out.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

#[test]
fn yuv_converts_back_to_the_delivered_rgb() {
    let out: Processed = cpu().process(&cases()[1].clip(64, 8), 256, 4).expect("cpu");
    for (rgb, yuv) in out.rgb.iter().zip(&out.yuv) {
        assert_eq!(
            (yuv.width, yuv.height, yuv.y.len(), yuv.u.len()),
            (256, 256, 256 * 256, 128 * 128)
        );
        assert_eq!(yuv, &rgb_to_yuv420(rgb, 256, 256));
        let back = yuv_to_rgb(yuv);
        let mean = rgb
            .iter()
            .zip(&back)
            .map(|(a, b)| a.abs_diff(*b) as f64)
            .sum::<f64>()
            / rgb.len() as f64;
        assert!(mean < 1.5, "mean round-trip error {mean:.2}");
        // Away from edges (the whole 2x2 block one colour) every pixel comes back within 2.
        for y in (0..256).step_by(2) {
            for x in (0..256).step_by(2) {
                let p = |dx: usize, dy: usize| &rgb[((y + dy) * 256 + x + dx) * 3..][..3];
                if [p(1, 0), p(0, 1), p(1, 1)].iter().all(|q| *q == p(0, 0)) {
                    let i = (y * 256 + x) * 3;
                    let d = (0..3)
                        .map(|c| rgb[i + c].abs_diff(back[i + c]))
                        .max()
                        .unwrap_or(0);
                    assert!(d <= 2, "flat pixel ({x},{y}) comes back {d} off");
                }
            }
        }
    }
    // Limited range: black and white land on the BT.601 code values.
    let bw = rgb_to_yuv420(&[0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255], 2, 2);
    assert_eq!(bw.y, vec![16, 16, 235, 235]);
    assert_eq!((bw.u[0], bw.v[0]), (128, 128));
}

#[test]
fn bad_input_is_an_error_and_backends_describe_themselves() {
    let cpu = cpu();
    assert_eq!(cpu.describe(), "cpu");
    assert!(!cpu.is_wgpu());
    let short = Clip {
        frames: 2,
        width: 8,
        height: 8,
        data: vec![0.0; 10],
    };
    assert!(cpu.process(&short, 16, 4).is_err());
    let clip = cases()[0].clip(16, 2);
    assert!(cpu.process(&clip, 0, 4).is_err());
    assert!(cpu.process(&clip, 16, 0).is_err());
    assert_eq!("wgpu".parse::<PostChoice>().ok(), Some(PostChoice::Wgpu));
    assert!("metal".parse::<PostChoice>().is_err());
    let gpu = gpu();
    // There is an adapter (gpu() found one), so Auto either took a hardware one or timed the
    // software one against the CPU path, and says which it measured.
    let started = std::time::Instant::now();
    let auto = PostProcessor::new(PostChoice::Auto).expect("auto always finds a backend");
    let said = auto.describe();
    eprintln!("auto chose in {:?}: {said}", started.elapsed());
    assert!(
        said.contains("auto: hardware adapter; start-up probe: wgpu ")
            || (said.contains("auto: ") && said.contains("software adapter")),
        "{said}"
    );
    assert!(said.contains(" frames/s, the CPU path "), "{said}");
    assert!(
        gpu.is_wgpu() && gpu.describe().starts_with("wgpu: "),
        "{}",
        gpu.describe()
    );
    assert!(gpu.process(&short, 16, 4).is_err());
    // Still usable after an error, and growing its buffers for a bigger scene.
    assert_backends_agree("after error", &clip, 16, 4);
    assert_backends_agree("grown", &cases()[2].clip(64, 8), 320, 50);
}

#[test]
fn a_batch_is_one_submission_and_gives_each_scene_what_it_gives_alone() {
    quiet_vulkan();
    // A device of its own: the shared one's submissions are counted by the other tests too.
    let gpu = PostProcessor::new(PostChoice::Wgpu).expect("a wgpu adapter (lavapipe)");
    let cs = cases();
    let clips = [cs[0].clip(64, 8), cs[1].clip(32, 4), cs[2].clip(64, 8)];
    let bad = Clip {
        frames: 2,
        width: 8,
        height: 8,
        data: vec![0.0; 10],
    };
    // Different sizes and rates, so every slot has its own offsets; a refused scene between.
    let inputs = [
        PostInput {
            clip: &clips[0],
            out_size: 256,
            out_frames: 48,
        },
        PostInput {
            clip: &bad,
            out_size: 16,
            out_frames: 4,
        },
        PostInput {
            clip: &clips[1],
            out_size: 37,
            out_frames: 5,
        },
        PostInput {
            clip: &clips[2],
            out_size: 130,
            out_frames: 12,
        },
    ];
    for (name, post) in [("cpu", cpu()), ("wgpu", &gpu)] {
        let before = post.submissions();
        let batch = post.process_batch(&inputs);
        let submitted = post.submissions() - before;
        assert_eq!(batch.len(), inputs.len(), "{name}");
        assert!(batch[1].is_err(), "{name}: the malformed clip fails alone");
        for (i, (input, got)) in inputs
            .iter()
            .zip(&batch)
            .enumerate()
            .filter(|(i, _)| *i != 1)
        {
            let got = got
                .as_ref()
                .unwrap_or_else(|e| panic!("{name} scene {i}: {e:#}"));
            let alone = post
                .process(input.clip, input.out_size, input.out_frames)
                .expect("alone");
            assert_eq!(
                got.rgb, alone.rgb,
                "{name} scene {i}: RGB differs from alone"
            );
            assert_eq!(
                got.yuv, alone.yuv,
                "{name} scene {i}: Y'CbCr differs from alone"
            );
            assert_eq!(got.motion, alone.motion, "{name} scene {i}: motion differs");
            assert_eq!(got.rgb.len(), input.out_frames, "{name} scene {i}");
        }
        match name {
            "wgpu" => assert_eq!(submitted, 1, "three scenes, one submission"),
            _ => assert_eq!(submitted, 0, "the CPU path submits nothing"),
        }
    }
    assert_eq!(gpu.process_batch(&[]).len(), 0);
}
