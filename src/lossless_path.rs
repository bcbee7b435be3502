//! Paths in JSON without loss: a path that is valid UTF-8 is written as a plain string (what
//! every earlier file holds); any other (a Unix file name in Latin-1, say) as
//! `{"unix_bytes": [..]}`, so a run folder or style whose path is not UTF-8 still saves and
//! reloads exactly instead of failing (serde_json refuses non-UTF-8 paths).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes { unix_bytes: Vec<u8> },
}

fn to_repr(p: &Path) -> Repr {
    if let Some(s) = p.to_str() {
        return Repr::Text(s.to_string());
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Repr::Bytes {
            unix_bytes: p.as_os_str().as_bytes().to_vec(),
        }
    }
    // Elsewhere paths are UTF-16 and `to_str` fails only on unpaired surrogates.
    #[cfg(not(unix))]
    Repr::Text(p.to_string_lossy().into_owned())
}

fn from_repr<E: serde::de::Error>(r: Repr) -> Result<PathBuf, E> {
    match r {
        Repr::Text(s) => Ok(PathBuf::from(s)),
        #[cfg(unix)]
        Repr::Bytes { unix_bytes } => {
            use std::os::unix::ffi::OsStringExt;
            Ok(PathBuf::from(std::ffi::OsString::from_vec(unix_bytes)))
        }
        #[cfg(not(unix))]
        Repr::Bytes { .. } => Err(E::custom("a Unix path that is not UTF-8")),
    }
}

pub fn serialize<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
    to_repr(p).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    from_repr(Repr::deserialize(d)?)
}

/// The same for `Option<PathBuf>` (`null` for None).
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        p.as_deref().map(to_repr).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super")]
        p: std::path::PathBuf,
        #[serde(default, with = "super::opt")]
        q: Option<std::path::PathBuf>,
    }

    #[test]
    fn utf8_paths_stay_plain_strings() {
        let h = Holder {
            p: "/tmp/été.png".into(),
            q: None,
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"p":"/tmp/été.png","q":null}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
        // Files written before the field existed.
        let old: Holder = serde_json::from_str(r#"{"p":"a/b"}"#).unwrap();
        assert_eq!(old.q, None);
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip() {
        use std::os::unix::ffi::OsStringExt;
        let raw = std::path::PathBuf::from(std::ffi::OsString::from_vec(b"/tmp/caf\xe9".to_vec()));
        let h = Holder {
            p: raw.clone(),
            q: Some(raw.clone()),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains("unix_bytes"), "{json}");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
    }
}
