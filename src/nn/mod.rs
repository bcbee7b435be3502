//! The style networks and their layers: which networks exist ([`Variant`]), how each is built
//! from a [`VarBuilder`] and how a forward pass runs ([`StyleNet`]).

pub mod arbitrary;
pub mod conv;
pub mod fst;
pub mod instant;
pub mod johnson;
pub mod norm;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use norm::NormCtx;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Which network a model file holds. Each keeps the exact arithmetic of the
/// implementation it comes from, so imported checkpoints reproduce their outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// pytorch/examples `fast_neural_style` TransformerNet; what our trainer makes.
    Johnson,
    /// Engstrom's TensorFlow `fast-style-transfer`.
    Fst,
    /// An instant style: a painting's style vector for Magenta's arbitrary-style network
    /// (bundled in `models/instant/`); the file holds only the vector.
    Instant,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Johnson => "johnson",
            Variant::Fst => "fst",
            Variant::Instant => "instant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "johnson" => Some(Variant::Johnson),
            "fst" => Some(Variant::Fst),
            "instant" => Some(Variant::Instant),
            _ => None,
        }
    }

    /// Name → shape of every parameter, in file (PyTorch) layout.
    pub fn param_specs(self) -> &'static BTreeMap<String, Vec<usize>> {
        static JOHNSON: OnceLock<BTreeMap<String, Vec<usize>>> = OnceLock::new();
        static FST: OnceLock<BTreeMap<String, Vec<usize>>> = OnceLock::new();
        static INSTANT: OnceLock<BTreeMap<String, Vec<usize>>> = OnceLock::new();
        let cell = match self {
            Variant::Johnson => &JOHNSON,
            Variant::Fst => &FST,
            // The network itself is shared by every instant style and loaded separately.
            Variant::Instant => {
                return INSTANT.get_or_init(|| {
                    [(
                        instant::VECTOR_TENSOR.to_string(),
                        vec![1, arbitrary::STYLE_DIM],
                    )]
                    .into()
                })
            }
        };
        cell.get_or_init(|| {
            // Building the network against an empty VarMap records every parameter it asks for,
            // so the specs can never drift from the network code.
            let vm = VarMap::new();
            let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
            StyleNet::new(self, vb).expect("building a network on the CPU cannot fail");
            let data = vm.data().lock().expect("varmap lock");
            data.iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().dims().to_vec()))
                .collect()
        })
    }

    /// Input pixels on each side that influence one output pixel; tiles overlap by this.
    pub fn receptive_radius(self) -> usize {
        // johnson: 4+1+2+40+4+2+4 = 57, fst: 4+2+4+40+4+2+4 = 60 (see docs/tiling.md); round up.
        64
    }

    pub fn norm_layers(self) -> usize {
        self.norm_scales().len()
    }

    /// Input pixels per feature-map pixel at the input of each norm layer (where the tiler
    /// collects statistics).
    pub fn norm_scales(self) -> &'static [usize] {
        match self {
            Variant::Johnson => &johnson::NORM_SCALES,
            Variant::Fst => &fst::NORM_SCALES,
            Variant::Instant => &arbitrary::NORM_SCALES,
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Freshly initialised parameters (as training starts from), as plain tensors on `device`.
pub fn random_params(
    variant: Variant,
    device: &Device,
) -> candle_core::Result<std::collections::HashMap<String, Tensor>> {
    let vm = VarMap::new();
    StyleNet::new(variant, VarBuilder::from_varmap(&vm, DType::F32, device))?;
    let data = vm.data().lock().expect("varmap lock");
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
        .collect())
}

/// The arithmetic of a style network's inference pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    /// f16 storage, tensor-core convolutions and f32 statistics and accumulation. Within
    /// 40 dB PSNR of f32 on real photos (`atelier bench` checks it), at about half the time
    /// and memory.
    F16,
}

impl Precision {
    /// f16 for the Johnson network on CUDA builds with cuDNN (the combination whose f16 path
    /// is implemented and measured to pay), f32 everywhere else, and f32 when
    /// [`Tuning::half_precision`](crate::tuning::Tuning::half_precision) is off.
    pub fn auto(variant: Variant, device: &Device) -> Self {
        // The instant network runs f16 within 55 dB of f32 but no faster (its 8–32-channel
        // convs are memory-bound; H200, docs/benchmarks.md), so it stays f32 unless asked.
        if variant == Variant::Johnson
            && Self::F16.supported(variant, device)
            && crate::tuning::current().half_precision
        {
            Self::F16
        } else {
            Self::F32
        }
    }

    /// Whether this build can run `variant` at this precision on `device`.
    pub fn supported(self, variant: Variant, device: &Device) -> bool {
        match self {
            Self::F32 => true,
            Self::F16 => {
                cfg!(feature = "cudnn")
                    && device.is_cuda()
                    && matches!(variant, Variant::Johnson | Variant::Instant)
            }
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::F16 => DType::F16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

/// A style network of any variant.
#[derive(Debug, Clone)]
pub enum StyleNet {
    // Boxed: each is a few hundred bytes of layer handles, and of different sizes.
    Johnson(Box<johnson::JohnsonNet>),
    Fst(Box<fst::FstNet>),
    Instant(Box<instant::InstantNet>),
}

impl StyleNet {
    pub fn new(variant: Variant, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(match variant {
            Variant::Johnson => StyleNet::Johnson(Box::new(johnson::JohnsonNet::new(vb)?)),
            Variant::Fst => StyleNet::Fst(Box::new(fst::FstNet::new(vb)?)),
            Variant::Instant => StyleNet::Instant(Box::new(instant::InstantNet::new(vb)?)),
        })
    }

    pub fn variant(&self) -> Variant {
        match self {
            StyleNet::Johnson(_) => Variant::Johnson,
            StyleNet::Fst(_) => Variant::Fst,
            StyleNet::Instant(_) => Variant::Instant,
        }
    }

    /// The input conv's weight: where backpropagation ends, so every gradient passes into it.
    pub fn first_weight(&self) -> Option<&Tensor> {
        match self {
            StyleNet::Johnson(n) => Some(n.first_weight()),
            StyleNet::Fst(_) | StyleNet::Instant(_) => None,
        }
    }

    /// Forward pass whose instance norms are steered by `ctx` (see [`NormCtx`]).
    pub fn forward_ctx(&self, x: &Tensor, ctx: &mut NormCtx) -> crate::Result<Tensor> {
        match self {
            StyleNet::Johnson(n) => n.forward_ctx(x, ctx),
            StyleNet::Fst(n) => n.forward_ctx(x, ctx),
            StyleNet::Instant(n) => n.forward_ctx(x, ctx),
        }
    }
}

impl Module for StyleNet {
    /// `(N, 3, H, W)` RGB 0..255 → `(N, 3, H, W)` RGB, nominally 0..255.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_ctx(x, &mut NormCtx::default())
            .map_err(|e| match e {
                crate::Error::Candle(e) => e,
                // A plain pass has no cancel flag: nothing else can come back.
                other => candle_core::Error::Msg(other.to_string()),
            })
    }
}
