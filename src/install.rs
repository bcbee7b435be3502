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
