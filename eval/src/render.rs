//! The world renderer: the Rust twin of `model/world.py` `render`, drawing a canonical
//! [`Scene`] into a [`Clip`] as the training clips were drawn.
//!
//! Same geometry as the Python: pixel centres at `+0.5`, anti-aliasing from a signed distance
//! with a one-pixel ramp, the equilateral apex-up triangle and the 45-degree diamond inscribed
//! in the object's box, [`size_at`] for grow / shrink, a travel of [`TRAVEL`] of the frame side,
//! progress `p = i / (frames - 1)`, and 8-bit rounding (half to even, like `np.rint`), so
//! frames match world.py within one level of 255 (tests/render.rs). The evaluator's ground
//! truth, tests and benchmarks draw with it; [`seeded_start`] places scene `index` of a seed
//! with the kernels' Philox generator, so a test's scenes are reproducible from one number.

use kernels::philox::philox4x32_10;
use kernels::Clip;

use pipeline::world::{Motion, Scene, Shape};

/// Fraction of the frame side the centre travels in a moving scene.
pub const TRAVEL: f64 = 0.45;

/// Philox stream of start positions, apart from the streams of the model's noise.
const START_STREAM: u32 = 0x5354_4152;

/// Bounding-box side (fraction of the frame) at progress `p` in [0, 1].
pub fn size_at(scene: &Scene, p: f64) -> f64 {
    let s0 = f64::from(scene.size.fraction());
    match scene.motion {
        Motion::Grow => s0 * (1.0 + p),
        Motion::Shrink => s0 * (1.0 - 0.5 * p),
        _ => s0,
    }
}

/// Unit direction of travel (y grows downwards).
fn direction(motion: Motion) -> (f64, f64) {
    match motion {
        Motion::Left => (-1.0, 0.0),
        Motion::Right => (1.0, 0.0),
        Motion::Up => (0.0, -1.0),
        Motion::Down => (0.0, 1.0),
        Motion::Grow | Motion::Shrink | Motion::Still => (0.0, 0.0),
    }
}

/// Per axis (x, y), the interval of start centres (fractions) that keeps the object wholly
/// inside the frame for the whole scene.
pub fn start_range(scene: &Scene) -> [(f32, f32); 2] {
    let half = 0.5 * size_at(scene, 0.0).max(size_at(scene, 1.0));
    let (dx, dy) = direction(scene.motion);
    [dx, dy].map(|d| {
        let (mut lo, mut hi) = (half, 1.0 - half);
        if d < 0.0 {
            lo += TRAVEL;
        } else if d > 0.0 {
            hi -= TRAVEL;
        }
        (lo as f32, hi as f32)
    })
}

/// Start centre from two uniforms in [0, 1).
pub fn draw_start(scene: &Scene, u: f32, v: f32) -> (f32, f32) {
    let [(xl, xh), (yl, yh)] = start_range(scene);
    (xl + u * (xh - xl), yl + v * (yh - yl))
}

/// Start centre of scene `index` of a task with seed `seed`: two Philox uniforms from its own
/// counter, so each scene's place depends only on (seed, index).
pub fn seeded_start(scene: &Scene, seed: u64, index: u64) -> (f32, f32) {
    let key = [seed as u32, (seed >> 32) as u32];
    let x = philox4x32_10([index as u32, (index >> 32) as u32, START_STREAM, 0], key);
    let uniform = |v: u32| ((f64::from(v) + 0.5) / 4_294_967_296.0) as f32;
    draw_start(scene, uniform(x[0]), uniform(x[1]))
}

/// Centre (fractions) at progress `p`.
pub fn centre_at(scene: &Scene, start: (f32, f32), p: f64) -> (f64, f64) {
    let (dx, dy) = direction(scene.motion);
    (
        f64::from(start.0) + TRAVEL * p * dx,
        f64::from(start.1) + TRAVEL * p * dy,
    )
}

/// Anti-aliased coverage in [0, 1] of the pixel centre at (`x`, `y`) pixels from the object's
/// centre, for an object whose box side is `side` pixels.
fn coverage(shape: Shape, x: f32, y: f32, side: f64) -> f32 {
    let h = (0.5 * side) as f32;
    let d = match shape {
        Shape::Circle => (x * x + y * y).sqrt() - h,
        Shape::Square => x.abs().max(y.abs()) - h,
        Shape::Diamond => (x.abs() + y.abs() - h) / std::f32::consts::SQRT_2,
        Shape::Triangle => {
            // Apex up, base horizontal, width = side, centred in its box.
            let half_height = (side * 3f64.sqrt() / 2.0 / 2.0) as f32;
            let yy = y + half_height; // from the apex
            let c = (3f64.sqrt() / 2.0) as f32;
            let slant_r = x * c - yy * 0.5;
            let slant_l = -x * c - yy * 0.5;
            (y - half_height).max(slant_r.max(slant_l))
        }
    };
    (0.5 - d).clamp(0.0, 1.0)
}

/// Frames of `scene` at `size` x `size` pixels; `start` is the centre (fractions) at p = 0.
pub fn render(scene: &Scene, start: (f32, f32), size: usize, frames: usize) -> Clip {
    let mut clip = Clip {
        frames,
        width: size,
        height: size,
        data: Vec::new(),
    };
    render_into(scene, start, size, frames, &mut clip);
    clip
}

/// [`render`] into an existing clip, reusing its buffer: loops that render many clips
/// (evaluation, benchmarks) then touch fresh memory only once.
pub fn render_into(scene: &Scene, start: (f32, f32), size: usize, frames: usize, clip: &mut Clip) {
    let fg = scene.color.rgb().map(f32::from);
    let bg = scene.background.rgb().map(f32::from);
    let level = |a: f32, c: usize| {
        (bg[c] * (1.0 - a) + fg[c] * a)
            .round_ties_even()
            .clamp(0.0, 255.0)
            / 255.0
    };
    let plain = [0, 1, 2].map(|c| level(0.0, c));
    let frame_len = size * size * 3;
    (clip.frames, clip.width, clip.height) = (frames, size, size);
    let data = &mut clip.data;
    data.clear();
    data.resize(frame_len * frames, 0.0);
    for px in data.chunks_exact_mut(3) {
        px.copy_from_slice(&plain);
    }
    for (i, frame) in data.chunks_exact_mut(frame_len.max(1)).enumerate() {
        let p = if frames > 1 {
            i as f64 / (frames - 1) as f64
        } else {
            0.0
        };
        let (cx, cy) = centre_at(scene, start, p);
        let (cx, cy) = ((cx * size as f64) as f32, (cy * size as f64) as f32);
        let side = size_at(scene, p) * size as f64;
        // Only pixels within the object's box (plus the ramp) can differ from the canvas.
        let reach = (0.5 * side + 2.0) as f32;
        let span = |c: f32| {
            let lo = (c - reach).floor().max(0.0) as usize;
            let hi = ((c + reach).ceil().max(0.0) as usize).min(size);
            lo..hi
        };
        for y in span(cy) {
            for x in span(cx) {
                let a = coverage(scene.shape, x as f32 + 0.5 - cx, y as f32 + 0.5 - cy, side);
                if a > 0.0 {
                    let px = &mut frame[(y * size + x) * 3..][..3];
                    for (c, v) in px.iter_mut().enumerate() {
                        *v = level(a, c);
                    }
                }
            }
        }
    }
}
