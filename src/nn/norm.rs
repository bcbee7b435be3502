//! The style networks' instance norm, whose statistics can come from outside the tensor it normalises.
//!
//! Instance norm is what makes tiling hard: each tile would otherwise normalise with
//! its own statistics and the seams would show. [`NormCtx`] lets the tiler run the
//! same network code in three modes: per-image statistics (the plain forward pass),
//! fixed whole-image statistics, and "collect the statistics of layer k, then stop".

use crate::ops::cuda;
use crate::ops::pad::is_plain_cpu;
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;

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

/// Per-channel mean and biased variance of one normalisation layer over a whole image.
#[derive(Debug, Clone)]
pub struct ChannelStats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

/// Running per-channel count / mean / M2 (sum of squared deviations), merged across
/// tiles with Chan's formula so that large images don't lose precision.
#[derive(Debug, Clone, Default)]
pub struct StatsAccumulator {
    count: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl StatsAccumulator {
    /// Adds the statistics of the region `x` (shape `(1, C, h, w)`).
    pub fn add(&mut self, x: &Tensor) -> candle_core::Result<()> {
        let (_, c, h, w) = x.dims4()?;
        let n = (h * w) as f64;
        if n == 0.0 {
            return Ok(());
        }
        let flat = x.reshape((c, h * w))?.to_dtype(DType::F32)?;
        let mean_t = flat.mean_keepdim(1)?;
        let m2: Vec<f32> = flat.broadcast_sub(&mean_t)?.sqr()?.sum(1)?.to_vec1()?;
        let mean: Vec<f32> = mean_t.squeeze(1)?.to_vec1()?;
        if self.mean.is_empty() {
            self.mean = vec![0.0; c];
            self.m2 = vec![0.0; c];
        }
        let total = self.count + n;
        for ch in 0..c {
            let delta = mean[ch] as f64 - self.mean[ch];
            self.mean[ch] += delta * n / total;
            self.m2[ch] += m2[ch] as f64 + delta * delta * self.count * n / total;
        }
        self.count = total;
        Ok(())
    }

    pub fn finish(&self) -> ChannelStats {
        let count = self.count.max(1.0);
        ChannelStats {
            mean: self.mean.clone(),
            var: self.m2.iter().map(|m| m / count).collect(),
        }
    }
}

/// Which part of a tile's feature map belongs to the tile's core (in input pixels,
/// relative to the tile). `x1`/`y1` of `None` mean "to the end of the map", which is
/// how the whole-image map ends too, conv-transpose overshoot included.
#[derive(Debug, Clone, Copy)]
pub struct CoreRegion {
    pub x0: usize,
    pub y0: usize,
    pub x1: Option<usize>,
    pub y1: Option<usize>,
}

/// How the network's instance norms get their statistics during one forward pass.
#[derive(Default)]
pub struct NormCtx<'a> {
    /// Whole-image statistics for layers `0..fixed.len()`; later layers use their own.
    pub fixed: &'a [(Tensor, Tensor)],
    /// Stop at the input of this norm layer and accumulate its statistics over the region.
    pub collect: Option<(usize, CoreRegion)>,
    pub collected: Option<StatsAccumulator>,
    /// Checked at every norm layer so long passes stop promptly.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
    pub cancelled: bool,
    /// Video: statistics smoothed over the frames so far (see [`TemporalStats`]).
    pub temporal: Option<&'a mut TemporalStats>,
    /// Benchmarks: time the work between norm layers and each norm (device synchronised).
    pub timer: Option<&'a mut LayerTimer>,
}

/// Wall time of the stretches of a forward pass between instance norms ("conv i": padding,
/// conv and residual add before norm i) and of each norm ("norm i"), the device synchronised
/// at every mark. Summed over passes; `ATELIER_PROFILE=1 atelier bench` prints it.
pub struct LayerTimer {
    device: Device,
    last: std::time::Instant,
    pub spans: Vec<(String, f64)>,
}

impl LayerTimer {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            last: std::time::Instant::now(),
            spans: Vec::new(),
        }
    }

    /// Starts a pass: what happens before now is not counted.
    pub fn start(&mut self) -> candle_core::Result<()> {
        self.device.synchronize()?;
        self.last = std::time::Instant::now();
        Ok(())
    }

    /// Ends the span `label` now and adds its milliseconds to that label's total.
    pub fn mark(&mut self, label: &str) -> candle_core::Result<()> {
        self.device.synchronize()?;
        let now = std::time::Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        match self.spans.iter_mut().find(|(l, _)| l == label) {
            Some((_, total)) => *total += ms,
            None => self.spans.push((label.to_string(), ms)),
        }
        Ok(())
    }
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

impl NormCtx<'_> {
    /// Normalises `x`, the input of norm layer `index` at `scale` (input pixels per
    /// feature-map pixel), then applies ReLU if asked. Returns `None` when the pass
    /// must stop here.
    pub fn norm(
        &mut self,
        index: usize,
        scale: usize,
        x: &Tensor,
        layer: &InstanceNorm,
        relu: bool,
    ) -> candle_core::Result<Option<Tensor>> {
        self.norm_then_add(index, scale, x, layer, relu, None)
    }

    /// `residual + norm(x)` (a residual block's second norm, no ReLU), fused where possible.
    pub fn norm_add(
        &mut self,
        index: usize,
        scale: usize,
        x: &Tensor,
        layer: &InstanceNorm,
        residual: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        self.norm_then_add(index, scale, x, layer, false, Some(residual))
    }

    fn norm_then_add(
        &mut self,
        index: usize,
        scale: usize,
        x: &Tensor,
        layer: &InstanceNorm,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> candle_core::Result<Option<Tensor>> {
        if let Some(t) = self.timer.as_deref_mut() {
            t.mark(&format!("conv {index}"))?;
        }
        let y = self.norm_untimed(index, scale, x, layer, relu, residual)?;
        if let Some(t) = self.timer.as_deref_mut() {
            t.mark(&format!("norm {index}"))?;
        }
        Ok(y)
    }

    fn norm_untimed(
        &mut self,
        index: usize,
        scale: usize,
        x: &Tensor,
        layer: &InstanceNorm,
        relu: bool,
        residual: Option<&Tensor>,
    ) -> candle_core::Result<Option<Tensor>> {
        if let Some(flag) = self.cancel {
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                self.cancelled = true;
                return Ok(None);
            }
        }
        let add = |y: Tensor| match residual {
            Some(r) => r + y,
            None => Ok(y),
        };
        if let Some(stats) = self.fixed.get(index) {
            return add(layer.forward_with(x, Some(stats), relu)?).map(Some);
        }
        if let Some(t) = self.temporal.as_deref_mut() {
            let stats = t.mix(index, per_image_stats(x)?)?;
            return add(layer.forward_with(x, Some(&stats), relu)?).map(Some);
        }
        if let Some((target, region)) = self.collect {
            if target == index {
                let (_, _, h, w) = x.dims4()?;
                let (x0, y0) = (region.x0 / scale, region.y0 / scale);
                let x1 = region.x1.map_or(w, |v| v / scale).min(w);
                let y1 = region.y1.map_or(h, |v| v / scale).min(h);
                let mut acc = self.collected.take().unwrap_or_default();
                if x1 > x0 && y1 > y0 {
                    acc.add(&x.narrow(2, y0, y1 - y0)?.narrow(3, x0, x1 - x0)?)?;
                }
                self.collected = Some(acc);
                return Ok(None);
            }
        }
        match residual {
            Some(r) if !relu => layer.forward_add(x, r).map(Some),
            _ => add(layer.forward_with(x, None, relu)?).map(Some),
        }
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

/// Turns host statistics into `(1, C, 1, 1)` tensors on `device`.
pub fn stats_to_tensors(
    stats: &ChannelStats,
    device: &Device,
    dtype: DType,
) -> candle_core::Result<(Tensor, Tensor)> {
    let c = stats.mean.len();
    let mean = Tensor::from_iter(stats.mean.iter().map(|&v| v as f32), device)?
        .reshape((1, c, 1, 1))?
        .to_dtype(dtype)?;
    let var = Tensor::from_iter(stats.var.iter().map(|&v| v as f32), device)?
        .reshape((1, c, 1, 1))?
        .to_dtype(dtype)?;
    Ok((mean, var))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulated_stats_equal_whole_image_stats() {
        let x = Tensor::randn(3f32, 2., (1, 4, 10, 7), &Device::Cpu).unwrap();
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
