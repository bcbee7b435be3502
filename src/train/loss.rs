//! Perceptual losses (Johnson et al. 2016): content as feature distance at one layer of the
//! loss network, style as Gram-matrix distance at several, and total variation.
//!
//! Two recipes share this code ([`LossSpec`]):
//! - **normalised** (the default since stop 12): each style layer's Gram distance is divided
//!   by the mean of the painting's and a typical photo's Gram energy at that layer, and the
//!   content distance by the photo's feature energy, so every term is a relative error of
//!   order one and every layer has an equal say. Fixed weights then mean the same thing for
//!   every painting: raw Gram energies differ 10–100× between paintings at one layer (Starry
//!   Night's relu3_3 is 75× Udnie's) and by ten orders of magnitude between relu1_2 and
//!   relu5_3, which is why one raw style weight gave some paintings a faint colour cast and
//!   let the first two layers decide everything. The painting's energy alone is not a safe
//!   divisor: at relu5_3 most paintings have 10–500× less energy than photos, and that one
//!   layer would then outweigh the rest. The loss values are also ~1e11 times smaller, far
//!   from f32 overflow in the gradients (Adam does not care about the scale).
//! - **raw** (runs made before): plain MSEs times the weights, content at relu2_2, style at
//!   relu1_2 … relu4_3.

use super::vgg::{Tap, Vgg16};
use crate::{Error, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// `(N, C, H, W)` → `(N, C, C)`, normalised by C·H·W.
pub fn gram(f: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = f.dims4()?;
    let f = f.reshape((n, c, h * w))?;
    f.matmul(&f.t()?)? / (c * h * w) as f64
}

pub fn mse(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    mean_all(&a.sub(b)?.sqr()?)
}

/// The mean of all elements, summed in rows first: candle's `mean_all` reduces on CUDA in a
/// single thread block (a visible share of a training step); summing rows of 1024 first
/// spreads that over the whole GPU.
pub fn mean_all(t: &Tensor) -> candle_core::Result<Tensor> {
    const ROW: usize = 1024;
    let n = t.elem_count();
    if !n.is_multiple_of(ROW) || n < 16 * ROW {
        return t.mean_all();
    }
    t.reshape((n / ROW, ROW))?.sum(1)?.sum_all()? / n as f64
}

/// Mean absolute difference between neighbouring pixels (anisotropic TV).
pub fn total_variation(x: &Tensor) -> candle_core::Result<Tensor> {
    let (dy, dx) = neighbour_differences(x)?;
    dy.abs()?.mean_all()? + dx.abs()?.mean_all()?
}

/// Mean squared difference between neighbouring pixels.
fn squared_variation(x: &Tensor) -> candle_core::Result<Tensor> {
    let (dy, dx) = neighbour_differences(x)?;
    dy.sqr()?.mean_all()? + dx.sqr()?.mean_all()?
}

fn neighbour_differences(x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    let (_, _, h, w) = x.dims4()?;
    let dy = x.narrow(2, 1, h - 1)?.sub(&x.narrow(2, 0, h - 1)?)?;
    let dx = x
        .narrow(D::Minus1, 1, w - 1)?
        .sub(&x.narrow(D::Minus1, 0, w - 1)?)?;
    Ok((dy, dx))
}

/// How a recipe scales its terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// Plain MSEs times the weights (the recipe before stop 12).
    #[default]
    Raw,
    /// Each term divided by its target's own energy (see the module doc).
    Normalised,
}

/// One user-facing control for how much of the painting a trained style carries; each
/// preset is a style weight of the normalised recipe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strength {
    Subtle,
    Balanced,
    Bold,
    /// An expert's own style weight (normalised recipe).
    Weight(f64),
}

impl Strength {
    pub const PRESETS: [Strength; 3] = [Strength::Subtle, Strength::Balanced, Strength::Bold];

    /// The normalised style weight behind the preset, chosen from a sweep of 5, 10, 20 and 40
    /// on Great Wave and Udnie against held-out photos with `atelier eval`: 10 changes a photo
    /// about as much as fast-style-transfer's own checkpoints do (docs/gallery.md, "Choosing
    /// the defaults").
    pub fn style_weight(self) -> f64 {
        match self {
            Strength::Subtle => 5.0,
            Strength::Balanced => 10.0,
            Strength::Bold => 20.0,
            Strength::Weight(w) => w,
        }
    }

    pub fn label(self) -> String {
        match self {
            Strength::Subtle => "subtle".into(),
            Strength::Balanced => "balanced".into(),
            Strength::Bold => "bold".into(),
            Strength::Weight(w) => format!("{w}"),
        }
    }

    /// The preset whose weight this is, else the plain number.
    pub fn from_weight(w: f64) -> Self {
        Self::PRESETS
            .into_iter()
            .find(|p| p.style_weight() == w)
            .unwrap_or(Strength::Weight(w))
    }
}

impl std::str::FromStr for Strength {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "subtle" => Ok(Strength::Subtle),
            "balanced" => Ok(Strength::Balanced),
            "bold" => Ok(Strength::Bold),
            other => match other.parse::<f64>() {
                Ok(w) if w.is_finite() && w > 0.0 => Ok(Strength::Weight(w)),
                _ => Err(format!(
                    "'{s}' is not a strength: use subtle, balanced, bold or a positive number"
                )),
            },
        }
    }
}

/// The normalised recipe's smoothness weight (see [`LossSpec::normalised`]).
pub const DEFAULT_TV_WEIGHT: f64 = 0.2;

/// Which layers and weights make up the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossSpec {
    pub scaling: Scaling,
    pub content_layer: String,
    pub style_layers: Vec<String>,
    pub content_weight: f64,
    pub style_weight: f64,
    pub tv_weight: f64,
}

impl LossSpec {
    /// The default recipe: normalised terms, content at relu3_3 (relu2_2 held colours and
    /// fine detail so tightly that styles came out as a colour cast), style at the last conv
    /// of blocks 1–4 (Johnson et al.'s layers), and a little smoothness against the
    /// pixel-period grid that upsampling generators learn (0.2 visibly removed it from Starry
    /// Night in the sweep).
    ///
    /// relu5_3 was in the style layers from stop 12 to stop 15 and was dropped: most paintings
    /// have 10–500× less Gram energy there than a photo, so its term asked the network to
    /// erase the photo's deep features, which it did with flat patches (Udnie's teal
    /// blotches). Without it the held-out measures moved closer to the painting for Great
    /// Wave, Udnie and Starry Night alike, and a step is about 10 % cheaper (docs/gallery.md).
    pub fn normalised(strength: Strength) -> Self {
        Self {
            scaling: Scaling::Normalised,
            content_layer: "relu3_3".into(),
            style_layers: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
                .map(String::from)
                .to_vec(),
            content_weight: 1.0,
            style_weight: strength.style_weight(),
            tv_weight: DEFAULT_TV_WEIGHT,
        }
    }

    /// The recipe of runs made before stop 12.
    pub fn raw(content_weight: f64, style_weight: f64, tv_weight: f64) -> Self {
        Self {
            scaling: Scaling::Raw,
            content_layer: "relu2_2".into(),
            style_layers: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
                .map(String::from)
                .to_vec(),
            content_weight,
            style_weight,
            tv_weight,
        }
    }

    pub fn validate(&self) -> Result<()> {
        for (n, v) in [
            ("content weight", self.content_weight),
            ("style weight", self.style_weight),
            ("tv weight", self.tv_weight),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Invalid(format!("{n} must be a non-negative number")));
            }
        }
        if self.style_layers.is_empty() {
            return Err(Error::Invalid(
                "the loss needs at least one style layer".into(),
            ));
        }
        Ok(())
    }
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
    scaling: Scaling,
    content_tap: Tap,
    style_taps: Vec<Tap>,
    /// Every tap the stylised image is read at: the style taps, then the content tap.
    y_taps: Vec<Tap>,
    style_grams: Vec<Tensor>,
    /// Per style layer: the style weight over the layer count and the painting's Gram energy
    /// (normalised), or the plain style weight (raw).
    style_factors: Vec<f64>,
    content_weight: f64,
    tv_weight: f64,
}

/// Mean Gram energy (mean of squared entries) of `photos` (`(N, 3, H, W)` RGB 0..255) at each
/// of `spec`'s style layers: what a typical photo brings, for the normalised recipe's divisors.
/// A run measures it once on its first photos and records it, so a resumed run reuses it.
pub fn photo_gram_energy(vgg: &Vgg16, photos: &Tensor, spec: &LossSpec) -> Result<Vec<f64>> {
    let taps = spec
        .style_layers
        .iter()
        .map(|l| vgg.tap(l))
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(taps.len());
    for f in vgg.features_at(photos, &taps)? {
        let e = gram(&f)?.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
        out.push(e);
    }
    Ok(out)
}

impl Perceptual {
    /// `style`: the painting as `(1, 3, H, W)` RGB 0..255; `photo_energy`: per style layer, a
    /// typical photo's Gram energy ([`photo_gram_energy`]; only the normalised recipe reads it).
    pub fn new(
        vgg: Vgg16,
        style: &Tensor,
        spec: &LossSpec,
        photo_energy: Option<&[f64]>,
    ) -> Result<Self> {
        spec.validate()?;
        let content_tap = vgg.tap(&spec.content_layer)?;
        let style_taps = spec
            .style_layers
            .iter()
            .map(|l| vgg.tap(l))
            .collect::<Result<Vec<_>>>()?;
        let style_grams: Vec<Tensor> = vgg
            .features_at(style, &style_taps)?
            .iter()
            .map(|f| gram(f).map(|g| g.detach()))
            .collect::<candle_core::Result<_>>()?;
        let layers = style_taps.len() as f64;
        let style_factors = style_grams
            .iter()
            .enumerate()
            .map(|(k, g)| -> Result<f64> {
                Ok(match spec.scaling {
                    Scaling::Raw => spec.style_weight,
                    Scaling::Normalised => {
                        let painting = g.sqr()?.mean_all()?.to_scalar::<f32>()? as f64;
                        let photo = photo_energy
                            .and_then(|e| e.get(k).copied())
                            .ok_or_else(|| {
                                Error::Invalid(
                                    "the normalised loss needs the photos' Gram energy per style layer".into(),
                                )
                            })?;
                        let divisor = 0.5 * (painting + photo);
                        if !(divisor.is_finite() && divisor > 0.0) {
                            return Err(Error::Invalid(format!(
                                "the loss network gives no signal at {} (are the painting and the photos flat?)",
                                spec.style_layers[k]
                            )));
                        }
                        spec.style_weight / (layers * divisor)
                    }
                })
            })
            .collect::<Result<_>>()?;
        let mut y_taps = style_taps.clone();
        y_taps.push(content_tap);
        Ok(Self {
            vgg,
            scaling: spec.scaling,
            content_tap,
            style_taps,
            y_taps,
            style_grams,
            style_factors,
            content_weight: spec.content_weight,
            tv_weight: spec.tv_weight,
        })
    }

    /// The content term's divisor for photo features `fx`: their energy (normalised) or 1.
    fn content_norm(&self, fx: &Tensor) -> candle_core::Result<f64> {
        Ok(match self.scaling {
            Scaling::Raw => 1.0,
            // A black photo has no energy; 1 keeps the term finite (its features are zero).
            Scaling::Normalised => {
                let e = mean_all(&fx.sqr()?)?.to_scalar::<f32>()? as f64;
                if e > 1e-12 {
                    e
                } else {
                    1.0
                }
            }
        })
    }

    /// The loss values of `y` (without total variation, see [`Self::tv_loss`]) and the gradient
    /// of their sum with respect to `y`, all outside autograd: the loss network's backward pass
    /// is [`Vgg16::input_grad`], and the gradients of the content and Gram losses with respect
    /// to the taps are written out here. Training backpropagates that gradient into the style
    /// network as the gradient of `sum(y ⊙ ∂L/∂y)`, which equals it.
    pub fn compute_with_grad(&self, x: &Tensor, y: &Tensor) -> Result<(Losses, Tensor)> {
        let saved = self.vgg.forward_saved(y, &self.y_taps)?;
        let fy = &saved.taps;
        let k_content = fy.len() - 1;
        let fx = self
            .vgg
            .features_at(&x.detach(), &[self.content_tap])?
            .remove(0);
        // Content: w·mean((fy − fx)²)/N → 2w(fy − fx)/(n·N).
        let cw = self.content_weight / self.content_norm(&fx)?;
        let diff = fy[k_content].sub(&fx)?;
        let content = (mean_all(&diff.sqr()?)? * cw)?;
        let mut tap_grads: Vec<Option<Tensor>> = vec![None; fy.len()];
        tap_grads[k_content] = Some((diff * (2.0 * cw / fy[k_content].elem_count() as f64))?);
        // Style: Σ w_l·mean((G − S)²) with G = F Fᵀ/(c·h·w) per image → ∂/∂G = 2w_l(G − S)/(n·c²),
        // and, G being symmetric, ∂/∂F = 2·(∂/∂G)·F/(c·h·w).
        let mut style: Option<Tensor> = None;
        for (k, ((f, s), wl)) in fy
            .iter()
            .zip(&self.style_grams)
            .zip(&self.style_factors)
            .enumerate()
        {
            let (n, c, h, w) = f.dims4()?;
            let flat = f.reshape((n, c, h * w))?;
            let g = (flat.matmul(&flat.t()?)? / (c * h * w) as f64)?;
            let d = g.broadcast_sub(s)?;
            let l = (mean_all(&d.sqr()?)? * *wl)?;
            style = Some(match style {
                Some(t) => (t + l)?,
                None => l,
            });
            let dg = (d * (2.0 * wl / (n * c * c) as f64))?;
            let df = (dg.matmul(&flat)? * (2.0 / (c * h * w) as f64))?.reshape((n, c, h, w))?;
            // The content tap may be a style tap too; their gradients add up.
            tap_grads[k] = Some(match tap_grads[k].take() {
                Some(t) => (t + df)?,
                None => df,
            });
        }
        let style = style.ok_or_else(|| Error::Invalid("no style layers".into()))?;
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
    /// Normalised: the mean squared neighbour difference of `y` over that of the photo `x`,
    /// which penalises a pixel-scale grid hardest and is 1 for an output as busy as the photo.
    pub fn tv_loss(&self, x: &Tensor, y: &Tensor) -> Result<Option<Tensor>> {
        if self.tv_weight <= 0.0 {
            return Ok(None);
        }
        Ok(Some(match self.scaling {
            Scaling::Raw => (total_variation(y)? * self.tv_weight)?,
            Scaling::Normalised => {
                let base = squared_variation(&x.detach())?.to_scalar::<f32>()? as f64;
                (squared_variation(y)? * (self.tv_weight / base.max(1.0)))?
            }
        }))
    }

    /// Losses of the stylised batch `y` for content batch `x`, differentiable through
    /// candle's autograd.
    pub fn compute(&self, x: &Tensor, y: &Tensor) -> Result<Losses> {
        let fy = self.vgg.features_at(y, &self.y_taps)?;
        let fx = self
            .vgg
            .features_at(&x.detach(), &[self.content_tap])?
            .remove(0);
        let cw = self.content_weight / self.content_norm(&fx)?;
        let content = (mse(&fy[fy.len() - 1], &fx)? * cw)?;
        let mut style: Option<Tensor> = None;
        for ((f, s), wl) in fy.iter().zip(&self.style_grams).zip(&self.style_factors) {
            let l = (mean_all(&gram(f)?.broadcast_sub(s)?.sqr()?)? * *wl)?;
            style = Some(match style {
                Some(t) => (t + l)?,
                None => l,
            });
        }
        let style = style.ok_or_else(|| Error::Invalid("no style layers".into()))?;
        let mut total = (&content + &style)?;
        let tv = self.tv_loss(x, y)?;
        if let Some(tv) = &tv {
            total = (total + tv)?;
        }
        Ok(Losses {
            content,
            style,
            tv,
            total,
        })
    }

    /// The style terms' layer count (for reports).
    pub fn style_layer_count(&self) -> usize {
        self.style_taps.len()
    }
}
