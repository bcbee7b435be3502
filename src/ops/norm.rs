//! Instance norm as an op: per-image or given statistics, affine, optional ReLU and residual
//! add. The CPU runs one statistics pass and one fused pass per plane; CUDA the fused kernels
//! of [`super::cuda::norm`]; other cases candle's composition.

use super::cuda;
use super::pad::is_plain_cpu;
use candle_core::{DType, Tensor, D};

/// One instance norm's parameters as the op takes them.
#[derive(Debug, Clone, Copy)]
pub struct NormParams<'a> {
    /// Scale γ, one value per channel.
    pub gamma: &'a Tensor,
    /// Shift β.
    pub beta: &'a Tensor,
    pub eps: f64,
    /// `[γ; β]` in f32, for half-precision models on CUDA (the fused kernels take f32).
    pub params_f32: Option<&'a Tensor>,
}

/// `residual + instance_norm(x)` without ReLU, fused into one pass where the device allows.
pub fn instance_norm_add(
    x: &Tensor,
    params: &NormParams,
    residual: &Tensor,
) -> candle_core::Result<Tensor> {
    if let Some(p) = params.params_f32 {
        if let Some(y) = cuda::instance_norm_add(x, p, params.eps, residual)? {
            return Ok(y);
        }
    }
    residual + instance_norm(x, params, None, false)?
}

/// Normalises with whole-image statistics `fixed` (`(1, C, 1, 1)` mean and variance)
/// or, without them, each image's own; then optionally applies ReLU.
pub fn instance_norm(
    x: &Tensor,
    params: &NormParams,
    fixed: Option<&(Tensor, Tensor)>,
    relu: bool,
) -> candle_core::Result<Tensor> {
    if is_plain_cpu(x) && !params.gamma.track_op() {
        return instance_norm_cpu(x, params, fixed, relu);
    }
    if fixed.is_none()
        && cuda::available_for_inference(x)
        && params.gamma.dtype() == x.dtype()
        && params.beta.dtype() == x.dtype()
    {
        if let Some(p) = params.params_f32 {
            let c = params.gamma.elem_count();
            let (gamma, beta) = (p.narrow(0, 0, c)?, p.narrow(0, c, c)?);
            return cuda::instance_norm(x, &gamma, &beta, params.eps, relu);
        }
        return cuda::instance_norm(x, params.gamma, params.beta, params.eps, relu);
    }
    if let (Some((mean, var)), Some(p)) = (fixed, params.params_f32) {
        // Half-precision inference with statistics from outside (tiles, video): fold them
        // and γ, β into one scale and shift per plane, applied in one pass.
        let (n, c, _, _) = x.dims4()?;
        let (gamma, beta) = (p.narrow(0, 0, c)?, p.narrow(0, c, c)?);
        let mean = mean
            .to_dtype(DType::F32)?
            .broadcast_as((n, c, 1, 1))?
            .flatten_all()?;
        let var = var
            .to_dtype(DType::F32)?
            .broadcast_as((n, c, 1, 1))?
            .flatten_all()?;
        let gamma = gamma.unsqueeze(0)?.broadcast_as((n, c))?.flatten_all()?;
        let beta = beta.unsqueeze(0)?.broadcast_as((n, c))?.flatten_all()?;
        let scale = (gamma * (var + params.eps)?.sqrt()?.recip()?)?;
        let shift = (beta - (&mean * &scale)?)?;
        let ss = Tensor::stack(&[scale, shift], 1)?;
        if let Some(y) = cuda::scale_shift(x, &ss, relu)? {
            return Ok(y);
        }
    }
    if x.dtype() == DType::F16 {
        // Half-precision inference with statistics from outside (tiles, video): the
        // composed ops below would sum millions of values in f16, so run them in f32.
        return instance_norm(&x.to_dtype(DType::F32)?, params, fixed, relu)?.to_dtype(DType::F16);
    }
    let y = match fixed {
        Some((mean, var)) => apply(x, params, mean, var)?,
        None => {
            let (mean, var) = per_image_stats(x)?;
            apply(x, params, &mean, &var)?
        }
    };
    if relu {
        y.relu()
    } else {
        Ok(y)
    }
}

/// One pass for statistics, one fused pass for normalise + affine + ReLU.
fn instance_norm_cpu(
    x: &Tensor,
    params: &NormParams,
    fixed: Option<&(Tensor, Tensor)>,
    relu: bool,
) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, w) = x.dims4()?;
    let hw = h * w;
    let mut data = x.flatten_all()?.to_vec1::<f32>()?;
    let gamma = params.gamma.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let beta = params.beta.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let fixed = match fixed {
        Some((m, v)) => Some((
            m.flatten_all()?.to_vec1::<f32>()?,
            v.flatten_all()?.to_vec1::<f32>()?,
        )),
        None => None,
    };
    let eps = params.eps;
    data.par_chunks_mut(hw.max(1))
        .enumerate()
        .for_each(|(i, plane)| {
            let ch = i % c;
            let (mean, var) = match &fixed {
                Some((m, v)) => (m[ch] as f64, v[ch] as f64),
                None => {
                    let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
                    let var = plane
                        .iter()
                        .map(|&v| (v as f64 - mean).powi(2))
                        .sum::<f64>()
                        / hw as f64;
                    (mean, var)
                }
            };
            let scale = gamma[ch] as f64 / (var + eps).sqrt();
            let shift = (beta[ch] as f64 - mean * scale) as f32;
            let scale = scale as f32;
            if relu {
                plane
                    .iter_mut()
                    .for_each(|v| *v = (*v * scale + shift).max(0.0));
            } else {
                plane.iter_mut().for_each(|v| *v = *v * scale + shift);
            }
        });
    Tensor::from_vec(data, (n, c, h, w), x.device())
}

/// Normalises with the given mean and (biased) variance, both `(N|1, C, 1, 1)`.
fn apply(
    x: &Tensor,
    params: &NormParams,
    mean: &Tensor,
    var: &Tensor,
) -> candle_core::Result<Tensor> {
    let scale = params.gamma.to_dtype(x.dtype())?.reshape((1, (), 1, 1))?;
    let shift = params.beta.to_dtype(x.dtype())?.reshape((1, (), 1, 1))?;
    let inv = (var + params.eps)?.sqrt()?.recip()?;
    x.broadcast_sub(mean)?
        .broadcast_mul(&inv.broadcast_mul(&scale)?)?
        .broadcast_add(&shift)
}

/// Mean and biased variance over H×W for each image and channel: `(N, C, 1, 1)`.
pub fn per_image_stats(x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let (n, c, h, w) = x.dims4()?;
    if let Some(m) = cuda::plane_moments(x)? {
        let mean = m.narrow(2, 0, 1)?.reshape((n, c, 1, 1))?;
        let var = m.narrow(2, 1, 1)?.reshape((n, c, 1, 1))?;
        return Ok((mean, var));
    }
    // Sums of millions of f16 values would lose most of their precision.
    let flat = x.reshape((n, c, h * w))?;
    let flat = if flat.dtype() == DType::F16 {
        flat.to_dtype(DType::F32)?
    } else {
        flat
    };
    let mean = flat.mean_keepdim(D::Minus1)?;
    let var = flat.broadcast_sub(&mean)?.sqr()?.mean_keepdim(D::Minus1)?;
    Ok((mean.unsqueeze(3)?, var.unsqueeze(3)?))
}
