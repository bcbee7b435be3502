//! Building blocks shared by the style networks: explicit padding modes and an
//! instance norm whose statistics can come from outside the tensor it normalises.
//!
//! Instance norm is what makes tiling hard: each tile would otherwise normalise with
//! its own statistics and the seams would show. [`NormCtx`] lets the tiler run the
//! same network code in three modes: per-image statistics (the plain forward pass),
//! fixed whole-image statistics, and "collect the statistics of layer k, then stop".

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;

/// Mirror-pads the two spatial dims of an NCHW tensor (PyTorch's `ReflectionPad2d`).
/// Needs `pad < size` on both dims; callers guarantee a minimum size.
pub fn reflect_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    if super::cuda_ops::available_for_inference(x) {
        return super::cuda_ops::remap(x, pad, 1);
    }
    let (_, _, h, w) = x.dims4()?;
    if is_plain_cpu(x) {
        return remap_cpu(x, &reflect_map(h, pad)?, &reflect_map(w, pad)?);
    }
    let x = x.index_select(&reflect_index(h, pad, x.device())?, 2)?;
    x.index_select(&reflect_index(w, pad, x.device())?, 3)
}

fn reflect_index(n: usize, pad: usize, device: &Device) -> candle_core::Result<Tensor> {
    let idx: Vec<u32> = reflect_map(n, pad)?.into_iter().map(|i| i as u32).collect();
    Tensor::new(idx, device)
}

/// Source index of each padded position under reflection padding.
fn reflect_map(n: usize, pad: usize) -> candle_core::Result<Vec<usize>> {
    if pad >= n {
        candle_core::bail!("reflection padding {pad} needs a dimension larger than {n}");
    }
    let last = n as i64 - 1;
    Ok((-(pad as i64)..n as i64 + pad as i64)
        .map(|i| {
            (if i < 0 {
                -i
            } else if i > last {
                2 * last - i
            } else {
                i
            }) as usize
        })
        .collect())
}

/// Nearest ×2 upsampling followed by reflection padding, as one copy.
pub fn upsample2_reflect_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if super::cuda_ops::available_for_inference(x) {
        return super::cuda_ops::remap(x, pad, 2);
    }
    let (_, _, h, w) = x.dims4()?;
    if is_plain_cpu(x) {
        let rows: Vec<usize> = reflect_map(2 * h, pad)?
            .into_iter()
            .map(|i| i / 2)
            .collect();
        let cols: Vec<usize> = reflect_map(2 * w, pad)?
            .into_iter()
            .map(|i| i / 2)
            .collect();
        return remap_cpu(x, &rows, &cols);
    }
    reflect_pad(&x.upsample_nearest2d(2 * h, 2 * w)?, pad)
}

/// Replication padding (the border pixel repeated) of the two spatial dims.
pub fn edge_pad(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if super::cuda_ops::available_for_inference(x) {
        return super::cuda_ops::edge_pad(x, pad);
    }
    let (_, _, h, w) = x.dims4()?;
    let clamp = |n: usize| -> candle_core::Result<Tensor> {
        let idx: Vec<u32> = (0..n + 2 * pad)
            .map(|i| i.saturating_sub(pad).min(n - 1) as u32)
            .collect();
        Tensor::new(idx, x.device())
    };
    x.index_select(&clamp(h)?, 2)?.index_select(&clamp(w)?, 3)
}

/// Reflection padding by `pad`, then space to depth by 2 (see
/// [`super::cuda_ops::reflect_pad_s2d`]); odd padded sizes get a zero row or column.
pub fn reflect_pad_space_to_depth2(x: &Tensor, pad: usize) -> candle_core::Result<Tensor> {
    if super::cuda_ops::available_for_inference(x) {
        return super::cuda_ops::reflect_pad_s2d(x, pad);
    }
    let p = reflect_pad(x, pad)?;
    let (n, c, h, w) = p.dims4()?;
    let p = zero_pad(&p, 0, h % 2, 0, w % 2)?;
    let (h, w) = (h.div_ceil(2), w.div_ceil(2));
    p.reshape((n, c, h, 2, w, 2))?
        .permute((0, 1, 3, 5, 2, 4))?
        .reshape((n, 4 * c, h, w))
}

/// `(N, 4C, H, W)` → `(N, C, 2H, 2W)`: output channel `c` at `(2i + a, 2j + b)` is input
/// channel `4c + 2a + b` at `(i, j)`.
pub fn depth_to_space2(x: &Tensor) -> candle_core::Result<Tensor> {
    if super::cuda_ops::available_for_inference(x) {
        return super::cuda_ops::depth_to_space2(x);
    }
    let (n, c4, h, w) = x.dims4()?;
    x.reshape((n, c4 / 4, 2, 2, h, w))?
        .permute((0, 1, 4, 2, 5, 3))?
        .reshape((n, c4 / 4, 2 * h, 2 * w))
}

/// CPU f32 tensors outside autograd take the hand-written inference paths.
pub fn is_plain_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !x.track_op()
}

/// Runs `f` on the f32 values of a CPU tensor in row-major order, without copying
/// when the tensor is already contiguous (the common case between layers).
pub fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let values = cpu.as_slice::<f32>()?;
            let (start, end) = layout
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("tensor is not contiguous".into()))?;
            Ok(f(&values[start..end]))
        }
        _ => candle_core::bail!("expected a CPU tensor"),
    }
}

/// `out[n, c, i, j] = x[n, c, rows[i], cols[j]]`: every padding and nearest-neighbour
/// resize here is such a gather, done in one parallel pass.
fn remap_cpu(x: &Tensor, rows: &[usize], cols: &[usize]) -> candle_core::Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, w) = x.dims4()?;
    let (oh, ow) = (rows.len(), cols.len());
    let mut out = vec![0f32; n * c * oh * ow];
    with_cpu_f32(x, |src| {
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(p, plane)| {
                let sp = &src[p * h * w..(p + 1) * h * w];
                for (i, &r) in rows.iter().enumerate() {
                    let srow = &sp[r * w..(r + 1) * w];
                    for (o, &cidx) in plane[i * ow..(i + 1) * ow].iter_mut().zip(cols) {
                        *o = srow[cidx];
                    }
                }
            })
    })?;
    Tensor::from_vec(out, (n, c, oh, ow), x.device())
}

/// Extends an NCHW tensor to at least `min` rows and columns by repeating the last
/// row/column, so networks whose padding needs a minimum size accept tiny images.
pub fn extend_to_min(x: &Tensor, min: usize) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let mut x = x.clone();
    if h < min {
        x = x.pad_with_same(2, 0, min - h)?;
    }
    if w < min {
        x = x.pad_with_same(3, 0, min - w)?;
    }
    Ok(x)
}

/// Zero-pads top, bottom, left, right.
pub fn zero_pad(x: &Tensor, t: usize, b: usize, l: usize, r: usize) -> candle_core::Result<Tensor> {
    let x = if t + b > 0 {
        x.pad_with_zeros(2, t, b)?
    } else {
        x.clone()
    };
    if l + r > 0 {
        x.pad_with_zeros(3, l, r)
    } else {
        Ok(x)
    }
}

/// A convolution without built-in padding (padding is applied by the caller's mode),
/// optionally without bias (TF fast-style-transfer convs have none).
#[derive(Debug, Clone)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
}

impl Conv {
    pub fn new(
        vb: &VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        bias: bool,
    ) -> candle_core::Result<Self> {
        let weight = vb.get_with_hints(
            (c_out, c_in, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = if bias {
            let bound = 1.0 / ((c_in * k * k) as f64).sqrt();
            Some(vb.get_with_hints(
                c_out,
                "bias",
                candle_nn::Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?)
        } else {
            None
        };
        Ok(Self {
            weight,
            bias,
            stride,
        })
    }
}

impl Conv {
    /// Inference on the CPU goes through [`super::cpu_conv`]; anything that needs
    /// gradients, other dtypes or other devices uses candle's conv.
    fn use_fast_cpu_path(&self, x: &Tensor) -> bool {
        x.device().is_cpu()
            && x.dtype() == DType::F32
            && self.weight.dtype() == DType::F32
            && !self.weight.track_op()
            && !x.track_op()
    }

    fn forward_cpu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c_in, h, w) = x.dims4()?;
        let (c_out, _, k, _) = self.weight.dims4()?;
        let shape = super::cpu_conv::ConvShape {
            c_in,
            h,
            w,
            c_out,
            k,
            stride: self.stride,
        };
        let weight = self.weight.flatten_all()?.to_vec1::<f32>()?;
        let bias = self.bias.as_ref().map(|b| b.to_vec1::<f32>()).transpose()?;
        let mut outs = Vec::with_capacity(n);
        for i in 0..n {
            let y = with_cpu_f32(&x.get(i)?, |xi| {
                super::cpu_conv::conv2d(xi, &weight, bias.as_deref(), shape)
            })?;
            outs.push(Tensor::from_vec(
                y,
                (1, c_out, shape.out_h(), shape.out_w()),
                x.device(),
            )?);
        }
        Tensor::cat(&outs, 0)
    }
}

impl Conv {
    /// The conv for an output that feeds an instance norm, which subtracts each channel's mean
    /// and with it the bias: the bias add (a pass over the output, and in training its gradient,
    /// a reduction, and its accumulation) is skipped. The bias then gets no gradient, which
    /// changes nothing the network computes: its exact gradient is zero (with one, Adam only
    /// turns rounding noise into steps that the norm cancels again). The CPU inference path
    /// adds it for free inside its GEMM.
    pub fn forward_before_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.use_fast_cpu_path(x) {
            return self.forward_cpu(x);
        }
        conv2d_banded(x, &self.weight, self.stride)
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.use_fast_cpu_path(x) {
            return self.forward_cpu(x);
        }
        let y = conv2d_banded(x, &self.weight, self.stride)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }
}

/// Largest im2col buffer one conv call may ask the device for.
const IM2COL_BUDGET_BYTES: usize = 512 << 20;

/// Largest activation (in elements, input or output) one cuDNN call gets in inference. cuDNN
/// works in NHWC internally and transposes NCHW operands within its workspace; past what that
/// workspace holds it falls back to far slower kernels (H100, f16, 3840×2160: the 3-channel
/// output conv, 32 channels in, took 168 ms against 1.5 ms at 1024², 14× for 8× the pixels).
/// Bands of rows this size keep every call in the range where it scales.
/// `ATELIER_BAND_ELEMENTS` sets another size (small values check the banded path on small
/// images).
fn cudnn_band_elements() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("ATELIER_BAND_ELEMENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 26)
    })
}

/// An unpadded conv for any device; differentiable, so training uses it too.
///
/// On CUDA builds with cuDNN it is [`super::gpu_conv::conv2d`] (cuDNN forward and backward
/// passes), in bands of rows for large inference outputs. Otherwise it is candle's conv2d,
/// split on GPUs into bands of rows when candle's im2col buffer would be large (a 9×9 conv
/// over 32 channels needs 10 kB per output pixel: 86 GB at 4K).
pub fn conv2d_banded(x: &Tensor, w: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() {
        // candle's CPU conv already works in small tiles.
        return x.conv2d(w, 0, stride, 1, 1);
    }
    let (n, c_in, _, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let out_w = (wd - k) / stride + 1;
    if super::gpu_conv::available(x, w) {
        if x.track_op() || w.track_op() {
            return super::gpu_conv::conv2d(x, w, stride, 0);
        }
        let c_out = w.dim(0)?;
        // Per output pixel: c_out outputs, and c_in·stride² inputs.
        let per_pixel = (c_in * stride * stride).max(c_out);
        let rows = cudnn_band_elements() / (n * out_w * per_pixel).max(1);
        return super::gpu_conv::conv2d_in_bands(x, w, stride, rows);
    }
    let row_bytes = n * out_w * c_in * k * k * x.dtype().size_in_bytes();
    let rows = IM2COL_BUDGET_BYTES / row_bytes.max(1);
    conv_in_bands(x, k, stride, rows, |band| band.conv2d(w, 0, stride, 1, 1))
}

/// Runs `conv` (a `k`×`k` conv at `stride`, no padding) over bands of at most `rows` output
/// rows (at least one) and stacks the results; one call when everything fits.
fn conv_in_bands(
    x: &Tensor,
    k: usize,
    stride: usize,
    rows: usize,
    conv: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let (_, _, h, _) = x.dims4()?;
    let out_h = (h - k) / stride + 1;
    let rows = rows.max(1);
    if rows >= out_h {
        return conv(x);
    }
    let mut bands = Vec::with_capacity(out_h.div_ceil(rows));
    let mut y0 = 0;
    while y0 < out_h {
        let y1 = (y0 + rows).min(out_h);
        let in0 = y0 * stride;
        let in_rows = (y1 - 1) * stride + k - in0;
        bands.push(conv(&x.narrow(2, in0, in_rows)?)?);
        y0 = y1;
    }
    Tensor::cat(&bands, 2)
}

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
            if let Some(y) = super::cuda_ops::instance_norm_add(x, p, self.eps, residual)? {
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
            && super::cuda_ops::available_for_inference(x)
            && self.weight.dtype() == x.dtype()
            && self.bias.dtype() == x.dtype()
        {
            if let Some(p) = &self.params_f32 {
                let c = self.weight.elem_count();
                let (gamma, beta) = (p.narrow(0, 0, c)?, p.narrow(0, c, c)?);
                return super::cuda_ops::instance_norm(x, &gamma, &beta, self.eps, relu);
            }
            return super::cuda_ops::instance_norm(x, &self.weight, &self.bias, self.eps, relu);
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
            if let Some(y) = super::cuda_ops::scale_shift(x, &ss, relu)? {
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
    if let Some(m) = super::cuda_ops::plane_moments(x)? {
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

/// Largest absolute element-wise difference (for tests comparing two computations).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_matches_pytorch() {
        let x = Tensor::arange(0f32, 4., &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 1, 4))
            .unwrap();
        let x = x.pad_with_same(2, 1, 1).unwrap();
        let y = reflect_pad(&x, 2).unwrap();
        let row: Vec<f32> = y
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(row, vec![2., 1., 0., 1., 2., 3., 2., 1.]);
    }

    #[test]
    fn banded_conv_equals_one_conv() {
        let x = Tensor::randn(0f32, 1., (2, 5, 23, 17), &Device::Cpu).unwrap();
        let w = Tensor::randn(0f32, 1., (4, 5, 3, 3), &Device::Cpu).unwrap();
        for stride in [1, 2] {
            let whole = x.conv2d(&w, 0, stride, 1, 1).unwrap();
            for rows in [1, 4] {
                let banded =
                    conv_in_bands(&x, 3, stride, rows, |b| b.conv2d(&w, 0, stride, 1, 1)).unwrap();
                assert!(max_abs_diff(&whole, &banded) < 1e-4);
            }
        }
    }

    #[test]
    fn banded_conv_has_the_same_gradients() {
        let x = candle_core::Var::randn(0f32, 1., (2, 3, 19, 11), &Device::Cpu).unwrap();
        let w = candle_core::Var::randn(0f32, 1., (4, 3, 3, 3), &Device::Cpu).unwrap();
        let grads = |banded: bool| {
            let y = if banded {
                conv_in_bands(x.as_tensor(), 3, 1, 2, |b| {
                    b.conv2d(w.as_tensor(), 0, 1, 1, 1)
                })
                .unwrap()
            } else {
                x.as_tensor().conv2d(w.as_tensor(), 0, 1, 1, 1).unwrap()
            };
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            (
                g.get(x.as_tensor()).unwrap().clone(),
                g.get(w.as_tensor()).unwrap().clone(),
            )
        };
        let (gx1, gw1) = grads(false);
        let (gx2, gw2) = grads(true);
        let d = max_abs_diff;
        // Relative to the gradients' size: only the f32 summation order differs.
        let scale = |a: &Tensor| {
            a.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(d(&gx1, &gx2) <= 1e-5 * scale(&gx1));
        assert!(d(&gw1, &gw2) <= 1e-5 * scale(&gw1));
    }

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
