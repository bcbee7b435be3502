//! Which file a path names: two paths may reach one file through symlinks, `..`, hard
//! links or a different spelling, and an output that does not exist yet still has a
//! place it will be created. Paths stay `OsStr` throughout (no UTF-8 assumed).

use std::path::{Component, Path, PathBuf};

/// What identifies a file: its inode when it exists, else where it would be created.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileId {
    #[cfg(unix)]
    Inode {
        dev: u64,
        ino: u64,
    },
    Place(PathBuf),
}

pub fn file_id(p: &Path) -> FileId {
    #[cfg(unix)]
    if let Ok(md) = std::fs::metadata(p) {
        use std::os::unix::fs::MetadataExt;
        return FileId::Inode {
            dev: md.dev(),
            ino: md.ino(),
        };
    }
    FileId::Place(resolved(p))
}

/// True when `a` and `b` name the same file, or would once created.
pub fn same_file(a: &Path, b: &Path) -> bool {
    file_id(a) == file_id(b)
}

/// The absolute path `p` names: its deepest existing ancestor canonicalised (symlinks
/// resolved), the rest appended with `.` and `..` applied.
pub fn resolved(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = base.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return out;
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                base = parent;
            }
            _ => return abs,
        }
    }
}

/// Opens `path` for reading only if it is a regular file. A FIFO or a device would
/// block the open or the read forever (or never end), so it is refused before and
/// after opening: the open itself does not wait (`O_NONBLOCK`), and the opened file is
/// checked again in case the path was swapped in between.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let not_regular = |kind: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{kind}, not a regular file"),
        )
    };
    let describe = |md: &std::fs::Metadata| {
        if md.is_dir() {
            "is a folder"
        } else {
            "is a pipe, socket or device"
        }
    };
    let md = std::fs::metadata(path)?;
    if !md.is_file() {
        return Err(not_regular(describe(&md)));
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(not_regular(describe(&md)));
    }
    Ok(file)
}

/// Reads a whole regular file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = open_regular(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_under_several_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = d.join("a.png");
        std::fs::write(&a, b"x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        assert!(same_file(&a, &d.join("sub/../a.png")));
        assert!(same_file(&d.join("new.png"), &d.join("sub/../new.png")));
        assert!(same_file(
            &d.join("missing/x.png"),
            &d.join("missing/./y/../x.png")
        ));
        assert!(!same_file(&a, &d.join("b.png")));
        #[cfg(unix)]
        {
            std::fs::hard_link(&a, d.join("hard.png")).unwrap();
            assert!(same_file(&a, &d.join("hard.png")));
            std::os::unix::fs::symlink(&a, d.join("soft.png")).unwrap();
            assert!(same_file(&a, &d.join("soft.png")));
        }
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.png");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(open_regular(dir.path()).is_err());
    }
}
