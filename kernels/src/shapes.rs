//! The shape contract of the `Backend` ops, checked the same way by every backend before it
//! computes (layouts in backend.rs). Shapes only: no backend's tensor type is needed.

/// `norm_silu`: `[n, h, w, c]` input, `c` in whole groups, affine of `c`, and FiLM parameters
/// (if any) of `[n / frames, 2c]`.
pub(crate) fn norm_silu(
    x: [usize; 4],
    groups: usize,
    gamma: usize,
    beta: usize,
    film: Option<(&[usize], usize)>,
) {
    let [n, _, _, c] = x;
    assert!(
        groups > 0 && c % groups == 0,
        "{c} channels in {groups} groups"
    );
    assert!(
        gamma == c && beta == c,
        "group norm affine of the wrong size"
    );
    if let Some((ss, frames)) = film {
        assert!(
            frames > 0 && n % frames == 0 && ss == [n / frames, 2 * c],
            "FiLM parameters of the wrong shape"
        );
    }
}

/// `temporal_conv_residual`: whole clips of `frames`, weight `[3, cin, cout]`, residual
/// `[n, h, w, cout]`.
pub(crate) fn temporal_conv(x: [usize; 4], w: &[usize], residual: &[usize], frames: usize) {
    let [n, h, wd, cin] = x;
    assert!(
        frames > 0 && n % frames == 0,
        "{n} images are not whole clips of {frames} frames"
    );
    assert_eq!(
        &w[..2],
        &[3, cin],
        "temporal conv weight {w:?} for {cin} input channels"
    );
    assert_eq!(
        residual,
        [n, h, wd, w[2]],
        "temporal conv residual of the wrong shape"
    );
}

/// `linear`: weight `[out, k]` for input `[n, k]`, `out` being the bias length.
pub(crate) fn linear(x: &[usize], w: &[usize], out: usize) {
    assert_eq!(w, [out, x[1]], "linear weight {w:?} for input {x:?}");
}
