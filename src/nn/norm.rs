//! The style networks' instance-norm layer, whose statistics can come from outside the tensor
//! it normalises.
//!
//! Instance norm is what makes tiling and video hard: each tile would otherwise normalise with
//! its own statistics and the seams would show, and each frame's statistics jump with the
//! content. [`NormStats`] says where one pass's statistics come from: each image's own, fixed
//! whole-image ones (tiles), "collect layer k's input, then stop" (the tiler's statistics
//! sweeps), or smoothed over a video's frames.

use crate::ops::norm::{self, per_image_stats, NormParams};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
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

    fn params(&self) -> NormParams<'_> {
        NormParams {
            gamma: &self.weight,
            beta: &self.bias,
            eps: self.eps,
            params_f32: self.params_f32.as_ref(),
        }
    }

    /// `residual + self(x)` without ReLU, fused into one pass where the device allows.
    pub fn forward_add(&self, x: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        norm::instance_norm_add(x, &self.params(), residual)
    }

    /// Normalises with whole-image statistics `fixed` (`(1, C, 1, 1)` mean and variance)
    /// or, without them, each image's own; then optionally applies ReLU.
    pub fn forward_with(
        &self,
        x: &Tensor,
        fixed: Option<&(Tensor, Tensor)>,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        norm::instance_norm(x, &self.params(), fixed, relu)
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
