//! Inference: load a style once, restyle any number of images with it.

pub mod blend;
pub mod instant;
pub mod mask;
pub mod resample;
pub mod stroke;
pub mod thumbnail;
pub mod tiling;

use crate::model::{ModelMeta, StyleModel};
use crate::nn::norm::{NormCtx, NormStats, TemporalStats};
use crate::nn::{Precision, StyleNet};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use tiling::StatsAccumulator;

/// Peak memory of one CPU pass per input pixel: measured 590 MB at 1000² and 2.58 GB at
/// 2000² (peak RSS of `atelier stylize`), i.e. about 620 bytes a pixel, plus a margin.
const CPU_PASS_BYTES_PER_PIXEL: u64 = 750;
const CPU_PASS_FIXED_BYTES: u64 = 128 << 20;

/// Tile cores to try, largest first, below `from`.
fn smaller_tiles(from: u32) -> impl Iterator<Item = u32> {
    [1024u32, 768, 512, 384, 256, 192, 128]
        .into_iter()
        .filter(move |&c| c < from)
}

/// How to split an image for bounded memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tiling {
    /// Whole image when it fits the device's budget, tiles otherwise.
    #[default]
    Auto,
    /// Always the whole image in one pass.
    Off,
    /// Tiles with cores of this many pixels per side.
    Core(u32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StylizeOptions {
    /// 0 keeps the photo, 1 is the full style.
    pub strength: f32,
    /// Keep the photo's colours, take only luminance from the style.
    pub preserve_colors: bool,
    pub tiling: Tiling,
}

impl Default for StylizeOptions {
    fn default() -> Self {
        Self {
            strength: 1.0,
            preserve_colors: false,
            tiling: Tiling::Auto,
        }
    }
}

/// Receives the top-left corner and pixels of each finished region.
pub type TileCallback<'a> = &'a mut dyn FnMut(u32, u32, &RgbImage);

/// Callbacks during a long stylisation: progress, finished tiles (for streaming into a
/// texture) and a cancellation flag that is polled between layers.
#[derive(Default)]
pub struct Hooks<'a> {
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
    /// Called with the top-left corner and the pixels of each finished core region.
    pub tile_done: Option<TileCallback<'a>>,
    pub cancel: Option<&'a AtomicBool>,
}

impl Hooks<'_> {
    fn report(&mut self, done: usize, total: usize) {
        if let Some(p) = self.progress.as_mut() {
            p(done, total);
        }
    }

    fn check_cancel(&self) -> Result<()> {
        match self.cancel {
            Some(c) if c.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }
}

/// Longest side of the app's quick first pass: small enough to come back within about
/// a second on the CPU and well under 150 ms on a GPU, even for a 12-megapixel photo.
pub fn preview_side(device: &Device) -> u32 {
    if device.is_cpu() {
        384
    } else {
        768
    }
}

/// A style network loaded on a device, reusable across images.
pub struct Stylizer {
    net: StyleNet,
    device: Device,
    meta: ModelMeta,
}

impl Stylizer {
    /// The network at the best precision for `device` ([`Precision::auto`]).
    pub fn new(model: &StyleModel, device: &Device) -> Result<Self> {
        Self::with_precision(model, device, Precision::auto(model.meta.variant, device))
    }

    pub fn with_precision(
        model: &StyleModel,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        Ok(Self {
            net: model.build_with(device, precision)?,
            device: device.clone(),
            meta: model.meta.clone(),
        })
    }

    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        Self::new(&StyleModel::load(path)?, device)
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Restyles `photo` and applies strength and colour preservation.
    pub fn stylize(
        &self,
        photo: &RgbImage,
        opts: &StylizeOptions,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        if opts.strength <= 0.0 {
            return Ok(photo.clone());
        }
        if let Some(toward) = self.toward_photo(photo, opts.strength)? {
            let full = StylizeOptions {
                strength: 1.0,
                ..*opts
            };
            return toward.stylize(photo, &full, hooks);
        }
        let styled = self.stylize_raw(photo, opts.tiling, hooks)?;
        if opts.strength >= 1.0 && !opts.preserve_colors {
            return Ok(styled);
        }
        Ok(blend::blend(
            photo,
            &styled,
            opts.strength,
            opts.preserve_colors,
        ))
    }

    /// For an instant style at a strength below 1, the same style with its vector moved that
    /// far from the photo's own towards the painting's (run it at full strength); `None` for
    /// every other style and strength.
    pub fn toward_photo(&self, photo: &RgbImage, strength: f32) -> Result<Option<Stylizer>> {
        let StyleNet::Instant(net) = &self.net else {
            return Ok(None);
        };
        if strength <= 0.0 || strength >= 1.0 {
            return Ok(None);
        }
        // Instant style files all share the bundled network, whose predictor runs on the CPU.
        let own = instant::bundled_style_vector(photo)?;
        let painting: Vec<f32> = net.vector().flatten_all()?.to_vec1()?;
        let toward = net.with_vector(&instant::interpolate(&own, &painting, strength))?;
        Ok(Some(Stylizer {
            net: StyleNet::Instant(Box::new(toward)),
            device: self.device.clone(),
            meta: self.meta.clone(),
        }))
    }

    /// A quick look at the result: the photo scaled so its longest side is `side`,
    /// stylised, and scaled back up to the photo's size. The app shows this while the
    /// full-resolution pass runs.
    pub fn quick_preview(
        &self,
        photo: &RgbImage,
        side: u32,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        let (w, h) = photo.dimensions();
        let (pw, ph) = resample::fit_within(w, h, side.max(16));
        let small = image::imageops::thumbnail(photo, pw, ph);
        let styled = self.stylize_raw(&small, Tiling::Off, hooks)?;
        Ok(resample::bilinear(&styled, w, h))
    }

    /// One video frame, whole (no tiles), with instance-norm statistics smoothed over
    /// the frames before it (`temporal` carries them from call to call).
    pub fn stylize_frame(
        &self,
        frame: &RgbImage,
        temporal: &mut TemporalStats,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::Invalid("cannot stylise an empty frame".into()));
        }
        hooks.check_cancel()?;
        let x = image_to_tensor(frame, 0, 0, w, h, &self.device)?;
        let mut ctx = NormCtx {
            stats: NormStats::Temporal(temporal),
            cancel: hooks.cancel,
            marks: None,
        };
        let y = self.net.forward_ctx(&x, &mut ctx)?;
        tensor_to_image(&y)
    }

    /// The network's own output, same size as the input.
    pub fn stylize_raw(
        &self,
        photo: &RgbImage,
        tiling: Tiling,
        hooks: &mut Hooks,
    ) -> Result<RgbImage> {
        let (w, h) = photo.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::Invalid("cannot stylise an empty image".into()));
        }
        let core = match tiling {
            Tiling::Off => None,
            Tiling::Core(c) => Some(c.max(16)),
            Tiling::Auto => {
                let (budget, core) = if self.device.is_cpu() {
                    (2048 * 2048, 1024)
                } else {
                    (4096 * 4096, 2048)
                };
                (u64::from(w) * u64::from(h) > budget).then_some(core)
            }
        };
        let core = self.fit_in_memory(w, h, core, tiling == Tiling::Auto)?;
        match core {
            Some(core) if w > core || h > core => self.run_tiled(photo, core, hooks),
            _ => self.run_whole(photo, hooks),
        }
    }

    /// On the CPU, where a failed allocation inside candle aborts the whole process (and the
    /// rest of a batch with it), checks before the pass that its working memory can be had:
    /// whole-image passes that do not fit fall back to tiles (`auto` only) and tiles shrink
    /// until one fits; what cannot fit at all is an [`Error::OutOfMemory`]. The check only
    /// reserves address space, so it costs nothing when memory is plentiful.
    fn fit_in_memory(&self, w: u32, h: u32, core: Option<u32>, auto: bool) -> Result<Option<u32>> {
        if !self.device.is_cpu() {
            return Ok(core);
        }
        let halo = self.net.variant().receptive_radius() as u32;
        // Address space, not resident memory, is what runs out under `ulimit -v`: the allocator
        // keeps what a pass frees mapped for the next (main.rs) and maps 32 MB segments per
        // thread, so a pass gets twice its measured resident peak.
        let pass = |pw: u32, ph: u32, passes: u64| -> Result<()> {
            let px = u64::from(pw) * u64::from(ph);
            crate::alloc::ensure(
                passes * px * CPU_PASS_BYTES_PER_PIXEL + CPU_PASS_FIXED_BYTES,
                &format!("the network's working memory for a {pw}×{ph} pass"),
            )
        };
        let tile = |c: u32| pass((c + 2 * halo).min(w), (c + 2 * halo).min(h), 2);
        match core {
            Some(c) if w > c || h > c => match tile(c) {
                Ok(()) => Ok(Some(c)),
                Err(e) if auto => smaller_tiles(c)
                    .find(|&c| tile(c).is_ok())
                    .map(Some)
                    .ok_or(e),
                Err(e) => Err(e),
            },
            _ => match pass(w, h, 2) {
                Ok(()) => Ok(core),
                Err(e) if auto => smaller_tiles(w.max(h))
                    .find(|&c| tile(c).is_ok())
                    .map(Some)
                    .ok_or(e),
                Err(e) => Err(e),
            },
        }
    }

    fn run_whole(&self, photo: &RgbImage, hooks: &mut Hooks) -> Result<RgbImage> {
        let (w, h) = photo.dimensions();
        hooks.check_cancel()?;
        hooks.report(0, 1);
        let x = image_to_tensor(photo, 0, 0, w, h, &self.device)?;
        let mut ctx = NormCtx {
            cancel: hooks.cancel,
            ..Default::default()
        };
        let y = self.net.forward_ctx(&x, &mut ctx)?;
        let out = tensor_to_image(&y)?;
        hooks.report(1, 1);
        if let Some(f) = hooks.tile_done.as_mut() {
            f(0, 0, &out);
        }
        Ok(out)
    }

    /// Tiled inference with whole-image instance-norm statistics: for each norm layer in
    /// turn, one sweep over the tiles accumulates that layer's statistics over the tile
    /// cores (using the statistics already known for earlier layers); a last sweep
    /// produces the output. Costs more passes, but memory stays bounded by one tile
    /// and the result matches the untiled network.
    fn run_tiled(&self, photo: &RgbImage, core: u32, hooks: &mut Hooks) -> Result<RgbImage> {
        let (w, h) = photo.dimensions();
        let variant = self.net.variant();
        let tiles = tiling::plan(w, h, core, variant.receptive_radius() as u32);
        let layers = variant.norm_layers();
        let total = (layers + 1) * tiles.len();
        let mut done = 0;
        let mut stats: Vec<(Tensor, Tensor)> = Vec::with_capacity(layers);
        for layer in 0..layers {
            let mut acc = None;
            for t in &tiles {
                hooks.check_cancel()?;
                let x = image_to_tensor(photo, t.x0, t.y0, t.x1, t.y1, &self.device)?;
                let mut ctx = NormCtx {
                    stats: NormStats::Collect {
                        fixed: &stats,
                        layer,
                    },
                    cancel: hooks.cancel,
                    marks: None,
                };
                let map = self.net.forward_ctx(&x, &mut ctx)?;
                acc.get_or_insert_with(StatsAccumulator::default)
                    .add_region(&map, t.core_region(w, h), variant.norm_scales()[layer])?;
                done += 1;
                hooks.report(done, total);
            }
            let acc = acc.ok_or_else(|| Error::Invalid("tiling produced no tiles".into()))?;
            stats.push(tiling::stats_to_tensors(
                &acc.finish(),
                &self.device,
                DType::F32,
            )?);
        }
        let mut out = crate::alloc::rgb_image(w, h, "the tiled result")?;
        for t in &tiles {
            hooks.check_cancel()?;
            let x = image_to_tensor(photo, t.x0, t.y0, t.x1, t.y1, &self.device)?;
            let mut ctx = NormCtx {
                stats: NormStats::Fixed(&stats),
                cancel: hooks.cancel,
                marks: None,
            };
            let y = self.net.forward_ctx(&x, &mut ctx)?;
            let (cx, cy) = (t.core_x0 - t.x0, t.core_y0 - t.y0);
            let (cw, ch) = (t.core_x1 - t.core_x0, t.core_y1 - t.core_y0);
            let y = y
                .narrow(2, cy as usize, ch as usize)?
                .narrow(3, cx as usize, cw as usize)?;
            let patch = tensor_to_image(&y)?;
            image::imageops::replace(&mut out, &patch, i64::from(t.core_x0), i64::from(t.core_y0));
            if let Some(f) = hooks.tile_done.as_mut() {
                f(t.core_x0, t.core_y0, &patch);
            }
            done += 1;
            hooks.report(done, total);
        }
        Ok(out)
    }
}

/// The `[x0, x1) × [y0, y1)` region of an RGB image as a `(1, 3, h, w)` f32 tensor, 0..255.
pub fn image_to_tensor(
    img: &RgbImage,
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    device: &Device,
) -> Result<Tensor> {
    use rayon::prelude::*;
    let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let mut planes =
        crate::alloc::zeroed::<f32>(w.saturating_mul(h).saturating_mul(3), "the network's input")?;
    let (r, rest) = planes.split_at_mut(w * h);
    let (g, b) = rest.split_at_mut(w * h);
    // Rows in parallel: a 1080p video frame is 2 million pixels per call.
    r.par_chunks_mut(w.max(1))
        .zip(g.par_chunks_mut(w.max(1)))
        .zip(b.par_chunks_mut(w.max(1)))
        .enumerate()
        .for_each(|(row, ((r, g), b))| {
            let y = y0 as usize + row;
            let src = &img.as_raw()[(y * img.width() as usize + x0 as usize) * 3..][..w * 3];
            for (i, px) in src.chunks_exact(3).enumerate() {
                r[i] = px[0] as f32;
                g[i] = px[1] as f32;
                b[i] = px[2] as f32;
            }
        });
    Ok(Tensor::from_vec(planes, (1, 3, h, w), device)?)
}

/// A `(1, 3, h, w)` tensor of nominal 0..255 values as an RGB image (clamped, rounded).
pub fn tensor_to_image(t: &Tensor) -> Result<RgbImage> {
    let (_, c, h, w) = t.dims4()?;
    if c != 3 {
        return Err(Error::Invalid(format!("expected 3 channels, got {c}")));
    }
    let hwc = t
        .get(0)?
        .to_dtype(DType::F32)?
        .clamp(0f32, 255f32)?
        .round()?
        .to_dtype(DType::U8)?
        .permute((1, 2, 0))?
        .flatten_all()?
        .to_vec1::<u8>()?;
    RgbImage::from_raw(w as u32, h as u32, hwc)
        .ok_or_else(|| Error::Invalid("bad output buffer".into()))
}
