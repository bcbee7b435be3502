//! Perceptual losses (Johnson et al. 2016): content at relu2_2, style as Gram
//! matrices at relu1_2 … relu4_3, and total variation.

use super::vgg::Vgg16;
use candle_core::{Result, Tensor, D};

/// `(N, C, H, W)` → `(N, C, C)`, normalised by C·H·W.
pub fn gram(f: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = f.dims4()?;
    let f = f.reshape((n, c, h * w))?;
    f.matmul(&f.t()?)? / (c * h * w) as f64
}

pub fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    mean_all(&a.sub(b)?.sqr()?)
}

/// The mean of all elements, summed in rows first: candle's `mean_all` reduces on CUDA in a
/// single thread block (0.8 ms for the content loss's 8.4 M values on an H200, 4 % of a
/// training step); summing rows of 1024 first spreads that over the whole GPU.
pub fn mean_all(t: &Tensor) -> Result<Tensor> {
    const ROW: usize = 1024;
    let n = t.elem_count();
    if !n.is_multiple_of(ROW) || n < 16 * ROW {
        return t.mean_all();
    }
    t.reshape((n / ROW, ROW))?.sum(1)?.sum_all()? / n as f64
}

/// Σ over layers of MSE between the batch's Grams and the style's (broadcast over N).
pub fn style_loss(features: &[Tensor], style_grams: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (f, g) in features.iter().zip(style_grams) {
        let gf = gram(f)?;
        let l = mean_all(&gf.broadcast_sub(g)?.sqr()?)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    total.ok_or_else(|| candle_core::Error::Msg("no style layers".into()))
}

/// Mean absolute difference between neighbouring pixels (anisotropic TV).
pub fn total_variation(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let dy = x
        .narrow(2, 1, h - 1)?
        .sub(&x.narrow(2, 0, h - 1)?)?
        .abs()?
        .mean_all()?;
    let dx = x
        .narrow(D::Minus1, 1, w - 1)?
        .sub(&x.narrow(D::Minus1, 0, w - 1)?)?
        .abs()?
        .mean_all()?;
    dy + dx
}

/// The weighted losses of one step (each already multiplied by its weight).
pub struct Losses {
    pub content: Tensor,
    pub style: Tensor,
    pub tv: Option<Tensor>,
    pub total: Tensor,
}

/// The training objective: the loss network, the painting's Gram targets and weights.
pub struct Perceptual {
    vgg: Vgg16,
    style_grams: Vec<Tensor>,
    content_weight: f64,
    style_weight: f64,
    tv_weight: f64,
}

impl Perceptual {
    /// `style`: the painting as `(1, 3, H, W)` RGB 0..255.
    pub fn new(
        vgg: Vgg16,
        style: &Tensor,
        content_weight: f64,
        style_weight: f64,
        tv_weight: f64,
    ) -> Result<Self> {
        let style_grams = vgg
            .features(style)?
            .iter()
            .map(|f| gram(f).map(|g| g.detach()))
            .collect::<Result<_>>()?;
        Ok(Self {
            vgg,
            style_grams,
            content_weight,
            style_weight,
            tv_weight,
        })
    }

    /// The loss values of `y` (without total variation, see [`Self::tv_loss`]) and the gradient
    /// of their sum with respect to `y`, all outside autograd: the loss network's backward pass
    /// is [`Vgg16::input_grad`], and the gradients of the content and Gram losses with respect
    /// to the taps are written out here. Training backpropagates that gradient into the style
    /// network as the gradient of `sum(y ⊙ ∂L/∂y)`, which equals it.
    pub fn compute_with_grad(&self, x: &Tensor, y: &Tensor) -> Result<(Losses, Tensor)> {
        let saved = self.vgg.forward_saved(y)?;
        let fy = &saved.taps;
        let fx = self.vgg.features_upto(&x.detach(), 2)?;
        // Content: w·mean((fy − fx)²) → 2w(fy − fx)/n.
        let diff = fy[1].sub(&fx[1])?;
        let content = (mean_all(&diff.sqr()?)? * self.content_weight)?;
        let mut tap_grads: Vec<Option<Tensor>> = vec![None; fy.len()];
        tap_grads[1] = Some((diff * (2.0 * self.content_weight / fy[1].elem_count() as f64))?);
        // Style: w·Σ mean((G − S)²) with G = F Fᵀ/(c·h·w) per image → ∂/∂G = 2w(G − S)/(n·c²),
        // and, G being symmetric, ∂/∂F = 2·(∂/∂G)·F/(c·h·w).
        let mut style: Option<Tensor> = None;
        for (k, (f, s)) in fy.iter().zip(&self.style_grams).enumerate() {
            let (n, c, h, w) = f.dims4()?;
            let flat = f.reshape((n, c, h * w))?;
            let g = (flat.matmul(&flat.t()?)? / (c * h * w) as f64)?;
            let d = g.broadcast_sub(s)?;
            let l = mean_all(&d.sqr()?)?;
            style = Some(match style {
                Some(t) => (t + l)?,
                None => l,
            });
            let dg = (d * (2.0 * self.style_weight / (n * c * c) as f64))?;
            let df = (dg.matmul(&flat)? * (2.0 / (c * h * w) as f64))?.reshape((n, c, h, w))?;
            tap_grads[k] = Some(match tap_grads[k].take() {
                Some(t) => (t + df)?,
                None => df,
            });
        }
        let style = (style.ok_or_else(|| candle_core::Error::Msg("no style layers".into()))?
            * self.style_weight)?;
        let grad = self.vgg.input_grad(&saved, &tap_grads)?;
        let total = (&content + &style)?;
        Ok((
            Losses {
                content,
                style,
                tv: None,
                total,
            },
            grad,
        ))
    }

    /// The weighted total-variation loss of `y` (differentiable), when its weight is not zero.
    pub fn tv_loss(&self, y: &Tensor) -> Result<Option<Tensor>> {
        if self.tv_weight > 0.0 {
            Ok(Some((total_variation(y)? * self.tv_weight)?))
        } else {
            Ok(None)
        }
    }

    /// Losses of the stylised batch `y` for content batch `x`.
    pub fn compute(&self, x: &Tensor, y: &Tensor) -> Result<Losses> {
        let fy = self.vgg.features(y)?;
        // Only relu2_2 of the content batch is used.
        let fx = self.vgg.features_upto(&x.detach(), 2)?;
        let content = (mse(&fy[1], &fx[1].detach())? * self.content_weight)?;
        let style = (style_loss(&fy, &self.style_grams)? * self.style_weight)?;
        let mut total = (&content + &style)?;
        let tv = if self.tv_weight > 0.0 {
            let tv = (total_variation(y)? * self.tv_weight)?;
            total = (total + &tv)?;
            Some(tv)
        } else {
            None
        };
        Ok(Losses {
            content,
            style,
            tv,
            total,
        })
    }
}
