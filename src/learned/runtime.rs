//! The compute device of learned methods: burn's Flex backend plus geofuse's native kernels
//! on the CPU, or wgpu.

use burn::prelude::*;

use super::native;
use crate::error::{Error, Result};

/// The compute device for learned methods.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) device: Device,
    /// Human description (`cpu`, `wgpu`).
    pub name: String,
    /// Inference runs through [`native`] (CPU) rather than burn's operators.
    pub(crate) native: bool,
}

impl Runtime {
    /// `cpu`: burn's Flex backend. `wgpu`: the default wgpu adapter (a GPU, or Mesa's lavapipe
    /// on a CPU-only machine). `auto`: a discrete or integrated GPU through wgpu when one
    /// initialises, else the CPU; on Linux without any GPU device node the CPU at once, with
    /// no probe (the probe makes Mesa try a display connection and print
    /// "XDG_RUNTIME_DIR is invalid or not set" under cron, Slurm or in containers).
    pub fn new(choice: &str) -> Result<Runtime> {
        match choice {
            "cpu" => Ok(Runtime::cpu()),
            // burn's Flex operators for inference too: what `native` is compared against.
            "cpu-burn" => Ok(Runtime { device: Device::flex(), name: "cpu (burn flex)".into(), native: false }),
            "wgpu" => Device::wgpu_options()
                .init()
                .map(|device| Runtime { device, name: "wgpu".into(), native: false })
                .map_err(|e| Error::config("--device wgpu", format!("no wgpu adapter could be initialised ({e}); install a GPU driver or Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1), or use --device cpu"))),
            "auto" if !gpu_device_present() => Ok(Runtime::cpu()),
            "auto" => {
                for kind in [burn::tensor::DeviceKind::DiscreteGpu(0), burn::tensor::DeviceKind::IntegratedGpu(0)] {
                    let k = format!("{kind:?}");
                    if let Ok(device) = Device::wgpu_options().device_kind(kind).init() {
                        return Ok(Runtime { device, name: format!("wgpu ({k})"), native: false });
                    }
                }
                Ok(Runtime::cpu())
            }
            other => Err(Error::config("--device", format!("`{other}` is not a device; use auto, cpu or wgpu"))),
        }
    }

    /// [`new`](Self::new), made once per process and choice: the device probe (and wgpu's
    /// start-up) runs once however many learned methods a run has. Logs the device once.
    pub fn shared(choice: &str, log: &crate::log::Log) -> Result<Runtime> {
        static MADE: std::sync::Mutex<Vec<(String, Runtime)>> = std::sync::Mutex::new(Vec::new());
        let mut made = crate::error::lock(&MADE)?;
        if let Some((_, r)) = made.iter().find(|(c, _)| c == choice) {
            return Ok(r.clone());
        }
        let r = Runtime::new(choice)?;
        log.info(&format!("learned methods run on {}", r.name));
        made.push((choice.to_string(), r.clone()));
        Ok(r)
    }

    /// The CPU: geofuse's native kernels train (`native_train`) and predict ([`native`]),
    /// burn's Flex backend where they do not reach.
    fn cpu() -> Runtime {
        let simd = if native::simd_available() {
            "avx2+fma"
        } else {
            "scalar"
        };
        Runtime {
            device: Device::flex(),
            name: format!("cpu (native {simd} training and inference)"),
            native: true,
        }
    }
}

/// Whether the machine exposes a GPU to user space: an NVIDIA device node or a DRM render
/// node (AMD, Intel, NVIDIA open drivers). Elsewhere than Linux: assume one may exist.
pub fn gpu_device_present() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let dri = std::fs::read_dir("/dev/dri")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
        })
        .unwrap_or(false);
    dri || std::path::Path::new("/dev/nvidia0").exists()
        || std::path::Path::new("/dev/nvidiactl").exists()
}
