//! The pytorch/examples `fast_neural_style` TransformerNet (Johnson et al. 2016 with
//! Ulyanov's instance norm): reflection padding, nearest ×2 upsampling then conv,
//! affine instance norm (ε = 1e-5), RGB 0..255 in and out. Parameter names match the
//! PyTorch `state_dict`, so imported checkpoints load without renaming.

use super::layers::{
    extend_to_min, reflect_pad, upsample2_reflect_pad, Conv, InstanceNorm, NormCtx,
};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

const EPS: f64 = 1e-5;
/// Reflection padding of the 9×9 convs needs at least 5 rows and columns.
const MIN_SIDE: usize = 5;
pub const NORM_LAYERS: usize = 15;

#[derive(Debug, Clone)]
struct ConvLayer {
    conv: Conv,
    pad: usize,
    upsample: bool,
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
        Ok(Self {
            conv: Conv::new(&vb.pp("conv2d"), c_in, c_out, k, stride, true)?,
            pad: k / 2,
            upsample: up,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let padded = if self.upsample {
            upsample2_reflect_pad(x, self.pad)?
        } else {
            reflect_pad(x, self.pad)?
        };
        self.conv.forward(&padded)
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

macro_rules! norm_or_stop {
    ($ctx:expr, $i:expr, $scale:expr, $x:expr, $layer:expr, $relu:expr) => {
        match $ctx.norm($i, $scale, &$x, &$layer, $relu)? {
            Some(y) => y,
            None => return Ok(None),
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

    /// Runs the network; `None` when the context stopped the pass early.
    pub fn forward_ctx(&self, x: &Tensor, ctx: &mut NormCtx) -> Result<Option<Tensor>> {
        let (_, _, h, w) = x.dims4()?;
        let x = extend_to_min(x, MIN_SIDE)?;
        let y = self.conv1.forward(&x)?;
        let y = norm_or_stop!(ctx, 0, 1, y, self.in1, true);
        let y = self.conv2.forward(&y)?;
        let y = norm_or_stop!(ctx, 1, 2, y, self.in2, true);
        let y = self.conv3.forward(&y)?;
        let mut y = norm_or_stop!(ctx, 2, 4, y, self.in3, true);
        for (i, r) in self.res.iter().enumerate() {
            let t = r.conv1.forward(&y)?;
            let t = norm_or_stop!(ctx, 3 + 2 * i, 4, t, r.in1, true);
            let t = r.conv2.forward(&t)?;
            let t = norm_or_stop!(ctx, 4 + 2 * i, 4, t, r.in2, false);
            y = (y + t)?;
        }
        let y = self.deconv1.forward(&y)?;
        let y = norm_or_stop!(ctx, 13, 2, y, self.in4, true);
        let y = self.deconv2.forward(&y)?;
        let y = norm_or_stop!(ctx, 14, 1, y, self.in5, true);
        let y = self.deconv3.forward(&y)?;
        // Two stride-2 convs then two ×2 upsamplings round odd sizes up: crop back.
        Ok(Some(y.narrow(2, 0, h)?.narrow(3, 0, w)?))
    }
}
