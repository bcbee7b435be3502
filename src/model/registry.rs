//! Where styles live: the bundled `models/` folder and the user's style folder, and
//! resolving a `--style` argument (a name or a path) to a model file.

use super::format::{read_meta, ModelMeta};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Bundled or the user's own; only user styles may be renamed or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Bundled,
    User,
}

#[derive(Debug, Clone)]
pub struct StyleEntry {
    pub meta: ModelMeta,
    pub path: PathBuf,
    pub origin: Origin,
}

/// The two style folders. Tests and packagers point them elsewhere through
/// `ATELIER_MODELS_DIR` and `ATELIER_DATA_DIR`.
#[derive(Debug, Clone)]
pub struct Registry {
    pub bundled_dir: Option<PathBuf>,
    pub user_dir: PathBuf,
}

impl Registry {
    pub fn from_env() -> Self {
        Self {
            bundled_dir: bundled_dir(),
            user_dir: user_styles_dir(),
        }
    }

    /// All readable styles, bundled first, each group sorted by name. Unreadable files
    /// are returned separately so a single bad file never hides the rest.
    pub fn list(&self) -> (Vec<StyleEntry>, Vec<Error>) {
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        let dirs = self
            .bundled_dir
            .iter()
            .map(|d| (d.as_path(), Origin::Bundled))
            .chain(std::iter::once((self.user_dir.as_path(), Origin::User)));
        for (dir, origin) in dirs {
            let mut group = Vec::new();
            for path in model_files(dir) {
                match read_meta(&path) {
                    Ok(meta) => group.push(StyleEntry { meta, path, origin }),
                    Err(e) => errors.push(e),
                }
            }
            group.sort_by_key(|e| e.meta.name.to_lowercase());
            entries.extend(group);
        }
        (entries, errors)
    }

    /// A path to an existing file wins; otherwise a style name (case-insensitive),
    /// matched against the display name and the file stem. A name that several styles
    /// answer to is refused with their paths: picking one would be a guess.
    pub fn resolve(&self, style: &str) -> Result<PathBuf> {
        let as_path = Path::new(style);
        if as_path.is_file() {
            return Ok(as_path.to_path_buf());
        }
        if as_path.exists() {
            // A folder (a TensorFlow export?) or a pipe: say what it is.
            super::format::check_native(as_path)?;
        }
        let (entries, _) = self.list();
        let wanted = style.to_lowercase();
        let mut found: Vec<PathBuf> = entries
            .into_iter()
            .filter(|e| {
                e.meta.name.to_lowercase() == wanted
                    || e.path
                        .file_stem()
                        .is_some_and(|s| s.to_string_lossy().to_lowercase() == wanted)
            })
            .map(|e| e.path)
            .collect();
        match found.len() {
            0 => Err(Error::UnknownStyle {
                name: style.to_string(),
            }),
            1 => Ok(found.remove(0)),
            _ => Err(Error::AmbiguousStyle {
                name: style.to_string(),
                paths: found,
            }),
        }
    }

    /// Display names that more than one style has (case-insensitive), each with the
    /// styles' files: `--style NAME` refuses these.
    pub fn duplicate_names(entries: &[StyleEntry]) -> Vec<(String, Vec<PathBuf>)> {
        let mut by_name: std::collections::BTreeMap<String, (String, Vec<PathBuf>)> =
            Default::default();
        for e in entries {
            by_name
                .entry(e.meta.name.to_lowercase())
                .or_insert_with(|| (e.meta.name.clone(), Vec::new()))
                .1
                .push(e.path.clone());
        }
        by_name
            .into_values()
            .filter(|(_, paths)| paths.len() > 1)
            .collect()
    }

    /// A file and display name for a new style called `name` that replace nothing:
    /// `name`, else `name 2`, `name 3`… (no style has that name or file stem, bundled or the
    /// user's, and no file is there).
    pub fn free_user_model_path(&self, name: &str) -> (PathBuf, String) {
        let base = name.trim();
        (1..)
            .map(|i| {
                if i == 1 {
                    base.to_string()
                } else {
                    format!("{base} {i}")
                }
            })
            .map(|n| (self.user_model_path(&n), n))
            .find(|(p, n)| self.clashes(n).is_empty() && !p.exists())
            .expect("some numbered name is free")
    }

    /// Where `atelier import` puts a new style called `name`.
    pub fn user_model_path(&self, name: &str) -> PathBuf {
        self.user_dir
            .join(format!("{}.safetensors", file_stem_for(name)))
    }
}

impl Registry {
    /// The styles (bundled or the user's) that `name` would clash with: the same display name
    /// or file name, case-insensitively — what `--style NAME` would no longer tell apart.
    pub fn clashes(&self, name: &str) -> Vec<StyleEntry> {
        let wanted = name.trim().to_lowercase();
        let stem = file_stem_for(name).to_lowercase();
        let dest = self.user_model_path(name);
        self.list()
            .0
            .into_iter()
            .filter(|e| {
                e.meta.name.trim().to_lowercase() == wanted
                    || e.path
                        .file_stem()
                        .is_some_and(|s| s.to_string_lossy().to_lowercase() == stem)
                    || e.path == dest
            })
            .collect()
    }

    /// Why installing `name` may not go ahead: it would replace a style without `overwrite`,
    /// or clash with a bundled style (which is never replaced).
    pub fn check_install(&self, name: &str, overwrite: bool) -> Result<()> {
        let clashes = self.clashes(name);
        if let Some(b) = clashes.iter().find(|e| e.origin == Origin::Bundled) {
            return Err(Error::Invalid(format!(
                "'{name}' is the name of a bundled style ({}); choose another name",
                b.meta.name
            )));
        }
        if let Some(u) = clashes.first() {
            if !overwrite {
                return Err(Error::Invalid(format!(
                    "a style named '{}' already exists ({}); choose another name or pass --overwrite to replace it",
                    u.meta.name,
                    u.path.display()
                )));
            }
        }
        Ok(())
    }

    /// Copies a trained or imported model file into the user's style folder under `name`;
    /// returns where it went. An existing style of that name is replaced only with
    /// `overwrite` (see [`Self::check_install`]).
    pub fn install(&self, model: &Path, name: &str, overwrite: bool) -> Result<PathBuf> {
        self.check_install(name, overwrite)?;
        let dest = self.user_model_path(name);
        let bytes = std::fs::read(model).map_err(|e| Error::model(model, e))?;
        crate::fsutil::write_atomic(&dest, overwrite, &bytes)?;
        Ok(dest)
    }

    /// Installs a copy of `model` under [`Self::free_user_model_path`], with that name in its
    /// metadata; returns the path and the name used. What the app does on a drop or a
    /// finished training, so neither ever replaces a style.
    pub fn install_as_new(&self, model: &Path, name: &str) -> Result<(PathBuf, String)> {
        let (dest, name) = self.free_user_model_path(name);
        super::format::update_meta_to(model, &dest, |m| m.name = name.clone())?;
        Ok((dest, name))
    }

    /// Gives one of the user's styles a new display name (the file keeps its place).
    pub fn rename(&self, entry: &StyleEntry, new_name: &str) -> Result<ModelMeta> {
        let new_name = new_name.trim();
        if entry.origin != Origin::User {
            return Err(Error::Invalid(format!(
                "'{}' is a bundled style and cannot be renamed",
                entry.meta.name
            )));
        }
        if new_name.is_empty() {
            return Err(Error::Invalid("a style needs a name".into()));
        }
        super::format::update_meta(&entry.path, |m| m.name = new_name.to_string())
    }

    /// Deletes one of the user's styles; bundled styles are never touched.
    pub fn delete(&self, entry: &StyleEntry) -> Result<()> {
        if entry.origin != Origin::User || !entry.path.starts_with(&self.user_dir) {
            return Err(Error::Invalid(format!(
                "'{}' is a bundled style and cannot be deleted",
                entry.meta.name
            )));
        }
        std::fs::remove_file(&entry.path).map_err(|e| Error::model(&entry.path, e))
    }
}

/// A file-system-safe stem for a display name.
pub fn file_stem_for(name: &str) -> String {
    let stem: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if stem.is_empty() {
        "style".into()
    } else {
        stem
    }
}

fn model_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "safetensors"))
        // The VGG loss network lives in models/ too but is not a style.
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vgg"))
        })
        .collect()
}

/// The bundled `models/` folder: beside the executable when installed, in the source
/// tree for `cargo run`.
pub fn bundled_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ATELIER_MODELS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let candidates = exe_dir
        .iter()
        .flat_map(|d| [d.join("models"), d.join("../share/atelier/models")])
        .chain(std::iter::once(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        ));
    candidates.into_iter().find(|d| d.is_dir())
}

/// The user's style folder (platform data dir, e.g. `~/.local/share/atelier/styles`).
pub fn user_styles_dir() -> PathBuf {
    data_dir().join("styles")
}

pub fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ATELIER_DATA_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "atelier")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from(".atelier"))
}
