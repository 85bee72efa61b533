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
    /// initialises, else the CPU.
    pub fn new(choice: &str) -> Result<Runtime> {
        match choice {
            "cpu" => Ok(Runtime::cpu()),
            // burn's Flex operators for inference too: what `native` is compared against.
            "cpu-burn" => Ok(Runtime { device: Device::flex(), name: "cpu (burn flex)".into(), native: false }),
            "wgpu" => Device::wgpu_options()
                .init()
                .map(|device| Runtime { device, name: "wgpu".into(), native: false })
                .map_err(|e| Error::config("--device wgpu", format!("no wgpu adapter could be initialised ({e}); install a GPU driver or Mesa's lavapipe (mesa-vulkan-drivers, libvulkan1), or use --device cpu"))),
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
    pub fn shared(choice: &str, log: &crate::pipeline::Log) -> Result<Runtime> {
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

    /// The CPU: burn's Flex backend trains, [`native`] predicts.
    fn cpu() -> Runtime {
        let simd = if native::simd_available() {
            "avx2+fma"
        } else {
            "scalar"
        };
        Runtime {
            device: Device::flex(),
            name: format!("cpu (flex training, native {simd} inference)"),
            native: true,
        }
    }
}

/// Gives wgpu's adapter probe a runtime directory when the environment has none (cron, Slurm,
/// containers): Mesa's Vulkan and EGL drivers try a Wayland connection while they enumerate,
/// and without `XDG_RUNTIME_DIR` libwayland prints "XDG_RUNTIME_DIR is invalid or not set"
/// once per attempt, eight lines on a machine without a GPU. geofuse never opens a display; a
/// private empty folder makes that connection fail quietly. Call it before any thread starts
/// (it sets a process environment variable).
pub fn quiet_display_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let uid = {
        #[cfg(unix)]
        {
            // SAFETY: getuid has no preconditions and cannot fail.
            unsafe { libc::getuid() }
        }
        #[cfg(not(unix))]
        {
            0
        }
    };
    let dir = std::env::temp_dir().join(format!("geofuse-runtime-{uid}"));
    let made = std::fs::create_dir_all(&dir).is_ok();
    #[cfg(unix)]
    if made {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    if made {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}
