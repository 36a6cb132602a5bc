//! Stage 3, resample: temporal interpolation fused with the edge-crisp upscale (CPU twin of
//! `resample.wgsl`; the formulas and their order are the same, so the two agree to rounding).
//!
//! Delivered frame j sits at progress j/(out_frames-1), between base frames a and b = a + 1
//! with weight w. The object's centroid and scale there are interpolated from the analysis, and
//! each base frame is sampled through a warp that moves and scales its object onto that spot;
//! blending the two warped samples cannot ghost since both show the object in the same place.
//! Frames where no object is found are cross-faded unwarped.

use kernels::Clip;

use super::analyse::FrameMotion;
use super::geometry::Geometry;
use super::sides::{cell_index, Side};

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

/// The four taps of one axis: clamped source indices, their Catmull-Rom weights, and the
/// cell's index in the side table.
#[derive(Clone, Copy)]
struct Taps {
    idx: [usize; 4],
    w: [f32; 4],
    cell: usize,
}

fn taps(pos: f32, n: usize) -> Taps {
    let s = pos - 0.5;
    // Clamped first so that far-off positions cannot overflow the integer conversion.
    let cell = s.clamp(-4.0, n as f32 + 4.0).floor() as i32;
    let first = cell - 1;
    Taps {
        idx: [0, 1, 2, 3].map(|i| (first + i).clamp(0, n as i32 - 1) as usize),
        w: cubic(s - s.floor()),
        cell: cell_index(cell, n),
    }
}

/// One base frame seen through one warp. The warp is separable (x' depends on x alone), so the
/// 4x4 filter splits into a horizontal pass over the base rows and a vertical pass per delivered
/// row: the same sums in the same order as the shader's 16-tap loop (row by row), at a
/// quarter of the work, and in loops over contiguous rows that the compiler vectorises.
struct Warped<'a> {
    /// Per base row, the delivered columns' horizontal sums, RGB interleaved.
    rows: &'a [f32],
    /// Per delivered column, its cell's index within a row of the side table.
    xs: Vec<usize>,
    ys: Vec<Taps>,
    sides: &'a [Side],
    cells_w: usize,
    sharpen: f32,
}

impl<'a> Warped<'a> {
    /// `rows` is scratch space for the horizontal pass.
    fn new(
        frame: &[f32],
        sides: &'a [Side],
        g: &Geometry,
        wp: &Warp,
        rows: &'a mut Vec<f32>,
    ) -> Warped<'a> {
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
        rows.resize(g.in_h * side * 3, 0.0);
        for (line, out) in frame
            .chunks_exact(g.in_w * 3)
            .zip(rows.chunks_exact_mut(side * 3))
        {
            for (o, t) in out.chunks_exact_mut(3).zip(&xs) {
                let [i0, i1, i2, i3] = t.idx.map(|i| &line[i * 3..i * 3 + 3]);
                for c in 0..3 {
                    o[c] = t.w[0] * i0[c] + t.w[1] * i1[c] + t.w[2] * i2[c] + t.w[3] * i3[c];
                }
            }
        }
        Warped {
            rows,
            xs: xs.iter().map(|t| t.cell).collect(),
            ys,
            sides,
            cells_w: g.cells_w(),
            sharpen: wp.sharpen,
        }
    }

    /// Delivered row `y`, RGB interleaved, into `out`.
    fn row(&self, y: usize, out: &mut [f32]) {
        let t = &self.ys[y];
        let n = out.len();
        let [r0, r1, r2, r3] = t.idx.map(|i| &self.rows[i * n..(i + 1) * n]);
        let [w0, w1, w2, w3] = t.w;
        for ((((o, a), b), c), d) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *o = w0 * a + w1 * b + w2 * c + w3 * d;
        }
        let cells = &self.sides[t.cell * self.cells_w..(t.cell + 1) * self.cells_w];
        for (px, &cell) in out.chunks_exact_mut(3).zip(&self.xs) {
            sharpen(px, &cells[cell], self.sharpen);
        }
    }
}

/// WGSL's `clamp` (`min(max(v, lo), hi)`), in comparisons the compiler keeps branch-free; unlike
/// `f32::clamp` it cannot panic.
#[inline(always)]
fn clamp(v: f32, lo: f32, hi: f32) -> f32 {
    let v = if v < lo { lo } else { v };
    if v > hi {
        hi
    } else {
        v
    }
}

/// The upscale proper at one pixel whose Catmull-Rom value is `px`: clamped to the 4x4 range
/// (no ringing), then, where the neighbourhood is an edge rather than noise (gate), moved along
/// the step from one side colour to the other by [`push`], which steepens the ramp between
/// them by `sharpen`.
#[inline(always)]
fn sharpen(px: &mut [f32], s: &Side, sharpen: f32) {
    let v = [
        clamp(px[0], s.lo[0], s.hi[0]),
        clamp(px[1], s.lo[1], s.hi[1]),
        clamp(px[2], s.lo[2], s.hi[2]),
    ];
    if s.gate <= 0.0 {
        px.copy_from_slice(&v);
        return;
    }
    let k = 1.0 + (sharpen - 1.0) * s.gate;
    let along =
        ((v[0] - s.a[0]) * s.e[0] + (v[1] - s.a[1]) * s.e[1] + (v[2] - s.a[2]) * s.e[2]) * s.inv_ee;
    let shift = push(along, k) - along;
    for c in 0..3 {
        px[c] = clamp(v[c] + shift * s.e[c], s.lo[c], s.hi[c]);
    }
}

/// Where a colour at `t` between the side colours (0 and 1) goes: the ramp between them made
/// `k` times steeper about its middle, flat at 0 and 1 for a width `d` either side of each, and
/// moved `d` towards them beyond that. Being symmetric about each side colour, it takes noise
/// around a side towards it from both directions alike; pushing only the colours between the
/// sides (and leaving those beyond) would keep just the noise on the far side and draw a ring.
#[inline(always)]
fn push(t: f32, k: f32) -> f32 {
    let d = 0.5 - 0.5 / k;
    let ramp = clamp((t - 0.5) * k + 0.5, 0.0, 1.0);
    let below = t + d;
    let above = t - 1.0 - d;
    ramp + (if below < 0.0 { below } else { 0.0 }) + (if above > 0.0 { above } else { 0.0 })
}

/// `clamp(v, 0, 1) * 255 + 0.5` truncated, as the shader's `to_byte`. The value is in range, so
/// the cast to i32 gives the same as a cast to u8 while letting the compiler vectorise it.
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as i32 as u8
}

/// Working memory of [`frame`], kept between frames: buffers this size are mapped fresh from
/// the OS on every allocation, and zeroing their pages cost more than the filtering.
#[derive(Default)]
pub(crate) struct Scratch {
    rows: [Vec<f32>; 2],
    acc: Vec<f32>,
    sample: Vec<f32>,
}

/// Delivered frame `j` as RGB8 (`out_size * out_size * 3` bytes); `sides` holds each base
/// frame's side table.
pub(crate) fn frame(
    clip: &Clip,
    g: &Geometry,
    motion: &[FrameMotion],
    sides: &[Vec<Side>],
    j: usize,
    scratch: &mut Scratch,
) -> Vec<u8> {
    let len = g.in_w * g.in_h * 3;
    let base = |f: usize| &clip.data[f * len..(f + 1) * len];
    let n = g.out_size * 3;
    let pl = plan(g, motion, j);
    let Scratch {
        rows: [rows_a, rows_b],
        acc,
        sample,
    } = scratch;
    acc.resize(n, 0.0);
    sample.resize(n, 0.0);
    // A weight of exactly 0 or 1 leaves the other frame out, as the shader does.
    let a = (pl.w < 1.0).then(|| Warped::new(base(pl.a), &sides[pl.a], g, &pl.from_a, rows_a));
    let b = (pl.w > 0.0).then(|| Warped::new(base(pl.b), &sides[pl.b], g, &pl.from_b, rows_b));
    let mut out = vec![0u8; g.pixels() * 3];
    for (y, row) in out.chunks_exact_mut(n).enumerate() {
        acc.fill(0.0);
        if let Some(a) = &a {
            a.row(y, sample);
            for (c, s) in acc.iter_mut().zip(sample.iter()) {
                *c += (1.0 - pl.w) * s;
            }
        }
        if let Some(b) = &b {
            b.row(y, sample);
            for (c, s) in acc.iter_mut().zip(sample.iter()) {
                *c += pl.w * s;
            }
        }
        for (o, c) in row.iter_mut().zip(acc.iter()) {
            *o = to_byte(*c);
        }
    }
    out
}
