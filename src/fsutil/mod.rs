//! Atomic file writes: a crash, a full disk or Ctrl-C never leaves a half-written
//! file under the final name, and existing files are never clobbered by accident.

mod paths;
mod pending;

pub use paths::{file_id, open_regular, read_regular, resolved, same_file, FileId};
pub use pending::{sweep_stale, PendingFile, STALE_AFTER, TEMP_PREFIX};

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// A temporary file in `dir` (so a final rename is atomic) with ordinary permissions:
/// tempfile makes them private (0600), but the file becomes the user's output.
pub fn temp_file_in(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder.tempfile_in(dir)
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
/// Without `overwrite`, an existing file at `path` is an error and is left untouched.
pub fn write_atomic(path: &Path, overwrite: bool, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, overwrite, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], with the content produced by `fill` (e.g. an image encoder).
pub fn write_atomic_with(
    path: &Path,
    overwrite: bool,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let ctx = |what: &str| format!("{}: {what}", path.display());
    if !overwrite && path.exists() {
        return Err(Error::Io {
            context: ctx("refusing to overwrite an existing file (use --overwrite)"),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(ctx("cannot create folder"), e))?;
    }
    sweep_stale(dir);
    let mut tmp = PendingFile::new_in(dir, ".part")
        .map_err(|e| Error::io(ctx("cannot create a temporary file"), e))?;
    {
        let mut w = std::io::BufWriter::new(tmp.file_mut());
        fill(&mut w).map_err(|e| Error::io(ctx("write failed"), e))?;
        w.flush().map_err(|e| Error::io(ctx("write failed"), e))?;
    }
    tmp.file()
        .sync_all()
        .map_err(|e| Error::io(ctx("write failed"), e))?;
    // Without overwrite this fails rather than replace a file that appeared meanwhile.
    tmp.persist(path, overwrite)
        .map_err(|e| Error::io(ctx("cannot move the file into place"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn results_are_ordinary_readable_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        write_atomic(&p, false, b"x").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044, "mode {mode:o}");
    }

    #[test]
    fn refuses_to_clobber_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, false, b"one").unwrap();
        assert!(write_atomic(&p, false, b"two").is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, true, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let failed = write_atomic_with(&dir.path().join("b.bin"), false, |_| {
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.unwrap_err().to_string().contains("disk full"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.bin")]);
    }
}
