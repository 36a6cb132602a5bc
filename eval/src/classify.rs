//! Measured values -> world attributes, with the thresholds and why they sit where they do.

use super::measure::{distance, Blob, Rgb};
use pipeline::world::{Background, Color, Motion, Shape, Size};

/// Below this vertical skewness the mass sits low: an apex-up triangle (ideal -0.57; the
/// symmetric shapes measure 0).
const TRIANGLE_SKEW: f32 = -0.25;
/// Fourfold harmonic: square -0.43, circle 0, diamond +0.43; blurred, noisy 10-pixel objects
/// still measure beyond -0.31 / +0.27 and circles within 0.05.
const CORNERS: f32 = 0.16;
/// A third of the 0.45 travel: well above jitter, yet lenient with a short move.
const MOVED: f32 = 0.15;
/// Width ratios between 1 and the ideal 2 (grow) or 0.5 (shrink).
const GREW: f32 = 1.25;
const SHRANK: f32 = 0.8;

fn bytes(rgb: [u8; 3]) -> Rgb {
    rgb.map(|v| f32::from(v) / 255.0)
}

/// The palette canvas nearest to `rgb`.
pub fn background(rgb: Rgb) -> Background {
    nearest(Background::ALL, |b| distance(&bytes(b.rgb()), &rgb))
}

/// The palette colour nearest to `rgb`.
pub fn color(rgb: Rgb) -> Color {
    nearest(Color::ALL, |c| distance(&bytes(c.rgb()), &rgb))
}

/// Shape from the first frame's blob: a triangle by where its mass sits, the others by where
/// their corners point. (The fill of the bounding box, 1 / 0.785 / 0.5, separates them too
/// on sharp frames, but blur rounds small diamonds to circle-like fills; the harmonic holds.)
pub fn shape(b: &Blob) -> Shape {
    if b.skew < TRIANGLE_SKEW {
        Shape::Triangle
    } else if b.fourfold > CORNERS {
        Shape::Diamond
    } else if b.fourfold < -CORNERS {
        Shape::Square
    } else {
        Shape::Circle
    }
}

/// Size from the first frame's width as a fraction of the frame width (every shape's box is
/// as wide as its size), cut at the geometric midpoints of the size fractions.
pub fn size(side: f32) -> Size {
    nearest(Size::ALL, |s| (side.ln() - s.fraction().ln()).abs())
}

/// Motion from the centroid shift (fractions of the frame) and the width ratio between the
/// first and last frames.
pub fn motion(shift: (f32, f32), scale: f32) -> Motion {
    let (dx, dy) = shift;
    if dx.abs().max(dy.abs()) > MOVED {
        match (dx.abs() >= dy.abs(), dx > 0.0, dy > 0.0) {
            (true, true, _) => Motion::Right,
            (true, false, _) => Motion::Left,
            (false, _, true) => Motion::Down,
            (false, _, false) => Motion::Up,
        }
    } else if scale > GREW {
        Motion::Grow
    } else if scale < SHRANK {
        Motion::Shrink
    } else {
        Motion::Still
    }
}

fn nearest<T: Copy>(options: &[T], cost: impl Fn(T) -> f32) -> T {
    let mut best = options[0];
    for &o in &options[1..] {
        if cost(o) < cost(best) {
            best = o;
        }
    }
    best
}
