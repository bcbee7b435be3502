//! What kind of file a path names, by its extension: the one list of photo, video and
//! model extensions that the app's drop and file dialogs, the command line, the trainer's
//! photo scan and the importers all use, so none of them can route a file differently.

use std::path::Path;

/// Photos the decoder reads (the `image` crate's features in Cargo.toml). The decoder
/// judges a file by its content; this list only routes files and scans folders.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "jfif",
];

/// Containers FFmpeg opens that people keep videos in.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "mov", "mkv", "webm", "avi", "m4v", "mpg", "mpeg", "wmv", "flv",
];

/// An Atelier style (docs/model-format.md).
pub const NATIVE_MODEL_EXTENSION: &str = "safetensors";

/// What `torch.save` files are called: pytorch/examples writes `.pth` and `.model`;
/// `.pt`, `.bin` and PyTorch Lightning's `.ckpt` are the same zip of pickles. A `.ckpt`
/// can also be a TensorFlow checkpoint, which [`is_tensorflow_checkpoint`] tells apart.
pub const PYTORCH_EXTENSIONS: &[&str] = &["pth", "pt", "model", "ckpt", "bin"];

/// Lua Torch checkpoints: recognised so they are refused with a reason, never read.
pub const LUA_TORCH_EXTENSION: &str = "t7";

/// Every extension that names a model: [`NATIVE_MODEL_EXTENSION`], [`PYTORCH_EXTENSIONS`]
/// and [`LUA_TORCH_EXTENSION`] (a test holds them together).
pub const MODEL_EXTENSIONS: &[&str] = &["safetensors", "pth", "pt", "model", "ckpt", "bin", "t7"];

/// How an opened or dropped path is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Photo,
    Video,
    /// A model file, or a folder (the only folders opened are fast-style-transfer exports).
    Model,
    /// No known extension: tried as a photo, whose decoder goes by content.
    Unknown,
}

/// What `path` is, by name (and, for a folder, by being one).
pub fn kind_of(path: &Path) -> Kind {
    if path.is_dir() || is_tensorflow_checkpoint_part(path) {
        return Kind::Model;
    }
    if has_extension(path, IMAGE_EXTENSIONS) {
        Kind::Photo
    } else if has_extension(path, VIDEO_EXTENSIONS) {
        Kind::Video
    } else if has_extension(path, MODEL_EXTENSIONS) {
        Kind::Model
    } else {
        Kind::Unknown
    }
}

/// The extension of `path`, lower case ("" without one).
pub fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether `path`'s extension is one of `list` (any case).
pub fn has_extension(path: &Path, list: &[&str]) -> bool {
    list.contains(&extension(path).as_str())
}

/// Whether `path` is a TensorFlow checkpoint, such as the `.ckpt` files fast-style-transfer
/// publishes its styles in, rather than a PyTorch file of the same extension. Atelier reads
/// that network only as an exported variable folder, so the importer refuses these with
/// that advice instead of failing to unpickle them.
pub fn is_tensorflow_checkpoint(path: &Path) -> bool {
    if is_tensorflow_checkpoint_part(path) {
        return true;
    }
    if extension(path) != "ckpt" || !path.is_file() {
        return false;
    }
    let mut head = [0u8; 4];
    let n = crate::fsutil::open_regular(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    !is_torch_save(&head[..n])
}

/// `torch.save`'s zip archive, or the bare pickle (protocol 2) older versions wrote.
pub fn is_torch_save(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(&[0x80, 0x02])
}

/// The pieces TensorFlow 1.x's saver writes beside or instead of `NAME.ckpt`:
/// `NAME.ckpt.index`, `NAME.ckpt.meta`, `NAME.ckpt.data-00000-of-00001`.
fn is_tensorflow_checkpoint_part(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().contains(".ckpt."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_extension_in_any_case() {
        let kind = |p: &str| kind_of(Path::new(p));
        assert_eq!(kind("a/photo.JPG"), Kind::Photo);
        assert_eq!(kind("scan.tiff"), Kind::Photo);
        assert_eq!(kind("b.jfif"), Kind::Photo);
        assert_eq!(kind("clip.MOV"), Kind::Video);
        assert_eq!(kind("clip.mpeg"), Kind::Video);
        for m in [
            "wave.pth",
            "candy.model",
            "x.pt",
            "style.safetensors",
            "udnie.ckpt",
            "pytorch_model.bin",
            "old.t7",
            "fns.ckpt.index",
            "fns.ckpt.data-00000-of-00001",
            "fns.ckpt.meta",
        ] {
            assert_eq!(kind(m), Kind::Model, "{m}");
        }
        assert_eq!(kind("notes.txt"), Kind::Unknown);
        assert_eq!(kind("no-extension"), Kind::Unknown);
        assert_eq!(kind(".ckpt"), Kind::Unknown);
    }

    #[test]
    fn a_folder_is_a_model_export() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("udnie.jpg");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(kind_of(&folder), Kind::Model);
    }

    #[test]
    fn the_model_list_is_every_kind_of_model() {
        let mut all = vec![NATIVE_MODEL_EXTENSION, LUA_TORCH_EXTENSION];
        all.extend(PYTORCH_EXTENSIONS);
        all.sort_unstable();
        let mut listed = MODEL_EXTENSIONS.to_vec();
        listed.sort_unstable();
        assert_eq!(all, listed);
        for list in [IMAGE_EXTENSIONS, VIDEO_EXTENSIONS] {
            assert!(list.iter().all(|e| !MODEL_EXTENSIONS.contains(e)));
        }
    }

    #[test]
    fn a_ckpt_is_tensorflow_unless_torch_saved_it() {
        let dir = tempfile::tempdir().unwrap();
        let tf = dir.path().join("udnie.ckpt");
        std::fs::write(&tf, b"\x00\x00\x00\x00tensorflow bundle").unwrap();
        assert!(is_tensorflow_checkpoint(&tf));
        let torch = dir.path().join("lightning.ckpt");
        std::fs::write(&torch, b"PK\x03\x04rest of a zip").unwrap();
        assert!(!is_tensorflow_checkpoint(&torch));
        let pickle = dir.path().join("old.ckpt");
        std::fs::write(&pickle, [0x80, 0x02, 0x8a, 0x0a]).unwrap();
        assert!(!is_tensorflow_checkpoint(&pickle));
        assert!(is_tensorflow_checkpoint(Path::new("fns.ckpt.index")));
        let pth = dir.path().join("wave.pth");
        std::fs::write(&pth, b"not a zip").unwrap();
        assert!(!is_tensorflow_checkpoint(&pth));
    }
}
