//! The run folder: `config.json`, `metrics.jsonl`, `checkpoint.safetensors`,
//! `previews/`, and the final model. Every file that matters is written atomically, so
//! a run killed at any moment leaves the last checkpoint intact.

use super::data::DataPosition;
use super::{Metrics, TrainConfig};
use crate::model::registry::file_stem_for;
use crate::{fsutil, image_io, Error, Result};
use candle_core::{Device, Tensor};
use image::RgbImage;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct RunDir {
    root: PathBuf,
    /// Held for the run's lifetime: a second trainer on the same folder (two `--resume`s at
    /// once) is refused instead of interleaving checkpoints and metrics. The OS drops the lock
    /// when the process ends, however it ends.
    _lock: std::fs::File,
}

pub struct Checkpoint {
    pub iteration: u64,
    pub position: DataPosition,
    pub elapsed_s: f64,
    /// Parameters by name plus `adam.m.*` / `adam.v.*` moments.
    pub tensors: HashMap<String, Tensor>,
}

impl RunDir {
    /// A new run refuses a folder that holds a run with a checkpoint (a folder whose run
    /// never reached one has nothing to lose and is started afresh); a resumed run needs one.
    pub fn create(root: &Path, cfg: &TrainConfig, resume: bool) -> Result<Self> {
        if !resume {
            std::fs::create_dir_all(root.join("previews"))
                .map_err(|e| Error::io(root.display(), e))?;
        } else if !root.is_dir() {
            return Err(Error::Invalid(format!(
                "{} is not a training run folder",
                root.display()
            )));
        }
        let lock = Self::lock(root)?;
        let dir = Self {
            root: root.to_path_buf(),
            _lock: lock,
        };
        let config = root.join("config.json");
        if resume {
            if !dir.checkpoint_path().is_file() {
                return Err(Error::Invalid(format!(
                    "{} has no checkpoint to resume from (a run writes its first one after --checkpoint-every iterations); start it again without --resume",
                    root.display()
                )));
            }
        } else {
            if config.exists() {
                if let Some(i) = dir.checkpoint_iteration() {
                    return Err(Error::Invalid(format!(
                        "{} already holds a training run (checkpoint at iteration {i}); use --resume to continue it or choose another --out",
                        root.display()
                    )));
                }
                // What an unfinished start left: a config, perhaps a few metrics.
                let _ = std::fs::remove_file(root.join("metrics.jsonl"));
            }
            let json = serde_json::to_vec_pretty(cfg)
                .map_err(|e| Error::Invalid(format!("cannot record the run's settings: {e}")))?;
            fsutil::write_atomic(&config, true, &json)?;
        }
        Ok(dir)
    }

    fn lock(root: &Path) -> Result<std::fs::File> {
        let p = root.join(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
                "{} is in use by another training run (in this or another window or terminal); wait for it to finish or stop it first",
                root.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(p.display(), e)),
        }
    }

    /// The iteration of the checkpoint on disk, if there is a readable one.
    pub fn checkpoint_iteration(&self) -> Option<u64> {
        let bytes = std::fs::read(self.checkpoint_path()).ok()?;
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
        md.metadata().as_ref()?.get("iteration")?.parse().ok()
    }

    /// Reads `config.json` of an existing run.
    pub fn read_config(root: &Path) -> Result<TrainConfig> {
        let p = root.join("config.json");
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(p.display(), e))?;
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))
    }

    pub fn checkpoint_path(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }

    pub fn model_path(&self, name: &str) -> PathBuf {
        self.root
            .join(format!("{}.safetensors", file_stem_for(name)))
    }

    pub fn append_metrics(&self, m: &Metrics) -> Result<()> {
        let p = self.root.join("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        let line = serde_json::to_string(m).expect("metrics serialise");
        writeln!(f, "{line}").map_err(|e| Error::io(p.display(), e))
    }

    /// Reads back the metrics log (partial last lines from a crash are ignored).
    pub fn read_metrics(root: &Path) -> Result<Vec<Metrics>> {
        let p = root.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(p.display(), e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Drops log lines past the checkpoint a resumed run restarts from.
    pub fn truncate_metrics(&self, upto: u64) -> Result<()> {
        let kept: Vec<String> = Self::read_metrics(&self.root)?
            .into_iter()
            .filter(|m| m.iteration <= upto)
            .map(|m| serde_json::to_string(&m).expect("metrics serialise"))
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        fsutil::write_atomic(&self.root.join("metrics.jsonl"), true, text.as_bytes())
    }

    pub fn save_preview(&self, iteration: u64, img: &RgbImage) -> Result<PathBuf> {
        let p = self
            .root
            .join("previews")
            .join(format!("iter_{iteration:06}.png"));
        image_io::save_rgb(img, &p, image_io::OutputFormat::Png, true)?;
        Ok(p)
    }

    /// Writes the checkpoint atomically; a checkpoint holding NaN or infinite values is
    /// refused, so the one on disk is always one a run can continue from.
    pub fn save_checkpoint(&self, ck: &Checkpoint) -> Result<PathBuf> {
        let path = self.checkpoint_path();
        let mut names: Vec<&String> = ck.tensors.keys().collect();
        names.sort();
        for name in names {
            let t = &ck.tensors[name];
            let sum = t
                .to_dtype(candle_core::DType::F32)?
                .abs()?
                .sum_all()?
                .to_scalar::<f32>()?;
            if !sum.is_finite() {
                return Err(Error::Invalid(format!(
                    "not saving a checkpoint at iteration {}: '{name}' holds NaN or infinite values (the checkpoint of the last good iteration is kept)",
                    ck.iteration
                )));
            }
        }
        let mut meta = HashMap::new();
        meta.insert("iteration".to_string(), ck.iteration.to_string());
        meta.insert(
            "position".to_string(),
            serde_json::to_string(&ck.position).expect("position serialises"),
        );
        meta.insert("elapsed_s".to_string(), ck.elapsed_s.to_string());
        let cpu: Vec<(String, Tensor)> = ck
            .tensors
            .iter()
            .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?)))
            .collect::<Result<_>>()?;
        let bytes = safetensors::serialize(cpu.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
            .map_err(|e| Error::model(&path, format!("cannot serialise checkpoint: {e}")))?;
        fsutil::write_atomic(&path, true, &bytes)?;
        Ok(path)
    }

    pub fn load_checkpoint(&self, device: &Device) -> Result<Checkpoint> {
        let path = self.checkpoint_path();
        let bytes = std::fs::read(&path).map_err(|e| Error::model(&path, e))?;
        let (_, md) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::model(&path, format!("corrupt checkpoint: {e}")))?;
        let kv = md.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            kv.get(k)
                .cloned()
                .ok_or_else(|| Error::model(&path, format!("checkpoint lacks '{k}'")))
        };
        let iteration = get("iteration")?
            .parse()
            .map_err(|_| Error::model(&path, "bad iteration"))?;
        let position = serde_json::from_str(&get("position")?)
            .map_err(|_| Error::model(&path, "bad data position"))?;
        let elapsed_s = get("elapsed_s")?.parse().unwrap_or(0.0);
        let tensors = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| Error::model(&path, format!("corrupt checkpoint: {e}")))?;
        Ok(Checkpoint {
            iteration,
            position,
            elapsed_s,
            tensors,
        })
    }
}
