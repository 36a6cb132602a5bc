//! Placeholder: filled in by the step kernels.

use crate::cuda::ptx::Source;

/// The `wan_step.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_step.cu",
    code: include_str!("wan_step.cu"),
    kernels: &[],
};
