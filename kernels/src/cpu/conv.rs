//! Convolutions of the CPU backend as gathered GEMMs (see `gemm.rs`): the 3x3 spatial conv
//! gathers a 3x3xCin patch per output pixel, the temporal conv the same pixel in the previous,
//! current and next frame. Out-of-range taps read zeros (padding 1).

use super::gemm::gathered_gemm;
use crate::tensor::Tensor;

/// `x [N, H, W, Cin]`, `w [3, 3, Cin, Cout]`, `bias [Cout]`.
pub(crate) fn conv2d(x: &Tensor, w: &Tensor, bias: &Tensor, threads: usize) -> Tensor {
    let [n, h, wd, cin] = dims4(x);
    assert_eq!(
        &w.shape[..3],
        &[3, 3, cin],
        "conv2d weight {:?} for {cin} input channels",
        w.shape
    );
    let cout = w.shape[3];
    let mut out = vec![0.0f32; n * h * wd * cout];
    gathered_gemm(
        &mut out,
        9 * cin,
        &w.data,
        &bias.data,
        threads,
        |row, dst| {
            let (img, pix) = (row / (h * wd), row % (h * wd));
            let (oy, ox) = (pix / wd, pix % wd);
            for ky in 0..3 {
                for kx in 0..3 {
                    let tap = &mut dst[(ky * 3 + kx) * cin..(ky * 3 + kx + 1) * cin];
                    let (iy, ix) = ((oy + ky).wrapping_sub(1), (ox + kx).wrapping_sub(1));
                    if iy < h && ix < wd {
                        let at = ((img * h + iy) * wd + ix) * cin;
                        tap.copy_from_slice(&x.data[at..at + cin]);
                    } else {
                        tap.fill(0.0);
                    }
                }
            }
        },
    );
    Tensor::new(&[n, h, wd, cout], out)
}

/// `residual [B * F, H, W, Cout] += tconv(x [B * F, H, W, C]) + bias`, `w [3, Cin, Cout]`.
pub(crate) fn temporal_conv_residual(
    residual: &mut Tensor,
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    frames: usize,
    threads: usize,
) {
    let [n, h, wd, cin] = dims4(x);
    crate::shapes::temporal_conv([n, h, wd, cin], &w.shape, &residual.shape, frames);
    let hw = h * wd;
    gathered_gemm(
        &mut residual.data,
        3 * cin,
        &w.data,
        &bias.data,
        threads,
        |row, dst| {
            let (img, pix) = (row / hw, row % hw);
            let (clip, f) = (img / frames, img % frames);
            for k in 0..3 {
                let tap = &mut dst[k * cin..(k + 1) * cin];
                let fi = (f + k).wrapping_sub(1);
                if fi < frames {
                    let at = ((clip * frames + fi) * hw + pix) * cin;
                    tap.copy_from_slice(&x.data[at..at + cin]);
                } else {
                    tap.fill(0.0);
                }
            }
        },
    );
}

pub(crate) fn dims4(x: &Tensor) -> [usize; 4] {
    match x.shape[..] {
        [n, h, w, c] => [n, h, w, c],
        _ => panic!("expected a [N, H, W, C] tensor, got {:?}", x.shape),
    }
}
