//! Fused CUDA kernels for the layers whose candle compositions cost the most launches and
//! memory passes when training: instance norm (+ ReLU), reflection padding (with nearest ×2
//! upsampling), VGG16's bias + ReLU and 2×2 max pooling, and the Adam update. Each is a candle
//! custom op whose
//! forward and backward passes are one or a few kernels (`*.cu`, compiled at run time
//! with NVRTC), where candle's composition runs 5–20 kernels forward and, through its autograd
//! (which also zero-fills and adds every gradient it accumulates), several times that backward.
//!
//! Used only on CUDA for f32 tensors ([`available`]); `Tuning::fused_kernels` off switches back
//! to the candle compositions. The CPU never takes these ops (their CPU passes refuse), so CPU
//! inference and the CPU gradient tests run exactly as before; `examples/cuda_check.rs`
//! checks them on the GPU against the CPU compositions in f64.

// The ops' fields and helpers are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use candle_core::{DType, Layout, Result, Tensor};

/// Whether the fused ops run `x`: CUDA builds, a CUDA f32 tensor, [`Tuning::fused_kernels`].
///
/// [`Tuning::fused_kernels`]: crate::tuning::Tuning::fused_kernels
pub fn available(x: &Tensor) -> bool {
    cfg!(feature = "cuda") && x.device().is_cuda() && x.dtype() == DType::F32 && enabled()
}

/// Whether [`bias_relu`] and [`max_pool2`] run `x`, forward and backward: as [`available`], and
/// also in f16.
pub fn available_half_too(x: &Tensor) -> bool {
    cfg!(feature = "cuda")
        && x.device().is_cuda()
        && matches!(x.dtype(), DType::F32 | DType::F16)
        && enabled()
}

/// Whether [`remap`] and [`instance_norm`] run `x`: as [`available`], and also for f16 tensors
/// outside autograd (half-precision inference; those ops have no f16 backward).
pub fn available_for_inference(x: &Tensor) -> bool {
    available(x)
        || (cfg!(feature = "cuda")
            && x.device().is_cuda()
            && x.dtype() == DType::F16
            && !x.track_op()
            && enabled())
}

fn enabled() -> bool {
    crate::tuning::current().fused_kernels
}

fn cuda_only(name: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{name} runs on CUDA only"))
}

/// The CPU pass of a custom op with 1, 2 or 3 operands: these ops run on CUDA only (callers
/// check [`available`] first), so reaching it is a bug reported as an error.
macro_rules! no_cpu_pass {
    (1) => {
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
    (2) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
    (3) => {
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> Result<(CpuStorage, Shape)> {
            Err(cuda_only(self.name()))
        }
    };
}

fn dims4(l: &Layout) -> Result<(usize, usize, usize, usize)> {
    l.shape().dims4()
}

pub mod adam;
pub mod norm;
pub mod pad;
pub mod pool;

pub use adam::adam_step;
pub use norm::{instance_norm, instance_norm_add, plane_moments, scale_shift};
pub use pad::{depth_to_space2, depth_to_space2_out, edge_pad, reflect_pad_s2d, remap};
pub use pool::{bias_relu, max_pool2, max_pool2_grad, relu_grad};

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchConfig};
    use candle_core::cuda_backend::cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions};
    use candle_core::cuda_backend::CudaDType;
    use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};

    /// The kernels' CUDA source, one file per op family, compiled as one module.
    const SOURCES: [&str; 5] = [
        include_str!("common.cuh"),
        include_str!("pad.cu"),
        include_str!("pool.cu"),
        include_str!("norm.cu"),
        include_str!("adam.cu"),
    ];
    pub(crate) const THREADS: u32 = 256;
    /// Elements of one plane that one block of the statistics kernels reduces.
    pub(crate) const CHUNK: usize = 4096;

    /// The kernels' PTX, compiled once per process.
    pub(crate) fn ptx() -> Result<&'static str> {
        static PTX: std::sync::OnceLock<std::result::Result<String, String>> =
            std::sync::OnceLock::new();
        PTX.get_or_init(|| {
            let opts = CompileOptions {
                arch: Some("compute_75"),
                ..Default::default()
            };
            compile_ptx_with_opts(SOURCES.concat(), opts)
                .map(|p| p.to_src())
                .map_err(|e| e.to_string())
        })
        .as_deref()
        .map_err(|e| candle_core::Error::Msg(format!("compiling atelier's CUDA kernels: {e}")))
    }

    #[cfg(test)]
    pub fn ptx_for_tests() -> Result<&'static str> {
        ptx()
    }

    pub(crate) fn view<'a>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, f32>> {
        view_as::<f32>(s, l)
    }

    pub(crate) fn view_as<'a, T: CudaDType>(
        s: &'a CudaStorage,
        l: &Layout,
    ) -> Result<CudaView<'a, T>> {
        if !l.is_contiguous() {
            candle_core::bail!("atelier CUDA kernels need contiguous inputs");
        }
        Ok(s.as_cuda_slice::<T>()?.slice(l.start_offset()..))
    }

    /// The kernel for `s`'s dtype: `name` for f32, `name_h` for f16 (forward passes only).
    pub(crate) fn kernel_for(
        s: &CudaStorage,
        name: &'static str,
        half: &'static str,
    ) -> Result<bool> {
        match s.dtype() {
            DType::F32 => Ok(false),
            DType::F16 if !half.is_empty() => Ok(true),
            other => candle_core::bail!("{name}: no kernel for {other:?}"),
        }
    }

    /// A grid-stride launch over `total` elements.
    pub(crate) fn flat(total: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                total.div_ceil(THREADS as usize).clamp(1, 1 << 16) as u32,
                1,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Forward copies over `planes` output planes of `hw` elements: one grid row per plane
    /// (32-bit index arithmetic in the kernel) when the planes fit the grid's y dimension.
    /// Grid (rows, planes) for the kernels that copy whole rows of one plane per block; the
    /// flat grid (their fallback branch) past the limits of a grid's y dimension.
    pub(crate) fn planar(planes: usize, rows: usize, hw: usize) -> LaunchConfig {
        if !(2..=65535).contains(&planes) || hw > i32::MAX as usize {
            return flat(planes * hw);
        }
        by_rows(planes, rows)
    }

    pub(crate) fn by_rows(planes: usize, rows: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows.clamp(1, 1 << 12) as u32, planes as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One thread for each of `n` items (planes, channels) of a small per-item kernel.
    pub(crate) fn one_thread_each(n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (n.div_ceil(128) as u32, 1, 1),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// One block per `CHUNK` elements of each of `planes` planes of `hw` elements.
    pub(crate) fn per_plane(planes: usize, hw: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (hw.div_ceil(CHUNK) as u32, planes as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    macro_rules! launch {
        ($dev:expr, $name:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
            let func = $dev.get_or_load_custom_func($name, "atelier_ops", ptx()?)?;
            let mut b = func.builder();
            $( b.arg($arg); )*
            // SAFETY: the argument list matches the kernel's signature in the `.cu` files.
            unsafe { b.launch($cfg) }.w()?;
        }};
    }

    pub(crate) fn dev(s: &CudaStorage) -> CudaDevice {
        s.device.clone()
    }
    pub(crate) use launch;

    pub(crate) type Operand<'a> = (&'a CudaStorage, &'a Layout);

    pub(crate) fn view_mut<'a>(
        s: &'a mut CudaStorage,
        l: &Layout,
    ) -> Result<candle_core::cuda_backend::cudarc::driver::CudaViewMut<'a, f32>> {
        if !l.is_contiguous() {
            candle_core::bail!("atelier CUDA kernels need contiguous inputs");
        }
        Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(l.start_offset()..))
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests {
    /// NVRTC accepts the kernels (runs without a GPU).
    #[test]
    fn kernels_compile() {
        let ptx = super::gpu::ptx_for_tests().unwrap();
        for name in [
            "remap_fwd",
            "remap_fwd_h",
            "d2s_out_h",
            "in_apply_h",
            "in_bwd_params",
            "maxpool2_bwd",
        ] {
            assert!(ptx.contains(name), "{name} missing from the PTX");
        }
    }
}
