//! Engstrom's TensorFlow `fast-style-transfer` network: TF 'SAME' zero padding (the
//! odd extra pixel goes bottom/right), bias-free convs each followed by instance norm
//! (ε = 1e-3), stride-2 conv-transposes, and a `tanh·150 + 127.5` output.

use super::conv::Conv;
use super::johnson::norm_or_stop;
use super::norm::{Flow, InstanceNorm, NormCtx};
use crate::ops::pad::zero_pad;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

const EPS: f64 = 1e-3;
pub const NORM_LAYERS: usize = 16;
/// Input pixels per feature-map pixel at the input of each norm layer.
pub const NORM_SCALES: [usize; NORM_LAYERS] = [1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 1, 1];

/// TF 'SAME' padding for one dimension: (before, after).
fn same_padding(n: usize, k: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + k).saturating_sub(n);
    (total / 2, total - total / 2)
}

#[derive(Debug, Clone)]
struct SameConv {
    conv: Conv,
    k: usize,
}

impl SameConv {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, k: usize, stride: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv::new(&vb, c_in, c_out, k, stride, false)?,
            k,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (t, b) = same_padding(h, self.k, self.conv.stride);
        let (l, r) = same_padding(w, self.k, self.conv.stride);
        self.conv.forward(&zero_pad(x, t, b, l, r)?)
    }
}

/// Stride-2, 3×3 transposed conv with TF 'SAME' semantics: output exactly 2× input.
#[derive(Debug, Clone)]
struct UpConv {
    weight: Tensor,
}

impl UpConv {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize) -> Result<Self> {
        let weight = vb.get_with_hints(
            (c_in, c_out, 3, 3),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        Ok(Self { weight })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        // Unpadded it yields 2n+1; TF's SAME places the extra row/column at the end.
        let y = x.conv_transpose2d(&self.weight, 0, 0, 2, 1)?;
        y.narrow(2, 0, 2 * h)?.narrow(3, 0, 2 * w)
    }
}

#[derive(Debug, Clone)]
struct Residual {
    conv1: SameConv,
    in1: InstanceNorm,
    conv2: SameConv,
    in2: InstanceNorm,
}

#[derive(Debug, Clone)]
pub struct FstNet {
    conv1: SameConv,
    in1: InstanceNorm,
    conv2: SameConv,
    in2: InstanceNorm,
    conv3: SameConv,
    in3: InstanceNorm,
    res: Vec<Residual>,
    deconv1: UpConv,
    in4: InstanceNorm,
    deconv2: UpConv,
    in5: InstanceNorm,
    deconv3: SameConv,
    in6: InstanceNorm,
}

impl FstNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let res = (1..=5)
            .map(|i| {
                let vb = vb.pp(format!("res{i}"));
                Ok(Residual {
                    conv1: SameConv::new(vb.pp("conv1"), 128, 128, 3, 1)?,
                    in1: InstanceNorm::new(&vb.pp("in1"), 128, EPS)?,
                    conv2: SameConv::new(vb.pp("conv2"), 128, 128, 3, 1)?,
                    in2: InstanceNorm::new(&vb.pp("in2"), 128, EPS)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1: SameConv::new(vb.pp("conv1"), 3, 32, 9, 1)?,
            in1: InstanceNorm::new(&vb.pp("in1"), 32, EPS)?,
            conv2: SameConv::new(vb.pp("conv2"), 32, 64, 3, 2)?,
            in2: InstanceNorm::new(&vb.pp("in2"), 64, EPS)?,
            conv3: SameConv::new(vb.pp("conv3"), 64, 128, 3, 2)?,
            in3: InstanceNorm::new(&vb.pp("in3"), 128, EPS)?,
            res,
            deconv1: UpConv::new(vb.pp("deconv1"), 128, 64)?,
            in4: InstanceNorm::new(&vb.pp("in4"), 64, EPS)?,
            deconv2: UpConv::new(vb.pp("deconv2"), 64, 32)?,
            in5: InstanceNorm::new(&vb.pp("in5"), 32, EPS)?,
            deconv3: SameConv::new(vb.pp("deconv3"), 32, 3, 9, 1)?,
            in6: InstanceNorm::new(&vb.pp("in6"), 3, EPS)?,
        })
    }

    pub fn forward_ctx(&self, x: &Tensor, ctx: &mut NormCtx) -> crate::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let y = self.conv1.forward(x)?;
        let y = norm_or_stop!(ctx, 0, y, self.in1, true);
        let y = self.conv2.forward(&y)?;
        let y = norm_or_stop!(ctx, 1, y, self.in2, true);
        let y = self.conv3.forward(&y)?;
        let mut y = norm_or_stop!(ctx, 2, y, self.in3, true);
        for (i, r) in self.res.iter().enumerate() {
            let t = r.conv1.forward(&y)?;
            let t = norm_or_stop!(ctx, 3 + 2 * i, t, r.in1, true);
            let t = r.conv2.forward(&t)?;
            let t = norm_or_stop!(ctx, 4 + 2 * i, t, r.in2, false);
            y = (y + t)?;
        }
        let y = self.deconv1.forward(&y)?;
        let y = norm_or_stop!(ctx, 13, y, self.in4, true);
        let y = self.deconv2.forward(&y)?;
        let y = norm_or_stop!(ctx, 14, y, self.in5, true);
        let y = self.deconv3.forward(&y)?;
        let y = norm_or_stop!(ctx, 15, y, self.in6, false);
        let y = ((y.tanh()? * 150.0)? + 127.5)?;
        Ok(y.narrow(2, 0, h)?.narrow(3, 0, w)?)
    }
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn same_padding_follows_tensorflow() {
        assert_eq!(same_padding(474, 3, 2), (0, 1));
        assert_eq!(same_padding(237, 3, 2), (1, 1));
        assert_eq!(same_padding(10, 9, 1), (4, 4));
        assert_eq!(same_padding(1, 3, 2), (1, 1));
    }
}
