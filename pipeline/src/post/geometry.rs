//! The shape of one post-processing job and the tuning constants, shared by both backends.
//!
//! The GPU reads all of it from one uniform ([`Params`], laid out like `Params` in
//! `common.wgsl`), so the constants below are the single source for the shaders too.

use anyhow::{ensure, Result};
use bytemuck::{Pod, Zeroable};
use kernels::Clip;

/// A mask pixel counts as object from this fraction of the frame's contrast upwards, and fully
/// from `1 - ALPHA_LO`: a ramp symmetric about one half keeps the mass of an anti-aliased edge
/// equal to its coverage, while noise below a quarter of the contrast is ignored.
pub const ALPHA_LO: f32 = 0.25;
/// Below this contrast (max channel difference to the background, 0-1) a frame has no object;
/// the faintest pair of the world (white on beige) differs by 0.27.
pub const CONTRAST_FLOOR: f32 = 0.1;
/// Below this mass (pixels of the base frame) a frame has no object worth tracking.
pub const MIN_MASS: f32 = 1.0;
/// The upscale sharpens fully where the step between a 4x4 neighbourhood's two side colours
/// (largest channel difference, see `sides`) reaches `GATE_HI`, and not at all below `GATE_LO`:
/// flat but noisy areas (generated frames) keep bicubic's smoothness, while every object edge
/// of the world (a step of at least 0.27) gets the full stretch.
pub const GATE_LO: f32 = 0.12;
pub const GATE_HI: f32 = 0.2;

/// Sizes of one job; frames are planar buffers of these dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub in_w: usize,
    pub in_h: usize,
    pub frames: usize,
    pub out_size: usize,
    pub out_frames: usize,
}

impl Geometry {
    pub fn new(clip: &Clip, out_size: usize, out_frames: usize) -> Result<Geometry> {
        super::check_clip(clip)?;
        ensure!(
            out_size > 0 && out_frames > 0,
            "asked for {out_frames} frames of {out_size}x{out_size}"
        );
        Ok(Geometry {
            in_w: clip.width,
            in_h: clip.height,
            frames: clip.frames,
            out_size,
            out_frames,
        })
    }

    /// Pixels of one delivered frame.
    pub fn pixels(&self) -> usize {
        self.out_size * self.out_size
    }

    /// Cells per row of a base frame's side table ([`super::sides`]): cells -2 to `in_w`.
    pub fn cells_w(&self) -> usize {
        self.in_w + 3
    }

    /// Cells per column of a base frame's side table.
    pub fn cells_h(&self) -> usize {
        self.in_h + 3
    }

    /// Cells of one base frame.
    pub fn cells(&self) -> usize {
        self.cells_w() * self.cells_h()
    }

    /// Side of the chroma planes.
    pub fn chroma_side(&self) -> usize {
        self.out_size.div_ceil(2)
    }

    /// Groups of four pixels per delivered frame (one GPU thread packs each into 3 words).
    pub fn quads(&self) -> usize {
        self.pixels().div_ceil(4)
    }

    /// u32 words of one packed RGB8 frame.
    pub fn rgb_words(&self) -> usize {
        self.quads() * 3
    }

    /// u32 words of one packed Y plane.
    pub fn y_words(&self) -> usize {
        self.pixels().div_ceil(4)
    }

    /// u32 words of one packed chroma plane.
    pub fn c_words(&self) -> usize {
        (self.chroma_side() * self.chroma_side()).div_ceil(4)
    }

    /// u32 words of one packed Y'CbCr frame: Y, then Cb, then Cr.
    pub fn yuv_words(&self) -> usize {
        self.y_words() + 2 * self.c_words()
    }

    /// Uniform for the shaders.
    pub fn params(&self) -> Params {
        let u = |v: usize| v as u32;
        Params {
            in_w: u(self.in_w),
            in_h: u(self.in_h),
            frames: u(self.frames),
            out_size: u(self.out_size),
            out_frames: u(self.out_frames),
            quads: u(self.quads()),
            y_words: u(self.y_words()),
            c_words: u(self.c_words()),
            chroma_side: u(self.chroma_side()),
            alpha_lo: ALPHA_LO,
            contrast_floor: CONTRAST_FLOOR,
            min_mass: MIN_MASS,
            gate_lo: GATE_LO,
            gate_hi: GATE_HI,
            pad: [0; 2],
        }
    }
}

/// `Params` of `common.wgsl`, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Params {
    pub in_w: u32,
    pub in_h: u32,
    pub frames: u32,
    pub out_size: u32,
    pub out_frames: u32,
    pub quads: u32,
    pub y_words: u32,
    pub c_words: u32,
    pub chroma_side: u32,
    pub alpha_lo: f32,
    pub contrast_floor: f32,
    pub min_mass: f32,
    pub gate_lo: f32,
    pub gate_hi: f32,
    pub pad: [u32; 2],
}
