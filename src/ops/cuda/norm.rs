//! Instance norm (+ ReLU, + residual add), its statistics and its gradient.

// The ops' fields are read by their CUDA passes only.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

#[cfg(feature = "cuda")]
use super::dims4;
use super::{available_for_inference, cuda_only};
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
};

/// Instance norm with per-image statistics (biased variance) and affine `gamma`/`beta`
/// (one value per channel, f32), then ReLU if `relu`.
pub fn instance_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    if gamma.elem_count() != c || beta.elem_count() != c {
        candle_core::bail!("instance_norm: affine parameters do not have {c} channels");
    }
    // The kernels take f32 affine parameters: f16 models are converted here (a few hundred
    // values), and f16 inputs are inference only, so there is no gradient to route back.
    let (gamma, beta) = if x.dtype() == DType::F16 {
        if gamma.track_op() || beta.track_op() {
            candle_core::bail!("instance_norm: f16 runs inference only");
        }
        (gamma.to_dtype(DType::F32)?, beta.to_dtype(DType::F32)?)
    } else {
        (gamma.clone(), beta.clone())
    };
    if n * c > 65535 {
        candle_core::bail!("instance_norm: {n}×{c} planes exceed one launch");
    }
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        InstanceNormOp { eps, relu },
    )
}

/// `residual + instance_norm(x)` without ReLU in one pass (the residual blocks' second norm
/// and skip connection), for f16 inference; `params` is `[γ; β]` in f32. `None` where this
/// fused path does not apply (other dtypes, plane sizes not a multiple of 8): the caller
/// composes the two steps instead.
pub fn instance_norm_add(
    x: &Tensor,
    params: &Tensor,
    eps: f64,
    residual: &Tensor,
) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && residual.dtype() == DType::F16
        && residual.dims() == x.dims()
        && params.dtype() == DType::F32
        && params.elem_count() == 2 * c
        && (h * w).is_multiple_of(8)
        && n * c <= 65535;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op3_no_bwd(
            &params.contiguous()?,
            &residual.contiguous()?,
            &InstanceNormAddOp { eps },
        )
        .map(Some)
}

/// Mean and biased variance of every plane of an f16 `x` `(N, C, H, W)`, as `(N, C, 2)` f32, in
/// one pass (the instance norm's statistics kernel). `None` where the fast path does not apply.
pub fn plane_moments(x: &Tensor) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && (h * w).is_multiple_of(8)
        && n * c <= 65535;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?.apply_op1_no_bwd(&PlaneMoments).map(Some)
}

/// `max?(x · scale + shift)` per plane of an f16 `x`, with `ss` the `(N·C, 2)` f32 scales and
/// shifts: an instance norm whose statistics came from elsewhere. `None` where the fast path
/// does not apply.
pub fn scale_shift(x: &Tensor, ss: &Tensor, relu: bool) -> Result<Option<Tensor>> {
    let (n, c, h, w) = x.dims4()?;
    let fits = available_for_inference(x)
        && x.dtype() == DType::F16
        && (h * w).is_multiple_of(8)
        && ss.dtype() == DType::F32
        && ss.elem_count() == 2 * n * c;
    if !fits {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op2_no_bwd(&ss.contiguous()?, &ScaleShift { relu })
        .map(Some)
}

struct InstanceNormOp {
    eps: f64,
    relu: bool,
}

struct PlaneMoments;

impl CustomOp1 for PlaneMoments {
    fn name(&self) -> &'static str {
        "atelier-plane-moments"
    }
    no_cpu_pass!(1);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l)?;
        let out = gpu::plane_moments_h8((s, l), n * c, h * w)?;
        Ok((out, Shape::from((n, c, 2))))
    }
}

struct ScaleShift {
    relu: bool,
}

impl CustomOp2 for ScaleShift {
    fn name(&self) -> &'static str {
        "atelier-scale-shift"
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
        if !l1.start_offset().is_multiple_of(8) {
            candle_core::bail!("scale_shift: the input must start on a 16-byte boundary");
        }
        let out = gpu::scale_shift_h8((s1, l1), (s2, l2), n * c * h * w, h * w, self.relu)?;
        Ok((out, l1.shape().clone()))
    }
}

/// Inputs `(x, [γ; β], residual)`; output `residual + norm(x)` (inference only).
struct InstanceNormAddOp {
    eps: f64,
}

impl CustomOp3 for InstanceNormAddOp {
    fn name(&self) -> &'static str {
        "atelier-instance-norm-add"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        if !l1.start_offset().is_multiple_of(8) || !l3.start_offset().is_multiple_of(8) {
            candle_core::bail!("instance_norm_add: operands must start on 16-byte boundaries");
        }
        let out = gpu::instance_norm_add_h8((s1, l1), (s2, l2), (s3, l3), (n, c, h * w), self.eps)?;
        Ok((out, l1.shape().clone()))
    }
}

/// Inputs `(x, dy, [γ; β])`; output `dx` followed by `dγ` and `dβ`, flat.
struct InstanceNormBwd {
    eps: f64,
    relu: bool,
}

impl CustomOp3 for InstanceNormOp {
    fn name(&self) -> &'static str {
        "atelier-instance-norm"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::instance_norm(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            (n, c, h * w),
            self.eps,
            self.relu,
        )?;
        Ok((out, l1.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let params = Tensor::cat(
            &[gamma.detach().flatten_all()?, beta.detach().flatten_all()?],
            0,
        )?;
        let op = InstanceNormBwd {
            eps: self.eps,
            relu: self.relu,
        };
        let packed = x.apply_op3_no_bwd(&grad.contiguous()?, &params, &op)?;
        let (total, c) = (x.elem_count(), gamma.elem_count());
        let gx = packed.narrow(0, 0, total)?.reshape(x.shape())?;
        let gg = packed.narrow(0, total, c)?.reshape(gamma.shape())?;
        let gb = packed.narrow(0, total + c, c)?.reshape(beta.shape())?;
        Ok((
            x.track_op().then_some(gx),
            gamma.track_op().then_some(gg),
            beta.track_op().then_some(gb),
        ))
    }
}

impl CustomOp3 for InstanceNormBwd {
    fn name(&self) -> &'static str {
        "atelier-instance-norm-bwd"
    }
    no_cpu_pass!(3);
    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (n, c, h, w) = dims4(l1)?;
        let out = gpu::instance_norm_bwd(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            (n, c, h * w),
            self.eps,
            self.relu,
        )?;
        Ok((out, Shape::from(n * c * h * w + 2 * c)))
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod gpu {
    use super::super::gpu::*;
    use candle_core::cuda_backend::cudarc::driver::{CudaView, DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, WrapErr};
    use candle_core::{CudaStorage, Result};
    use half::f16;

    /// `gamma` and `beta` are f32 whatever `x`'s dtype (f32, or f16 for inference).
    pub fn instance_norm(
        x: Operand,
        gamma: Operand,
        beta: Operand,
        shape: (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        if kernel_for(x.0, "instance_norm", "in_apply_h")? {
            if shape.2.is_multiple_of(8) && x.1.start_offset().is_multiple_of(8) {
                return instance_norm_h8(x, gamma, beta, shape, eps, relu);
            }
            instance_norm_t::<f16>(
                x,
                gamma,
                beta,
                shape,
                eps,
                relu,
                ["in_stats_h", "in_apply_h"],
            )
        } else {
            instance_norm_t::<f32>(x, gamma, beta, shape, eps, relu, ["in_stats", "in_apply"])
        }
    }

    /// f16 planes of a multiple of 8 values: 16-byte loads and stores, and the moments turned
    /// into one scale and shift per plane before the element pass.
    fn instance_norm_h8(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sb, lb): Operand,
        shape: (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let (gamma, beta) = (view(sg, lg)?, view(sb, lb)?);
        norm_h8((sx, lx), &gamma, &beta, None, shape, eps, relu)
    }

    /// `residual + norm(x)` (no ReLU), f16, planes of a multiple of 8; `params` is `[γ; β]`.
    pub fn instance_norm_add_h8(
        x: Operand,
        (sp, lp): Operand,
        res: Operand,
        shape: (usize, usize, usize),
        eps: f64,
    ) -> Result<CudaStorage> {
        let c = shape.1;
        let params = view(sp, lp)?;
        let (gamma, beta) = (params.slice(..c), params.slice(c..2 * c));
        norm_h8(x, &gamma, &beta, Some(res), shape, eps, false)
    }

    /// `(mean, var)` of each of `planes` f16 planes of `hw` values (a multiple of 8).
    pub fn plane_moments_h8((sx, lx): Operand, planes: usize, hw: usize) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<f32>(2 * planes)? };
        let (hw8, chunk8) = ((hw / 8) as i32, (CHUNK / 8) as i32);
        launch!(
            d,
            "in_stats_h8",
            per_plane(planes, hw),
            &x,
            &stats,
            &hw8,
            &chunk8
        );
        let (planes_i, hw_i) = (planes as i32, hw as i32);
        let cfg = one_thread_each(planes);
        launch!(d, "in_moments", cfg, &stats, &out, &planes_i, &hw_i);
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    /// `x · scale + shift` (then ReLU) per plane of `hw` values, `ss` holding the pairs.
    pub fn scale_shift_h8(
        (sx, lx): Operand,
        (ss_s, ss_l): Operand,
        total: usize,
        hw: usize,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let ss = view(ss_s, ss_l)?;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<f16>(total)? };
        let (t8, hw8, relu_i) = ((total / 8) as i64, (hw / 8) as i32, relu as i32);
        launch!(
            d,
            "in_apply_h8",
            flat(total / 8),
            &x,
            &ss,
            &out,
            &t8,
            &hw8,
            &relu_i
        );
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    fn norm_h8(
        (sx, lx): Operand,
        gamma: &CudaView<f32>,
        beta: &CudaView<f32>,
        residual: Option<Operand>,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let x = view_as::<f16>(sx, lx)?;
        let (planes, total) = (n * c, n * c * hw);
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let ss = unsafe { d.alloc::<f32>(2 * planes)? };
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<f16>(total)? };
        let (hw8, chunk8) = ((hw / 8) as i32, (CHUNK / 8) as i32);
        launch!(
            d,
            "in_stats_h8",
            per_plane(planes, hw),
            &x,
            &stats,
            &hw8,
            &chunk8
        );
        let (planes_i, c_i, hw_i) = (planes as i32, c as i32, hw as i32);
        let cfg = one_thread_each(planes);
        launch!(
            d,
            "in_scale_shift",
            cfg,
            &stats,
            gamma,
            beta,
            &ss,
            &planes_i,
            &c_i,
            &hw_i,
            &eps
        );
        let (t8, relu_i) = ((total / 8) as i64, relu as i32);
        match residual {
            Some((sr, lr)) => {
                let res = view_as::<f16>(sr, lr)?;
                launch!(
                    d,
                    "in_apply_add_h8",
                    flat(total / 8),
                    &x,
                    &ss,
                    &res,
                    &out,
                    &t8,
                    &hw8,
                    &relu_i
                );
            }
            None => launch!(
                d,
                "in_apply_h8",
                flat(total / 8),
                &x,
                &ss,
                &out,
                &t8,
                &hw8,
                &relu_i
            ),
        }
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }

    fn instance_norm_t<T: CudaDType + DeviceRepr>(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sb, lb): Operand,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
        [stats_kernel, apply_kernel]: [&'static str; 2],
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let (x, gamma, beta) = (view_as::<T>(sx, lx)?, view(sg, lg)?, view(sb, lb)?);
        let (planes, total) = (n * c, n * c * hw);
        let stats = d.alloc_zeros::<f64>(2 * planes)?;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<T>(total)? };
        let (hw_i, chunk) = (hw as i32, CHUNK as i32);
        launch!(
            d,
            stats_kernel,
            per_plane(planes, hw),
            &x,
            &stats,
            &hw_i,
            &chunk
        );
        let (t, c_i, relu_i) = (total as i64, c as i32, relu as i32);
        launch!(
            d,
            apply_kernel,
            flat(total),
            &x,
            &stats,
            &gamma,
            &beta,
            &out,
            &t,
            &c_i,
            &hw_i,
            &eps,
            &relu_i
        );
        Ok(T::wrap_cuda_slice(out, d))
    }

    pub fn instance_norm_bwd(
        (sx, lx): Operand,
        (sg, lg): Operand,
        (sp, lp): Operand,
        (n, c, hw): (usize, usize, usize),
        eps: f64,
        relu: bool,
    ) -> Result<CudaStorage> {
        let d = dev(sx);
        let (x, g, params) = (view(sx, lx)?, view(sg, lg)?, view(sp, lp)?);
        let (planes, total) = (n * c, n * c * hw);
        let sums = d.alloc_zeros::<f64>(4 * planes)?;
        // SAFETY: uninitialised device memory; the kernels below write every element
        // before anything reads it.
        let out = unsafe { d.alloc::<f32>(total + 2 * c)? };
        let (c_i, hw_i, chunk, relu_i) = (c as i32, hw as i32, CHUNK as i32, relu as i32);
        let cfg = per_plane(planes, hw);
        launch!(
            d,
            "in_bwd_sums",
            cfg,
            &x,
            &g,
            &params,
            &sums,
            &c_i,
            &hw_i,
            &chunk,
            &eps,
            &relu_i
        );
        if relu {
            launch!(
                d,
                "in_bwd_masked_sums",
                cfg,
                &x,
                &g,
                &params,
                &sums,
                &c_i,
                &hw_i,
                &chunk,
                &eps
            );
        }
        let t = total as i64;
        launch!(
            d,
            "in_bwd_dx",
            flat(total),
            &x,
            &g,
            &params,
            &sums,
            &out,
            &t,
            &c_i,
            &hw_i,
            &eps,
            &relu_i
        );
        let n_i = n as i32;
        let cfg = one_thread_each(c);
        launch!(
            d,
            "in_bwd_params",
            cfg,
            &sums,
            &out,
            &t,
            &n_i,
            &c_i,
            &hw_i,
            &eps
        );
        Ok(CudaStorage::wrap_cuda_slice(out, d))
    }
}
