//! The prompt-adherence evaluator: does a clip show the scene it was asked for? Used by tests
//! and the `bench` tools, never by the server, so it lives outside the `pipeline` crate.
//!
//! [`evaluate`] measures a clip at any resolution (model frames or delivered frames) and
//! checks each attribute of the expected [`Scene`]: the canvas colour (median of the first
//! frame), the object colour (core of the pixels far from the canvas), the shape (how low its
//! mass sits, where its corners point), the size (first-frame width) and the motion
//! (centroid shift and width ratio from first to last frame). [`report`] turns verdicts into
//! an accuracy table; [`prompt_suite`] gives the scenes an evaluation run asks the model for.
//! Validated on the renderer's ground truth (tests/eval.rs), where it is exact.
//!
//! [`render`] is that ground truth: the Rust twin of `model/world.py`, drawing a scene as the
//! training clips were drawn. [`artifacts`] measures what a clean edge lacks: pixels of
//! neither the object's nor the canvas's colour near the object's edge.

#![warn(missing_docs)]

pub mod artifacts;
mod classify;
mod measure;
pub mod render;
pub mod report;
mod suite;

use kernels::Clip;
use serde::Serialize;

pub use suite::prompt_suite;

use pipeline::plan::Attr;
use pipeline::world::{Background, Color, Motion, Scene, Shape, Size};

/// What was measured on the object; absent when no object stands out from the canvas.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ObjectMeasure {
    /// The nearest palette colour to [`ObjectMeasure::rgb`].
    pub color: Color,
    /// The shape its mass distribution reads as.
    pub shape: Shape,
    /// The size class of [`ObjectMeasure::side`].
    pub size: Size,
    /// The motion [`ObjectMeasure::shift`] and [`ObjectMeasure::scale`] read as.
    pub motion: Motion,
    /// Object colour, RGB in [0, 1].
    pub rgb: [f32; 3],
    /// First frame: area over bounding-box area.
    pub fill: f32,
    /// First frame: height over width.
    pub aspect: f32,
    /// First frame: skewness of the mass along y (negative: mass low, a triangle).
    pub skew: f32,
    /// First frame: fourfold harmonic of the mass (-0.43 square, 0 circle, +0.43 diamond).
    pub fourfold: f32,
    /// First frame: width as a fraction of the frame width.
    pub side: f32,
    /// Centroid shift from first to last frame, fractions of the frame (y down).
    pub shift: (f32, f32),
    /// Last-frame width over first-frame width.
    pub scale: f32,
}

/// Everything measured on a clip.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Measured {
    /// The nearest canvas colour to [`Measured::background_rgb`].
    pub background: Background,
    /// Canvas colour, RGB in [0, 1].
    pub background_rgb: [f32; 3],
    /// The object, when one stands out from the canvas.
    pub object: Option<ObjectMeasure>,
}

/// The expected scene beside what the clip shows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Verdict {
    /// The scene asked for.
    pub expected: Scene,
    /// What the clip shows.
    pub measured: Measured,
}

impl Verdict {
    /// Whether the clip shows the expected value of `attr`.
    pub fn pass(&self, attr: Attr) -> bool {
        let e = &self.expected;
        let object = |check: fn(&ObjectMeasure, &Scene) -> bool| {
            self.measured.object.as_ref().is_some_and(|o| check(o, e))
        };
        match attr {
            Attr::Background => self.measured.background == e.background,
            Attr::Color => object(|o, e| o.color == e.color),
            Attr::Shape => object(|o, e| o.shape == e.shape),
            Attr::Size => object(|o, e| o.size == e.size),
            Attr::Motion => object(|o, e| o.motion == e.motion),
        }
    }

    /// Whether every attribute passes.
    pub fn all_pass(&self) -> bool {
        ATTRS.iter().all(|&a| self.pass(a))
    }

    /// The attributes that fail.
    pub fn failures(&self) -> Vec<Attr> {
        ATTRS.iter().copied().filter(|&a| !self.pass(a)).collect()
    }
}

/// The attributes judged, in table order.
pub const ATTRS: [Attr; 5] = [
    Attr::Background,
    Attr::Color,
    Attr::Shape,
    Attr::Size,
    Attr::Motion,
];

/// Judges `clip` against `expected`. Clips with no frames or no pixels measure as a black
/// canvas with no object.
///
/// ```
/// use eval::evaluate;
/// use eval::render::{draw_start, render};
/// use pipeline::plan::Attr;
/// use pipeline::world::{Background, Color, Motion, Scene, Shape, Size};
///
/// let scene = Scene {
///     size: Size::Large,
///     color: Color::Blue,
///     shape: Shape::Square,
///     motion: Motion::Right,
///     background: Background::Beige,
/// };
/// let clip = render(&scene, draw_start(&scene, 0.5, 0.5), 64, 8);
/// assert!(evaluate(&clip, &scene).all_pass());
/// let asked = Scene { motion: Motion::Left, ..scene };
/// assert_eq!(evaluate(&clip, &asked).failures(), [Attr::Motion]);
/// ```
pub fn evaluate(clip: &Clip, expected: &Scene) -> Verdict {
    let frame_len = clip.width * clip.height * 3;
    let usable = clip.frames > 0 && frame_len > 0 && clip.data.len() >= clip.frames * frame_len;
    let measured = if usable {
        measure_clip(clip, frame_len)
    } else {
        nothing()
    };
    Verdict {
        expected: *expected,
        measured,
    }
}

fn nothing() -> Measured {
    Measured {
        background: Background::Black,
        background_rgb: [0.0; 3],
        object: None,
    }
}

fn measure_clip(clip: &Clip, frame_len: usize) -> Measured {
    let first = &clip.data[..frame_len];
    let bg = measure::canvas(first);
    let object = measure::object_colour(first, bg).and_then(|rgb| {
        let start = measure::blob(clip, 0, bg, rgb)?;
        let end = measure::blob(clip, clip.frames - 1, bg, rgb)?;
        let (w, h) = (clip.width as f32, clip.height as f32);
        let side = start.width / w;
        let shift = (
            (end.centre.0 - start.centre.0) / w,
            (end.centre.1 - start.centre.1) / h,
        );
        let scale = end.width / start.width;
        Some(ObjectMeasure {
            color: classify::color(rgb),
            shape: classify::shape(&start),
            size: classify::size(side),
            motion: classify::motion(shift, scale),
            rgb,
            fill: start.area / (start.width * start.height),
            aspect: start.height / start.width,
            skew: start.skew,
            fourfold: start.fourfold,
            side,
            shift,
            scale,
        })
    });
    Measured {
        background: classify::background(bg),
        background_rgb: bg,
        object,
    }
}
