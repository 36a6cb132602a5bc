//! Artifacts near the object: the share of the pixels within [`BAND`] pixels of the object's
//! edge whose colour is neither the object's nor the canvas's (farther than [`TOLERANCE`]
//! from both). Speckle halos around the object and pinched or rounded corners put such
//! pixels there; a clean edge has only its anti-aliasing ramp, which the rendered ground truth
//! has too, so the figure means something against the same measure on the ground truth
//! through the same encoder (`bench --bin evaluate` reports both).

use kernels::Clip;

use crate::measure::{self, distance, Rgb};

/// How far from the edge a pixel may be and still count, in pixels (Chebyshev).
pub const BAND: usize = 3;

/// How far (Euclidean, RGB in [0, 1]) a pixel's colour must be from both the object's and
/// the canvas's to count as an artifact.
pub const TOLERANCE: f32 = 0.2;

/// What [`edge_artifacts`] counted over a clip.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EdgeArtifacts {
    /// Pixels within [`BAND`] of the object's edge, over every frame.
    pub band: usize,
    /// Of those, pixels of neither colour.
    pub stray: usize,
}

impl EdgeArtifacts {
    /// `stray / band` (0 for an empty band).
    pub fn share(&self) -> f32 {
        self.stray as f32 / self.band.max(1) as f32
    }
}

/// Counts the edge band and its stray pixels over every frame of `clip`, with the canvas
/// and object colours measured on its first frame; `None` when no object stands out.
pub fn edge_artifacts(clip: &Clip) -> Option<EdgeArtifacts> {
    let (w, h) = (clip.width, clip.height);
    let frame_len = w * h * 3;
    if clip.frames == 0 || frame_len == 0 || clip.data.len() < clip.frames * frame_len {
        return None;
    }
    let bg = measure::canvas(&clip.data[..frame_len]);
    let object = measure::object_colour(&clip.data[..frame_len], bg)?;
    let mut total = EdgeArtifacts::default();
    for frame in clip.data.chunks_exact(frame_len).take(clip.frames) {
        let mask = object_mask(frame, bg, object);
        let band = dilate(&boundary(&mask, w, h), w, h, BAND);
        for (i, px) in frame.chunks_exact(3).enumerate() {
            if band[i] {
                total.band += 1;
                if distance(px, &object) > TOLERANCE && distance(px, &bg) > TOLERANCE {
                    total.stray += 1;
                }
            }
        }
    }
    Some(total)
}

/// Pixels nearer the object's colour than the canvas's along the line between them.
fn object_mask(frame: &[f32], bg: Rgb, object: Rgb) -> Vec<bool> {
    let axis: Rgb = [0, 1, 2].map(|c| object[c] - bg[c]);
    let norm2: f32 = axis
        .iter()
        .map(|a| a * a)
        .sum::<f32>()
        .max(f32::MIN_POSITIVE);
    frame
        .chunks_exact(3)
        .map(|px| (0..3).map(|c| (px[c] - bg[c]) * axis[c]).sum::<f32>() / norm2 > 0.5)
        .collect()
}

/// Pixels of the mask with a 4-neighbour outside it, and outside pixels with one inside.
fn boundary(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            let differs = |j: usize| mask[j] != mask[i];
            (x > 0 && differs(i - 1))
                || (x + 1 < w && differs(i + 1))
                || (y > 0 && differs(i - w))
                || (y + 1 < h && differs(i + w))
        })
        .collect()
}

/// `set` grown by `r` pixels in every direction (a square), rows then columns.
fn dilate(set: &[bool], w: usize, h: usize, r: usize) -> Vec<bool> {
    let grow = |get: &dyn Fn(usize) -> bool, len: usize, at: usize| {
        (at.saturating_sub(r)..(at + r + 1).min(len)).any(get)
    };
    let rows: Vec<bool> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            grow(&|k| set[y * w + k], w, x)
        })
        .collect();
    (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            grow(&|k| rows[k * w + x], h, y)
        })
        .collect()
}
