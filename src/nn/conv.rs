//! The convolution layer of the style networks: weights and optional bias from a
//! [`VarBuilder`], padding left to the caller (each network has its own padding mode).

use crate::ops::conv;
use candle_core::{Module, Tensor};
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
    /// The conv for an output that feeds an instance norm, which subtracts each channel's mean
    /// and with it the bias: the bias add (a pass over the output, and in training its gradient,
    /// a reduction, and its accumulation) is skipped. The bias then gets no gradient, which
    /// changes nothing the network computes: its exact gradient is zero (with one, Adam only
    /// turns rounding noise into steps that the norm cancels again). The CPU inference path
    /// adds it for free inside its GEMM.
    pub fn forward_before_norm(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv::conv2d_before_norm(x, &self.weight, self.bias.as_ref(), self.stride)
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        conv::conv2d(x, &self.weight, self.bias.as_ref(), self.stride)
    }
}
