//! Magenta's arbitrary-style networks (Ghiasi et al., BMVC 2017), as published int8 on TF Hub
//! and run here in float: a style *predictor* (a distilled MobileNetV2) turns any painting
//! into a 100-value style vector, and a style *transformer* repaints a photo under the
//! conditional instance norms that vector drives. No training per style: any painting is a
//! style at once.
//!
//! Parameter names are the TensorFlow scopes of the graph with `/` as `.`, so the importer
//! ([`crate::model::magenta_import`]) needs no renaming table.

use super::conv::Conv;
use super::norm::{Flow, InstanceNorm, NormCtx};
use crate::ops::pad::{reflect_pad, upsample2_reflect_pad};
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Length of the style vector.
pub const STYLE_DIM: usize = 100;
/// The predictor's input side: paintings are resized to this square.
pub const PREDICTOR_SIDE: usize = 256;
/// The transformer halves the size twice and doubles it back: sides must be multiples of 4.
pub const SIDE_MULTIPLE: usize = 4;
/// Reflection padding of the 9×9 convs needs more than 4 pixels per side, at a quarter size too.
pub const MIN_SIDE: usize = 20;
/// MobileNetV2's inverted-residual stages: (expansion, output channels, blocks, first stride).
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// A convolution with TensorFlow's "SAME" padding (the extra pixel, if any, at the bottom and
/// right), any group count, and an optional ReLU6.
#[derive(Debug, Clone)]
struct SameConv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    groups: usize,
    relu6: bool,
}

impl SameConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
    ) -> Result<Self> {
        let weight = vb.get_with_hints(
            (c_out, c_in / groups, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = vb.get_with_hints(c_out, "bias", candle_nn::Init::Const(0.0))?;
        Ok(Self {
            weight,
            bias,
            stride,
            groups,
            relu6,
        })
    }

    fn same_pad(size: usize, k: usize, stride: usize) -> (usize, usize) {
        let out = size.div_ceil(stride);
        let total = ((out - 1) * stride + k).saturating_sub(size);
        (total / 2, total - total / 2)
    }
}

impl Module for SameConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let k = self.weight.dim(3)?;
        let (top, bottom) = Self::same_pad(h, k, self.stride);
        let (left, right) = Self::same_pad(w, k, self.stride);
        if self.groups > 1 && x.device().is_cpu() && x.dtype() == DType::F32 {
            // candle runs a grouped conv as one conv per group: 960 tiny calls per layer,
            // 50× slower than this direct loop, which also pads, adds the bias and clamps.
            let pads = [top, bottom, left, right];
            return depthwise_cpu(x, &self.weight, &self.bias, pads, self.stride, self.relu6);
        }
        let x = if top == bottom && left == right && top == left {
            x.clone()
        } else {
            x.pad_with_zeros(2, top, bottom)?
                .pad_with_zeros(3, left, right)?
        };
        let p = if top == bottom && left == right && top == left {
            top
        } else {
            0
        };
        let y = if k == 1 && self.stride == 1 && self.groups == 1 {
            // A pointwise conv is one matrix product; candle's conv2d would unfold it first.
            let (n, c, h, w) = x.dims4()?;
            let o = self.weight.dim(0)?;
            self.weight
                .reshape((1, o, c))?
                .broadcast_matmul(&x.reshape((n, c, h * w))?)?
                .reshape((n, o, h, w))?
        } else {
            x.conv2d(&self.weight, p, self.stride, 1, self.groups)?
        };
        if y.device().is_cpu() && y.dtype() == DType::F32 {
            return bias_relu6_cpu(&y, &self.bias, self.relu6);
        }
        let y = y.broadcast_add(&self.bias.reshape((1, (), 1, 1))?)?;
        if self.relu6 {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// `y + bias` per channel, then ReLU6 if asked, in one parallel pass over an f32 NCHW tensor
/// on the CPU (candle's two ops are two single-threaded passes).
fn bias_relu6_cpu(y: &Tensor, bias: &Tensor, relu6: bool) -> Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, w) = y.dims4()?;
    let mut v = y.flatten_all()?.to_vec1::<f32>()?;
    let bs = bias.flatten_all()?.to_vec1::<f32>()?;
    v.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, p)| add_bias_relu6(p, bs[plane % c], relu6));
    Tensor::from_vec(v, (n, c, h, w), y.device())
}

/// One channel's plane: `+ bias`, then ReLU6 if asked.
fn add_bias_relu6(plane: &mut [f32], bias: f32, relu6: bool) {
    for x in plane.iter_mut() {
        *x += bias;
        if relu6 {
            *x = x.clamp(0.0, 6.0);
        }
    }
}

/// A depthwise (one filter per channel) conv of an f32 NCHW tensor on the CPU, zero-padded by
/// `[top, bottom, left, right]`, plus the bias, then ReLU6 if asked. Each plane is copied into
/// a zero-bordered buffer first so the inner loops run over whole rows without bounds tests
/// (they vectorise at stride 1), and bias and clamp happen in the same pass: the predictor's
/// depthwise layers went from about 36 ms to a few ms of a 256² painting on the 2-core VM. The
/// sums run in the same order as a per-pixel loop.
fn depthwise_cpu(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    [top, bottom, left, right]: [usize; 4],
    stride: usize,
    relu6: bool,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let (n, c, h, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let (ph, pw) = (h + top + bottom, wd + left + right);
    let (oh, ow) = ((ph - k) / stride + 1, (pw - k) / stride + 1);
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let ws = w.flatten_all()?.to_vec1::<f32>()?;
    let bs = bias.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; n * c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(plane, o)| {
            let ch = plane % c;
            let src = &xs[plane * h * wd..][..h * wd];
            let f = &ws[ch * k * k..][..k * k];
            let mut padded = vec![0f32; ph * pw];
            for (y, row) in src.chunks_exact(wd).enumerate() {
                padded[(y + top) * pw + left..][..wd].copy_from_slice(row);
            }
            for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
                for ky in 0..k {
                    let irow = &padded[(oy * stride + ky) * pw..][..pw];
                    for kx in 0..k {
                        let wv = f[ky * k + kx];
                        if stride == 1 {
                            for (ov, iv) in orow.iter_mut().zip(&irow[kx..kx + ow]) {
                                *ov += iv * wv;
                            }
                        } else {
                            for (ox, ov) in orow.iter_mut().enumerate() {
                                *ov += irow[ox * stride + kx] * wv;
                            }
                        }
                    }
                }
            }
            add_bias_relu6(o, bs[ch], relu6);
        });
    Tensor::from_vec(out, (n, c, oh, ow), x.device())
}

/// One inverted residual: 1×1 expand, 3×3 depthwise, 1×1 linear projection, plus the input
/// when shapes allow.
#[derive(Debug, Clone)]
struct InvertedResidual {
    expand: Option<SameConv>,
    depthwise: SameConv,
    project: SameConv,
    residual: bool,
}

impl InvertedResidual {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, t: usize, stride: usize) -> Result<Self> {
        let hidden = c_in * t;
        let expand = if t == 1 {
            None
        } else {
            Some(SameConv::new(vb.pp("expand"), c_in, hidden, 1, 1, 1, true)?)
        };
        Ok(Self {
            expand,
            depthwise: SameConv::new(vb.pp("depthwise"), hidden, hidden, 3, stride, hidden, true)?,
            project: SameConv::new(vb.pp("project"), hidden, c_out, 1, 1, 1, false)?,
            residual: stride == 1 && c_in == c_out,
        })
    }
}

impl Module for InvertedResidual {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = match &self.expand {
            Some(e) => e.forward(x)?,
            None => x.clone(),
        };
        let y = self.project.forward(&self.depthwise.forward(&h)?)?;
        if self.residual {
            y + x
        } else {
            Ok(y)
        }
    }
}

/// Painting → style vector: MobileNetV2 (width 1.0) → global average → 1×1 conv to 100 values.
#[derive(Debug, Clone)]
pub struct StylePredictor {
    stem: SameConv,
    blocks: Vec<InvertedResidual>,
    head: SameConv,
    bottleneck: SameConv,
}

impl StylePredictor {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let m = vb.pp("MobilenetV2");
        let stem = SameConv::new(m.pp("Conv"), 3, 32, 3, 2, 1, true)?;
        let mut blocks = Vec::new();
        let mut c_in = 32;
        for (t, c, n, s) in STAGES {
            for i in 0..n {
                let name = match blocks.len() {
                    0 => "expanded_conv".to_string(),
                    k => format!("expanded_conv_{k}"),
                };
                let stride = if i == 0 { s } else { 1 };
                blocks.push(InvertedResidual::new(m.pp(name), c_in, c, t, stride)?);
                c_in = c;
            }
        }
        let head = SameConv::new(m.pp("Conv_1"), c_in, 1280, 1, 1, 1, true)?;
        let bottleneck = SameConv::new(
            vb.pp("mobilenet_conv").pp("Conv"),
            1280,
            STYLE_DIM,
            1,
            1,
            1,
            false,
        )?;
        Ok(Self {
            stem,
            blocks,
            head,
            bottleneck,
        })
    }

    /// The output of inverted-residual block `block` (0-based, of 17) for `(N, 3, H, W)` RGB
    /// 0..1 at any size: a mid-level view of a picture's layout from a network that no style
    /// loss here reads (`atelier eval`'s second opinion).
    pub fn block_features(&self, x: &Tensor, block: usize) -> Result<Tensor> {
        if block >= self.blocks.len() {
            candle_core::bail!(
                "the predictor has {} blocks, not {}",
                self.blocks.len(),
                block + 1
            );
        }
        let mut y = self.stem.forward(x)?;
        for b in &self.blocks[..=block] {
            y = b.forward(&y)?;
        }
        Ok(y)
    }

    /// `(N, 3, 256, 256)` RGB 0..1 → `(N, 100)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h != PREDICTOR_SIDE || w != PREDICTOR_SIDE {
            candle_core::bail!(
                "the style predictor takes (N, 3, {PREDICTOR_SIDE}, {PREDICTOR_SIDE}) paintings, not {:?}",
                x.dims()
            );
        }
        let mut y = self.stem.forward(x)?;
        for b in &self.blocks {
            y = b.forward(&y)?;
        }
        let pooled = self
            .head
            .forward(&y)?
            .mean_keepdim(D::Minus1)?
            .mean_keepdim(2)?;
        self.bottleneck.forward(&pooled)?.flatten_from(1)
    }
}

/// Instance norm whose scale and shift are computed from the style vector
/// (`gamma = Conv_1(v)`, `beta = Conv(v)`, two 1×1 convs in the original graph).
#[derive(Debug, Clone)]
struct ConditionalNorm {
    gamma: candle_nn::Linear,
    beta: candle_nn::Linear,
}

impl ConditionalNorm {
    fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let linear = |vb: VarBuilder| -> Result<candle_nn::Linear> {
            let w = vb.get_with_hints(
                (channels, STYLE_DIM, 1, 1),
                "weight",
                candle_nn::init::DEFAULT_KAIMING_NORMAL,
            )?;
            let b = vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?;
            Ok(candle_nn::Linear::new(
                w.reshape((channels, STYLE_DIM))?,
                Some(b),
            ))
        };
        Ok(Self {
            gamma: linear(vb.pp("Conv_1"))?,
            beta: linear(vb.pp("Conv"))?,
        })
    }

    /// The plain instance norm this layer is under one style vector `(1, 100)`: computed once
    /// per style, so every pass (whole, tiled, video) normalises through the shared
    /// [`NormCtx`] machinery.
    fn for_style(&self, style: &Tensor, eps: f64) -> Result<InstanceNorm> {
        let gamma = self.gamma.forward(style)?.flatten_all()?;
        let beta = self.beta.forward(style)?.flatten_all()?;
        InstanceNorm::from_tensors(gamma, beta, eps)
    }
}

/// A reflect-padded conv, optionally after a nearest ×2 upsampling, with an optional
/// conditional norm after it.
#[derive(Debug, Clone)]
struct TransformerConv {
    conv: Conv,
    pad: usize,
    upsample: bool,
    norm: Option<ConditionalNorm>,
}

impl TransformerConv {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        style_vb: Option<VarBuilder>,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        upsample: bool,
    ) -> Result<Self> {
        Ok(Self {
            conv: Conv::new(&vb, c_in, c_out, k, stride, true)?,
            pad: k / 2,
            upsample,
            norm: style_vb
                .map(|s| ConditionalNorm::new(s.pp("StyleNorm"), c_out))
                .transpose()?,
        })
    }

    /// The same layer with its conv in `dtype`; the style projections stay f32 (they run
    /// once per style, and the norms' scales and shifts are converted after them).
    fn to_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            conv: Conv {
                weight: self.conv.weight.to_dtype(dtype)?,
                bias: self
                    .conv
                    .bias
                    .as_ref()
                    .map(|b| b.to_dtype(dtype))
                    .transpose()?,
                stride: self.conv.stride,
            },
            pad: self.pad,
            upsample: self.upsample,
            norm: self.norm.clone(),
        })
    }

    /// The conv alone; its norm (if any) is applied by the pass's [`NormCtx`].
    fn conv(&self, x: &Tensor) -> Result<Tensor> {
        let padded = if self.upsample {
            upsample2_reflect_pad(x, self.pad)?
        } else {
            reflect_pad(x, self.pad)?
        };
        self.conv.forward(&padded)
    }
}

/// Input pixels per feature-map pixel at the input of each conditional norm: ten in the
/// residual blocks at a quarter of the size, then half size, then full size twice.
pub const NORM_SCALES: [usize; 13] = [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 1, 1];

/// Photo + style vector → stylised photo. Three convs down (8, 16, 32 channels) with plain
/// biases, five residual blocks and three convs up under conditional instance norms, sigmoid.
#[derive(Debug, Clone)]
pub struct StyleTransformer {
    contract: [TransformerConv; 3],
    residual: Vec<[TransformerConv; 2]>,
    expand: [TransformerConv; 3],
    eps: f64,
}

impl StyleTransformer {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let t = vb.pp("transformer");
        let s = vb.pp("style_params").pp("transformer");
        let c = t.pp("contract");
        let contract = [
            TransformerConv::new(c.pp("conv1"), None, 3, 8, 9, 1, false)?,
            TransformerConv::new(c.pp("conv2"), None, 8, 16, 3, 2, false)?,
            TransformerConv::new(c.pp("conv3"), None, 16, 32, 3, 2, false)?,
        ];
        let residual = (1..=5)
            .map(|i| {
                let name = format!("residual{i}");
                let (r, rs) = (t.pp("residual").pp(&name), s.pp("residual").pp(&name));
                Ok([
                    TransformerConv::new(r.pp("conv1"), Some(rs.pp("conv1")), 32, 32, 3, 1, false)?,
                    TransformerConv::new(r.pp("conv2"), Some(rs.pp("conv2")), 32, 32, 3, 1, false)?,
                ])
            })
            .collect::<Result<Vec<_>>>()?;
        let (e, es) = (t.pp("expand"), s.pp("expand"));
        let expand = [
            TransformerConv::new(
                e.pp("conv1").pp("conv"),
                Some(es.pp("conv1").pp("conv")),
                32,
                16,
                3,
                1,
                true,
            )?,
            TransformerConv::new(
                e.pp("conv2").pp("conv"),
                Some(es.pp("conv2").pp("conv")),
                16,
                8,
                3,
                1,
                true,
            )?,
            TransformerConv::new(
                e.pp("conv3").pp("conv"),
                Some(es.pp("conv3").pp("conv")),
                8,
                3,
                9,
                1,
                false,
            )?,
        ];
        let eps = vb
            .get_with_hints(1, "norm_epsilon", candle_nn::Init::Const(1e-5))?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?[0];
        Ok(Self {
            contract,
            residual,
            expand,
            eps,
        })
    }

    /// The same network computing in `dtype` (f16 for half-precision inference on CUDA):
    /// convs and activations in `dtype`, norm statistics and the style projections in f32.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        let convert = |ls: &[TransformerConv]| -> Result<Vec<TransformerConv>> {
            ls.iter().map(|l| l.to_dtype(dtype)).collect()
        };
        let three = |v: Vec<TransformerConv>| -> [TransformerConv; 3] {
            v.try_into().expect("three layers in, three out")
        };
        Ok(Self {
            contract: three(convert(&self.contract)?),
            residual: self
                .residual
                .iter()
                .map(|pair| {
                    let v = convert(pair)?;
                    Ok([v[0].clone(), v[1].clone()])
                })
                .collect::<Result<Vec<_>>>()?,
            expand: three(convert(&self.expand)?),
            eps: self.eps,
        })
    }

    /// The dtype the pass computes in.
    pub fn dtype(&self) -> DType {
        self.contract[0].conv.weight.dtype()
    }

    /// The thirteen instance norms under one style vector `(1, 100)`, in pass order, with
    /// scales and shifts in the pass's dtype.
    pub fn norms_for(&self, style: &Tensor) -> Result<Vec<InstanceNorm>> {
        if style.dims() != [1, STYLE_DIM] {
            candle_core::bail!("a style vector is (1, {STYLE_DIM}), not {:?}", style.dims());
        }
        let style = style.to_dtype(DType::F32)?;
        let dtype = self.dtype();
        self.residual
            .iter()
            .flatten()
            .chain(&self.expand)
            .map(|l| {
                let n = l
                    .norm
                    .as_ref()
                    .expect("residual and expand layers have norms")
                    .for_style(&style, self.eps)?;
                if dtype == DType::F32 {
                    Ok(n)
                } else {
                    InstanceNorm::from_tensors(
                        n.weight.to_dtype(dtype)?,
                        n.bias.to_dtype(dtype)?,
                        n.eps,
                    )
                }
            })
            .collect()
    }

    /// `(N, 3, H, W)` RGB 0..1 with H and W multiples of 4 → RGB 0..1, every image under the
    /// same style vector `(1, 100)`.
    pub fn forward(&self, x: &Tensor, style: &Tensor) -> Result<Tensor> {
        let norms = self.norms_for(style)?;
        match self.forward_ctx(x, &norms, &mut NormCtx::default()) {
            Ok(Flow::Next(y)) => Ok(y),
            Ok(Flow::Stop(_)) => unreachable!("a plain pass never stops early"),
            Err(crate::Error::Candle(e)) => Err(e),
            Err(e) => Err(candle_core::Error::Msg(e.to_string())),
        }
    }

    /// The pass under `norms` ([`Self::norms_for`]) steered by `ctx`: the image, or — when
    /// `ctx` collects statistics — the input of the norm it stops at.
    pub fn forward_ctx(
        &self,
        x: &Tensor,
        norms: &[InstanceNorm],
        ctx: &mut NormCtx,
    ) -> crate::Result<Flow> {
        let (_, c, h, w) = x.dims4()?;
        if c != 3 || h % SIDE_MULTIPLE != 0 || w % SIDE_MULTIPLE != 0 || h.min(w) < MIN_SIDE {
            return Err(crate::Error::Invalid(format!(
                "the style transformer takes (N, 3, H, W) with H and W multiples of {SIDE_MULTIPLE} and at least {MIN_SIDE}, not {:?}",
                x.dims()
            )));
        }
        if norms.len() != NORM_SCALES.len() {
            return Err(crate::Error::Invalid(format!(
                "{} norms given for {} layers",
                norms.len(),
                NORM_SCALES.len()
            )));
        }
        macro_rules! norm {
            ($i:expr, $x:expr, $relu:expr) => {
                match ctx.norm($i, $x, &norms[$i], $relu)? {
                    Flow::Next(y) => y,
                    stop => return Ok(stop),
                }
            };
        }
        let mut y = x.clone();
        for l in &self.contract {
            y = l.conv(&y)?.relu()?;
        }
        for (i, [a, b]) in self.residual.iter().enumerate() {
            let r = norm!(2 * i, a.conv(&y)?, true);
            y = match ctx.norm_add(2 * i + 1, b.conv(&r)?, &norms[2 * i + 1], &y)? {
                Flow::Next(sum) => sum,
                stop => return Ok(stop),
            };
        }
        let [e1, e2, e3] = &self.expand;
        y = norm!(10, e1.conv(&y)?, true);
        y = norm!(11, e2.conv(&y)?, true);
        y = norm!(12, e3.conv(&y)?, false);
        // Three channels: the sigmoid in f32 costs nothing and keeps the output's last bits.
        Ok(Flow::Next(candle_nn::ops::sigmoid(
            &y.to_dtype(DType::F32)?,
        )?))
    }
}

/// Both networks, as loaded from one model file.
#[derive(Debug, Clone)]
pub struct ArbitraryNet {
    pub predictor: StylePredictor,
    pub transformer: StyleTransformer,
}

impl ArbitraryNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            predictor: StylePredictor::new(vb.clone())?,
            transformer: StyleTransformer::new(vb)?,
        })
    }

    pub fn device(&self) -> &Device {
        self.transformer.contract[0].conv.weight.device()
    }

    /// The same networks with the transformer computing in `dtype`; the predictor stays f32
    /// (it runs once per painting, and its vector drives every norm).
    pub fn with_transformer_dtype(&self, dtype: DType) -> Result<Self> {
        Ok(Self {
            predictor: self.predictor.clone(),
            transformer: self.transformer.to_dtype(dtype)?,
        })
    }
}

/// Name → shape of every parameter, from the network code itself (built against an empty
/// `VarMap`), so the importer and the loader can never disagree with it.
pub fn param_specs() -> std::collections::BTreeMap<String, Vec<usize>> {
    let vm = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    ArbitraryNet::new(vb).expect("building the network on the CPU cannot fail");
    let data = vm.data().lock().expect("varmap lock");
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depthwise_loop_matches_candles_grouped_conv() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (2, 6, 9, 8), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (6, 1, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 6, &dev).unwrap();
        for (stride, pads) in [(1, [1, 1, 1, 1]), (2, [0, 1, 1, 1]), (2, [1, 1, 0, 1])] {
            for relu6 in [false, true] {
                let got = depthwise_cpu(&x, &w, &b, pads, stride, relu6).unwrap();
                let [t, bo, l, r] = pads;
                let want = x
                    .pad_with_zeros(2, t, bo)
                    .unwrap()
                    .pad_with_zeros(3, l, r)
                    .unwrap()
                    .conv2d(&w, 0, stride, 1, 6)
                    .unwrap()
                    .broadcast_add(&b.reshape((1, 6, 1, 1)).unwrap())
                    .unwrap();
                let want = if relu6 {
                    want.clamp(0f32, 6f32).unwrap()
                } else {
                    want
                };
                assert_eq!(got.dims(), want.dims(), "stride {stride} pads {pads:?}");
                let diff = crate::ops::max_abs_diff(&got, &want);
                assert!(
                    diff < 1e-5,
                    "stride {stride} pads {pads:?} relu6 {relu6}: {diff}"
                );
            }
        }
    }

    #[test]
    fn tensorflow_same_padding_puts_the_odd_pixel_last() {
        assert_eq!(SameConv::same_pad(256, 3, 2), (0, 1));
        assert_eq!(SameConv::same_pad(255, 3, 2), (1, 1));
        assert_eq!(SameConv::same_pad(16, 3, 1), (1, 1));
        assert_eq!(SameConv::same_pad(16, 1, 1), (0, 0));
    }

    #[test]
    fn the_network_has_the_published_shape() {
        let specs = param_specs();
        // 52 convs in the predictor, 3 + 10 + 3 in the transformer, 2 × 13 style projections,
        // each with a bias, plus the norm epsilon.
        assert_eq!(specs.len(), 2 * (53 + 16 + 26) + 1, "{specs:#?}");
        assert_eq!(
            specs["MobilenetV2.expanded_conv_16.depthwise.weight"],
            vec![960, 1, 3, 3]
        );
        assert_eq!(specs["mobilenet_conv.Conv.weight"], vec![100, 1280, 1, 1]);
        assert_eq!(
            specs["style_params.transformer.expand.conv3.conv.StyleNorm.Conv_1.weight"],
            vec![3, 100, 1, 1]
        );
    }
}
