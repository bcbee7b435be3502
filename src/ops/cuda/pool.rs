//! The VGG16 loss network's ops: bias + ReLU, 2×2 max pooling and their gradients.

// The ops' fields are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

use super::cuda_only;
#[cfg(feature = "cuda")]
use super::dims4;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// 2×2 max pooling with stride 2 of `x` `(N, C, H, W)`; gradients go to each window's first
/// maximum.
pub fn max_pool2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

/// The gradient of [`max_pool2`] with respect to its input `x`, from the output gradient `grad`
/// (outside autograd: the loss network's hand-written backward pass).
pub fn max_pool2_grad(x: &Tensor, grad: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Bwd)
}

/// `grad` where the ReLU output `y` is positive, else 0: the gradient through a ReLU (outside
/// autograd).
pub fn relu_grad(y: &Tensor, grad: &Tensor) -> Result<Tensor> {
    y.contiguous()?
        .apply_op2_no_bwd(&grad.contiguous()?, &ReluBwd)
}

/// `relu(x + b)` with `b` one value per channel of `x` `(N, C, H, W)`.
pub fn bias_relu(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (_, c, _, _) = x.dims4()?;
    if b.elem_count() != c || b.dtype() != DType::F32 {
        candle_core::bail!("bias_relu: {:?} bias for {c} channels", b.dims());
    }
    x.contiguous()?.apply_op2(&b.contiguous()?, BiasRelu)
}

struct MaxPool2;
struct MaxPool2Bwd;
struct BiasRelu;
struct ReluBwd;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "atelier-maxpool2"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let out = gpu::maxpool2_fwd(s, l, n * c, h, w)?;
        Ok((out, Shape::from((n, c, h / 2, w / 2))))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            arg.apply_op2_no_bwd(&grad.contiguous()?, &MaxPool2Bwd)?,
        ))
    }
}

impl CustomOp2 for MaxPool2Bwd {
    fn name(&self) -> &'static str {
        "atelier-maxpool2-bwd"
    }
    no_cpu_pass!(2);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::maxpool2_bwd(s1, l1, s2, l2, n * c, h, w)?;
        Ok((out, l1.shape().clone()))
    }
}

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "atelier-bias-relu"
    }
    no_cpu_pass!(2);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (_, c, h, w) = dims4(l1)?;
        let out = gpu::bias_relu(s1, l1, s2, l2, c, h * w)?;
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let gx = y.apply_op2_no_bwd(&grad.contiguous()?, &ReluBwd)?;
        let gb = if b.track_op() {
            Some(gx.sum_keepdim((0, 2, 3))?.reshape(b.shape())?)
        } else {
            None
        };
        Ok((x.track_op().then_some(gx), gb))
    }
}

impl CustomOp2 for ReluBwd {
    fn name(&self) -> &'static str {
        "atelier-relu-bwd"
    }
    no_cpu_pass!(2);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let out = gpu::relu_bwd(s1, l1, s2, l2)?;
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use super::super::gpu::*;
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::DeviceRepr;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaStorage, DType, Layout, Result};
    use half::f16;

    /// Grid (chunks of a plane, planes) for the kernels with a per-plane branch; flat past the
    /// limits of a grid's y dimension.
    fn chunks(planes: usize, hw: usize) -> LaunchConfig {
        if !(2..=65535).contains(&planes) || hw > i32::MAX as usize {
            return flat(planes * hw);
        }
        by_rows(planes, hw.div_ceil(THREADS as usize))
    }

    pub fn maxpool2_fwd(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<CudaStorage> {
        match s.dtype() {
            DType::F16 => maxpool2_fwd_t::<f16>(s, l, planes, h, w, "maxpool2_fwd_h"),
            _ => maxpool2_fwd_t::<f32>(s, l, planes, h, w, "maxpool2_fwd"),
        }
    }

    fn maxpool2_fwd_t<T: CudaDType + DeviceRepr>(
        s: &CudaStorage,
        l: &Layout,
        planes: usize,
        h: usize,
        w: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s);
        let src = view_as::<T>(s, l)?;
        let total = planes * (h / 2) * (w / 2);
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = planar(planes, h / 2, (h / 2) * (w / 2));
        let (p, h, w) = (planes as i64, h as i32, w as i32);
        launch!(d, kernel, cfg, &src, &out, &p, &h, &w);
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn maxpool2_bwd(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => maxpool2_bwd_t::<f16>(a, b, planes, h, w, "maxpool2_bwd_h"),
            _ => maxpool2_bwd_t::<f32>(a, b, planes, h, w, "maxpool2_bwd"),
        }
    }

    fn maxpool2_bwd_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        planes: usize,
        h: usize,
        w: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (x, g) = (view_as::<T>(s1, l1)?, view_as::<T>(s2, l2)?);
        let total = planes * h * w;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = planar(planes, h, h * w);
        let (p, h, w) = (planes as i64, h as i32, w as i32);
        launch!(d, kernel, cfg, &x, &g, &out, &p, &h, &w);
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn bias_relu(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        channels: usize,
        hw: usize,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => bias_relu_t::<f16>(a, b, channels, hw, "bias_relu_fwd_h"),
            _ => bias_relu_t::<f32>(a, b, channels, hw, "bias_relu_fwd"),
        }
    }

    fn bias_relu_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        channels: usize,
        hw: usize,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (x, b) = (view_as::<T>(s1, l1)?, view(s2, l2)?);
        let total = l1.shape().elem_count();
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let cfg = chunks(total / hw.max(1), hw);
        let (t, c, hw) = (total as i64, channels as i32, hw as i32);
        launch!(d, kernel, cfg, &x, &b, &out, &t, &c, &hw);
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn relu_bwd(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<CudaStorage> {
        let (a, b) = ((s1, l1), (s2, l2));
        match s1.dtype() {
            DType::F16 => relu_bwd_t::<f16>(a, b, "relu_bwd_h"),
            _ => relu_bwd_t::<f32>(a, b, "relu_bwd"),
        }
    }

    fn relu_bwd_t<T: CudaDType + DeviceRepr>(
        (s1, l1): Operand,
        (s2, l2): Operand,
        kernel: &'static str,
    ) -> Result<CudaStorage> {
        let d = dev(s1);
        let (y, g) = (view_as::<T>(s1, l1)?, view_as::<T>(s2, l2)?);
        let total = l1.shape().elem_count();
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let t = total as i64;
        launch!(d, kernel, flat(total), &y, &g, &out, &t);
        Ok(T::wrap_cuda_slice(out, d))
    }
}
