//! How close a style's results are to its painting, and how much of the photo they keep,
//! measured with the loss network at layers and statistics that the training loss does not use
//! (so a model cannot score well here by overfitting its own objective):
//!
//! - **style distance**: at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (the first conv of
//!   each block; training reads the last ones), each channel's mean and standard deviation
//!   over the result against the painting's, as a relative squared distance
//!   `(|μ − μₚ|² + |σ − σₚ|²) / (|μₚ|² + |σₚ|²)`, averaged over the five layers;
//! - **content distance**: the relative squared distance between the result's and the
//!   photo's relu4_2 features, `|F(y) − F(x)|² / |F(x)|²` (deeper than training's relu3_3).
//!
//! Lower is better for both; they pull against each other, so compare models on both. The
//! photos themselves (an identity "style") are reported as the reference point: content 0 and
//! the style distance a photo starts from.
//!
//! The VGG measures are outside Atelier's loss but not outside every loss: fast-style-transfer
//! trains on VGG19's relu1_1 … relu5_1 (style) and relu4_2 (content), the same layer names. So a
//! [`SecondOpinion`] reads a network that no style loss compared here uses — Magenta's style
//! predictor, a MobileNetV2 trained to say what style a picture has:
//!
//! - **style-vector distance**: the result's 100-value style vector against the painting's,
//!   `Σ|v(y) − v(p)|² / Σ|v(x) − v(p)|²` over the photos, so the photos themselves are 1 and
//!   the painting 0;
//! - **MobileNet content distance**: `|F(y) − F(x)|² / |F(x)|²` at the predictor's block
//!   [`MOBILE_CONTENT_BLOCK`] (1/16 of the photo's size, 96 channels).

use crate::stylize::{image_to_tensor, Hooks, Stylizer, Tiling};
use crate::train::vgg::{Tap, Vgg16};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use image::RgbImage;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The layers of the style statistics (the first conv of each block).
pub const STYLE_LAYERS: [&str; 5] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"];
/// The layer of the content distance.
pub const CONTENT_LAYER: &str = "relu4_2";

/// Random directions the sliced Wasserstein distance projects features onto.
const SWD_DIRECTIONS: usize = 64;
/// Quantiles at which the projected distributions are compared.
const SWD_QUANTILES: usize = 128;

/// The predictor block the second opinion's content distance reads (the last at 1/16 scale).
pub const MOBILE_CONTENT_BLOCK: usize = 12;

/// Turns a photo into a result (a model's restyling).
pub type Restyle<'a> = &'a mut dyn FnMut(&RgbImage) -> Result<RgbImage>;

/// One model's scores, averaged over the photos.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub style_distance: f64,
    /// Per layer of [`STYLE_LAYERS`].
    pub style_by_layer: Vec<f64>,
    /// Sliced Wasserstein distance of the feature distributions (see [`sliced_wasserstein`]),
    /// averaged over the layers.
    pub texture_distance: f64,
    pub texture_by_layer: Vec<f64>,
    pub content_distance: f64,
    /// The second opinion's measures (see [`SecondOpinion`]), when the evaluator has one.
    pub style_vector_distance: Option<f64>,
    pub mobile_content_distance: Option<f64>,
    pub photos: usize,
}

/// Channel means and standard deviations of one feature map, `(C,)` each.
struct Moments {
    mean: Vec<f64>,
    std: Vec<f64>,
}

fn moments(f: &Tensor) -> Result<Moments> {
    let (_, c, h, w) = f.dims4()?;
    let flat = f.reshape((c, h * w))?.to_dtype(DType::F64)?;
    let mean = flat.mean_keepdim(D::Minus1)?;
    let var = flat.broadcast_sub(&mean)?.sqr()?.mean(D::Minus1)?;
    Ok(Moments {
        mean: mean.flatten_all()?.to_vec1()?,
        std: var.sqrt()?.to_vec1()?,
    })
}

/// The quantile function of each row of `proj` (`K × N`) at [`SWD_QUANTILES`] points.
fn row_quantiles(proj: Vec<f32>, n: usize) -> Vec<Vec<f32>> {
    use rayon::prelude::*;
    proj.par_chunks(n)
        .map(|row| {
            let mut r = row.to_vec();
            r.sort_unstable_by(|a, b| a.total_cmp(b));
            (0..SWD_QUANTILES)
                .map(|q| {
                    let pos = (q as f64 + 0.5) / SWD_QUANTILES as f64 * (n - 1) as f64;
                    let (i, f) = (pos.floor() as usize, (pos - pos.floor()) as f32);
                    r[i] * (1.0 - f) + r[(i + 1).min(n - 1)] * f
                })
                .collect()
        })
        .collect()
}

/// Quantiles of `f`'s features (`(1, C, H, W)`) projected on `dirs` (`(K, C)`).
fn projected_quantiles(f: &Tensor, dirs: &Tensor) -> Result<Vec<Vec<f32>>> {
    let (_, c, h, w) = f.dims4()?;
    let proj = dirs.matmul(&f.reshape((c, h * w))?.to_dtype(DType::F32)?)?;
    Ok(row_quantiles(proj.flatten_all()?.to_vec1()?, h * w))
}

/// Sliced Wasserstein distance (squared, relative) between two feature distributions given by
/// their projected quantiles: it compares the whole distribution of features along random
/// directions, so flat patches of the painting's colours score badly where the painting has
/// edges and strokes, which channel means and deviations alone cannot see.
fn sliced_wasserstein(y: &[Vec<f32>], p: &[Vec<f32>]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (qy, qp) in y.iter().zip(p) {
        let mean = qp.iter().map(|&v| v as f64).sum::<f64>() / qp.len() as f64;
        for (a, b) in qy.iter().zip(qp) {
            num += (*a as f64 - *b as f64).powi(2);
            den += (*b as f64 - mean).powi(2);
        }
    }
    num / den.max(1e-12)
}

/// Fixed random unit directions for a layer of `c` channels (the same for every model).
fn directions(c: usize, device: &Device) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c as u64);
    let mut v = Vec::with_capacity(SWD_DIRECTIONS * c);
    for _ in 0..SWD_DIRECTIONS {
        let row: Vec<f32> = (0..c)
            .map(|_| {
                // Box-Muller: Gaussian coordinates give uniformly distributed directions.
                let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.extend(row.iter().map(|x| x / norm));
    }
    Ok(Tensor::from_vec(v, (SWD_DIRECTIONS, c), device)?)
}

fn moment_distance(y: &Moments, p: &Moments) -> f64 {
    let sq = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>();
    let norm = sq(&p.mean, &vec![0.0; p.mean.len()]) + sq(&p.std, &vec![0.0; p.std.len()]);
    (sq(&y.mean, &p.mean) + sq(&y.std, &p.std)) / norm.max(1e-12)
}

/// Magenta's style predictor's view of one painting: a judge that neither Atelier's loss nor
/// fast-style-transfer's was trained against (module docs).
pub struct SecondOpinion {
    net: std::sync::Arc<crate::nn::arbitrary::ArbitraryNet>,
    painting: Vec<f32>,
}

/// One photo's second opinion: squared style-vector distances of the result and of the photo
/// from the painting's, and the content distance.
#[derive(Debug, Clone, Copy)]
pub struct SecondScore {
    pub result_to_painting: f64,
    pub photo_to_painting: f64,
    pub content: f64,
}

impl SecondOpinion {
    /// The bundled predictor (`models/instant/`, on the CPU as instant styles run it) and
    /// `painting` at any size (it sees a 256² copy, as it was trained).
    pub fn bundled(painting: &RgbImage) -> Result<Self> {
        let net = crate::stylize::instant::bundled_predictor()?;
        let painting = crate::stylize::instant::style_vector(&net, painting)?;
        Ok(Self { net, painting })
    }

    pub fn score(&self, photo: &RgbImage, result: &RgbImage) -> Result<SecondScore> {
        use crate::stylize::instant::style_vector;
        let sq = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
                .sum::<f64>()
        };
        let features = |img: &RgbImage| -> Result<Tensor> {
            let x = (to_tensor(img, self.net.device())? / 255.0)?;
            Ok(self
                .net
                .predictor
                .block_features(&x, MOBILE_CONTENT_BLOCK)?)
        };
        let (fy, fx) = (features(result)?, features(photo)?);
        let num = fy.sub(&fx)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        let den = fx.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        Ok(SecondScore {
            result_to_painting: sq(&style_vector(&self.net, result)?, &self.painting),
            photo_to_painting: sq(&style_vector(&self.net, photo)?, &self.painting),
            content: num / den.max(1e-12),
        })
    }
}

/// The loss network's view of one painting, ready to score results against.
pub struct Evaluator {
    vgg: Vgg16,
    device: Device,
    style_taps: Vec<Tap>,
    content_tap: Tap,
    painting: Vec<Moments>,
    dirs: Vec<Tensor>,
    painting_quantiles: Vec<Vec<Vec<f32>>>,
    second: Option<SecondOpinion>,
}

impl Evaluator {
    /// `painting` at the size to compare at (the training default is its own size, capped
    /// at 1024). The loss network must reach relu5_1 (the bundled VGG16 does).
    pub fn new(vgg: Vgg16, painting: &RgbImage, device: &Device) -> Result<Self> {
        let style_taps = STYLE_LAYERS
            .iter()
            .map(|l| vgg.tap(l))
            .collect::<Result<Vec<_>>>()?;
        let content_tap = vgg.tap(CONTENT_LAYER)?;
        let t = to_tensor(painting, device)?;
        let features = vgg.features_at(&t, &style_taps)?;
        let painting = features.iter().map(moments).collect::<Result<_>>()?;
        let dirs = features
            .iter()
            .map(|f| directions(f.dim(1)?, device))
            .collect::<Result<Vec<_>>>()?;
        let painting_quantiles = features
            .iter()
            .zip(&dirs)
            .map(|(f, d)| projected_quantiles(f, d))
            .collect::<Result<_>>()?;
        Ok(Self {
            vgg,
            device: device.clone(),
            style_taps,
            content_tap,
            painting,
            dirs,
            painting_quantiles,
            second: None,
        })
    }

    /// Also scores with `second` ([`Scores::style_vector_distance`] and
    /// [`Scores::mobile_content_distance`]).
    pub fn with_second_opinion(mut self, second: SecondOpinion) -> Self {
        self.second = Some(second);
        self
    }

    /// `(style distance per layer, texture distance per layer, content distance)` of
    /// `result` restyled from `photo`.
    pub fn score(&self, photo: &RgbImage, result: &RgbImage) -> Result<(Vec<f64>, Vec<f64>, f64)> {
        if photo.dimensions() != result.dimensions() {
            return Err(Error::Invalid(format!(
                "the result is {}×{} but the photo {}×{}",
                result.width(),
                result.height(),
                photo.width(),
                photo.height()
            )));
        }
        let mut taps = self.style_taps.clone();
        taps.push(self.content_tap);
        let fy = self
            .vgg
            .features_at(&to_tensor(result, &self.device)?, &taps)?;
        let fx = self
            .vgg
            .features_at(&to_tensor(photo, &self.device)?, &[self.content_tap])?
            .remove(0);
        let style = fy[..self.style_taps.len()]
            .iter()
            .zip(&self.painting)
            .map(|(f, p)| Ok(moment_distance(&moments(f)?, p)))
            .collect::<Result<Vec<f64>>>()?;
        let texture = fy[..self.style_taps.len()]
            .iter()
            .zip(&self.dirs)
            .zip(&self.painting_quantiles)
            .map(|((f, d), p)| Ok(sliced_wasserstein(&projected_quantiles(f, d)?, p)))
            .collect::<Result<Vec<f64>>>()?;
        let fyc = &fy[self.style_taps.len()];
        let num = fyc.sub(&fx)?.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        let den = fx.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        Ok((style, texture, num / den.max(1e-12)))
    }

    /// Scores over `photos` of `restyle` (None: the photos themselves).
    pub fn evaluate(&self, photos: &[RgbImage], mut restyle: Option<Restyle>) -> Result<Scores> {
        let mut by_layer = vec![0f64; STYLE_LAYERS.len()];
        let mut tex_by_layer = vec![0f64; STYLE_LAYERS.len()];
        let mut content = 0f64;
        let (mut vec_result, mut vec_photo, mut mobile_content) = (0f64, 0f64, 0f64);
        for p in photos {
            let y = match restyle.as_mut() {
                Some(f) => f(p)?,
                None => p.clone(),
            };
            if let Some(second) = &self.second {
                let s = second.score(p, &y)?;
                vec_result += s.result_to_painting;
                vec_photo += s.photo_to_painting;
                mobile_content += s.content;
            }
            let (s, t, c) = self.score(p, &y)?;
            for (acc, v) in by_layer.iter_mut().zip(s) {
                *acc += v;
            }
            for (acc, v) in tex_by_layer.iter_mut().zip(t) {
                *acc += v;
            }
            content += c;
        }
        let n = photos.len().max(1) as f64;
        let by_layer: Vec<f64> = by_layer.into_iter().map(|v| v / n).collect();
        let tex_by_layer: Vec<f64> = tex_by_layer.into_iter().map(|v| v / n).collect();
        Ok(Scores {
            style_distance: by_layer.iter().sum::<f64>() / by_layer.len() as f64,
            style_by_layer: by_layer,
            texture_distance: tex_by_layer.iter().sum::<f64>() / tex_by_layer.len() as f64,
            texture_by_layer: tex_by_layer,
            content_distance: content / n,
            style_vector_distance: self
                .second
                .as_ref()
                .map(|_| vec_result / vec_photo.max(1e-12)),
            mobile_content_distance: self.second.as_ref().map(|_| mobile_content / n),
            photos: photos.len(),
        })
    }
}

/// Scores of a style model file (at full strength, its own colours, no tiling).
pub fn evaluate_model(
    eval: &Evaluator,
    model: &Path,
    photos: &[RgbImage],
    device: &Device,
) -> Result<Scores> {
    let s = Stylizer::load(model, device)?;
    let mut restyle =
        |p: &RgbImage| -> Result<RgbImage> { s.stylize_raw(p, Tiling::Off, &mut Hooks::default()) };
    eval.evaluate(photos, Some(&mut restyle))
}

fn to_tensor(img: &RgbImage, device: &Device) -> Result<Tensor> {
    image_to_tensor(img, 0, 0, img.width(), img.height(), device)
}

/// The image files directly in `dir`, sorted, decoded (at most `limit`); unreadable ones are
/// an error naming the file (an evaluation should not silently use fewer photos).
pub fn load_photos(dir: &Path, limit: Option<usize>) -> Result<Vec<(PathBuf, RgbImage)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir.display(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && crate::train::data::has_image_extension(p))
        .collect();
    files.sort();
    if let Some(n) = limit {
        files.truncate(n);
    }
    if files.is_empty() {
        return Err(Error::Invalid(format!(
            "no photos in {} (png, jpg, webp, bmp, tiff, gif)",
            dir.display()
        )));
    }
    files
        .into_iter()
        .map(|p| crate::image_io::load_rgb(&p).map(|i| (p, i)))
        .collect()
}
