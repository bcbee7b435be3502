//! Results already computed this session, per (photo, style), so going back to a style
//! shows it at once instead of running the network again. Strength and colours are not
//! part of the key: they are blended at display and save time from the raw result.
//! Bounded by bytes, least recently used first out.

use image::RgbImage;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The default bound: a dozen 12-megapixel results.
pub const DEFAULT_BYTES: usize = 512 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// [`photo_key`] of the photo.
    pub photo: u64,
    pub style: PathBuf,
    /// The style file's modification time, so a retrained or replaced style runs again.
    pub style_stamp: Option<std::time::SystemTime>,
}

impl Key {
    pub fn new(photo: u64, style: &Path) -> Self {
        Self {
            photo,
            style: style.to_path_buf(),
            style_stamp: std::fs::metadata(style).and_then(|m| m.modified()).ok(),
        }
    }
}

/// A fingerprint of the pixels: the size and a sparse sample, cheap even for a large
/// photo on the UI thread, and different for different photos and video frames.
pub fn photo_key(photo: &RgbImage) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    photo.dimensions().hash(&mut h);
    let raw = photo.as_raw();
    // About 64k samples at a stride that is not a multiple of 3 (all channels get sampled).
    let stride = (raw.len() / 65_536).max(1) | 1;
    raw.iter().step_by(stride).for_each(|b| b.hash(&mut h));
    h.finish()
}

/// [`photo_key`] for a result at stroke scale `scale`: a result at another scale is
/// another picture. Scale 1 keeps the plain key.
pub fn scaled_key(photo: u64, scale: f32) -> u64 {
    if scale == 1.0 {
        photo
    } else {
        photo ^ u64::from(scale.to_bits()).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

pub struct ResultCache {
    /// Oldest use first.
    entries: VecDeque<(Key, Arc<RgbImage>)>,
    bytes: usize,
    limit: usize,
}

impl Default for ResultCache {
    fn default() -> Self {
        Self::new(DEFAULT_BYTES)
    }
}

impl ResultCache {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn get(&mut self, key: &Key) -> Option<Arc<RgbImage>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let e = self.entries.remove(i).expect("found above");
        let image = e.1.clone();
        self.entries.push_back(e);
        Some(image)
    }

    pub fn insert(&mut self, key: Key, image: Arc<RgbImage>) {
        if let Some(i) = self.entries.iter().position(|(k, _)| *k == key) {
            let (_, old) = self.entries.remove(i).expect("found above");
            self.bytes -= old.as_raw().len();
        }
        let size = image.as_raw().len();
        if size > self.limit {
            return;
        }
        while self.bytes + size > self.limit {
            let Some((_, old)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.as_raw().len();
        }
        self.bytes += size;
        self.entries.push_back((key, image));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> Key {
        Key {
            photo: n,
            style: PathBuf::from("s"),
            style_stamp: None,
        }
    }

    #[test]
    fn least_recently_used_goes_first_within_the_bound() {
        let img = |v| Arc::new(RgbImage::from_pixel(10, 10, image::Rgb([v, v, v])));
        let mut c = ResultCache::new(3 * 300);
        for n in 0..3 {
            c.insert(key(n), img(n as u8));
        }
        assert!(c.get(&key(0)).is_some()); // 0 is now the newest
        c.insert(key(3), img(3));
        assert_eq!(c.len(), 3);
        assert!(c.get(&key(1)).is_none(), "the least recently used left");
        assert_eq!(c.get(&key(0)).unwrap().get_pixel(0, 0)[0], 0);
        // Too large for the bound: not kept, nothing evicted.
        c.insert(key(9), Arc::new(RgbImage::new(100, 100)));
        assert_eq!(c.len(), 3);

        let a = RgbImage::from_pixel(64, 48, image::Rgb([1, 2, 3]));
        let mut b = a.clone();
        b.put_pixel(10, 10, image::Rgb([9, 9, 9]));
        assert_eq!(photo_key(&a), photo_key(&a.clone()));
        assert_ne!(photo_key(&a), photo_key(&b));
    }
}
