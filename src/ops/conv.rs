//! The unpadded convolution every network layer calls, on whichever path the device has:
//! the hand-written CPU conv for inference ([`super::cpu_conv`]), cuDNN ([`super::cudnn`]) on
//! CUDA builds with it, candle's conv otherwise, in bands of rows where one call would be too
//! large.

use super::pad::with_cpu_f32;
use candle_core::{DType, Tensor};

/// `x ⋆ w + bias` (no padding) on any device: the hand-written CPU conv for inference on the
/// CPU, [`conv2d_banded`] and a bias add elsewhere.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if cpu_inference(x, w) {
        return conv2d_cpu(x, w, bias, stride);
    }
    let y = conv2d_banded(x, w, stride)?;
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
        None => Ok(y),
    }
}

/// [`conv2d`] for an output that feeds an instance norm, which cancels the bias: the bias add
/// is skipped, except on the CPU inference path, which adds it for free inside its GEMM.
pub fn conv2d_before_norm(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
) -> candle_core::Result<Tensor> {
    if cpu_inference(x, w) {
        return conv2d_cpu(x, w, bias, stride);
    }
    conv2d_banded(x, w, stride)
}

/// `x ⋆ w` with zero padding `pad`: inside cuDNN where it runs (no padded copy forward or
/// backward), a padded copy and [`conv2d`] elsewhere.
pub fn conv2d_zero_padded(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    if super::cudnn::available(x, w) {
        return super::cudnn::conv2d(x, w, stride, pad);
    }
    let padded = x.pad_with_zeros(2, pad, pad)?.pad_with_zeros(3, pad, pad)?;
    conv2d(&padded, w, None, stride)
}

/// Inference on the CPU goes through [`super::cpu_conv`]; anything that needs gradients, other
/// dtypes or other devices uses candle's conv.
fn cpu_inference(x: &Tensor, w: &Tensor) -> bool {
    x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && !w.track_op()
        && !x.track_op()
}

fn conv2d_cpu(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
) -> candle_core::Result<Tensor> {
    let (n, c_in, h, wd) = x.dims4()?;
    let (c_out, _, k, _) = w.dims4()?;
    let shape = super::cpu_conv::ConvShape {
        c_in,
        h,
        w: wd,
        c_out,
        k,
        stride,
    };
    let weight = w.flatten_all()?.to_vec1::<f32>()?;
    let bias = bias.map(|b| b.to_vec1::<f32>()).transpose()?;
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

/// Largest im2col buffer one conv call may ask the device for.
const IM2COL_BUDGET_BYTES: usize = 512 << 20;

/// Largest activation (in elements, input or output) one cuDNN call gets in inference. cuDNN
/// works in NHWC internally and transposes NCHW operands within its workspace; past what that
/// workspace holds it falls back to far slower kernels (at 4K, the 9×9 output conv ran about
/// ten times slower than its pixel count predicts: `docs/benchmarks.md`, stop 10). Bands of
/// rows this size keep every call in the range where it scales.
/// [`Tuning::cudnn_band_elements`](crate::tuning::Tuning::cudnn_band_elements) sets another
/// size (small values check the banded path on small images).
fn cudnn_band_elements() -> usize {
    crate::tuning::current().cudnn_band_elements
}

/// An unpadded conv for any device; differentiable, so training uses it too.
///
/// On CUDA builds with cuDNN it is [`super::cudnn::conv2d`] (cuDNN forward and backward
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
    if super::cudnn::available(x, w) {
        if x.track_op() || w.track_op() {
            return super::cudnn::conv2d(x, w, stride, 0);
        }
        let c_out = w.dim(0)?;
        // Per output pixel: c_out outputs, and c_in·stride² inputs.
        let per_pixel = (c_in * stride * stride).max(c_out);
        let rows = cudnn_band_elements() / (n * out_w * per_pixel).max(1);
        return super::cudnn::conv2d_in_bands(x, w, stride, rows);
    }
    let row_bytes = n * out_w * c_in * k * k * x.dtype().size_in_bytes();
    let rows = IM2COL_BUDGET_BYTES / row_bytes.max(1);
    conv_in_bands(x, k, stride, rows, |band| band.conv2d(w, 0, stride, 1, 1))
}

/// Gradient of the conv with weights `w` (zero padding `pad`, `stride`) with respect to its
/// input of `x_dims`, from the output gradient `g`: cuDNN's backward-data pass where it runs,
/// autograd on the conv elsewhere.
pub fn conv2d_input_grad(
    g: &Tensor,
    w: &Tensor,
    x_dims: [usize; 4],
    stride: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    if super::cudnn::available(g, w) {
        return super::cudnn::conv2d_input_grad(g, w, x_dims, stride, pad);
    }
    // The conv is linear in its input: the gradient does not depend on where it is taken.
    let v = candle_core::Var::zeros(x_dims.to_vec(), g.dtype(), g.device())?;
    let y = v.as_tensor().conv2d(&w.detach(), pad, stride, 1, 1)?;
    super::grad_through(&v, &y, g)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::max_abs_diff;
    use candle_core::Device;

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
}
