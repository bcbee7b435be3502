//! Instant styles: any painting becomes a style with one pass of Magenta's style predictor,
//! and photos are repainted by the arbitrary-style transformer under that style vector.
//!
//! Strength here moves the style vector from the photo's own (what the predictor sees in the
//! photo) towards the painting's, as Magenta does: the image stays coherent at every strength,
//! where a pixel blend would only fade the painting in over the photo.

use super::{image_to_tensor, tensor_to_image, Hooks};
use crate::model::magenta_import;
use crate::model::{ModelMeta, StyleModel, Variant};
use crate::nn::arbitrary::{ArbitraryNet, PREDICTOR_SIDE, STYLE_DIM};
use crate::nn::instant::{shared_network, InstantNet, VECTOR_TENSOR};
use crate::nn::norm::NormCtx;
use crate::nn::Precision;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use image::RgbImage;
use std::path::Path;
use std::sync::Arc;

/// A style vector: what the predictor says about a painting.
pub type StyleVector = Vec<f32>;

/// The arbitrary-style network, loaded once, ready for any painting and any photo.
pub struct InstantStylizer {
    net: Arc<ArbitraryNet>,
    /// The same network on the CPU, where the predictor runs (see [`bundled_predictor`]).
    predictor: Arc<ArbitraryNet>,
}

impl InstantStylizer {
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let net = Arc::new(magenta_import::load(path, device)?);
        let predictor = if device.is_cpu() {
            net.clone()
        } else {
            Arc::new(magenta_import::load(path, &Device::Cpu)?)
        };
        Ok(Self { net, predictor })
    }

    /// The network bundled with Atelier (`models/instant/`), shared with instant style files,
    /// at the precision this device runs instant styles at ([`Precision::auto`]).
    pub fn bundled(device: &Device) -> Result<Self> {
        Self::bundled_with(device, Precision::auto(Variant::Instant, device))
    }

    /// [`Self::bundled`] with the transformer at `precision` (the predictor is always f32).
    pub fn bundled_with(device: &Device, precision: Precision) -> Result<Self> {
        if !precision.supported(Variant::Instant, device) {
            return Err(Error::Invalid(format!(
                "{} inference of instant styles is not available on {}",
                precision.as_str(),
                crate::device::describe(device)
            )));
        }
        Ok(Self {
            net: shared_network(device, precision.dtype())?,
            predictor: bundled_predictor()?,
        })
    }

    pub fn device(&self) -> &Device {
        self.net.device()
    }

    /// The painting's style vector; any size of painting (it is resized to 256², as the
    /// predictor was trained).
    pub fn style_vector(&self, painting: &RgbImage) -> Result<StyleVector> {
        style_vector(&self.predictor, painting)
    }

    /// The style vector of an image that is already the predictor's 256×256 input.
    pub fn style_vector_exact(&self, input: &RgbImage) -> Result<StyleVector> {
        style_vector_exact(&self.predictor, input)
    }

    /// Repaints `photo` under `style` at `strength` (0 = the photo's own style vector,
    /// 1 = the painting's). Output has the photo's exact size.
    pub fn stylize(
        &self,
        photo: &RgbImage,
        style: &[f32],
        strength: f32,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        if style.len() != STYLE_DIM {
            return Err(Error::Invalid(format!(
                "a style vector has {STYLE_DIM} values, not {}",
                style.len()
            )));
        }
        let (w, h) = photo.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::Invalid("the photo is empty".into()));
        }
        hooks.report(0, 2);
        let vector = if strength >= 1.0 {
            style.to_vec()
        } else {
            interpolate(&self.style_vector(photo)?, style, strength)
        };
        hooks.check_cancel()?;
        hooks.report(1, 2);
        let net = InstantNet::from_shared(self.net.clone(), &vector)?;
        let x = image_to_tensor(photo, 0, 0, w, h, self.device())?;
        let mut ctx = NormCtx {
            cancel: hooks.cancel,
            ..Default::default()
        };
        let out = tensor_to_image(&net.forward_ctx(&x, &mut ctx)?)?;
        hooks.report(2, 2);
        Ok(out)
    }
}

/// The bundled network as the predictor runs it: on the CPU on every device, because
/// MobileNetV2's depthwise convs go through candle's grouped conv on CUDA, one launch per
/// channel — 2.2 s per painting on an H200 against tens of milliseconds on a CPU
/// (docs/benchmarks.md).
pub(crate) fn bundled_predictor() -> Result<Arc<ArbitraryNet>> {
    shared_network(&Device::Cpu, candle_core::DType::F32)
}

/// The style vector of a painting (or photo) by the bundled network's predictor, which every
/// instant style file shares.
pub fn bundled_style_vector(image: &RgbImage) -> Result<StyleVector> {
    style_vector(&*bundled_predictor()?, image)
}

/// A painting's style vector; any size of painting (it is resized to 256², as the predictor
/// was trained).
pub fn style_vector(net: &ArbitraryNet, painting: &RgbImage) -> Result<StyleVector> {
    if painting.width() == 0 || painting.height() == 0 {
        return Err(Error::Invalid("the painting is empty".into()));
    }
    let side = PREDICTOR_SIDE as u32;
    let small = image::imageops::resize(
        painting,
        side,
        side,
        image::imageops::FilterType::CatmullRom,
    );
    style_vector_exact(net, &small)
}

fn style_vector_exact(net: &ArbitraryNet, input: &RgbImage) -> Result<StyleVector> {
    let (w, h) = input.dimensions();
    let x = (image_to_tensor(input, 0, 0, w, h, net.device())? / 255.0)?;
    Ok(net.predictor.forward(&x)?.flatten_all()?.to_vec1()?)
}

/// An instant style (in memory) from a style vector.
pub fn instant_style(vector: StyleVector, name: &str) -> Result<StyleModel> {
    let mut meta = ModelMeta::new(name, Variant::Instant);
    meta.source = Some("instant style".into());
    let params = [(
        VECTOR_TENSOR.to_string(),
        Tensor::from_vec(vector, (1, STYLE_DIM), &Device::Cpu)?,
    )]
    .into();
    StyleModel::from_params(meta, params, Path::new("<instant style>"))
}

/// An instant style made from a painting file: its style vector, a small copy of the
/// painting for the gallery, and where it came from.
pub fn style_from_painting(path: &Path, name: &str) -> Result<StyleModel> {
    let painting = crate::image_io::load_rgb(path)?;
    let mut model = instant_style(bundled_style_vector(&painting)?, name)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    model.meta.source = Some(format!("instant style from {file_name}"));
    // The full path lets "Train for full quality" start from the same painting.
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    model.meta.training = Some(serde_json::json!({
        "instant_from": file_name,
        "painting_path": full.to_string_lossy(),
        "network": magenta_import::NETWORK_NAME,
    }));
    model.painting_jpg = Some(crate::model::format::painting_jpeg(&painting)?);
    Ok(model)
}

/// `(1 - t)·from + t·to`.
pub fn interpolate(from: &[f32], to: &[f32], t: f32) -> StyleVector {
    let t = t.clamp(0.0, 1.0);
    from.iter()
        .zip(to)
        .map(|(a, b)| (1.0 - t) * a + t * b)
        .collect()
}

/// A weighted mean of style vectors: mixing paintings. Weights need not sum to 1.
pub fn mix(parts: &[(StyleVector, f32)]) -> Result<StyleVector> {
    let total: f32 = parts.iter().map(|(_, w)| *w).sum();
    let bad_weight = parts.iter().any(|(_, w)| *w < 0.0 || !w.is_finite());
    if parts.is_empty() || bad_weight || total <= 0.0 {
        return Err(Error::Invalid(
            "style weights must be positive numbers (e.g. --style-image a.jpg:2 --style-image b.jpg:1)"
                .into(),
        ));
    }
    let mut out = vec![0.0; STYLE_DIM];
    for (v, w) in parts {
        if v.len() != STYLE_DIM {
            return Err(Error::Invalid(format!(
                "a style vector has {STYLE_DIM} values, not {}",
                v.len()
            )));
        }
        for (o, x) in out.iter_mut().zip(v) {
            *o += x * w / total;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_round_up_to_what_the_network_takes() {
        use crate::nn::instant::padded_side;
        assert_eq!(padded_side(472), 472);
        assert_eq!(padded_side(473), 476);
        assert_eq!(padded_side(3), crate::nn::arbitrary::MIN_SIDE);
    }

    #[test]
    fn mixing_is_a_weighted_mean() {
        let a = vec![1.0; STYLE_DIM];
        let b = vec![4.0; STYLE_DIM];
        let m = mix(&[(a.clone(), 2.0), (b.clone(), 1.0)]).unwrap();
        assert!(m.iter().all(|&x| (x - 2.0).abs() < 1e-6));
        assert!(mix(&[(a.clone(), 0.0)]).is_err());
        assert!(mix(&[(a, 1.0), (b, -1.0)]).is_err());
        assert!(mix(&[]).is_err());
    }

    #[test]
    fn interpolation_ends_at_both_vectors() {
        let a = vec![0.0; 3];
        let b = vec![2.0; 3];
        assert_eq!(interpolate(&a, &b, 0.0), a);
        assert_eq!(interpolate(&a, &b, 1.0), b);
        assert_eq!(interpolate(&a, &b, 0.25), vec![0.5; 3]);
    }
}
