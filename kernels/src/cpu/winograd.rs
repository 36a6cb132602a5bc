//! The 3x3 convolution (stride 1, padding 1) of the CPU backend by Winograd F(2x2, 3x3)
//! (Lavin & Gray 2015): every 2x2 output patch reads a 4x4 input tile, which is transformed
//! (`B^T d B`, additions only) into 16 values per channel; the channel mixing then becomes 16
//! independent GEMMs `[tiles, Cin] @ [Cin, Cout]`, one per transformed position, against the
//! transformed weights `G g G^T`; `A^T m A` folds each tile's 16 sums back into 2x2 pixels.
//! That is 16 multiplies per output pixel pair of channels where a direct conv needs 36.
//! The transforms' coefficients are 0, +-1 and 1/2, so rounding stays at the level of the
//! direct GEMM (well inside the 1e-4 parity budget against PyTorch).
//!
//! Images are processed in chunks whose transformed tiles stay in L2; chunks are spread over
//! the backend's rayon pool, so the GEMMs inside are small and single-threaded.

use std::cell::RefCell;

use multiversion::multiversion;
use rayon::prelude::*;

use super::conv::dims4;
use super::gemm::{gemm, PackedB};
use crate::tensor::Tensor;

/// Transformed positions of one 4x4 tile.
const POS: usize = 16;
/// Tiles per chunk to aim for: enough rows for the GEMM micro-kernel to run near its peak,
/// few enough that a chunk's transformed input and output stay in L2.
const CHUNK_TILES: usize = 128;

/// The weights `[3, 3, Cin, Cout]` in the Winograd domain, 16 `[Cin, Cout]` matrices packed
/// for the GEMM: `U = G g G^T` for every (in, out) channel pair, with
/// `G = [[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]]`.
pub(crate) fn transform_weights(w: &Tensor) -> Vec<PackedB> {
    assert!(
        w.shape.len() == 4 && w.shape[..2] == [3, 3],
        "conv2d weight must be [3, 3, Cin, Cout], got {:?}",
        w.shape
    );
    let pairs = w.shape[2] * w.shape[3];
    let mut taps = w.data.chunks_exact(pairs);
    let g: [&[f32]; 9] =
        std::array::from_fn(|_| taps.next().expect("a [3, 3, ..] weight has nine taps"));
    let mut u = vec![0.0f32; POS * pairs];
    let mut rows = u.chunks_exact_mut(pairs);
    let o: [&mut [f32]; POS] =
        std::array::from_fn(|_| rows.next().expect("U has sixteen positions"));
    // G applied to a 3-vector: the four rows of G.
    let lift = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    for e in 0..pairs {
        let at = |ky: usize, kx: usize| g[3 * ky + kx][e];
        // G g: each column of g lifted to four rows; then each row lifted to four columns.
        let cols: [[f32; 4]; 3] = std::array::from_fn(|kx| lift(at(0, kx), at(1, kx), at(2, kx)));
        for i in 0..4 {
            let row = lift(cols[0][i], cols[1][i], cols[2][i]);
            for (j, v) in row.into_iter().enumerate() {
                o[4 * i + j][e] = v;
            }
        }
    }
    let (cin, cout) = (w.shape[2], w.shape[3]);
    u.chunks_exact(pairs)
        .map(|m| PackedB::row_major(cin, cout, m))
        .collect()
}

/// `x [N, H, W, Cin]` convolved with the transformed weights `u` (`transform_weights`),
/// plus `bias [Cout]`, into `out` (any contents: every value is written).
pub(crate) fn conv2d(
    x: &Tensor,
    u: &[PackedB],
    bias: &[f32],
    threads: usize,
    mut out: Vec<f32>,
) -> Tensor {
    let [n, h, wd, cin] = dims4(x);
    let cout = bias.len();
    assert!(
        u.len() == POS && u.iter().all(|m| m.k() == cin && m.n() == cout),
        "conv2d weight for {cin} -> {cout} channels"
    );
    let (tiles_y, tiles_x) = (h.div_ceil(2), wd.div_ceil(2));
    let geo = Geometry {
        h,
        w: wd,
        cin,
        cout,
        tiles_y,
        tiles_x,
        // Padded image: one zero row / column before, enough after to close the last tile.
        ph: 2 * tiles_y + 2,
        pw: 2 * tiles_x + 2,
    };
    let tiles = tiles_y * tiles_x;
    // Whole images per chunk, near CHUNK_TILES tiles, yet at least four chunks per thread
    // when there are images enough, so that when another process holds up one core, the
    // others take over its share instead of waiting for it.
    let per_chunk = (CHUNK_TILES / tiles.max(1)).clamp(1, n.div_ceil(4 * threads).max(1));
    out.resize(n * h * wd * cout, 0.0);
    if out.is_empty() {
        return Tensor::new(&[n, h, wd, cout], out);
    }
    out.par_chunks_mut(per_chunk * h * wd * cout)
        .zip(x.data.par_chunks(per_chunk * h * wd * cin))
        .for_each(|(out, x)| SCRATCH.with_borrow_mut(|s| chunk(&geo, x, u, bias, out, s)));
    Tensor::new(&[n, h, wd, cout], out)
}

thread_local! {
    /// Each compute thread's buffers, kept from call to call: freshly allocated megabytes
    /// would cost a page fault per 4 KiB on every convolution.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

#[derive(Default)]
struct Scratch {
    /// The chunk's images zero-padded, `[images, ph, pw, Cin]`.
    padded: Vec<f32>,
    /// One tile's rows after `B^T`, `[4, 4, Cin]`.
    rows: Vec<f32>,
    /// Transformed input `[16, tiles, Cin]`.
    v: Vec<f32>,
    /// GEMM results `[16, tiles, Cout padded to whole GEMM panels]`.
    m: Vec<f32>,
    /// One tile's rows after `A^T`, `[2, 4, Cout]`.
    sums: Vec<f32>,
}

struct Geometry {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    tiles_y: usize,
    tiles_x: usize,
    ph: usize,
    pw: usize,
}

/// Convolves the whole `[H, W, Cin]` images of `x` into `out`: transform every tile, one GEMM
/// per transformed position over all tiles, transform back.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma", "x86_64+avx2+fma"))]
fn chunk(geo: &Geometry, x: &[f32], u: &[PackedB], bias: &[f32], out: &mut [f32], s: &mut Scratch) {
    let (cin, cout, w) = (geo.cin, geo.cout, geo.w);
    let images = x.len() / (geo.h * w * cin);
    let tiles = images * geo.tiles_y * geo.tiles_x;
    // Padding by copy: every tile then reads four contiguous runs of four pixels.
    s.padded.clear();
    s.padded.resize(images * geo.ph * geo.pw * cin, 0.0);
    let prow = geo.pw * cin;
    for (img, pad) in x
        .chunks_exact(geo.h * w * cin)
        .zip(s.padded.chunks_exact_mut(geo.ph * prow))
    {
        for (src, dst) in img
            .chunks_exact(w * cin)
            .zip(pad.chunks_exact_mut(prow).skip(1))
        {
            dst[cin..(w + 1) * cin].copy_from_slice(src);
        }
    }
    // Transformed tiles by position, `v [16][tiles][Cin]`: each GEMM reads one plane, its
    // rows adjacent (rows 16 * Cin apart, often a power of two, would thrash the L1 sets).
    s.v.resize(POS * tiles * cin, 0.0);
    s.rows.resize(POS * cin, 0.0);
    let run = 4 * cin;
    let mut planes = s.v.chunks_exact_mut(tiles * cin);
    let mut planes: [&mut [f32]; POS] =
        std::array::from_fn(|_| planes.next().expect("sixteen planes"));
    let mut t = 0;
    for pad in s.padded.chunks_exact(geo.ph * prow) {
        for ty in 0..geo.tiles_y {
            for tx in 0..geo.tiles_x {
                let at = |i: usize| {
                    let start = (2 * ty + i) * prow + 2 * tx * cin;
                    &pad[start..start + run]
                };
                // B^T d: combine the tile's four rows (each four pixels long).
                let [r0, r1, r2, r3] = split4(&mut s.rows, run);
                bt(at(0), at(1), at(2), at(3), [r0, r1, r2, r3]);
                // (B^T d) B: combine the four pixels within each row.
                let tile = t * cin..(t + 1) * cin;
                for (row, planes) in s.rows.chunks_exact(run).zip(planes.chunks_exact_mut(4)) {
                    let [p0, p1, p2, p3] = split4_ref(row, cin);
                    let [v0, v1, v2, v3] = planes else {
                        unreachable!("chunks of four planes")
                    };
                    let out = [
                        &mut v0[tile.clone()],
                        &mut v1[tile.clone()],
                        &mut v2[tile.clone()],
                        &mut v3[tile.clone()],
                    ];
                    bt(p0, p1, p2, p3, out);
                }
                t += 1;
            }
        }
    }
    let cpad = u[0].padded_n();
    s.m.resize(POS * tiles * cpad, 0.0);
    for ((u, v), m) in u
        .iter()
        .zip(s.v.chunks_exact(tiles * cin))
        .zip(s.m.chunks_exact_mut(tiles * cpad))
    {
        gemm(tiles, v, cin, u, m, cpad, false);
    }
    s.sums.resize(8 * cout, 0.0);
    let run = 4 * cout;
    let mut t = 0;
    for image in out.chunks_exact_mut(geo.h * w * cout) {
        for ty in 0..geo.tiles_y {
            for tx in 0..geo.tiles_x {
                // A^T m: two rows of four pixels, from the tile's row in each plane of m.
                let (s0, s1) = s.sums.split_at_mut(run);
                for (j, (s0, s1)) in s0
                    .chunks_exact_mut(cout)
                    .zip(s1.chunks_exact_mut(cout))
                    .enumerate()
                {
                    let m = |i: usize| {
                        let at = ((4 * i + j) * tiles + t) * cpad;
                        &s.m[at..at + cout]
                    };
                    at(m(0), m(1), m(2), m(3), s0, s1);
                }
                // (A^T m) A + bias, straight into the (up to) 2x2 output pixels.
                for (a, row) in s.sums.chunks_exact(run).enumerate() {
                    let y = 2 * ty + a;
                    if y >= geo.h {
                        break;
                    }
                    let [p0, p1, p2, p3] = split4_ref(row, cout);
                    let x0 = 2 * tx;
                    let pixels = &mut image[(y * w + x0) * cout..(y * w + (x0 + 2).min(w)) * cout];
                    let (y0, y1) = pixels.split_at_mut(cout);
                    at_bias(p0, p1, p2, p3, bias, y0, y1);
                }
                t += 1;
            }
        }
    }
}

/// Four consecutive `n`-long parts of `s`.
#[inline(always)]
fn split4(s: &mut [f32], n: usize) -> [&mut [f32]; 4] {
    let (a, rest) = s[..4 * n].split_at_mut(n);
    let (b, rest) = rest.split_at_mut(n);
    let (c, d) = rest.split_at_mut(n);
    [a, b, c, d]
}

#[inline(always)]
fn split4_ref(s: &[f32], n: usize) -> [&[f32]; 4] {
    [&s[..n], &s[n..2 * n], &s[2 * n..3 * n], &s[3 * n..4 * n]]
}

/// `B^T` applied elementwise to four vectors:
/// `B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]`.
#[inline(always)]
fn bt(d0: &[f32], d1: &[f32], d2: &[f32], d3: &[f32], out: [&mut [f32]; 4]) {
    let [o0, o1, o2, o3] = out;
    let n = o0.len();
    let (d0, d1, d2, d3) = (&d0[..n], &d1[..n], &d2[..n], &d3[..n]);
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for k in 0..n {
        o0[k] = d0[k] - d2[k];
        o1[k] = d1[k] + d2[k];
        o2[k] = d2[k] - d1[k];
        o3[k] = d1[k] - d3[k];
    }
}

/// `A^T` applied elementwise to four vectors: `A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]`.
#[inline(always)]
fn at(m0: &[f32], m1: &[f32], m2: &[f32], m3: &[f32], s0: &mut [f32], s1: &mut [f32]) {
    let n = s0.len();
    let (m0, m1, m2, m3, s1) = (&m0[..n], &m1[..n], &m2[..n], &m3[..n], &mut s1[..n]);
    for k in 0..n {
        s0[k] = m0[k] + m1[k] + m2[k];
        s1[k] = m1[k] - m2[k] - m3[k];
    }
}

/// `A^T` plus bias, the second output only where the image has that column (`y1` empty
/// past an odd edge).
#[inline(always)]
fn at_bias(
    m0: &[f32],
    m1: &[f32],
    m2: &[f32],
    m3: &[f32],
    bias: &[f32],
    y0: &mut [f32],
    y1: &mut [f32],
) {
    let n = y0.len();
    let (m0, m1, m2, m3, bias) = (&m0[..n], &m1[..n], &m2[..n], &m3[..n], &bias[..n]);
    for k in 0..n {
        y0[k] = bias[k] + (m0[k] + m1[k] + m2[k]);
    }
    if !y1.is_empty() {
        let y1 = &mut y1[..n];
        for k in 0..n {
            y1[k] = bias[k] + (m1[k] - m2[k] - m3[k]);
        }
    }
}
