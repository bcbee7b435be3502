//! An instant style as a style network: a painting's style vector plus the one arbitrary-style
//! network every instant style shares (loaded once per device from `models/instant/`).
//!
//! Keeping instant styles as ordinary style files (variant `instant`, one 100-value tensor)
//! lets the gallery, the command line, the app's worker and video use them like any trained
//! style.

use super::arbitrary::{ArbitraryNet, MIN_SIDE, SIDE_MULTIPLE, STYLE_DIM};
use super::norm::{Flow, InstanceNorm, NormCtx};
use crate::model::magenta_import;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use std::sync::{Arc, Mutex};

/// The tensor an instant style file holds: `(1, 100)`.
pub const VECTOR_TENSOR: &str = "style_vector";

#[derive(Debug, Clone)]
pub struct InstantNet {
    net: Arc<ArbitraryNet>,
    vector: Tensor,
    /// The transformer's norms under `vector`, computed once.
    norms: Vec<InstanceNorm>,
}

/// The bundled network on `device` with its transformer computing in `dtype` (f16 only
/// where [`crate::nn::Precision::supported`] says so), loaded at most once per device and dtype.
pub fn shared_network(device: &Device, dtype: DType) -> crate::Result<Arc<ArbitraryNet>> {
    static LOADED: Mutex<Vec<(String, Arc<ArbitraryNet>)>> = Mutex::new(Vec::new());
    let key = format!("{:?} {dtype:?}", device.location());
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, n)) = loaded.iter().find(|(k, _)| *k == key) {
        return Ok(n.clone());
    }
    if dtype != DType::F32 {
        drop(loaded);
        let net = Arc::new(shared_network(device, DType::F32)?.with_transformer_dtype(dtype)?);
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        loaded.push((key, net.clone()));
        return Ok(net);
    }
    let path = magenta_import::bundled_path().ok_or_else(|| {
        crate::Error::Invalid(format!(
            "instant styles need the arbitrary-style network ({}), which is missing from this installation's models folder",
            magenta_import::BUNDLED_FILE
        ))
    })?;
    let net = Arc::new(magenta_import::load(&path, device)?);
    loaded.push((key, net.clone()));
    Ok(net)
}

impl InstantNet {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let vector = vb
            .get((1, STYLE_DIM), VECTOR_TENSOR)?
            .to_dtype(DType::F32)?;
        let net = shared_network(vb.device(), vb.dtype())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let norms = net.transformer.norms_for(&vector)?;
        Ok(Self { net, vector, norms })
    }

    /// An instant style on an already loaded network.
    pub fn from_shared(net: Arc<ArbitraryNet>, vector: &[f32]) -> Result<Self> {
        let vector = Tensor::from_slice(vector, (1, STYLE_DIM), net.device())?;
        Ok(Self {
            norms: net.transformer.norms_for(&vector)?,
            net,
            vector,
        })
    }

    pub fn network(&self) -> &ArbitraryNet {
        &self.net
    }

    pub fn vector(&self) -> &Tensor {
        &self.vector
    }

    /// The same network under another style vector.
    pub fn with_vector(&self, vector: &[f32]) -> Result<Self> {
        Self::from_shared(self.net.clone(), vector)
    }

    /// `(N, 3, H, W)` RGB 0..255 of any size → the same, like the other style networks:
    /// edge-replicated up to the sizes the transformer takes and cropped back. Its norms
    /// follow `ctx` (whole-image statistics for tiles, smoothed ones for video); where `ctx`
    /// collects statistics, the map it stopped at comes back instead.
    pub fn forward_ctx(&self, x: &Tensor, ctx: &mut NormCtx) -> crate::Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        let (hp, wp) = (padded_side(h), padded_side(w));
        let x = (x.to_dtype(self.net.transformer.dtype())? / 255.0)?
            .pad_with_same(2, 0, hp - h)?
            .pad_with_same(3, 0, wp - w)?;
        match self.net.transformer.forward_ctx(&x, &self.norms, ctx)? {
            Flow::Next(y) => Ok((y.narrow(2, 0, h)?.narrow(3, 0, w)? * 255.0)?),
            Flow::Stop(map) => Ok(map),
        }
    }

    /// [`Self::forward_ctx`] with each image's own statistics.
    pub fn forward_rgb255(&self, x: &Tensor) -> crate::Result<Tensor> {
        self.forward_ctx(x, &mut NormCtx::default())
    }
}

/// The smallest side at least `n` that the transformer takes.
pub fn padded_side(n: usize) -> usize {
    n.max(MIN_SIDE).div_ceil(SIDE_MULTIPLE) * SIDE_MULTIPLE
}
