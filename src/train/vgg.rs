//! The VGG loss network (conv1_1 … relu4_3 of VGG16, or of VGG19) that defines
//! perceptual losses.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Convs per block: VGG16 and VGG19. torchvision's `features.N` numbers every module (conv,
/// ReLU, pool), so a block of `k` convs spans `2k + 1` indices.
const BLOCKS16: [usize; 5] = [2, 2, 3, 3, 3];
const BLOCKS19: [usize; 5] = [2, 2, 4, 4, 4];

/// One conv of the network: its `features.N` index, its name (`relu{block}_{k}` after its
/// ReLU) and whether a 2×2 max-pool follows it.
#[derive(Debug, Clone, Copy)]
struct LayerSpec {
    index: usize,
    block: usize,
    conv: usize,
    pool_after: bool,
}

fn layer_table(blocks: &[usize]) -> Vec<LayerSpec> {
    let mut out = Vec::new();
    let mut index = 0;
    for (b, &k) in blocks.iter().enumerate() {
        for c in 0..k {
            out.push(LayerSpec {
                index,
                block: b + 1,
                conv: c + 1,
                pool_after: c + 1 == k,
            });
            index += 2;
        }
        index += 1;
    }
    out
}

/// How the network expects its input, read from the weight file's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preprocess {
    /// Keras/Caffe: BGR, 0..255, minus the ImageNet mean.
    Caffe,
    /// torchvision: RGB, 0..1, minus mean, divided by std.
    Torchvision,
}

pub struct Vgg16 {
    /// Weights (in [`Self::dtype`]) and `(1, C, 1, 1)` f32 biases, in order.
    convs: Vec<(Tensor, Tensor)>,
    /// The dtype the network computes in (f32: a bf16 loss network was measured no faster,
    /// `docs/benchmarks.md`); weights are stored in it, biases stay f32, and the taps come out
    /// in f32.
    dtype: DType,
    /// What each conv of `convs` is: VGG16's or VGG19's table, cut where the file ends.
    layers: Vec<LayerSpec>,
    preprocess: Preprocess,
    shift: Tensor,
    scale: Tensor,
    permute_bgr: bool,
}

/// The VGG16 shipped in `models/`.
pub fn bundled_vgg_path() -> Option<PathBuf> {
    crate::model::registry::bundled_dir()
        .map(|d| d.join("vgg16-imagenet-keras-conv1_1-conv5_3.f16.safetensors"))
        .filter(|p| p.is_file())
}

impl Vgg16 {
    /// Loads `features.*` weights from a `.safetensors` or PyTorch `.pth` file, to compute in
    /// f32.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let dtype = DType::F32;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (tensors, preprocess): (HashMap<String, Tensor>, Preprocess) = if ext == "safetensors" {
            let bytes = std::fs::read(path).map_err(|e| Error::model(path, e))?;
            let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
                .map_err(|e| Error::model(path, format!("not a valid safetensors file: {e}")))?;
            let pre = md
                .metadata()
                .as_ref()
                .and_then(|m| m.get("preprocess").cloned())
                .map_or(Preprocess::Torchvision, |p| {
                    if p.to_ascii_lowercase().starts_with("caffe") {
                        Preprocess::Caffe
                    } else {
                        Preprocess::Torchvision
                    }
                });
            let t = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
                .map_err(|e| Error::model(path, format!("cannot read tensors: {e}")))?;
            (t, pre)
        } else {
            let t = candle_core::pickle::read_all(path).map_err(|e| {
                Error::model(path, format!("cannot read as a PyTorch state dict: {e}"))
            })?;
            (t.into_iter().collect(), Preprocess::Torchvision)
        };
        // VGG19 has a conv where VGG16 has its third pool (features.16).
        let is19 = [
            "features.16.weight",
            "vgg16.features.16.weight",
            "vgg19.features.16.weight",
        ]
        .iter()
        .any(|k| tensors.get(*k).is_some_and(|t| t.rank() == 4));
        let table = layer_table(if is19 { &BLOCKS19 } else { &BLOCKS16 });
        let find = |name: &str| {
            tensors
                .get(name)
                .or_else(|| tensors.get(&format!("vgg16.{name}")))
                .or_else(|| tensors.get(&format!("vgg19.{name}")))
                .cloned()
        };
        let mut convs = Vec::new();
        let mut layers = Vec::new();
        let mut c_in = 3;
        for spec in table {
            let i = spec.index;
            let (w, b) = match (
                find(&format!("features.{i}.weight")),
                find(&format!("features.{i}.bias")),
            ) {
                (Some(w), Some(b)) => (w, b),
                // Files may stop anywhere after conv4_3 (the bundled one used to end there, the
                // current one ends at conv5_3); the losses name the taps they need.
                (None, None) if (spec.block, spec.conv) > (4, 3) => break,
                _ => {
                    return Err(Error::model(
                        path,
                        format!(
                            "not a VGG16 or VGG19 through conv4_3: missing tensor 'features.{i}.*' (relu{}_{})",
                            spec.block, spec.conv
                        ),
                    ))
                }
            };
            let c_out = w.dim(0)?;
            if w.dims() != [c_out, c_in, 3, 3] || b.dims() != [c_out] {
                return Err(Error::model(
                    path,
                    format!(
                        "features.{i}.weight has shape {:?}; VGG needs [{c_out}, {c_in}, 3, 3]",
                        w.dims()
                    ),
                ));
            }
            // One NaN in a bias would silently change every loss computed with it.
            for (what, t) in [("weight", &w), ("bias", &b)] {
                let finite = t
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .all(|v| v.is_finite());
                if !finite {
                    return Err(Error::model(
                        path,
                        format!(
                            "features.{i}.{what} holds NaN or infinite values (corrupt weights)"
                        ),
                    ));
                }
            }
            c_in = c_out;
            convs.push((
                w.to_dtype(DType::F32)?.to_dtype(dtype)?.to_device(device)?,
                b.to_dtype(DType::F32)?
                    .reshape((1, c_out, 1, 1))?
                    .to_device(device)?,
            ));
            layers.push(spec);
        }
        // Input arrives as RGB 0..255; fold each convention into x·scale − shift per channel.
        let (shift, scale, permute_bgr) = match preprocess {
            Preprocess::Caffe => (vec![103.939f32, 116.779, 123.68], vec![1f32; 3], true),
            Preprocess::Torchvision => {
                let mean = [0.485f32, 0.456, 0.406];
                let std = [0.229f32, 0.224, 0.225];
                (
                    (0..3).map(|c| mean[c] / std[c]).collect(),
                    (0..3).map(|c| 1.0 / (255.0 * std[c])).collect(),
                    false,
                )
            }
        };
        Ok(Self {
            convs,
            dtype,
            layers,
            preprocess,
            shift: Tensor::from_vec(shift, (1, 3, 1, 1), device)?,
            scale: Tensor::from_vec(scale, (1, 3, 1, 1), device)?,
            permute_bgr,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// The activation named `relu{block}_{k}` (e.g. `relu3_3`), as a position in this network.
    pub fn tap(&self, name: &str) -> Result<Tap> {
        let parse = || -> Option<(usize, usize)> {
            let (b, k) = name.strip_prefix("relu")?.split_once('_')?;
            Some((b.parse().ok()?, k.parse().ok()?))
        };
        let (block, conv) = parse().ok_or_else(|| {
            Error::Invalid(format!(
                "'{name}' is not a loss-network layer; layers are named like relu3_3"
            ))
        })?;
        self.layers
            .iter()
            .position(|l| l.block == block && l.conv == conv)
            .map(Tap)
            .ok_or_else(|| {
                let last = self.layers.last().expect("at least conv4_3");
                Error::Invalid(format!(
                    "the loss network has no layer {name} (it ends at relu{}_{}; the VGG16 through conv5_3 has block 5)",
                    last.block, last.conv
                ))
            })
    }

    /// The taps of the classic perceptual loss (Johnson et al.): relu1_2, relu2_2, relu3_3,
    /// relu4_3 (by name, so VGG19 reads its conv3_3 and conv4_3 too).
    pub fn classic_taps(&self) -> Vec<Tap> {
        ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
            .iter()
            .map(|n| self.tap(n).expect("every VGG file reaches conv4_3"))
            .collect()
    }

    /// The four classic tap activations of `(N, 3, H, W)` RGB 0..255 (see [`Self::classic_taps`]).
    pub fn features(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        self.features_at(x, &self.classic_taps())
    }

    /// The activations at `taps` (f32, in the order asked), running only the layers they need
    /// (a content loss at relu2_2 runs 4 of the 13 convs).
    pub fn features_at(&self, x: &Tensor, taps: &[Tap]) -> candle_core::Result<Vec<Tensor>> {
        Ok(self.run(x, taps, false)?.taps)
    }

    /// The activations at `taps` of `x` (outside autograd), keeping what [`Self::input_grad`]
    /// needs.
    pub fn forward_saved(&self, x: &Tensor, taps: &[Tap]) -> candle_core::Result<Saved> {
        self.run(&x.detach(), taps, true)
    }

    fn run(&self, x: &Tensor, taps: &[Tap], keep: bool) -> candle_core::Result<Saved> {
        let input_dims = x.dims4()?;
        let Some(last) = taps.iter().map(|t| t.0).max() else {
            return Err(candle_core::Error::Msg(
                "no loss-network taps asked for".into(),
            ));
        };
        let x = if self.permute_bgr {
            Tensor::cat(
                &[x.narrow(1, 2, 1)?, x.narrow(1, 1, 1)?, x.narrow(1, 0, 1)?],
                1,
            )?
        } else {
            x.clone()
        };
        let mut x = x
            .broadcast_mul(&self.scale)?
            .broadcast_sub(&self.shift)?
            .to_dtype(self.dtype)?;
        let mut out: Vec<Option<Tensor>> = vec![None; taps.len()];
        let mut acts = Vec::new();
        use crate::ops::{conv, pool};
        for (i, (w, b)) in self.convs.iter().enumerate().take(last + 1) {
            let y = conv::conv2d_zero_padded(&x, w, 1, 1)?;
            x = pool::bias_relu(&y, b)?;
            if keep {
                acts.push(x.clone());
            }
            for (k, t) in taps.iter().enumerate() {
                if t.0 == i {
                    out[k] = Some(x.to_dtype(DType::F32)?);
                }
            }
            if self.layers[i].pool_after && i < last {
                x = pool::max_pool2(&x)?;
            }
        }
        let (n, c, h, w) = input_dims;
        Ok(Saved {
            acts,
            taps: out
                .into_iter()
                .map(|t| t.expect("every tap is run"))
                .collect(),
            positions: taps.to_vec(),
            input_dims: [n, c, h, w],
        })
    }

    /// `∂L/∂x` (f32) for the input of [`Self::forward_saved`], from `∂L/∂tap` of each of its
    /// taps (f32; `None` for a tap the loss does not read): the network's backward pass written
    /// out by hand. Under candle's autograd every intermediate gradient was zero-filled and then
    /// added to, and each of the ~30 operations recorded and replayed; here each layer is one
    /// ReLU-mask pass (plus one for a pool) and one cuDNN backward-data call.
    pub fn input_grad(
        &self,
        saved: &Saved,
        tap_grads: &[Option<Tensor>],
    ) -> candle_core::Result<Tensor> {
        let mut g: Option<Tensor> = None;
        for i in (0..saved.acts.len()).rev() {
            let (w, _) = &self.convs[i];
            let a = &saved.acts[i];
            if self.layers[i].pool_after && i + 1 < saved.acts.len() {
                // The forward pooled after this layer (and after its tap).
                if let Some(gp) = g.take() {
                    g = Some(crate::ops::pool::max_pool2_grad(a, &gp)?);
                }
            }
            for (k, t) in saved.positions.iter().enumerate() {
                if t.0 != i {
                    continue;
                }
                if let Some(Some(tg)) = tap_grads.get(k) {
                    let tg = tg.to_dtype(a.dtype())?;
                    g = Some(match g {
                        Some(g) => (g + tg)?,
                        None => tg,
                    });
                }
            }
            let Some(ga) = g.take() else { continue };
            let gz = crate::ops::pool::relu_grad(a, &ga)?;
            let (n, _, h, wd) = a.dims4()?;
            g = Some(crate::ops::conv::conv2d_input_grad(
                &gz,
                w,
                [n, w.dim(1)?, h, wd],
                1,
                1,
            )?);
        }
        let [n, c, h, w] = saved.input_dims;
        let g = match g {
            Some(g) => g.to_dtype(DType::F32)?,
            None => return Tensor::zeros((n, c, h, w), DType::F32, &self.scale.device().clone()),
        };
        // Preprocessing was x·scale − shift per channel, after the BGR flip.
        let g = g.broadcast_mul(&self.scale)?;
        if self.permute_bgr {
            Tensor::cat(
                &[g.narrow(1, 2, 1)?, g.narrow(1, 1, 1)?, g.narrow(1, 0, 1)?],
                1,
            )
        } else {
            Ok(g)
        }
    }
}

/// A named activation of the loss network: its conv's position (see [`Vgg16::tap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tap(usize);

/// Activations of one loss-network pass kept for [`Vgg16::input_grad`].
pub struct Saved {
    /// Each conv layer's output after its ReLU, in the network's dtype.
    acts: Vec<Tensor>,
    /// The taps asked for, f32, in the order asked.
    pub taps: Vec<Tensor>,
    positions: Vec<Tap>,
    input_dims: [usize; 4],
}
