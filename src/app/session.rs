//! The session sidecar: what made an exported picture (the photo, the style, the
//! settings and the painted mask), saved beside it as `<export>.atelier.json` (and
//! `<export>.mask.png`) so the work can be reopened and changed later. The photo is
//! referred to, never copied or modified.

use crate::{Error, Result};
use image::GrayImage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SUFFIX: &str = ".atelier.json";
const MASK_SUFFIX: &str = ".mask.png";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub version: u32,
    pub photo: PathBuf,
    pub style: PathBuf,
    pub strength: f32,
    pub preserve_colors: bool,
    #[serde(default = "one")]
    pub stroke_scale: f32,
    /// The mask PNG's file name, beside the sidecar; none: full strength everywhere.
    #[serde(default)]
    pub mask: Option<String>,
}

fn one() -> f32 {
    1.0
}

/// `photo-style.png` → `photo-style.png.atelier.json`.
pub fn sidecar_of(export: &Path) -> PathBuf {
    let mut s = export.as_os_str().to_os_string();
    s.push(SUFFIX);
    PathBuf::from(s)
}

pub fn is_session(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with(SUFFIX))
}

/// Writes the sidecar (and the mask) for the picture saved at `export`.
pub fn write(
    export: &Path,
    mut session: Session,
    mask: Option<&GrayImage>,
    overwrite: bool,
) -> Result<PathBuf> {
    session.mask = None;
    if let Some(m) = mask {
        let mut p = export.as_os_str().to_os_string();
        p.push(MASK_SUFFIX);
        let p = PathBuf::from(p);
        let mut png = Vec::new();
        m.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::image(&p, e))?;
        crate::fsutil::write_atomic(&p, overwrite, &png)?;
        session.mask = p.file_name().map(|n| n.to_string_lossy().into_owned());
    }
    let path = sidecar_of(export);
    let json = serde_json::to_vec_pretty(&session).map_err(|e| Error::image(&path, e))?;
    crate::fsutil::write_atomic(&path, overwrite, &json)?;
    Ok(path)
}

/// Reads a sidecar and its mask (as painted; fitted to the photo by the caller).
pub fn read(path: &Path) -> Result<(Session, Option<GrayImage>)> {
    let bytes = crate::fsutil::read_regular(path)
        .map_err(|e| Error::image(path, format!("cannot read: {e}")))?;
    let session: Session = serde_json::from_slice(&bytes)
        .map_err(|e| Error::image(path, format!("not an Atelier session: {e}")))?;
    let mask = match &session.mask {
        Some(name) => {
            let p = path.parent().unwrap_or(Path::new(".")).join(name);
            Some(crate::stylize::mask::to_luma(&crate::image_io::load_rgb(
                &p,
            )?))
        }
        None => None,
    };
    Ok((session, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_round_trips_with_its_mask() {
        let tmp = tempfile::tempdir().unwrap();
        let export = tmp.path().join("photo-style.png");
        let s = Session {
            version: 1,
            photo: "/photos/photo.jpg".into(),
            style: "/styles/style.safetensors".into(),
            strength: 0.6,
            preserve_colors: true,
            stroke_scale: 2.0,
            mask: None,
        };
        let m = GrayImage::from_fn(8, 4, |x, _| image::Luma([x as u8 * 30]));
        let path = write(&export, s.clone(), Some(&m), false).unwrap();
        assert_eq!(path, tmp.path().join("photo-style.png.atelier.json"));
        assert!(is_session(&path));
        let (back, mask) = read(&path).unwrap();
        assert_eq!(back.strength, 0.6);
        assert_eq!(back.mask.as_deref(), Some("photo-style.png.mask.png"));
        assert_eq!(mask.unwrap(), m);
        assert!(write(&export, s, None, false).is_err(), "never over a file");
    }
}
