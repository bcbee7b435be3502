//! Training data: a folder of photos, decoded on background threads into a bounded
//! queue of batches.
//!
//! The order and the augmentations are a pure function of (seed, epoch, index), so a
//! resumed run sees exactly the batches the uninterrupted run would have seen.

use crate::{image_io, Error, Result};
use image::{imageops, RgbImage};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// Whether `p` is named like a photo (by extension, any case).
pub fn has_image_extension(p: &Path) -> bool {
    crate::formats::has_extension(p, crate::formats::IMAGE_EXTENSIONS)
}

/// Where the loader is in the data: the next sample is `order(epoch)[index]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    pub epoch: u64,
    pub index: usize,
}

/// A batch ready for the device: `(n, 3, size, size)` RGB 0..255, flattened.
pub struct Batch {
    pub pixels: Vec<f32>,
    pub n: usize,
    pub size: u32,
    /// Position after this batch (what a checkpoint records).
    pub next: DataPosition,
    /// Unreadable files skipped while assembling this batch.
    pub skipped: Vec<(PathBuf, String)>,
    /// The photos in this batch (named when a step on it fails).
    pub files: Vec<PathBuf>,
}

pub struct Dataset {
    pub root: PathBuf,
    pub files: Vec<PathBuf>,
}

impl Dataset {
    /// All image files under `root` (recursively), sorted for a stable order.
    pub fn scan(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "content folder {} does not exist",
                root.display()
            )));
        }
        let mut files = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let rd =
                std::fs::read_dir(&dir).map_err(|e| Error::io(format!("{}", dir.display()), e))?;
            for entry in rd.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if has_image_extension(&p) {
                    files.push(p);
                }
            }
        }
        files.sort();
        Ok(Self {
            root: root.to_path_buf(),
            files,
        })
    }

    fn order(&self, seed: u64, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.files.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        idx.shuffle(&mut rng);
        idx
    }
}

/// Photos smaller than this on their short side carry too little to learn from.
pub const MIN_PHOTO_SIDE: u32 = 16;
/// Crops whose every channel varies less than this (standard deviation, 0..255) are flat.
const FLAT_STD: f64 = 1.0;
/// How many crops of a photo are tried before it counts as flat.
const CROP_TRIES: usize = 4;

/// Whether `img` has (almost) no variation: a flat crop gives the style network's instance
/// norms zero variance, whose gradient is 1/√ε ≈ 316 per layer; through its fifteen norms
/// that overflows f32 and turns every weight into NaN in one step.
pub fn is_flat(img: &RgbImage) -> bool {
    let n = (img.width() as f64) * (img.height() as f64);
    if n < 2.0 {
        return true;
    }
    (0..3).all(|c| {
        let (mut sum, mut sq) = (0f64, 0f64);
        for p in img.pixels() {
            let v = p.0[c] as f64;
            sum += v;
            sq += v * v;
        }
        let mean = sum / n;
        (sq / n - mean * mean).max(0.0).sqrt() < FLAT_STD
    })
}

/// A training sample of `img`: a random crop that is not flat (several tries), or why the
/// photo cannot give one.
pub fn sample(
    img: &RgbImage,
    size: u32,
    rng: &mut impl Rng,
) -> std::result::Result<RgbImage, String> {
    if img.width().min(img.height()) < MIN_PHOTO_SIDE {
        return Err(format!(
            "too small to train on ({}×{}; at least {MIN_PHOTO_SIDE} pixels a side)",
            img.width(),
            img.height()
        ));
    }
    for _ in 0..CROP_TRIES {
        let crop = augment(img, size, rng);
        if !is_flat(&crop) {
            return Ok(crop);
        }
    }
    Err("flat: one colour with no detail to learn from".into())
}

/// Random square crop, resize to `size`, random horizontal flip; deterministic in `rng`.
pub fn augment(img: &RgbImage, size: u32, rng: &mut impl Rng) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let crop_side = ((side as f32) * rng.random_range(0.6f32..=1.0))
        .round()
        .max(1.0) as u32;
    let x = rng.random_range(0..=w - crop_side);
    let y = rng.random_range(0..=h - crop_side);
    let crop = imageops::crop_imm(img, x, y, crop_side, crop_side).to_image();
    let mut out = imageops::resize(&crop, size, size, imageops::FilterType::Triangle);
    if rng.random_bool(0.5) {
        imageops::flip_horizontal_in_place(&mut out);
    }
    out
}

fn sample_rng(seed: u64, pos: DataPosition) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(
        pos.epoch
            .wrapping_mul(1 << 32)
            .wrapping_add(pos.index as u64),
    );
    rng
}

/// A background producer of batches; dropping it stops the thread.
pub struct Loader {
    rx: Receiver<Result<Batch>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Loader {
    pub fn start(
        dataset: Arc<Dataset>,
        seed: u64,
        batch: usize,
        size: u32,
        start: DataPosition,
    ) -> Self {
        let (tx, rx) = sync_channel(3);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("atelier-data".into())
            .spawn(move || {
                let mut pos = start;
                let mut order = dataset.order(seed, pos.epoch);
                let mut usable_this_epoch = 0usize;
                // A resumed run may start mid-epoch; only a whole epoch proves the data unusable.
                let mut whole_epoch = pos.index == 0;
                while !stop2.load(Ordering::Relaxed) {
                    let mut images = Vec::with_capacity(batch);
                    let mut skipped = Vec::new();
                    while images.len() < batch {
                        // Decode the next candidates in parallel; results stay in order.
                        let want = batch - images.len();
                        let mut candidates = Vec::with_capacity(want);
                        while candidates.len() < want {
                            if pos.index >= order.len() {
                                if whole_epoch && usable_this_epoch < batch {
                                    let _ = tx.send(Err(Error::Invalid(format!(
                                        "only {usable_this_epoch} of {} images in {} can be trained on (the others are unreadable, too small or one flat colour); need at least {batch} (one batch)",
                                        dataset.files.len(),
                                        dataset.root.display()
                                    ))));
                                    return;
                                }
                                pos = DataPosition { epoch: pos.epoch + 1, index: 0 };
                                order = dataset.order(seed, pos.epoch);
                                usable_this_epoch = 0;
                                whole_epoch = true;
                            }
                            candidates.push((pos, order[pos.index]));
                            pos.index += 1;
                        }
                        let decoded: Vec<_> = candidates
                            .par_iter()
                            .map(|&(p, i)| {
                                let path = &dataset.files[i];
                                image_io::load_rgb(path)
                                    .map_err(|e| e.to_string())
                                    .and_then(|img| sample(&img, size, &mut sample_rng(seed, p)))
                                    .map(|img| (path.clone(), img))
                                    .map_err(|e| (path.clone(), e))
                            })
                            .collect();
                        for d in decoded {
                            match d {
                                Ok(img) => {
                                    usable_this_epoch += 1;
                                    images.push(img);
                                }
                                Err(e) => skipped.push(e),
                            }
                        }
                    }
                    let hw = (size * size) as usize;
                    let mut pixels = vec![0f32; batch * 3 * hw];
                    let (files, images): (Vec<PathBuf>, Vec<RgbImage>) =
                        images.into_iter().unzip();
                    for (b, img) in images.iter().enumerate() {
                        for (i, px) in img.pixels().enumerate() {
                            for c in 0..3 {
                                pixels[(b * 3 + c) * hw + i] = px.0[c] as f32;
                            }
                        }
                    }
                    let item = Batch { pixels, n: batch, size, next: pos, skipped, files };
                    if tx.send(Ok(item)).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn data thread");
        Self {
            rx,
            stop,
            thread: Some(thread),
        }
    }

    pub fn next(&self) -> Result<Batch> {
        self.rx
            .recv()
            .map_err(|_| Error::Invalid("the data loader stopped unexpectedly".into()))?
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblock a producer waiting on a full queue.
        while self.rx.try_recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
