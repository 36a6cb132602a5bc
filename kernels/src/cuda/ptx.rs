//! The CUDA sources of the backend and their compilation: every `.cu` file beside this one is
//! embedded with `include_str!`, compiled by NVRTC for the architecture of the card in use
//! (`compute_XY` from its compute capability) and cached on disk as PTX, keyed by a hash of
//! source, architecture, NVRTC version and options, so only the first start on a machine pays
//! for compilation. NVRTC needs no driver and no GPU: `compile_all_sources` runs anywhere
//! libnvrtc loads (the CI compiles every source that way, tests/cuda_compile.rs).

use std::ffi::c_int;
use std::path::{Path, PathBuf};

use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
use sha1::{Digest, Sha1};

use crate::error::KernelError;

/// One `.cu` file and the kernels the backend loads from it.
pub struct Source {
    /// File name beside ptx.rs.
    pub file: &'static str,
    /// Its text.
    pub code: &'static str,
    /// The `extern "C" __global__` functions loaded from it.
    pub kernels: &'static [&'static str],
}

/// Every CUDA source of the `Backend` (the built-in model's ops).
pub const SOURCES: &[Source] = &[
    Source {
        file: "elementwise.cu",
        code: include_str!("elementwise.cu"),
        kernels: &["bias_rows", "silu", "add", "add_frame_embedding"],
    },
    Source {
        file: "conv.cu",
        code: include_str!("conv.cu"),
        kernels: &["im2col_3x3"],
    },
    Source {
        file: "group_norm.cu",
        code: include_str!("group_norm.cu"),
        kernels: &["norm_silu"],
    },
    Source {
        file: "implicit_conv.cu",
        code: include_str!("implicit_conv.cu"),
        kernels: &["conv3x3_tf32", "tconv_tf32_residual"],
    },
    Source {
        file: "sampler.cu",
        code: include_str!("sampler.cu"),
        kernels: &["guided_step"],
    },
];

/// NVRTC flags besides the architecture. IEEE division and square root (the defaults, spelled
/// out because parity with the CPU backend relies on them).
const OPTIONS: &[&str] = &["--prec-div=true", "--prec-sqrt=true"];

/// A source compiled to PTX.
pub struct CompiledSource {
    /// File name of the source.
    pub file: &'static str,
    /// The kernels it defines.
    pub kernels: &'static [&'static str],
    /// NVRTC's output.
    pub ptx: String,
}

/// Whether libnvrtc can be loaded (cudarc looks it up by name through the dynamic loader, so
/// `LD_LIBRARY_PATH` must name its directory if it is not installed system-wide).
pub fn nvrtc_available() -> bool {
    // SAFETY: only tries to dlopen the library; no NVRTC function is called.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// The NVRTC version as (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), KernelError> {
    require_nvrtc()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: libnvrtc is present (checked above); both pointers are valid for writes.
    let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
    match status {
        cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS => Ok((major, minor)),
        other => Err(KernelError::Cuda(format!("nvrtcVersion failed: {other:?}"))),
    }
}

/// Every CUDA source of the crate: the `Backend`'s and Wan2.1's ([`super::wan::WAN_SOURCES`]).
pub fn all_sources() -> impl Iterator<Item = &'static Source> {
    SOURCES.iter().chain(super::wan::WAN_SOURCES)
}

/// Compiles every source of [`all_sources`] for `arch` (e.g. `compute_90`) without touching
/// the disk cache.
pub fn compile_all_sources(arch: &str) -> Result<Vec<CompiledSource>, KernelError> {
    all_sources()
        .map(|s| {
            Ok(CompiledSource {
                file: s.file,
                kernels: s.kernels,
                ptx: compile(s, arch)?,
            })
        })
        .collect()
}

/// `source` compiled for `arch`, from the disk cache when an earlier run left it there.
pub(crate) fn load_or_compile(source: &Source, arch: &str) -> Result<String, KernelError> {
    let version = nvrtc_version()?;
    let path = cache_dir(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")).map(|dir| {
        dir.join(format!(
            "{}-{}.ptx",
            source.file.trim_end_matches(".cu"),
            cache_key(source.code, arch, version)
        ))
    });
    if let Some(ptx) = path
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        return Ok(ptx);
    }
    let ptx = compile(source, arch)?;
    if let Some(path) = &path {
        // The cache only saves start-up time: a read-only or full disk must not stop the backend.
        let _ = write_atomically(path, &ptx);
    }
    Ok(ptx)
}

fn require_nvrtc() -> Result<(), KernelError> {
    match nvrtc_available() {
        true => Ok(()),
        false => Err(KernelError::Cuda(
            "libnvrtc cannot be loaded (install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12` \
             and add its lib directory to LD_LIBRARY_PATH)"
                .into(),
        )),
    }
}

fn compile(source: &Source, arch: &str) -> Result<String, KernelError> {
    require_nvrtc()?;
    if !arch
        .strip_prefix("compute_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(KernelError::InvalidArgument(format!(
            "{arch:?} is not a virtual architecture like compute_90"
        )));
    }
    let mut options: Vec<String> = OPTIONS.iter().map(|o| o.to_string()).collect();
    options.push(format!("--gpu-architecture={arch}"));
    let opts = CompileOptions {
        options,
        name: Some(source.file.into()),
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(source.code, opts).map_err(|e| {
        let detail = match &e {
            cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                log.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        };
        KernelError::Cuda(format!(
            "NVRTC cannot compile {} for {arch}: {detail}",
            source.file
        ))
    })?;
    Ok(ptx.to_src())
}

/// `$XDG_CACHE_HOME/reel/ptx`, else `$HOME/.cache/reel/ptx`; None when neither is set.
fn cache_dir(
    xdg_cache: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let base = match (
        xdg_cache.filter(|v| !v.is_empty()),
        home.filter(|v| !v.is_empty()),
    ) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) => Path::new(&home).join(".cache"),
        (None, None) => return None,
    };
    Some(base.join("reel").join("ptx"))
}

/// Hex SHA-1 of everything the PTX depends on.
fn cache_key(code: &str, arch: &str, (major, minor): (i32, i32)) -> String {
    let mut h = Sha1::new();
    for part in [
        code,
        arch,
        &format!("nvrtc {major}.{minor}"),
        &OPTIONS.join(" "),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes through a temporary file and a rename, so concurrent processes (parallel tests)
/// never read a half-written PTX.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{name}.{}.{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_prefers_xdg_then_home() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            cache_dir(s("/x"), s("/h")),
            Some(PathBuf::from("/x/reel/ptx"))
        );
        assert_eq!(
            cache_dir(s(""), s("/h")),
            Some(PathBuf::from("/h/.cache/reel/ptx"))
        );
        assert_eq!(cache_dir(None, None), None);
    }

    #[test]
    fn cache_key_covers_source_arch_and_compiler() {
        let k = cache_key("src", "compute_90", (12, 9));
        assert_eq!(k.len(), 40);
        assert_ne!(k, cache_key("src2", "compute_90", (12, 9)));
        assert_ne!(k, cache_key("src", "compute_80", (12, 9)));
        assert_ne!(k, cache_key("src", "compute_90", (13, 0)));
    }

    #[test]
    fn every_source_names_its_kernels() {
        for s in all_sources() {
            for k in s.kernels {
                assert!(
                    s.code.contains(&format!("__global__ void {k}(")),
                    "{} does not define {k}",
                    s.file
                );
            }
        }
    }
}
