//! Importers for the two reference implementations' checkpoints. Neither runs code
//! from the file: PyTorch zip pickles are read by candle's restricted unpickler, and
//! fast-style-transfer folders are plain JSON plus raw little-endian floats.

use super::{ModelMeta, StyleModel, Variant};
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// What kind of checkpoint a path holds, judged by its shape on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A `manifest.json` folder exported from fast-style-transfer.
    FstFolder,
    /// A `torch.save`d state dict (`.pth`, `.pt`, `.model`).
    PyTorch,
    /// Already a native model (importing copies and re-validates it).
    Native,
}

pub fn detect(src: &Path) -> Result<SourceKind> {
    if src.is_dir() {
        if src.join("manifest.json").is_file() {
            return Ok(SourceKind::FstFolder);
        }
        return Err(Error::model(
            src,
            "folder has no manifest.json: not a fast-style-transfer checkpoint export",
        ));
    }
    if !src.exists() {
        return Err(Error::model(src, "no such file or folder"));
    }
    if !src.is_file() {
        return Err(Error::model(
            src,
            "is a pipe, socket or device, not a checkpoint file",
        ));
    }
    use crate::formats::{
        extension, LUA_TORCH_EXTENSION, NATIVE_MODEL_EXTENSION, PYTORCH_EXTENSIONS,
    };
    match extension(src).as_str() {
        e if e == NATIVE_MODEL_EXTENSION => Ok(SourceKind::Native),
        e if PYTORCH_EXTENSIONS.contains(&e) => Ok(SourceKind::PyTorch),
        e if e == LUA_TORCH_EXTENSION => Err(Error::model(
            src,
            "Lua Torch .t7 checkpoints are not supported; convert to PyTorch first",
        )),
        _ => Err(Error::model(
            src,
            "unknown model type: expected a .pth/.model state dict, a fast-style-transfer folder or a .safetensors model",
        )),
    }
}

/// Reads any supported checkpoint into a validated [`StyleModel`] named `name`.
pub fn import(src: &Path, name: &str) -> Result<StyleModel> {
    let file_name = src
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match detect(src)? {
        SourceKind::Native => {
            let mut m = StyleModel::load(src)?;
            m.meta.name = name.to_string();
            Ok(m)
        }
        SourceKind::PyTorch => {
            let params = read_pytorch(src)?;
            let mut meta = ModelMeta::new(name, Variant::Johnson);
            meta.source = Some(format!(
                "imported from {file_name} (pytorch/examples fast_neural_style)"
            ));
            meta.training = Some(
                serde_json::json!({ "imported_from": file_name, "implementation": "pytorch/examples fast_neural_style" }),
            );
            StyleModel::from_params(meta, params, src)
        }
        SourceKind::FstFolder => {
            let params = read_fst_folder(src)?;
            let mut meta = ModelMeta::new(name, Variant::Fst);
            meta.source = Some(format!(
                "imported from {file_name} (lengstrom/fast-style-transfer)"
            ));
            meta.training = Some(
                serde_json::json!({ "imported_from": file_name, "implementation": "fast-style-transfer (TensorFlow)" }),
            );
            StyleModel::from_params(meta, params, src)
        }
    }
}

fn read_pytorch(src: &Path) -> Result<HashMap<String, Tensor>> {
    // Opened by candle: make sure a FIFO swapped in since `detect` cannot block it.
    crate::fsutil::open_regular(src).map_err(|e| Error::model(src, e))?;
    let tensors = candle_core::pickle::read_all(src).map_err(|e| {
        let e = crate::error::without_backtrace(e);
        Error::model(
            src,
            format!("cannot read as a PyTorch state dict ({e}); only zip-format files written by torch.save are supported"),
        )
    })?;
    if tensors.is_empty() {
        return Err(Error::model(src, "the file holds no tensors"));
    }
    let mut params = HashMap::new();
    for (name, t) in tensors {
        // Old pytorch/examples checkpoints carry unused running statistics of the
        // instance norms; the reference loader deletes them too.
        if name.ends_with(".running_mean")
            || name.ends_with(".running_var")
            || name.ends_with(".num_batches_tracked")
        {
            continue;
        }
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        params.insert(name, t);
    }
    Ok(params)
}

#[derive(Deserialize)]
struct ManifestEntry {
    filename: String,
    shape: Vec<usize>,
}

/// TF variable order: conv1, then each conv is followed by its norm's shift and scale.
fn fst_layout() -> Vec<&'static str> {
    let mut layers = vec!["conv1", "conv2", "conv3"];
    const RES: [&str; 10] = [
        "res1.conv1",
        "res1.conv2",
        "res2.conv1",
        "res2.conv2",
        "res3.conv1",
        "res3.conv2",
        "res4.conv1",
        "res4.conv2",
        "res5.conv1",
        "res5.conv2",
    ];
    layers.extend(RES);
    layers.extend(["deconv1", "deconv2", "deconv3"]);
    layers
}

fn fst_norm_name(conv: &str) -> String {
    match conv {
        "conv1" => "in1".into(),
        "conv2" => "in2".into(),
        "conv3" => "in3".into(),
        "deconv1" => "in4".into(),
        "deconv2" => "in5".into(),
        "deconv3" => "in6".into(),
        res => {
            let (block, conv) = res.split_once('.').expect("residual name");
            format!("{block}.{}", conv.replace("conv", "in"))
        }
    }
}

fn read_fst_folder(dir: &Path) -> Result<HashMap<String, Tensor>> {
    let manifest_path = dir.join("manifest.json");
    let text =
        crate::fsutil::read_regular(&manifest_path).map_err(|e| Error::model(&manifest_path, e))?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::model(&manifest_path, "bad manifest: not UTF-8 text"))?;
    let manifest: HashMap<String, ManifestEntry> = serde_json::from_str(&text)
        .map_err(|e| Error::model(&manifest_path, format!("bad manifest: {e}")))?;
    let layout = fst_layout();
    let expected = layout.len() * 3;
    let var_name = |i: usize| {
        if i == 0 {
            "Variable".to_string()
        } else {
            format!("Variable_{i}")
        }
    };
    let read_var = |i: usize| -> Result<(Vec<f32>, Vec<usize>)> {
        let key = var_name(i);
        let entry = manifest.get(&key).ok_or_else(|| {
            Error::model(
                &manifest_path,
                format!("manifest has no '{key}' (expected {expected} variables)"),
            )
        })?;
        // The manifest must not steer reads outside the folder.
        if entry.filename.contains(['/', '\\']) || entry.filename.starts_with('.') {
            return Err(Error::model(
                &manifest_path,
                format!("'{key}' names an unsafe file '{}'", entry.filename),
            ));
        }
        let path = dir.join(&entry.filename);
        // Each variable must be a regular file: a FIFO here would block the read forever.
        let bytes = crate::fsutil::read_regular(&path).map_err(|e| Error::model(&path, e))?;
        let n: usize = entry.shape.iter().product();
        if bytes.len() != 4 * n {
            return Err(Error::model(
                &path,
                format!(
                    "holds {} bytes; shape {:?} needs {}",
                    bytes.len(),
                    entry.shape,
                    4 * n
                ),
            ));
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok((values, entry.shape.clone()))
    };
    if manifest.len() != expected {
        return Err(Error::model(
            &manifest_path,
            format!(
                "has {} variables; a fast-style-transfer network has {expected}",
                manifest.len()
            ),
        ));
    }
    let mut params = HashMap::new();
    for (layer, conv) in layout.iter().copied().enumerate() {
        let (w, shape) = read_var(3 * layer)?;
        if shape.len() != 4 {
            return Err(Error::model(
                dir,
                format!(
                    "{} should be a 4-d conv weight, has shape {shape:?}",
                    var_name(3 * layer)
                ),
            ));
        }
        let w = Tensor::from_vec(w, shape.as_slice(), &Device::Cpu)?;
        // TF conv: [kh, kw, in, out] → [out, in, kh, kw]; TF conv-transpose:
        // [kh, kw, out, in] → candle's [in, out, kh, kw]. The same permutation does both.
        let w = w.permute((3, 2, 0, 1))?.contiguous()?;
        params.insert(format!("{conv}.weight"), w);
        let norm = fst_norm_name(conv);
        let (shift, s1) = read_var(3 * layer + 1)?;
        let (scale, s2) = read_var(3 * layer + 2)?;
        params.insert(
            format!("{norm}.bias"),
            Tensor::from_vec(shift, s1.as_slice(), &Device::Cpu)?,
        );
        params.insert(
            format!("{norm}.weight"),
            Tensor::from_vec(scale, s2.as_slice(), &Device::Cpu)?,
        );
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fst_layout_names_every_parameter() {
        let specs = Variant::Fst.param_specs();
        let mut names = Vec::new();
        for conv in fst_layout() {
            names.push(format!("{conv}.weight"));
            names.push(format!("{}.weight", fst_norm_name(conv)));
            names.push(format!("{}.bias", fst_norm_name(conv)));
        }
        names.sort();
        let mut expected: Vec<_> = specs.keys().cloned().collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}
