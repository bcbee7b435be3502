//! Adding a style from any model the importers read: the one path `atelier import` and the
//! app (a dropped model, Import…) share, so both name, validate, store and thumbnail an
//! imported style alike and differ only in where it may go.

use crate::formats;
use crate::model::import::{self, SourceKind};
use crate::model::registry::Registry;
use crate::model::Variant;
use crate::stylize::{instant, thumbnail, Stylizer};
use crate::{fsutil, Error, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// Where an imported style is written.
#[derive(Debug, Clone)]
pub enum Destination {
    /// The user's style folder under a name no style has (`name`, else `name 2`…), so
    /// nothing is ever replaced: what the app does.
    NewStyle,
    /// `<style folder>/<name>.safetensors`, replacing a file there only with `overwrite`
    /// (`atelier import`).
    UserFolder { overwrite: bool },
    /// This file (`atelier import -o`).
    File { path: PathBuf, overwrite: bool },
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The display name; by default a native style keeps its own, anything else is named
    /// after its file or folder.
    pub name: Option<String>,
    /// Store the weights as f16. Off by default: the reference implementations' networks
    /// reproduce their outputs exactly only at f32.
    pub half: bool,
    pub destination: Destination,
}

/// A style written by [`import_style`].
#[derive(Debug, Clone)]
pub struct Installed {
    pub path: PathBuf,
    pub name: String,
    pub variant: Variant,
}

/// Converts `src` (a PyTorch state dict, a fast-style-transfer folder, a native style, or a
/// painting, which becomes an instant style),
/// renders its gallery thumbnail on the CPU, and writes it to `opts.destination`. Runs the
/// network, so callers keep it off any UI thread.
pub fn import_style(registry: &Registry, src: &Path, opts: &ImportOptions) -> Result<Installed> {
    if formats::is_tensorflow_checkpoint(src) {
        return Err(Error::model(
            src,
            "this is a TensorFlow checkpoint, which Atelier cannot read; export the \
             fast-style-transfer network as a folder of variables with a manifest.json \
             (docs/model-format.md) and import that folder",
        ));
    }
    let painting = formats::kind_of(src) == formats::Kind::Photo;
    let native = !painting && import::detect(src)? == SourceKind::Native;
    let name = match &opts.name {
        Some(n) => n.trim().to_string(),
        None if native => crate::model::format::read_meta(src)?.name,
        None => src
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "style".into()),
    };
    if native
        && matches!(opts.destination, Destination::NewStyle)
        && inside(src, &registry.user_dir)
    {
        // A copy under a new name would be a second entry for the same style.
        return Err(Error::Invalid(format!(
            "'{name}' is already one of your styles"
        )));
    }
    let fixed = match &opts.destination {
        Destination::NewStyle => None,
        Destination::UserFolder { overwrite } => {
            Some((registry.user_model_path(&name), *overwrite))
        }
        Destination::File { path, overwrite } => Some((path.clone(), *overwrite)),
    };
    if let Some((dest, _)) = &fixed {
        refuse_writing_over_source(src, dest)?;
    }
    let mut model = if painting {
        instant::style_from_painting(src, &name)?
    } else {
        import::import(src, &name)?
    };
    // Thumbnails are small; the CPU renders one in well under a second. A network that
    // cannot render one cannot stylise either, so that fails the import.
    model.thumbnail_png = Some(thumbnail::render(&Stylizer::new(&model, &Device::Cpu)?)?);
    let (path, overwrite) = match fixed {
        Some(f) => f,
        // Chosen last, so a style added meanwhile is not overwritten; `save` refuses an
        // existing file all the same.
        None => {
            let (path, free) = registry.free_user_model_path(&name);
            model.meta.name = free;
            (path, false)
        }
    };
    model.save(&path, overwrite, opts.half)?;
    Ok(Installed {
        path,
        name: model.meta.name,
        variant: model.meta.variant,
    })
}

fn inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || fsutil::resolved(path).starts_with(fsutil::resolved(dir))
}

/// The source is the only copy of the checkpoint: overwriting means "replace an older
/// import", never "replace what is being imported" (or a file inside its folder).
fn refuse_writing_over_source(src: &Path, out: &Path) -> Result<()> {
    let inside_folder = src.is_dir() && out.exists() && inside(out, src);
    if fsutil::same_file(src, out) || inside_folder {
        return Err(Error::Invalid(format!(
            "{}: the output would replace the checkpoint being imported; choose another -o",
            out.display()
        )));
    }
    Ok(())
}

/// Mixes instant styles by weight into a new instant style in the user's folder, named
/// "A + B" (or a free variant of it). Trained styles have different networks, not vectors,
/// so they are not mixed.
pub fn mix_instant_styles(registry: &Registry, parts: &[(PathBuf, f32)]) -> Result<Installed> {
    use crate::model::StyleModel;
    use crate::nn::instant::VECTOR_TENSOR;
    if parts.len() < 2 {
        return Err(Error::Invalid("pick two styles to mix".into()));
    }
    let mut vectors = Vec::new();
    let mut names = Vec::new();
    let mut first_painting = None;
    for (path, weight) in parts {
        let m = StyleModel::load(path)?;
        if m.meta.variant != Variant::Instant {
            return Err(Error::Invalid(format!(
                "'{}' is a trained style; only instant styles (made from a painting) can be mixed — use its painting as a style first",
                m.meta.name
            )));
        }
        let v: Vec<f32> = m.params[VECTOR_TENSOR].flatten_all()?.to_vec1()?;
        vectors.push((v, *weight));
        names.push(m.meta.name.clone());
        first_painting = first_painting.or(m.painting_jpg.clone());
    }
    let mixed = instant::mix(&vectors)?;
    let name = names.join(" + ");
    let (path, free) = registry.free_user_model_path(&name);
    let mut model = instant::instant_style(mixed, &free)?;
    let total: f32 = parts.iter().map(|(_, w)| w).sum();
    let recipe: Vec<String> = names
        .iter()
        .zip(parts)
        .map(|(n, (_, w))| format!("{:.0}% {n}", 100.0 * w / total))
        .collect();
    model.meta.source = Some(format!("instant mix: {}", recipe.join(", ")));
    model.meta.training = Some(serde_json::json!({ "mix": recipe }));
    model.painting_jpg = first_painting;
    model.thumbnail_png = Some(thumbnail::render(&Stylizer::new(&model, &Device::Cpu)?)?);
    model.save(&path, false, false)?;
    Ok(Installed {
        path,
        name: model.meta.name,
        variant: Variant::Instant,
    })
}
