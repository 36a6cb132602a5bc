//! The temporal convolution of the CPU backend (the 3x3 spatial one is in `winograd.rs`).
//! In `[B * F, H, W, C]` a clip's frames are consecutive blocks of `H * W` rows, so tap `k`
//! of the kernel is one GEMM of a contiguous row range of `x` shifted by `k - 1` frames against
//! `w[k]`: no gathering. Jobs of whole frames of one clip run on the rayon pool.

use std::cell::RefCell;

use rayon::prelude::*;

use super::gemm::{gemm, PackedB};
use crate::tensor::Tensor;

thread_local! {
    /// Each compute thread's tap sums, kept from call to call (no page faults per call).
    static SUMS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Output rows per rayon job to aim for (whole frames of a clip).
const JOB_ROWS: usize = 128;

/// The three taps of a temporal conv weight `[3, Cin, Cout]`, packed for the GEMM.
pub(crate) fn pack_taps(w: &Tensor) -> Vec<PackedB> {
    assert!(
        w.shape.len() == 3 && w.shape[0] == 3,
        "temporal conv weight must be [3, Cin, Cout], got {:?}",
        w.shape
    );
    let (cin, cout) = (w.shape[1], w.shape[2]);
    w.data
        .chunks_exact(cin * cout)
        .map(|tap| PackedB::row_major(cin, cout, tap))
        .collect()
}

/// `residual [B * F, H, W, Cout] += tconv(x [B * F, H, W, C]) + bias`, with `w_shape`
/// `[3, Cin, Cout]` and its taps packed by `pack_taps`.
pub(crate) fn temporal_conv_residual(
    residual: &mut Tensor,
    x: &Tensor,
    w_shape: &[usize],
    taps: &[PackedB],
    bias: &Tensor,
    frames: usize,
) {
    let [n, h, wd, cin] = dims4(x);
    crate::shapes::temporal_conv([n, h, wd, cin], w_shape, &residual.shape, frames);
    let cout = w_shape[2];
    let hw = h * wd;
    if residual.data.is_empty() || hw == 0 {
        return;
    }
    // Frames per job: the largest divisor of `frames` within JOB_ROWS rows (at least one).
    let per_job = (1..=frames)
        .rev()
        .find(|&d| frames.is_multiple_of(d) && d * hw <= JOB_ROWS)
        .unwrap_or(1);
    let jobs_per_clip = frames / per_job;
    let cpad = taps[0].padded_n();
    residual
        .data
        .par_chunks_mut(per_job * hw * cout)
        .enumerate()
        .for_each(|(job, out)| {
            SUMS.with_borrow_mut(|sums| {
                let (clip, f0) = (job / jobs_per_clip, (job % jobs_per_clip) * per_job);
                let clip_x = &x.data[clip * frames * hw * cin..(clip + 1) * frames * hw * cin];
                // The three taps summed into `sums` (rows padded to whole GEMM panels), then
                // added to the residual with the bias.
                sums.clear();
                sums.resize(per_job * hw * cpad, 0.0);
                for (k, tap) in taps.iter().enumerate() {
                    // Output frames f of this job whose input frame f + k - 1 exists.
                    let lo = f0.max(1usize.saturating_sub(k));
                    let hi = (f0 + per_job).min((frames + 1).saturating_sub(k));
                    if lo >= hi {
                        continue;
                    }
                    gemm(
                        (hi - lo) * hw,
                        &clip_x[(lo + k - 1) * hw * cin..(hi + k - 1) * hw * cin],
                        cin,
                        tap,
                        &mut sums[(lo - f0) * hw * cpad..(hi - f0) * hw * cpad],
                        cpad,
                        true,
                    );
                }
                for (px, sum) in out.chunks_exact_mut(cout).zip(sums.chunks_exact(cpad)) {
                    for ((o, s), b) in px.iter_mut().zip(sum).zip(&bias.data) {
                        *o += s + b;
                    }
                }
            })
        });
}

pub(crate) fn dims4(x: &Tensor) -> [usize; 4] {
    match x.shape[..] {
        [n, h, w, c] => [n, h, w, c],
        _ => panic!("expected a [N, H, W, C] tensor, got {:?}", x.shape),
    }
}
