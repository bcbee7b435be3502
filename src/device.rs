//! Choosing the compute device from a user's `--device` string.

use crate::{Error, Result};
use candle_core::Device;
use std::str::FromStr;

/// What the user asked for; resolved to a real [`Device`] by [`DeviceChoice::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA or Metal when compiled in and present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(Self::Cuda(n)),
                _ => Err(Error::Invalid(format!(
                    "unknown device '{s}': use auto, cpu, cuda, cuda:N or metal"
                ))),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

impl DeviceChoice {
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Device(
                        "this build has no CUDA support; rebuild with `--features cuda`".into(),
                    ));
                }
                let device = Device::new_cuda(n)
                    .map_err(|e| Error::Device(format!("cannot open cuda:{n}: {e}")))?;
                configure_cuda(&device);
                Ok(device)
            }
            Self::Metal => {
                if !cfg!(feature = "metal") {
                    return Err(Error::Device(
                        "this build has no Metal support; rebuild with `--features metal`".into(),
                    ));
                }
                Device::new_metal(0).map_err(|e| Error::Device(format!("cannot open metal: {e}")))
            }
            Self::Auto => {
                if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        configure_cuda(&d);
                        return Ok(d);
                    }
                }
                if cfg!(feature = "metal") && candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
        }
    }
}

/// Whether f32 matrix products and convolutions on CUDA may use TF32 tensor cores (10-bit
/// mantissa inputs, f32 accumulation), as PyTorch's cuDNN convolutions do by default:
/// [`Tuning::tf32`](crate::tuning::Tuning::tf32).
pub fn tf32_enabled() -> bool {
    crate::tuning::current().tf32
}

/// Settings applied to every CUDA device this crate opens.
///
/// - TF32 for candle's f32 GEMMs (see [`tf32_enabled`]).
/// - No CUDA events per buffer: cudarc creates two events with every allocation so that work
///   on several of its streams can be ordered, but candle works on the per-thread default
///   stream, for which cudarc never waits on them; creating and destroying them was pure host
///   time on every op ([`Tuning::cuda_events`](crate::tuning::Tuning::cuda_events) keeps them).
#[allow(unused_variables)]
fn configure_cuda(device: &Device) {
    #[cfg(feature = "cuda")]
    {
        candle_core::cuda_backend::set_gemm_reduced_precision_f32(tf32_enabled());
        if let Device::Cuda(d) = device {
            if !crate::tuning::current().cuda_events {
                // SAFETY: candle creates no other cudarc stream whose work would need ordering.
                unsafe { d.disable_event_tracking() };
            }
        }
    }
}

/// A short human name for a device, for status lines and benchmark reports.
pub fn describe(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => format!(
            "cpu ({} threads)",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_strings() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn auto_falls_back_to_cpu_without_accelerators() {
        if !cfg!(any(feature = "cuda", feature = "metal")) {
            assert!(DeviceChoice::Auto.open().unwrap().is_cpu());
            assert!(DeviceChoice::Cuda(0).open().is_err());
        }
    }
}
