//! Placeholder: filled in by the norm kernels.

use crate::cuda::ptx::Source;

/// The `wan_norm.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_norm.cu",
    code: include_str!("wan_norm.cu"),
    kernels: &[],
};
