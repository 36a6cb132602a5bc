//! Stage 2, resample: temporal interpolation fused with the edge-crisp upscale (CPU twin of
//! `resample.wgsl`; the formulas and their order are the same, so the two agree to rounding).
//!
//! Delivered frame j sits at progress j/(out_frames-1), between base frames a and b = a + 1
//! with weight w. The object's centroid and scale there are interpolated from the analysis, and
//! each base frame is sampled through a warp that moves and scales its object onto that spot;
//! blending the two warped samples cannot ghost since both show the object in the same place.
//! Frames where no object is found are cross-faded unwarped.

use kernels::Clip;
use rayon::prelude::*;

use super::analyse::FrameMotion;
use super::geometry::{Geometry, GATE_HI, GATE_LO};

/// How one base frame is sampled for one delivered frame: a delivered position `u` (in
/// base-frame pixels) reads the base frame at `origin + (u - goal) * ratio`.
#[derive(Clone, Copy, Debug)]
struct Warp {
    origin: [f32; 2],
    goal: [f32; 2],
    ratio: f32,
    /// The contrast stretch that turns a one-pixel ramp of the base frame into one delivered
    /// pixel: the magnification of the warp.
    sharpen: f32,
}

/// How one delivered frame is made.
#[derive(Clone, Copy, Debug)]
struct Plan {
    a: usize,
    b: usize,
    w: f32,
    from_a: Warp,
    from_b: Warp,
}

fn warp(g: &Geometry, m: &FrameMotion, goal: [f32; 2], scale: f32, tracked: bool) -> Warp {
    let zoom = g.out_size as f32 / g.in_w as f32;
    if !tracked {
        return Warp {
            origin: goal,
            goal,
            ratio: 1.0,
            sharpen: zoom.max(1.0),
        };
    }
    let ratio = m.scale() / scale;
    Warp {
        origin: m.centroid,
        goal,
        ratio,
        sharpen: (zoom / ratio).max(1.0),
    }
}

fn mix(a: f32, b: f32, w: f32) -> f32 {
    a * (1.0 - w) + b * w
}

fn plan(g: &Geometry, motion: &[FrameMotion], j: usize) -> Plan {
    let (mut a, mut b, mut w) = (0, 0, 0.0f32);
    if g.frames > 1 && g.out_frames > 1 {
        // Integer arithmetic, so both backends land on exactly the same pair of base frames.
        let span = g.out_frames - 1;
        let q = j * (g.frames - 1);
        a = q / span;
        w = (q % span) as f32 / span as f32;
        if a == g.frames - 1 {
            a -= 1;
            w = 1.0;
        }
        b = a + 1;
    }
    let (ma, mb) = (&motion[a], &motion[b]);
    let tracked = ma.has_object() && mb.has_object();
    let (goal, scale) = if tracked {
        let c = [
            mix(ma.centroid[0], mb.centroid[0], w),
            mix(ma.centroid[1], mb.centroid[1], w),
        ];
        (c, mix(ma.scale(), mb.scale(), w))
    } else {
        ([g.in_w as f32 * 0.5, g.in_h as f32 * 0.5], 1.0)
    };
    Plan {
        a,
        b,
        w,
        from_a: warp(g, ma, goal, scale, tracked),
        from_b: warp(g, mb, goal, scale, tracked),
    }
}

/// Catmull-Rom weights of the four taps around a fractional position `t`.
fn cubic(t: f32) -> [f32; 4] {
    let t2 = t * t;
    let t3 = t2 * t;
    [
        -0.5 * t3 + t2 - 0.5 * t,
        1.5 * t3 - 2.5 * t2 + 1.0,
        -1.5 * t3 + 2.0 * t2 + 0.5 * t,
        0.5 * t3 - 0.5 * t2,
    ]
}

/// The four taps of one axis: clamped source indices and their Catmull-Rom weights.
#[derive(Clone, Copy)]
struct Taps {
    idx: [usize; 4],
    w: [f32; 4],
}

fn taps(pos: f32, n: usize) -> Taps {
    let s = pos - 0.5;
    let cell = s.floor();
    let first = cell as i32 - 1;
    Taps {
        idx: [0, 1, 2, 3].map(|i| (first + i).clamp(0, n as i32 - 1) as usize),
        w: cubic(s - cell),
    }
}

/// One base row filtered horizontally at one delivered column: the Catmull-Rom sum and the
/// range of its four taps.
#[derive(Clone, Copy)]
struct RowTap {
    sum: [f32; 3],
    lo: [f32; 3],
    hi: [f32; 3],
}

/// One base frame seen through one warp. The warp is separable (x' depends on x alone), so the
/// 4x4 filter splits into a horizontal pass over the base rows and a vertical pass per delivered
/// pixel: the same sums in the same order as the shader's 16-tap loop (row by row), at a
/// quarter of the work.
struct Warped {
    rows: Vec<RowTap>,
    ys: Vec<Taps>,
    side: usize,
    sharpen: f32,
}

impl Warped {
    fn new(frame: &[f32], g: &Geometry, wp: &Warp) -> Warped {
        let side = g.out_size;
        let to_base = [g.in_w as f32 / side as f32, g.in_h as f32 / side as f32];
        let axis = |k: usize, n: usize| -> Vec<Taps> {
            (0..side)
                .map(|o| {
                    let u = (o as f32 + 0.5) * to_base[k];
                    taps(wp.origin[k] + (u - wp.goal[k]) * wp.ratio, n)
                })
                .collect()
        };
        let (xs, ys) = (axis(0, g.in_w), axis(1, g.in_h));
        let mut rows = Vec::with_capacity(g.in_h * side);
        for y in 0..g.in_h {
            let line = &frame[y * g.in_w * 3..(y + 1) * g.in_w * 3];
            rows.extend(xs.iter().map(|t| {
                let mut r = RowTap {
                    sum: [0.0; 3],
                    lo: [1e30; 3],
                    hi: [-1e30; 3],
                };
                for (&x, &w) in t.idx.iter().zip(&t.w) {
                    for c in 0..3 {
                        let p = line[x * 3 + c];
                        r.sum[c] += w * p;
                        r.lo[c] = r.lo[c].min(p);
                        r.hi[c] = r.hi[c].max(p);
                    }
                }
                r
            }));
        }
        Warped {
            rows,
            ys,
            side,
            sharpen: wp.sharpen,
        }
    }

    /// The upscale proper at delivered pixel (x, y): Catmull-Rom, clamped to the 4x4 range (no
    /// ringing), then stretched about the middle of that range by `sharpen` where the range is
    /// an edge rather than noise.
    fn sample(&self, x: usize, y: usize) -> [f32; 3] {
        let t = &self.ys[y];
        let mut acc = [0.0f32; 3];
        let mut lo = [1e30f32; 3];
        let mut hi = [-1e30f32; 3];
        for (&sy, &w) in t.idx.iter().zip(&t.w) {
            let r = &self.rows[sy * self.side + x];
            for c in 0..3 {
                acc[c] += w * r.sum[c];
                lo[c] = lo[c].min(r.lo[c]);
                hi[c] = hi[c].max(r.hi[c]);
            }
        }
        let range = [hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]];
        let spread = range[0].max(range[1]).max(range[2]);
        let gate = ((spread - GATE_LO) / (GATE_HI - GATE_LO)).clamp(0.0, 1.0);
        let k = 1.0 + (self.sharpen - 1.0) * gate;
        let mut out = [0.0f32; 3];
        for c in 0..3 {
            let v = acc[c].clamp(lo[c], hi[c]);
            let rel = (v - lo[c]) / range[c].max(1e-6);
            out[c] = lo[c] + ((rel - 0.5) * k + 0.5).clamp(0.0, 1.0) * range[c];
        }
        out
    }
}

fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// Makes every delivered frame as RGB8 (`out_size * out_size * 3` bytes each), in parallel.
pub(crate) fn resample(clip: &Clip, g: &Geometry, motion: &[FrameMotion]) -> Vec<Vec<u8>> {
    let len = g.in_w * g.in_h * 3;
    let frame = |f: usize| &clip.data[f * len..(f + 1) * len];
    let side = g.out_size;
    (0..g.out_frames)
        .into_par_iter()
        .map(|j| {
            let pl = plan(g, motion, j);
            // A weight of exactly 0 or 1 leaves the other frame out, as the shader does.
            let a = (pl.w < 1.0).then(|| Warped::new(frame(pl.a), g, &pl.from_a));
            let b = (pl.w > 0.0).then(|| Warped::new(frame(pl.b), g, &pl.from_b));
            let mut out = vec![0u8; g.pixels() * 3];
            out.par_chunks_mut(side * 3)
                .enumerate()
                .for_each(|(y, row)| {
                    for (x, px) in row.chunks_exact_mut(3).enumerate() {
                        let mut c = [0.0f32; 3];
                        if let Some(a) = &a {
                            let s = a.sample(x, y);
                            (0..3).for_each(|k| c[k] += (1.0 - pl.w) * s[k]);
                        }
                        if let Some(b) = &b {
                            let s = b.sample(x, y);
                            (0..3).for_each(|k| c[k] += pl.w * s[k]);
                        }
                        (0..3).for_each(|k| px[k] = to_byte(c[k]));
                    }
                });
            out
        })
        .collect()
}
