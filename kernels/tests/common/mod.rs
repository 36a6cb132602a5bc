//! Helpers shared by the integration tests: the parity metric and deterministic inputs.

#![allow(dead_code)] // each test binary uses its own subset

use kernels::{philox, Tensor};

pub mod guided_step;
pub mod wan;
pub mod wan_cuda;

/// max |actual - expected| / max |expected|, the parity metric against PyTorch.
pub fn rel_err(actual: &[f32], expected: &[f32]) -> f64 {
    assert_eq!(
        actual.len(),
        expected.len(),
        "compared tensors differ in size"
    );
    let scale = expected
        .iter()
        .fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let diff = actual
        .iter()
        .zip(expected)
        .fold(0.0f64, |m, (&a, &e)| m.max((a as f64 - e as f64).abs()));
    assert!(
        scale > 0.0 && diff.is_finite(),
        "degenerate comparison (max |expected| {scale}, max diff {diff})"
    );
    diff / scale
}

/// A reproducible standard-normal tensor.
pub fn randn(shape: &[usize], stream: u64) -> Tensor {
    Tensor::new(
        shape,
        philox::gaussian(1234, stream, shape.iter().product()),
    )
}
