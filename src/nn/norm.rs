//! The style networks' instance norm, whose statistics can come from outside the tensor it normalises.
//!
//! Instance norm is what makes tiling and video hard: each tile would otherwise normalise with
//! its own statistics and the seams would show, and each frame's statistics jump with the
//! content. [`NormStats`] says where one pass's statistics come from: each image's own, fixed
//! whole-image ones (tiles), "collect layer k's input, then stop" (the tiler's statistics
//! sweeps), or smoothed over a video's frames.

use crate::ops::cuda;
use crate::ops::pad::is_plain_cpu;
use crate::{Error, Result};
use candle_core::{DType, Tensor, D};
use candle_nn::VarBuilder;
use std::sync::atomic::{AtomicBool, Ordering};

/// Affine instance normalisation parameters (`weight` = scale γ, `bias` = shift β).
#[derive(Debug, Clone)]
pub struct InstanceNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
    /// `[γ; β]` in f32 for half-precision models on CUDA, whose fused kernels take f32
    /// parameters (converted once here rather than on every pass).
    params_f32: Option<Tensor>,
}

impl InstanceNorm {
    pub fn new(vb: &VarBuilder, channels: usize, eps: f64) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?;
        Self::from_tensors(weight, bias, eps)
    }

    /// Scale γ (`weight`) and shift β (`bias`), one value per channel.
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> candle_core::Result<Self> {
        let params_f32 = if weight.dtype() == DType::F16 && weight.device().is_cuda() {
            Some(Tensor::cat(
                &[weight.to_dtype(DType::F32)?, bias.to_dtype(DType::F32)?],
                0,
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            eps,
            params_f32,
        })
    }

    /// `residual + self(x)` without ReLU, fused into one pass where the device allows.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        if let Some(p) = &self.params_f32 {
            if let Some(y) = cuda::instance_norm_add(x, p, self.eps, residual)? {
                return Ok(y);
            }
        }
        residual + self.forward_with(x, None, false)?
    }

    /// Normalises with whole-image statistics `fixed` (`(1, C, 1, 1)` mean and variance)
    /// or, without them, each image's own; then optionally applies ReLU.
    pub fn forward_with(
        &self,
        x: &Tensor,
        fixed: Option<&(Tensor, Tensor)>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        if is_plain_cpu(x) && !self.weight.track_op() {
            return self.forward_cpu(x, fixed, relu);
        }
        if fixed.is_none()
            && cuda::available_for_inference(x)
            && self.weight.dtype() == x.dtype()
            && self.bias.dtype() == x.dtype()
        {
            if let Some(p) = &self.params_f32 {
                let c = self.weight.elem_count();
                let (gamma, beta) = (p.narrow(0, 0, c)?, p.narrow(0, c, c)?);
                return cuda::instance_norm(x, &gamma, &beta, self.eps, relu);
            }
            return cuda::instance_norm(x, &self.weight, &self.bias, self.eps, relu);
        }
        if let (Some((mean, var)), Some(p)) = (fixed, &self.params_f32) {
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
            let scale = (gamma * (var + self.eps)?.sqrt()?.recip()?)?;
            let shift = (beta - (&mean * &scale)?)?;
            let ss = Tensor::stack(&[scale, shift], 1)?;
            if let Some(y) = cuda::scale_shift(x, &ss, relu)? {
                return Ok(y);
            }
        }
        if x.dtype() == DType::F16 {
            // Half-precision inference with statistics from outside (tiles, video): the
            // composed ops below would sum millions of values in f16, so run them in f32.
            return self
                .forward_with(&x.to_dtype(DType::F32)?, fixed, relu)?
                .to_dtype(DType::F16);
        }
        let y = match fixed {
            Some((mean, var)) => self.apply(x, mean, var)?,
            None => {
                let (mean, var) = per_image_stats(x)?;
                self.apply(x, &mean, &var)?
            }
        };
        if relu {
            y.relu()
        } else {
            Ok(y)
        }
    }

    /// One pass for statistics, one fused pass for normalise + affine + ReLU.
    fn forward_cpu(
        &self,
        x: &Tensor,
        fixed: Option<&(Tensor, Tensor)>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        use rayon::prelude::*;
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let mut data = x.flatten_all()?.to_vec1::<f32>()?;
        let gamma = self.weight.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let beta = self.bias.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let fixed = match fixed {
            Some((m, v)) => Some((
                m.flatten_all()?.to_vec1::<f32>()?,
                v.flatten_all()?.to_vec1::<f32>()?,
            )),
            None => None,
        };
        let eps = self.eps;
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
    fn apply(&self, x: &Tensor, mean: &Tensor, var: &Tensor) -> candle_core::Result<Tensor> {
        let scale = self.weight.to_dtype(x.dtype())?.reshape((1, (), 1, 1))?;
        let shift = self.bias.to_dtype(x.dtype())?.reshape((1, (), 1, 1))?;
        let inv = (var + self.eps)?.sqrt()?.recip()?;
        x.broadcast_sub(mean)?
            .broadcast_mul(&inv.broadcast_mul(&scale)?)?
            .broadcast_add(&shift)
    }
}

/// Where one forward pass's instance norms get their statistics.
#[derive(Default)]
pub enum NormStats<'a> {
    /// Each image its own (the plain forward pass).
    #[default]
    Own,
    /// Whole-image statistics (`(1, C, 1, 1)` mean and variance) for layers `0..len`; later
    /// layers use their own.
    Fixed(&'a [(Tensor, Tensor)]),
    /// `fixed` for the layers before `layer`; the pass ends at the input of norm `layer` and
    /// returns it, for the tiler to accumulate that layer's statistics.
    Collect {
        fixed: &'a [(Tensor, Tensor)],
        layer: usize,
    },
    /// Statistics smoothed over the frames of a video (see [`TemporalStats`]).
    Temporal(&'a mut TemporalStats),
}

/// Called at the boundaries of a pass's norm layers: "conv i" at the input of norm i (padding,
/// conv and residual add done), "norm i" after it. The bench's layer timer is one.
pub type LayerMarks<'a> = &'a mut dyn FnMut(&str) -> candle_core::Result<()>;

/// How one forward pass runs: its norms' statistics, whether it was asked to stop, and who
/// watches its layer boundaries.
#[derive(Default)]
pub struct NormCtx<'a> {
    pub stats: NormStats<'a>,
    /// Checked at every norm layer so long passes stop promptly, with [`Error::Cancelled`].
    pub cancel: Option<&'a AtomicBool>,
    pub marks: Option<LayerMarks<'a>>,
}

/// What a norm layer hands back to the network: the normalised tensor to go on with, or,
/// where the pass ends at this layer ([`NormStats::Collect`]), the norm's input to return.
pub enum Flow {
    Next(Tensor),
    Stop(Tensor),
}

/// Instance norm recomputes its statistics on every video frame, so colours and
/// textures jump when the content moves a little. Carried from frame to frame, this
/// makes each layer normalise with an exponential moving average of its statistics:
/// `stability` 0 is plain per-frame normalisation, towards 1 the statistics change
/// ever more slowly.
pub struct TemporalStats {
    pub stability: f64,
    prev: Vec<Option<(Tensor, Tensor)>>,
}

impl TemporalStats {
    pub fn new(stability: f64) -> Self {
        Self {
            stability: stability.clamp(0.0, 0.999),
            prev: Vec::new(),
        }
    }

    /// Forgets the history (a cut to a new scene).
    pub fn reset(&mut self) {
        self.prev.clear();
    }

    fn mix(
        &mut self,
        index: usize,
        own: (Tensor, Tensor),
    ) -> candle_core::Result<(Tensor, Tensor)> {
        if self.prev.len() <= index {
            self.prev.resize(index + 1, None);
        }
        let s = self.stability;
        let mixed = match &self.prev[index] {
            Some((pm, pv)) if s > 0.0 && pm.dims() == own.0.dims() => (
                ((&own.0 * (1.0 - s))? + (pm * s)?)?,
                ((&own.1 * (1.0 - s))? + (pv * s)?)?,
            ),
            _ => own,
        };
        self.prev[index] = Some(mixed.clone());
        Ok(mixed)
    }
}

impl<'a> NormCtx<'a> {
    /// A pass with these statistics, no cancellation and no marks.
    pub fn with_stats(stats: NormStats<'a>) -> Self {
        Self {
            stats,
            ..Default::default()
        }
    }

    /// Normalises `x`, the input of norm layer `index`, then applies ReLU if asked.
    pub fn norm(
        &mut self,
        index: usize,
        x: Tensor,
        layer: &InstanceNorm,
        relu: bool,
    ) -> Result<Flow> {
        self.norm_then_add(index, x, layer, relu, None)
    }

    /// `residual + norm(x)` (a residual block's second norm, no ReLU), fused where possible.
    pub fn norm_add(
        &mut self,
        index: usize,
        x: Tensor,
        layer: &InstanceNorm,
        residual: &Tensor,
    ) -> Result<Flow> {
        self.norm_then_add(index, x, layer, false, Some(residual))
    }

    fn norm_then_add(
        &mut self,
        index: usize,
        x: Tensor,
        layer: &InstanceNorm,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> Result<Flow> {
        if self.cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled);
        }
        if let Some(mark) = self.marks.as_deref_mut() {
            mark(&format!("conv {index}"))?;
        }
        let y = self.norm_unmarked(index, x, layer, relu, residual)?;
        if let (Flow::Next(_), Some(mark)) = (&y, self.marks.as_deref_mut()) {
            mark(&format!("norm {index}"))?;
        }
        Ok(y)
    }

    fn norm_unmarked(
        &mut self,
        index: usize,
        x: Tensor,
        layer: &InstanceNorm,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> Result<Flow> {
        let add = |y: Tensor| -> candle_core::Result<Tensor> {
            match residual {
                Some(r) => r + y,
                None => Ok(y),
            }
        };
        let fixed = match &mut self.stats {
            NormStats::Own => None,
            NormStats::Fixed(fixed) => fixed.get(index),
            NormStats::Collect { fixed, layer: stop } => match fixed.get(index) {
                Some(stats) => Some(stats),
                None if index == *stop => return Ok(Flow::Stop(x)),
                None => None,
            },
            NormStats::Temporal(t) => {
                let stats = t.mix(index, per_image_stats(&x)?)?;
                return Ok(Flow::Next(add(layer.forward_with(
                    &x,
                    Some(&stats),
                    relu,
                )?)?));
            }
        };
        let y = match (fixed, residual) {
            (Some(stats), _) => add(layer.forward_with(&x, Some(stats), relu)?)?,
            (None, Some(r)) if !relu => layer.forward_add(&x, r)?,
            (None, _) => add(layer.forward_with(&x, None, relu)?)?,
        };
        Ok(Flow::Next(y))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn accumulated_stats_equal_whole_image_stats() {
        let x = Tensor::randn(3f32, 2., (1, 4, 10, 7), &Device::Cpu).unwrap();
        use crate::stylize::tiling::StatsAccumulator;
        let mut acc = StatsAccumulator::default();
        acc.add(&x.narrow(2, 0, 3).unwrap()).unwrap();
        acc.add(&x.narrow(2, 3, 7).unwrap()).unwrap();
        let s = acc.finish();
        let (mean, var) = per_image_stats(&x).unwrap();
        let mean: Vec<f32> = mean.flatten_all().unwrap().to_vec1().unwrap();
        let var: Vec<f32> = var.flatten_all().unwrap().to_vec1().unwrap();
        for c in 0..4 {
            assert!((s.mean[c] - mean[c] as f64).abs() < 1e-4);
            assert!((s.var[c] - var[c] as f64).abs() < 1e-3);
        }
    }
}
