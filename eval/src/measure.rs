//! Pixel measurements of one clip: the canvas colour, the object colour, and per frame the
//! object's soft mask and its geometry.
//!
//! Everything is measured on a soft coverage (alpha) rather than a hard mask: each pixel's
//! colour is projected onto the line from the canvas colour to the object colour, which
//! recovers the renderer's anti-aliasing ramp, so widths and areas come out to a fraction of a
//! pixel even on 64x64 frames. A pixel-noise floor and keeping only the largest blob make the
//! measurements hold on generated (blurred, noisy) frames too.

use kernels::Clip;

/// Colour distance (in [0, 1] units) below which a pixel counts as canvas noise.
const NOISE: f32 = 0.1;

/// RGB in [0, 1].
pub type Rgb = [f32; 3];

/// The object's geometry in one frame, in pixels.
#[derive(Clone, Copy, Debug)]
pub struct Blob {
    /// Width and height: sums over columns (rows) of the largest coverage in it, so a
    /// partly covered edge column counts by its coverage.
    pub width: f32,
    pub height: f32,
    /// Covered area.
    pub area: f32,
    /// Coverage-weighted centroid.
    pub centre: (f32, f32),
    /// Skewness of the mass along y: about -0.57 for an apex-up triangle, 0 for the
    /// symmetric shapes.
    pub skew: f32,
    /// Fourfold harmonic of the mass, E[r^4 cos 4t] / E[r^4] about the centroid: where the
    /// corners point. -0.43 for a square (corners on the diagonals), +0.43 for a diamond
    /// (corners on the axes), 0 for a circle; blur shrinks it only a little, since an
    /// isotropic blur leaves the harmonic's numerator unchanged.
    pub fourfold: f32,
}

/// Per-channel median of a frame's pixels: the canvas, since the object covers at most an
/// eighth of the first frame.
pub fn canvas(frame: &[f32]) -> Rgb {
    [0, 1, 2].map(|c| median(frame.chunks_exact(3).map(|px| px[c]).collect()))
}

/// The object's colour in a frame over canvas `bg`: the median of the pixels that differ
/// most from the canvas (its fully covered core). `None` when nothing stands out.
pub fn object_colour(frame: &[f32], bg: Rgb) -> Option<Rgb> {
    let far: Vec<(f32, &[f32])> = frame
        .chunks_exact(3)
        .map(|px| (distance(px, &bg), px))
        .filter(|(d, _)| *d > NOISE)
        .collect();
    if far.is_empty() {
        return None;
    }
    let mut ds: Vec<f32> = far.iter().map(|(d, _)| *d).collect();
    ds.sort_by(f32::total_cmp);
    let top = ds[(ds.len() - 1) * 49 / 50];
    let core: Vec<&[f32]> = far
        .iter()
        .filter(|(d, _)| *d >= 0.8 * top)
        .map(|f| f.1)
        .collect();
    Some([0, 1, 2].map(|c| median(core.iter().map(|px| px[c]).collect())))
}

/// The object's geometry in `frame` (frame index `f` of `clip`), or `None` if absent.
pub fn blob(clip: &Clip, f: usize, bg: Rgb, object: Rgb) -> Option<Blob> {
    let (w, h) = (clip.width, clip.height);
    let frame = &clip.data[f * w * h * 3..][..w * h * 3];
    let axis: Rgb = [0, 1, 2].map(|c| object[c] - bg[c]);
    let norm2: f32 = axis.iter().map(|a| a * a).sum();
    if norm2 < NOISE * NOISE {
        return None;
    }
    // Coverage from the projection, with the noisiest quarter at each end cut off; the cut is
    // symmetric about one half, so edge ramps still integrate to the true extent.
    let alpha: Vec<f32> = frame
        .chunks_exact(3)
        .map(|px| {
            let a = (0..3).map(|c| (px[c] - bg[c]) * axis[c]).sum::<f32>() / norm2;
            ((a - 0.25) / 0.5).clamp(0.0, 1.0)
        })
        .collect();
    let (x0, y0, x1, y1) = largest_component(&alpha, w, h)?;
    let (x0, y0) = (x0.saturating_sub(2), y0.saturating_sub(2));
    let (x1, y1) = ((x1 + 3).min(w), (y1 + 3).min(h));
    let at = |x: usize, y: usize| alpha[y * w + x];
    let width: f32 = (x0..x1)
        .map(|x| (y0..y1).map(|y| at(x, y)).fold(0.0, f32::max))
        .sum();
    let rows: Vec<f32> = (y0..y1).map(|y| (x0..x1).map(|x| at(x, y)).sum()).collect();
    let height: f32 = (y0..y1)
        .map(|y| (x0..x1).map(|x| at(x, y)).fold(0.0, f32::max))
        .sum();
    let area: f32 = rows.iter().sum();
    if area <= 0.0 {
        return None;
    }
    let cx = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| (x as f32 + 0.5) * at(x, y))
        .sum::<f32>()
        / area;
    let ys = |k: usize| (y0 + k) as f32 + 0.5;
    let cy = rows.iter().enumerate().map(|(k, m)| ys(k) * m).sum::<f32>() / area;
    let moment = |p: i32| {
        rows.iter()
            .enumerate()
            .map(|(k, m)| (ys(k) - cy).powi(p) * m)
            .sum::<f32>()
            / area
    };
    let var = moment(2);
    let skew = if var > 0.0 {
        moment(3) / var.powf(1.5)
    } else {
        0.0
    };
    let (mut harmonic, mut r4) = (0.0f32, 0.0f32);
    for y in y0..y1 {
        for x in x0..x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let (xx, yy) = (dx * dx, dy * dy);
            harmonic += at(x, y) * (xx * xx - 6.0 * xx * yy + yy * yy);
            r4 += at(x, y) * (xx + yy) * (xx + yy);
        }
    }
    Some(Blob {
        width,
        height,
        area,
        centre: (cx, cy),
        skew,
        fourfold: if r4 > 0.0 { harmonic / r4 } else { 0.0 },
    })
}

/// Bounding box (inclusive) of the largest 4-connected set of pixels covered over one half.
fn largest_component(alpha: &[f32], w: usize, h: usize) -> Option<(usize, usize, usize, usize)> {
    let mut seen = vec![false; alpha.len()];
    let mut best: Option<(usize, (usize, usize, usize, usize))> = None;
    let mut stack = Vec::new();
    for start in 0..alpha.len() {
        if seen[start] || alpha[start] <= 0.5 {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut count, mut bbox) = (0, (usize::MAX, usize::MAX, 0, 0));
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            count += 1;
            bbox = (bbox.0.min(x), bbox.1.min(y), bbox.2.max(x), bbox.3.max(y));
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then(|| i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then(|| i + w),
            ];
            for n in neighbours.into_iter().flatten() {
                if !seen[n] && alpha[n] > 0.5 {
                    seen[n] = true;
                    stack.push(n);
                }
            }
        }
        if best.is_none_or(|(c, _)| count > c) {
            best = Some((count, bbox));
        }
    }
    best.map(|b| b.1)
}

/// Euclidean distance between two colours.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}
