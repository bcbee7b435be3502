//! The convolution layer of the style networks: weights and optional bias from a
//! [`VarBuilder`], padding left to the caller (each network has its own padding mode).

use crate::ops::conv::conv2d_banded;
use crate::ops::pad::with_cpu_f32;
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;

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
    /// Inference on the CPU goes through [`crate::ops::cpu_conv`]; anything that needs
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
        let shape = crate::ops::cpu_conv::ConvShape {
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
                crate::ops::cpu_conv::conv2d(xi, &weight, bias.as_deref(), shape)
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
