//! The machine a report was measured on, and when.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

/// The machine a run was measured on, as sysinfo sees it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// The first CPU's brand string; empty if unknown.
    pub cpu_model: String,
    /// Logical cores.
    pub cores: usize,
    /// Physical cores; `None` if sysinfo cannot tell.
    pub physical_cores: Option<usize>,
    /// Total memory, in GiB.
    pub memory_gib: f64,
    /// The operating system's long name and version; empty if unknown.
    pub os: String,
    /// The kernel's long version; empty if unknown.
    pub kernel: String,
}

impl Machine {
    /// This machine as sysinfo sees it.
    pub fn detect() -> anyhow::Result<Machine> {
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )?;
        Ok(Machine {
            cpu_model: sys
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_owned())
                .unwrap_or_default(),
            cores: sys.cpus().len(),
            physical_cores: System::physical_core_count().ok(),
            memory_gib: sys.total_memory() as f64 / (1u64 << 30) as f64,
            os: System::long_os_version().unwrap_or_default(),
            kernel: System::kernel_long_version().unwrap_or_default(),
        })
    }

    /// One line: CPU, cores, memory, OS and kernel. Two runs with the same line count as
    /// measured on the same machine.
    pub fn describe(&self) -> String {
        let physical = self
            .physical_cores
            .map(|n| format!(", {n} physical"))
            .unwrap_or_default();
        format!(
            "{} ({} logical cores{physical}), {:.1} GiB memory, {}, kernel {}",
            self.cpu_model, self.cores, self.memory_gib, self.os, self.kernel
        )
    }
}

/// Now, as an RFC 3339 timestamp in UTC to the second.
pub fn now_utc() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
