//! How busy and how full the GPU the CUDA backend runs on is, for `/metrics` and
//! `/api/stats`: NVML (the driver's management library, the source of `nvidia-smi`), opened
//! at run time like the CUDA libraries, so that a build without a driver still runs and says
//! "no GPU". The device is found by the UUID the CUDA backend reports, which stays right under
//! `CUDA_VISIBLE_DEVICES` (CUDA ordinals are renumbered, NVML indices are not).

use nvml_wrapper::Nvml;
use serde::Serialize;

use crate::KernelError;

/// One reading of the GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuUsage {
    /// The device's name, e.g. `NVIDIA H200`.
    pub name: String,
    /// Percent of the last sample period (about 1/6 s to 1 s, by model) in which a kernel ran.
    pub utilization_percent: u32,
    /// Device memory in use, by every process.
    pub memory_used_bytes: u64,
    /// Device memory in all.
    pub memory_total_bytes: u64,
}

/// NVML, opened once, and the device to read.
pub struct GpuMonitor {
    nvml: Nvml,
    uuid: String,
}

impl GpuMonitor {
    /// Opens NVML for the device with this UUID (`GPU-xxxxxxxx-...`, as
    /// [`crate::CudaBackend::uuid`] gives it). Fails cleanly where NVML or the device is absent.
    pub fn open(uuid: &str) -> Result<GpuMonitor, KernelError> {
        let nvml = Nvml::init().map_err(|e| KernelError::Cuda(format!("cannot open NVML: {e}")))?;
        let monitor = GpuMonitor {
            nvml,
            uuid: uuid.to_owned(),
        };
        monitor.sample()?;
        Ok(monitor)
    }

    /// Reads utilisation and memory now (a few driver calls; blocking, but short).
    pub fn sample(&self) -> Result<GpuUsage, KernelError> {
        let nvml_error = |what: &str| {
            let what = format!("NVML {what} of {}", self.uuid);
            move |e| KernelError::Cuda(format!("{what}: {e}"))
        };
        let device = self
            .nvml
            .device_by_uuid(self.uuid.as_str())
            .map_err(nvml_error("device"))?;
        let memory = device.memory_info().map_err(nvml_error("memory"))?;
        Ok(GpuUsage {
            name: device.name().map_err(nvml_error("name"))?,
            utilization_percent: device
                .utilization_rates()
                .map_err(nvml_error("utilisation"))?
                .gpu,
            memory_used_bytes: memory.used,
            memory_total_bytes: memory.total,
        })
    }
}

/// A CUDA device UUID in NVML's spelling: `GPU-` and 16 bytes as 8-4-4-4-12 hex digits.
pub fn nvml_uuid(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_spelt_as_nvml_spells_it() {
        let bytes: [u8; 16] = std::array::from_fn(|i| (i as u8) * 17);
        assert_eq!(
            nvml_uuid(&bytes),
            "GPU-00112233-4455-6677-8899-aabbccddeeff"
        );
    }

    #[test]
    fn an_unknown_device_is_an_error_not_a_panic() {
        // Without NVML (this machine) the open fails; with it, no device has this UUID.
        let err = GpuMonitor::open("GPU-00000000-0000-0000-0000-000000000000")
            .err()
            .expect("no such device");
        assert!(err.to_string().contains("NVML"), "{err}");
    }
}
