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
    a.sub(b)?.sqr()?.mean_all()
}

/// Σ over layers of MSE between the batch's Grams and the style's (broadcast over N).
pub fn style_loss(features: &[Tensor], style_grams: &[Tensor]) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (f, g) in features.iter().zip(style_grams) {
        let gf = gram(f)?;
        let l = gf.broadcast_sub(g)?.sqr()?.mean_all()?;
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
