//! The native model file: one `.safetensors` file per style (see docs/model-format.md).
//!
//! Header metadata carries the format version and a JSON description of the style;
//! the network's parameters are stored by name in PyTorch layout (f32, f16 or bf16);
//! an optional PNG thumbnail rides along as a `u8` tensor.

use crate::nn::{Precision, StyleNet, Variant};
use crate::{fsutil, Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT_VERSION: u32 = 1;
pub const KEY_VERSION: &str = "atelier.format_version";
pub const KEY_META: &str = "atelier.meta";
pub const THUMBNAIL_TENSOR: &str = "atelier.thumbnail_png";
/// A small JPEG of the painting the style was learned from (longest side
/// [`PAINTING_SIDE`]), shown beside the style in the gallery.
pub const PAINTING_TENSOR: &str = "atelier.painting_jpg";
pub const PAINTING_SIDE: u32 = 256;
/// Larger than any style network by far; guards against reading a huge wrong file.
const MAX_FILE_BYTES: u64 = 512 << 20;

/// What a user sees about a style: shown by `atelier models` and in the gallery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelMeta {
    pub name: String,
    pub variant: Variant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artist: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<String>,
    /// Where the style comes from: the painting, or the checkpoint it was imported from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// How it was made: trainer settings, data, card and minutes, or the import path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<serde_json::Value>,
}

impl ModelMeta {
    pub fn new(name: impl Into<String>, variant: Variant) -> Self {
        Self {
            name: name.into(),
            variant,
            title: None,
            artist: None,
            year: None,
            source: None,
            license: None,
            training: None,
        }
    }
}

/// A validated model held on the CPU: metadata, f32 parameters, optional thumbnail.
#[derive(Debug, Clone)]
pub struct StyleModel {
    pub meta: ModelMeta,
    pub params: HashMap<String, Tensor>,
    pub thumbnail_png: Option<Vec<u8>>,
    /// The painting, small ([`PAINTING_TENSOR`]).
    pub painting_jpg: Option<Vec<u8>>,
}

impl StyleModel {
    /// Checks `params` against the variant's network and wraps them; `origin` names the
    /// file in error messages.
    pub fn from_params(
        meta: ModelMeta,
        params: HashMap<String, Tensor>,
        origin: &Path,
    ) -> Result<Self> {
        validate_params(meta.variant, &params, origin)?;
        let params = params
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            meta,
            params,
            thumbnail_png: None,
            painting_jpg: None,
        })
    }

    /// Reads and validates a native model file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_limited(path)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::model(path, format!("not a valid safetensors file: {e}")))?;
        let meta = parse_metadata(path, &header.metadata().clone().unwrap_or_default())?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| Error::model(path, format!("not a valid safetensors file: {e}")))?;
        let mut params = HashMap::new();
        let mut thumbnail_png = None;
        let mut painting_jpg = None;
        for (name, view) in st.tensors() {
            if name == THUMBNAIL_TENSOR || name == PAINTING_TENSOR {
                if view.dtype() == safetensors::Dtype::U8 {
                    let slot = if name == THUMBNAIL_TENSOR {
                        &mut thumbnail_png
                    } else {
                        &mut painting_jpg
                    };
                    *slot = Some(view.data().to_vec());
                }
                continue;
            }
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => DType::F32,
                safetensors::Dtype::F16 => DType::F16,
                safetensors::Dtype::BF16 => DType::BF16,
                other => {
                    return Err(Error::model(
                        path,
                        format!("tensor '{name}' has dtype {other:?}; expected F32, F16 or BF16"),
                    ))
                }
            };
            let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)?;
            params.insert(name, t);
        }
        let mut model = Self::from_params(meta, params, path)?;
        model.thumbnail_png = thumbnail_png;
        model.painting_jpg = painting_jpg;
        Ok(model)
    }

    /// Builds the network on `device`.
    /// The network on `device` at the precision that is best there ([`Precision::auto`]).
    pub fn build(&self, device: &Device) -> Result<StyleNet> {
        self.build_with(device, Precision::auto(self.meta.variant, device))
    }

    pub fn build_with(&self, device: &Device, precision: Precision) -> Result<StyleNet> {
        if !precision.supported(self.meta.variant, device) {
            return Err(Error::Invalid(format!(
                "{} inference of {} networks is not available on {}",
                precision.as_str(),
                self.meta.variant,
                crate::device::describe(device)
            )));
        }
        let dtype = precision.dtype();
        let on_device = self
            .params
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_dtype(dtype)?.to_device(device)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        let vb = VarBuilder::from_tensors(on_device, dtype, device);
        Ok(StyleNet::new(self.meta.variant, vb)?)
    }

    /// Writes the model atomically; `half` stores parameters as f16 (half the size,
    /// well within the accuracy the networks need).
    pub fn save(&self, path: &Path, overwrite: bool, half: bool) -> Result<()> {
        let dtype = if half { DType::F16 } else { DType::F32 };
        let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
        for (k, v) in &self.params {
            tensors.insert(k.clone(), v.to_dtype(dtype)?);
        }
        for (name, bytes) in [
            (THUMBNAIL_TENSOR, &self.thumbnail_png),
            (PAINTING_TENSOR, &self.painting_jpg),
        ] {
            if let Some(b) = bytes {
                tensors.insert(name.into(), Tensor::from_slice(b, b.len(), &Device::Cpu)?);
            }
        }
        let mut metadata = HashMap::new();
        metadata.insert(KEY_VERSION.to_string(), FORMAT_VERSION.to_string());
        metadata.insert(
            KEY_META.to_string(),
            serde_json::to_string(&self.meta).expect("metadata serialises"),
        );
        let bytes = safetensors::serialize(tensors.iter(), Some(metadata))
            .map_err(|e| Error::model(path, format!("cannot serialise: {e}")))?;
        fsutil::write_atomic(path, overwrite, &bytes)
    }
}

/// Reads only the header of a model file: cheap enough for listing a gallery.
pub fn read_meta(path: &Path) -> Result<ModelMeta> {
    use std::io::Read;
    check_native(path)?;
    let mut f = fsutil::open_regular(path).map_err(|e| Error::model(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| Error::model(path, "file is too short to be a model"))?;
    let n = u64::from_le_bytes(len);
    if n > 100 << 20 {
        return Err(Error::model(
            path,
            "not a safetensors model file (bad header)",
        ));
    }
    let mut buf = vec![0u8; 8 + n as usize];
    buf[..8].copy_from_slice(&len);
    f.read_exact(&mut buf[8..])
        .map_err(|_| Error::model(path, "file is truncated"))?;
    let header: serde_json::Value = serde_json::from_slice(&buf[8..])
        .map_err(|_| Error::model(path, "not a safetensors model file (bad header)"))?;
    let kv: HashMap<String, String> = header
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    parse_metadata(path, &kv)
}

/// The PNG thumbnail stored in a model file, if it has one.
pub fn read_thumbnail(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = read_limited(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::model(path, format!("not a safetensors model file: {e}")))?;
    Ok(st.tensor(THUMBNAIL_TENSOR).ok().map(|t| t.data().to_vec()))
}

/// The small JPEG of the painting stored in a model file, if it has one.
pub fn read_painting(path: &Path) -> Result<Option<Vec<u8>>> {
    let bytes = read_limited(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::model(path, format!("not a safetensors model file: {e}")))?;
    Ok(st.tensor(PAINTING_TENSOR).ok().map(|t| t.data().to_vec()))
}

/// `painting` downscaled to [`PAINTING_SIDE`] and encoded as the JPEG a model file carries.
pub fn painting_jpeg(painting: &image::RgbImage) -> Result<Vec<u8>> {
    let (w, h) = painting.dimensions();
    let s = (PAINTING_SIDE as f64 / w.max(h) as f64).min(1.0);
    let small = image::imageops::resize(
        painting,
        ((w as f64 * s).round() as u32).max(1),
        ((h as f64 * s).round() as u32).max(1),
        image::imageops::FilterType::Lanczos3,
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 88)
        .encode_image(&small)
        .map_err(|e| Error::Invalid(format!("cannot encode the painting: {e}")))?;
    Ok(out)
}

/// Rewrites a model file's metadata (e.g. its display name) and leaves its tensors
/// byte for byte as they were; the file is replaced atomically.
pub fn update_meta(path: &Path, edit: impl FnOnce(&mut ModelMeta)) -> Result<ModelMeta> {
    rewrite_meta(path, path, true, edit)
}

/// Copies a model file to `dest` (which must not exist) with edited metadata.
pub fn update_meta_to(
    src: &Path,
    dest: &Path,
    edit: impl FnOnce(&mut ModelMeta),
) -> Result<ModelMeta> {
    rewrite_meta(src, dest, false, edit)
}

fn rewrite_meta(
    path: &Path,
    dest: &Path,
    overwrite: bool,
    edit: impl FnOnce(&mut ModelMeta),
) -> Result<ModelMeta> {
    let bytes = read_limited(path)?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::model(path, format!("not a safetensors model file: {e}")))?;
    let mut kv = header.metadata().clone().unwrap_or_default();
    let mut meta = parse_metadata(path, &kv)?;
    edit(&mut meta);
    kv.insert(
        KEY_META.to_string(),
        serde_json::to_string(&meta).expect("metadata serialises"),
    );
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::model(path, format!("not a safetensors model file: {e}")))?;
    let mut tensors = st.tensors();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let out = safetensors::serialize(tensors, Some(kv))
        .map_err(|e| Error::model(path, format!("cannot serialise: {e}")))?;
    fsutil::write_atomic(dest, overwrite, &out)?;
    Ok(meta)
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    check_native(path)?;
    let md = std::fs::metadata(path).map_err(|e| Error::model(path, e))?;
    if md.len() > MAX_FILE_BYTES {
        return Err(Error::model(path, "file is too large to be a style model"));
    }
    fsutil::read_regular(path).map_err(|e| Error::model(path, e))
}

/// Refuses, with the way forward, what is not a native model: the reference
/// implementations' checkpoints are a common thing to pass to `--style`, and the
/// safetensors parser would only say "header too large".
pub fn check_native(path: &Path) -> Result<()> {
    use std::io::Read;
    let convert = |what: &str| {
        Error::model(
            path,
            format!(
                "this is {what}, not an Atelier style; convert it with `atelier import {}`",
                path.display()
            ),
        )
    };
    let md = std::fs::metadata(path).map_err(|e| Error::model(path, e))?;
    if md.is_dir() {
        if path.join("manifest.json").is_file() {
            return Err(convert("a fast-style-transfer (TensorFlow) export"));
        }
        return Err(Error::model(path, "is a folder, not a model file"));
    }
    if !md.is_file() {
        return Err(Error::model(
            path,
            "is a pipe, socket or device, not a model file",
        ));
    }
    let mut head = [0u8; 4];
    let n = fsutil::open_regular(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| Error::model(path, e))?;
    let pytorch_bytes = crate::formats::is_torch_save(&head[..n]);
    let ext = crate::formats::extension(path);
    if pytorch_bytes || crate::formats::PYTORCH_EXTENSIONS.contains(&ext.as_str()) {
        return Err(convert("a PyTorch checkpoint"));
    }
    if ext == crate::formats::LUA_TORCH_EXTENSION {
        return Err(Error::model(
            path,
            "this is a Lua Torch checkpoint; Atelier cannot read it (convert it to PyTorch, then `atelier import` it)",
        ));
    }
    Ok(())
}

fn parse_metadata(path: &Path, kv: &HashMap<String, String>) -> Result<ModelMeta> {
    let version: u32 = kv
        .get(KEY_VERSION)
        .ok_or_else(|| {
            Error::model(
                path,
                "no Atelier metadata: not a native style model (use `atelier import` for PyTorch or TensorFlow checkpoints)",
            )
        })?
        .parse()
        .map_err(|_| Error::model(path, "bad format version"))?;
    if version > FORMAT_VERSION {
        return Err(Error::model(
            path,
            format!("format version {version} is newer than this program reads ({FORMAT_VERSION}); update Atelier"),
        ));
    }
    let meta: ModelMeta = serde_json::from_str(
        kv.get(KEY_META)
            .ok_or_else(|| Error::model(path, "metadata lacks 'atelier.meta'"))?,
    )
    .map_err(|e| Error::model(path, format!("bad 'atelier.meta': {e}")))?;
    Ok(meta)
}

/// Every expected parameter present with the right shape and finite values, and
/// nothing unexpected: the error names the first offending tensor.
pub fn validate_params(
    variant: Variant,
    params: &HashMap<String, Tensor>,
    origin: &Path,
) -> Result<()> {
    let specs = variant.param_specs();
    for (name, shape) in specs {
        let t = params.get(name).ok_or_else(|| {
            Error::model(
                origin,
                format!("missing tensor '{name}' for a {variant} network"),
            )
        })?;
        if t.dims() != shape.as_slice() {
            return Err(Error::model(
                origin,
                format!(
                    "tensor '{name}' has shape {:?}; a {variant} network needs {shape:?}",
                    t.dims()
                ),
            ));
        }
        if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::model(
                origin,
                format!(
                    "tensor '{name}' has dtype {:?}; expected a float type",
                    t.dtype()
                ),
            ));
        }
        let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::model(
                origin,
                format!("tensor '{name}' contains {bad} (corrupt weights)"),
            ));
        }
    }
    let mut extra: Vec<_> = params.keys().filter(|k| !specs.contains_key(*k)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::model(
            origin,
            format!("unexpected tensor '{name}': not part of a {variant} network"),
        ));
    }
    Ok(())
}
