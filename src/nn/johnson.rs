//! The pytorch/examples `fast_neural_style` TransformerNet (Johnson et al. 2016 with
//! Ulyanov's instance norm): reflection padding, nearest ×2 upsampling then conv,
//! affine instance norm (ε = 1e-5), RGB 0..255 in and out. Parameter names match the
//! PyTorch `state_dict`, so imported checkpoints load without renaming.

use super::conv::Conv;
use super::norm::{Flow, InstanceNorm, NormCtx};
use crate::ops::conv_rewrite::FastConv;
use crate::ops::pad::{extend_to_min, reflect_pad, upsample2_reflect_pad};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

const EPS: f64 = 1e-5;
/// Reflection padding of the 9×9 convs needs at least 5 rows and columns.
const MIN_SIDE: usize = 5;
pub const NORM_LAYERS: usize = 15;
/// Input pixels per feature-map pixel at the input of each norm layer.
pub const NORM_SCALES: [usize; NORM_LAYERS] = [1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 1];

/// Whether the 3-channel input conv takes the twice-blocked form
/// ([`Tuning::input_blocked`](crate::tuning::Tuning::input_blocked) off keeps cuDNN's direct
/// form, for comparisons).
fn input_blocked() -> bool {
    crate::tuning::current().input_blocked
}

#[derive(Debug, Clone)]
struct ConvLayer {
    conv: Conv,
    pad: usize,
    upsample: bool,
    /// An equivalent, faster form for CUDA inference (see [`FastConv`]).
    fast: Option<FastConv>,
}

impl ConvLayer {
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        up: bool,
    ) -> Result<Self> {
        let conv = Conv::new(&vb.pp("conv2d"), c_in, c_out, k, stride, true)?;
        let pad = k / 2;
        // Which rewrites pay was measured (see conv_rewrite.rs): the stride-2 one only for the
        // 32-channel layer.
        let fast = match (FastConv::applies(&conv.weight), up, k, stride) {
            (true, true, 3, 1) => Some(FastConv::subpixel(&conv.weight)?),
            (true, false, 3, 2) if c_in <= 32 => Some(FastConv::strided(&conv.weight)?),
            (true, false, 9, 1) if c_in > 3 => Some(FastConv::blocked(&conv.weight)?),
            (true, false, 9, 1) if input_blocked() => Some(FastConv::blocked4(&conv.weight)?),
            _ => None,
        };
        Ok(Self {
            conv,
            pad,
            upsample: up,
            fast,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match (&self.fast, &self.conv.bias) {
            (Some(f), Some(b)) => f.forward(x)?.broadcast_add(&b.reshape((1, (), 1, 1))?),
            (Some(f), None) => f.forward(x),
            (None, _) => self.conv.forward(&self.pad(x)?),
        }
    }

    /// The last layer: half-precision networks return f32 (fused into one pass where
    /// [`FastConv::forward_output`] allows), others their own dtype.
    fn forward_output(&self, x: &Tensor) -> Result<Tensor> {
        if let (Some(f), Some(b)) = (&self.fast, &self.conv.bias) {
            if let Some(y) = f.forward_output(x, b)? {
                return Ok(y);
            }
        }
        let y = self.forward(x)?;
        if y.dtype() == candle_core::DType::F16 {
            y.to_dtype(candle_core::DType::F32)
        } else {
            Ok(y)
        }
    }

    /// For a conv whose output goes straight into an instance norm, which subtracts the
    /// per-channel mean and with it any bias: the bias add (a full pass over the output)
    /// is skipped where [`Conv::forward_before_norm`] allows.
    fn forward_before_norm(&self, x: &Tensor) -> Result<Tensor> {
        match &self.fast {
            Some(f) => f.forward(x),
            None => self.conv.forward_before_norm(&self.pad(x)?),
        }
    }

    fn pad(&self, x: &Tensor) -> Result<Tensor> {
        if self.upsample {
            upsample2_reflect_pad(x, self.pad)
        } else {
            reflect_pad(x, self.pad)
        }
    }
}

#[derive(Debug, Clone)]
struct Residual {
    conv1: ConvLayer,
    in1: InstanceNorm,
    conv2: ConvLayer,
    in2: InstanceNorm,
}

#[derive(Debug, Clone)]
pub struct JohnsonNet {
    conv1: ConvLayer,
    in1: InstanceNorm,
    conv2: ConvLayer,
    in2: InstanceNorm,
    conv3: ConvLayer,
    in3: InstanceNorm,
    res: Vec<Residual>,
    deconv1: ConvLayer,
    in4: InstanceNorm,
    deconv2: ConvLayer,
    in5: InstanceNorm,
    deconv3: ConvLayer,
}

/// The norm's output, or the end of the pass with what the context asked for.
macro_rules! norm_or_stop {
    ($ctx:expr, $i:expr, $x:expr, $layer:expr, $relu:expr) => {
        match $ctx.norm($i, $x, &$layer, $relu)? {
            Flow::Next(y) => y,
            Flow::Stop(y) => return Ok(y),
        }
    };
}
pub(crate) use norm_or_stop;

impl JohnsonNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let res = (1..=5)
            .map(|i| {
                let vb = vb.pp(format!("res{i}"));
                Ok(Residual {
                    conv1: ConvLayer::new(vb.pp("conv1"), 128, 128, 3, 1, false)?,
                    in1: InstanceNorm::new(&vb.pp("in1"), 128, EPS)?,
                    conv2: ConvLayer::new(vb.pp("conv2"), 128, 128, 3, 1, false)?,
                    in2: InstanceNorm::new(&vb.pp("in2"), 128, EPS)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1: ConvLayer::new(vb.pp("conv1"), 3, 32, 9, 1, false)?,
            in1: InstanceNorm::new(&vb.pp("in1"), 32, EPS)?,
            conv2: ConvLayer::new(vb.pp("conv2"), 32, 64, 3, 2, false)?,
            in2: InstanceNorm::new(&vb.pp("in2"), 64, EPS)?,
            conv3: ConvLayer::new(vb.pp("conv3"), 64, 128, 3, 2, false)?,
            in3: InstanceNorm::new(&vb.pp("in3"), 128, EPS)?,
            res,
            deconv1: ConvLayer::new(vb.pp("deconv1"), 128, 64, 3, 1, true)?,
            in4: InstanceNorm::new(&vb.pp("in4"), 64, EPS)?,
            deconv2: ConvLayer::new(vb.pp("deconv2"), 64, 32, 3, 1, true)?,
            in5: InstanceNorm::new(&vb.pp("in5"), 32, EPS)?,
            deconv3: ConvLayer::new(vb.pp("deconv3"), 32, 3, 9, 1, false)?,
        })
    }

    /// The input conv's weight (see [`super::StyleNet::first_weight`]).
    pub fn first_weight(&self) -> &Tensor {
        &self.conv1.conv.weight
    }

    /// Runs the network with its norms steered by `ctx` (see [`NormCtx`]).
    ///
    /// Computes in the parameters' dtype (f16 for half-precision inference) and returns f32.
    /// Each activation is dropped as soon as the next exists, so the peak is about two
    /// activations rather than all of them (at 3840×2160 that is what keeps inference
    /// within about 2 GB).
    pub fn forward_ctx(&self, x: &Tensor, ctx: &mut NormCtx) -> crate::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let mut y = extend_to_min(&x.to_dtype(self.in1.weight.dtype())?, MIN_SIDE)?;
        y = self.conv1.forward_before_norm(&y)?;
        y = norm_or_stop!(ctx, 0, y, self.in1, true);
        y = self.conv2.forward_before_norm(&y)?;
        y = norm_or_stop!(ctx, 1, y, self.in2, true);
        y = self.conv3.forward_before_norm(&y)?;
        y = norm_or_stop!(ctx, 2, y, self.in3, true);
        for (i, r) in self.res.iter().enumerate() {
            let mut t = r.conv1.forward_before_norm(&y)?;
            t = norm_or_stop!(ctx, 3 + 2 * i, t, r.in1, true);
            t = r.conv2.forward_before_norm(&t)?;
            y = match ctx.norm_add(4 + 2 * i, t, &r.in2, &y)? {
                Flow::Next(sum) => sum,
                Flow::Stop(t) => return Ok(t),
            };
        }
        y = self.deconv1.forward_before_norm(&y)?;
        y = norm_or_stop!(ctx, 13, y, self.in4, true);
        y = self.deconv2.forward_before_norm(&y)?;
        y = norm_or_stop!(ctx, 14, y, self.in5, true);
        y = self.deconv3.forward_output(&y)?;
        // Two stride-2 convs then two ×2 upsamplings round odd sizes up: crop back.
        Ok(y.narrow(2, 0, h)?.narrow(3, 0, w)?)
    }
}
