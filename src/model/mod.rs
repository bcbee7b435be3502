//! Style model storage: the file format ([`format`]), the registry of installed models
//! ([`registry`]) and importers of other formats ([`import`]).

pub mod format;
pub mod import;
pub mod magenta_import;
pub mod onnx;
pub mod registry;

use candle_core::Device;

pub use crate::nn::Variant;
pub use format::{ModelMeta, StyleModel};

/// An untrained model: for tests, benchmarks and as a training starting point.
pub fn random_model(variant: Variant, name: &str) -> crate::Result<StyleModel> {
    let params = crate::nn::random_params(variant, &Device::Cpu)?;
    StyleModel::from_params(
        ModelMeta::new(name, variant),
        params,
        std::path::Path::new("<random>"),
    )
}
