//! Placeholder: filled in by the attention kernels.

use crate::cuda::ptx::Source;

/// The `wan_attention.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_attention.cu",
    code: include_str!("wan_attention.cu"),
    kernels: &[],
};
