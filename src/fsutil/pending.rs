//! A file being written that gets its final name only when complete, and that cannot
//! outlive the process: on Linux it is created without a name (`O_TMPFILE`) and linked
//! into place at the end (`linkat`), so even `kill -9` or a power cut leaves nothing
//! behind. Where the filesystem cannot do that, it falls back to a hidden named file
//! (`.atelier-*.part`), removed on drop and on Ctrl-C/TERM/HUP; [`sweep_stale`] removes
//! those a killed process left.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Hidden temporary files start with this; [`sweep_stale`] recognises them by it.
pub const TEMP_PREFIX: &str = ".atelier-";
/// A named temporary file untouched this long belongs to a process that died: every
/// writer (our encoders, ffmpeg) touches its file far more often than this.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

pub struct PendingFile {
    file: File,
    dir: PathBuf,
    /// `None` while the file has no name (O_TMPFILE).
    named: Option<tempfile::TempPath>,
}

impl PendingFile {
    /// A new empty file in `dir` (the final name must be in the same folder, so the
    /// last step is atomic); `suffix` is used only by the named fallback.
    pub fn new_in(dir: &Path, suffix: &str) -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        if let Some(file) = anonymous_in(dir) {
            return Ok(Self {
                file,
                dir: dir.to_path_buf(),
                named: None,
            });
        }
        let (file, path) = super::temp_file_in(dir, TEMP_PREFIX, suffix)?.into_parts();
        Ok(Self {
            file,
            dir: dir.to_path_buf(),
            named: Some(path),
        })
    }

    /// Wraps an already created named temporary file (a caller that needs its own name).
    pub fn from_named(file: File, path: tempfile::TempPath, dir: &Path) -> Self {
        Self {
            file,
            dir: dir.to_path_buf(),
            named: Some(path),
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// True when the file has no name yet (nothing is left on disk if we die).
    pub fn is_anonymous(&self) -> bool {
        self.named.is_none()
    }

    /// A path another process (ffmpeg) can open to write the content: the named file,
    /// or this process's descriptor through `/proc`, which reopens the unnamed file.
    pub fn path_for_writer(&self) -> PathBuf {
        match &self.named {
            Some(p) => p.to_path_buf(),
            None => PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), self.fd())),
        }
    }

    /// Gives the file its final name. Without `overwrite` an existing `dest` is never
    /// replaced, even one that appeared while we wrote.
    pub fn persist(self, dest: &Path, overwrite: bool) -> std::io::Result<()> {
        match self.named {
            Some(tmp) => {
                let r = if overwrite {
                    tmp.persist(dest)
                } else {
                    tmp.persist_noclobber(dest)
                };
                r.map(|_| ()).map_err(|e| e.error)
            }
            None => {
                let fd = self.fd();
                if !overwrite {
                    return link_fd(fd, dest);
                }
                // linkat cannot replace: link under a private name, then rename over.
                let staging = self
                    .dir
                    .join(format!("{TEMP_PREFIX}{:016x}.part", rand::random::<u64>()));
                link_fd(fd, &staging)?;
                std::fs::rename(&staging, dest).inspect_err(|_| {
                    let _ = std::fs::remove_file(&staging);
                })
            }
        }
    }

    fn fd(&self) -> i32 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            self.file.as_raw_fd()
        }
        #[cfg(not(unix))]
        {
            -1
        }
    }
}

/// An unnamed file in `dir`, or `None` where the kernel or filesystem cannot make one
/// (or `/proc` is missing, without which it could not be named later).
#[cfg(target_os = "linux")]
fn anonymous_in(dir: &Path) -> Option<File> {
    use std::os::fd::FromRawFd;
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: a valid NUL-terminated path; the descriptor is owned by the File below.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    // SAFETY: `fd` was just opened and nothing else owns it.
    (fd >= 0).then(|| unsafe { File::from_raw_fd(fd) })
}

#[cfg(target_os = "linux")]
fn link_fd(fd: i32, dest: &Path) -> std::io::Result<()> {
    let from = std::ffi::CString::new(format!("/proc/self/fd/{fd}"))?;
    let to = std::ffi::CString::new(dest.as_os_str().as_encoded_bytes())?;
    // SAFETY: valid NUL-terminated paths; AT_SYMLINK_FOLLOW links the file the /proc
    // entry points at, not the entry itself.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_fd(_fd: i32, _dest: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// Removes hidden temporary files (`.atelier-*`) in `dir` that a killed process left
/// (named fallback only), once they are [`STALE_AFTER`] old; live ones are younger.
/// Best effort.
pub fn sweep_stale(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let name = name.as_encoded_bytes();
        if !name.starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        let old = md
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if md.is_file() && old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn nothing_is_on_disk_until_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = PendingFile::new_in(dir.path(), ".part").unwrap();
        p.file_mut().write_all(b"hello").unwrap();
        #[cfg(target_os = "linux")]
        {
            assert!(p.is_anonymous(), "this filesystem has no O_TMPFILE");
            assert!(names(dir.path()).is_empty());
        }
        let dest = dir.path().join("out.bin");
        p.persist(&dest, false).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");

        let p = PendingFile::new_in(dir.path(), ".part").unwrap();
        assert!(
            p.persist(&dest, false).is_err(),
            "replaced without overwrite"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let mut p = PendingFile::new_in(dir.path(), ".part").unwrap();
        p.file_mut().write_all(b"new").unwrap();
        p.persist(&dest, true).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(names(dir.path()), vec!["out.bin"]);
    }

    #[test]
    fn only_stale_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let old = std::time::SystemTime::now() - 2 * STALE_AFTER;
        for name in [
            ".atelier-abc.part",
            ".atelier-video-x.mp4",
            "keep.part",
            ".atelier-new.part",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        for name in [".atelier-abc.part", ".atelier-video-x.mp4", "keep.part"] {
            let f = std::fs::File::options()
                .write(true)
                .open(d.join(name))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        sweep_stale(d);
        assert_eq!(names(d), vec![".atelier-new.part", "keep.part"]);
    }
}
