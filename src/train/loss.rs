//! Perceptual losses (Johnson et al. 2016): content at relu2_2, style as Gram
//! matrices at relu1_2 … relu4_3, and total variation.

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
