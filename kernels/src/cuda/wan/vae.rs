//! Placeholder: filled in by the vae kernels.

use crate::cuda::ptx::Source;

/// The `wan_vae.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_vae.cu",
    code: include_str!("wan_vae.cu"),
    kernels: &[],
};
