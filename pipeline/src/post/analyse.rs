//! Stage 1, analyse: where the object is in each base frame (CPU twin of `analyse.wgsl`).
//!
//! The world draws one flat object on a flat canvas that it never leaves, so the frame's border
//! is background; the mask is each pixel's distance to that colour relative to the frame's
//! contrast, and its mass and centroid give the object's scale and position for the temporal
//! interpolation of [`super::resample`].

use kernels::Clip;
use rayon::prelude::*;

use super::geometry::{ALPHA_LO, CONTRAST_FLOOR, MIN_MASS};

/// What one base frame shows, in base-frame pixels (pixel centres at i + 0.5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameMotion {
    /// Background colour, RGB 0-1 (mean of the border).
    pub background: [f32; 3],
    /// Largest channel difference of any pixel to the background.
    pub contrast: f32,
    /// The mask's area in pixels.
    pub mass: f32,
    /// The mask's centroid (the frame centre when the mask is empty).
    pub centroid: [f32; 2],
}

impl FrameMotion {
    /// Whether the frame shows an object that can be tracked.
    pub fn has_object(&self) -> bool {
        self.contrast >= CONTRAST_FLOOR && self.mass >= MIN_MASS
    }

    /// Linear size of the object (square root of its area).
    pub fn scale(&self) -> f32 {
        self.mass.sqrt()
    }

    /// The 8-word form the shaders exchange (`Motion` in `common.wgsl`).
    pub(crate) fn from_words(w: &[f32]) -> FrameMotion {
        FrameMotion {
            background: [w[0], w[1], w[2]],
            contrast: w[3],
            mass: w[4],
            centroid: [w[5], w[6]],
        }
    }
}

/// Analyses every frame of a clip, frames in parallel.
pub(crate) fn analyse(clip: &Clip) -> Vec<FrameMotion> {
    let len = clip.width * clip.height * 3;
    clip.data
        .par_chunks(len)
        .map(|f| analyse_frame(f, clip.width, clip.height))
        .collect()
}

/// Indices of the frame's border pixels (all pixels when the frame is too thin to have an
/// inside), the same set `border_pixel` of `analyse.wgsl` enumerates.
fn border(w: usize, h: usize) -> Vec<usize> {
    if w < 3 || h < 3 {
        return (0..w * h).collect();
    }
    let rows = (0..w).flat_map(|x| [x, (h - 1) * w + x]);
    let cols = (1..h - 1).flat_map(|y| [y * w, y * w + w - 1]);
    rows.chain(cols).collect()
}

fn analyse_frame(frame: &[f32], w: usize, h: usize) -> FrameMotion {
    let px = |i: usize| [frame[3 * i], frame[3 * i + 1], frame[3 * i + 2]];
    let edge = border(w, h);
    let mut bg = [0.0f32; 3];
    for &i in &edge {
        let p = px(i);
        (0..3).for_each(|c| bg[c] += p[c]);
    }
    bg.iter_mut().for_each(|c| *c /= edge.len() as f32);
    let dist = |i: usize| {
        let p = px(i);
        (0..3).map(|c| (p[c] - bg[c]).abs()).fold(0.0f32, f32::max)
    };

    let contrast = (0..w * h).map(dist).fold(0.0f32, f32::max);
    let scale = 1.0 / contrast.max(1e-6);
    let ramp = 1.0 / (1.0 - 2.0 * ALPHA_LO);
    let (mut mass, mut mx, mut my) = (0.0f32, 0.0f32, 0.0f32);
    for i in 0..w * h {
        let a = ((dist(i) * scale - ALPHA_LO) * ramp).clamp(0.0, 1.0);
        mass += a;
        mx += a * ((i % w) as f32 + 0.5);
        my += a * ((i / w) as f32 + 0.5);
    }
    let centroid = if mass > 0.0 {
        [mx / mass, my / mass]
    } else {
        [w as f32 * 0.5, h as f32 * 0.5]
    };
    FrameMotion {
        background: bg,
        contrast,
        mass,
        centroid,
    }
}
