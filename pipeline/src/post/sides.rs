//! Stage 2, sides: what the upscale needs to know about each 4x4 neighbourhood of a base frame
//! (CPU twin of `sides.wgsl`; the formulas and their order are the same).
//!
//! A delivered pixel is sampled from the 4x4 base pixels around its position, which depend
//! only on the base pixel left of and above it: its *cell*. So everything about the
//! neighbourhood that does not depend on the exact position is found once per cell here,
//! instead of once per delivered pixel: the range of each channel (the anti-ringing clamp),
//! the colours on either side of an edge there, and how much the step between them makes it an
//! edge to sharpen rather than noise (the gate).
//!
//! Those side colours are what the sharpening pushes a pixel towards. Taking them as the
//! per-channel minimum and maximum of the taps (as a plain range stretch does) picks up the
//! noise of generated frames: the minimum of each channel over noisy taps is darker than any
//! tap, and stretching towards it drew a dark ring around every object. Here the taps are split
//! along the direction their colours spread in, and each side is the mean of its taps, leaving
//! out those in the middle (the anti-aliased ramp of a clean edge): noise averages out, and a
//! clean edge keeps its exact colours. Every weight is continuous in the taps, so the two
//! backends, rounding differently, cannot fall on different sides of a decision.

use kernels::Clip;
use rayon::prelude::*;

use super::geometry::{Geometry, GATE_HI, GATE_LO};

/// One cell of one base frame (the four vectors of `sides` in `common.wgsl`). `a`, `e` and
/// `inv_ee` are only found, and only read, where `gate > 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Side {
    /// The colour on one side of the edge.
    pub a: [f32; 3],
    /// How much the neighbourhood is an edge to sharpen: 0 (noise, flat, or an edge's fringe)
    /// to 1.
    pub gate: f32,
    /// From `a` to the colour on the other side.
    pub e: [f32; 3],
    /// `1 / |e|^2` (guarded), to place a colour between the sides.
    pub inv_ee: f32,
    /// Lowest and highest value of each channel over the 16 taps.
    pub lo: [f32; 3],
    pub hi: [f32; 3],
}

/// Index along one axis of the cell of a sampling position whose base pixel (left or above)
/// is `cell`: -2 and below share index 0 (all four taps clamp to the first pixel), `n` and
/// above share the last, `n + 2`.
pub(crate) fn cell_index(cell: i32, n: usize) -> usize {
    (cell.clamp(-2, n as i32) + 2) as usize
}

type Rgb = [f32; 3];

fn dot(a: Rgb, b: Rgb) -> f32 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn sub(a: Rgb, b: Rgb) -> Rgb {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn weighted_mean(sum: Rgb, weight: f32, otherwise: Rgb) -> Rgb {
    if weight > 0.0 {
        sum.map(|s| s / weight)
    } else {
        otherwise
    }
}

/// Splits the taps at the plane through `at` across `axis` and returns each side's mean, every
/// tap weighted by `weight(dot(tap - at, axis) * scale)` (`otherwise` for a side that has no
/// weight).
fn split(
    taps: &[Rgb; 16],
    at: Rgb,
    axis: Rgb,
    scale: f32,
    weight: impl Fn(f32) -> f32,
    otherwise: [Rgb; 2],
) -> [Rgb; 2] {
    let (mut sum_a, mut sum_b) = ([0.0f32; 3], [0.0f32; 3]);
    let (mut w_a, mut w_b) = (0.0f32, 0.0f32);
    for p in taps {
        let s = dot(sub(*p, at), axis) * scale;
        let w = weight(s);
        let (sum, total) = if s < 0.0 {
            (&mut sum_a, &mut w_a)
        } else {
            (&mut sum_b, &mut w_b)
        };
        (0..3).for_each(|c| sum[c] += w * p[c]);
        *total += w;
    }
    [
        weighted_mean(sum_a, w_a, otherwise[0]),
        weighted_mean(sum_b, w_b, otherwise[1]),
    ]
}

/// The weight of a tap at `s` when the two sides sit at -0.5 and 0.5: none in the middle half
/// (the edge's own ramp), full from 3/8 outwards, so noise about a side colour is averaged
/// evenly instead of favouring the taps it pushes outwards.
fn side_weight(s: f32) -> f32 {
    (s.abs() * 8.0 - 2.0).clamp(0.0, 1.0)
}

/// How much a step of `size` (the largest channel difference) between the side colours is an
/// edge to sharpen: gating on the sides rather than on the taps' range keeps noise, which
/// widens the range, from opening the gate, and leaves alone the fringe of an edge, where the
/// far side is only a partly covered pixel and the near side's noise would be pushed about.
fn gate(size: f32) -> f32 {
    ((size - GATE_LO) / (GATE_HI - GATE_LO)).clamp(0.0, 1.0)
}

/// Refines the sides `[a, b]` by weighting the taps by where they lie between them.
fn refine(taps: &[Rgb; 16], [a, b]: [Rgb; 2]) -> [Rgb; 2] {
    let e = sub(b, a);
    let mid = [0, 1, 2].map(|c| (a[c] + b[c]) * 0.5);
    let inv = 1.0 / dot(e, e).max(1e-12);
    split(taps, mid, e, inv, side_weight, [a, b])
}

/// The cell whose taps start at base pixel (x0, y0) (clamped to the frame).
fn side(frame: &[f32], w: usize, h: usize, x0: i32, y0: i32) -> Side {
    let texel = |x: i32, y: i32| {
        let (x, y) = (
            x.clamp(0, w as i32 - 1) as usize,
            y.clamp(0, h as i32 - 1) as usize,
        );
        let i = (y * w + x) * 3;
        [frame[i], frame[i + 1], frame[i + 2]]
    };
    let mut taps = [[0.0f32; 3]; 16];
    let mut sum = [0.0f32; 3];
    let (mut lo, mut hi) = ([1e30f32; 3], [-1e30f32; 3]);
    for j in 0..4 {
        for i in 0..4 {
            let p = texel(x0 + i, y0 + j);
            taps[(j * 4 + i) as usize] = p;
            for c in 0..3 {
                sum[c] += p[c];
                lo[c] = lo[c].min(p[c]);
                hi[c] = hi[c].max(p[c]);
            }
        }
    }
    // The sides lie within the range, so a range below the gate cannot open it: no edge, and the
    // upscale only clamps here.
    let spread = (0..3).map(|c| hi[c] - lo[c]).fold(f32::MIN, f32::max);
    if gate(spread) <= 0.0 {
        return Side {
            a: lo,
            gate: 0.0,
            e: [0.0; 3],
            inv_ee: 0.0,
            lo,
            hi,
        };
    }
    let mean = sum.map(|s| s / 16.0);

    // The direction the colours spread along: two steps of power iteration on their scatter,
    // from the range's diagonal.
    let mut axis = sub(hi, lo);
    for _ in 0..2 {
        let mut next = [0.0f32; 3];
        for p in &taps {
            let d = sub(*p, mean);
            let k = dot(d, axis);
            (0..3).for_each(|c| next[c] += d[c] * k);
        }
        axis = next;
    }
    // A first guess: either side of the mean, weighted by squared distance from it so that the
    // ramp barely counts; the mean leans towards the bigger side, so that guess is refined
    // twice about the midpoint of the sides found.
    let first = split(&taps, mean, axis, 1.0, |s| s * s, [mean, mean]);
    let [a, b] = refine(&taps, refine(&taps, first));
    let e = sub(b, a);
    let step = e.iter().fold(0.0f32, |m, v| m.max(v.abs()));

    Side {
        a,
        gate: gate(step),
        e,
        inv_ee: 1.0 / dot(e, e).max(1e-12),
        lo,
        hi,
    }
}

/// Every cell of one base frame, row by row (`g.cells_w()` per row).
fn frame_sides(frame: &[f32], g: &Geometry) -> Vec<Side> {
    let cw = g.cells_w();
    (0..cw * g.cells_h())
        .map(|i| {
            side(
                frame,
                g.in_w,
                g.in_h,
                (i % cw) as i32 - 3,
                (i / cw) as i32 - 3,
            )
        })
        .collect()
}

/// Every cell of every base frame, frames in parallel.
pub(crate) fn sides(clip: &Clip, g: &Geometry) -> Vec<Vec<Side>> {
    clip.data
        .par_chunks(g.in_w * g.in_h * 3)
        .map(|f| frame_sides(f, g))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(w: usize, h: usize) -> Geometry {
        Geometry {
            in_w: w,
            in_h: h,
            frames: 1,
            out_size: 4 * w,
            out_frames: 1,
        }
    }

    /// A vertical edge: `left` in columns below `split_x`, `right` from it on.
    fn edge(w: usize, h: usize, split_x: usize, left: Rgb, right: Rgb) -> Vec<f32> {
        (0..w * h)
            .flat_map(|i| if i % w < split_x { left } else { right })
            .collect()
    }

    fn close(a: Rgb, b: Rgb, tol: f32) -> bool {
        (0..3).all(|c| (a[c] - b[c]).abs() <= tol)
    }

    #[test]
    fn a_clean_edge_has_its_two_colours_as_sides() {
        let (red, gray) = ([0.9, 0.2, 0.2], [0.43, 0.43, 0.43]);
        let g = geometry(8, 8);
        let frame = edge(8, 8, 4, gray, red);
        let cells = frame_sides(&frame, &g);
        // Cell (3, 3): taps x 2..=5 straddle the edge at x = 4.
        let s = cells[cell_index(3, 8) + cell_index(3, 8) * g.cells_w()];
        let b = [0, 1, 2].map(|c| s.a[c] + s.e[c]);
        assert!(
            (close(s.a, gray, 1e-5) && close(b, red, 1e-5))
                || (close(s.a, red, 1e-5) && close(b, gray, 1e-5)),
            "{s:?}"
        );
        assert_eq!(s.gate, 1.0);
        assert!(close(s.lo, [0.43, 0.2, 0.2], 1e-6) && close(s.hi, [0.9, 0.43, 0.43], 1e-6));
        // A flat cell is no edge.
        let flat = cells[cell_index(-2, 8) + cell_index(0, 8) * g.cells_w()];
        assert_eq!(flat.gate, 0.0, "{flat:?}");
        assert_eq!((flat.lo, flat.hi), (gray, gray));
    }

    #[test]
    fn noise_moves_the_sides_far_less_than_the_range() {
        // Dark background with +-0.06 noise next to a bright object: the per-channel minimum is
        // darker than the background by about the noise amplitude; the side is not.
        let (bg, fg) = ([0.43, 0.43, 0.43], [0.94, 0.86, 0.2]);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * 0.06
        };
        let frame: Vec<f32> = edge(8, 8, 4, bg, fg)
            .into_iter()
            .map(|v| v + noise())
            .collect();
        let g = geometry(8, 8);
        let cells = frame_sides(&frame, &g);
        let (mut side_err, mut range_err) = (0.0f32, 0.0f32);
        for cy in 0..8 {
            let s = cells[cell_index(3, 8) + cell_index(cy, 8) * g.cells_w()];
            let b = [0, 1, 2].map(|c| s.a[c] + s.e[c]);
            let (dark, bright) = if s.a[0] < b[0] { (s.a, b) } else { (b, s.a) };
            side_err = side_err.max((0..3).map(|c| (dark[c] - bg[c]).abs()).fold(0.0, f32::max));
            side_err = side_err.max(
                (0..3)
                    .map(|c| (bright[c] - fg[c]).abs())
                    .fold(0.0, f32::max),
            );
            range_err = range_err.max((0..3).map(|c| bg[c] - s.lo[c]).fold(0.0, f32::max));
        }
        assert!(
            range_err > 0.04,
            "the noise should reach the range: {range_err}"
        );
        assert!(
            side_err < 0.5 * range_err,
            "sides off by {side_err}, range by {range_err}"
        );
    }
}
