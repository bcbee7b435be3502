//! Splitting a large image into overlapping tiles whose outputs can be stitched
//! without seams.
//!
//! Three rules make a tile's core compute exactly what the whole image computes there:
//! - tiles start on multiples of 4, so the two stride-2 layers sample the same grid;
//! - a tile's extent is congruent to the image's modulo 4, so 'SAME' padding puts
//!   the odd extra pixel on the same side at every level;
//! - tiles overlap their core by the receptive radius, so the core never sees a tile edge.
//!
//! Instance-norm statistics come from the whole image (see `Stylizer::run_tiled`).

use candle_core::{DType, Device, Tensor};

/// The smallest tile core worth asking for: each tile also computes a 64-pixel halo on
/// every side, so below this most of the work is thrown away (tiles of 8 pixels run
/// hundreds of times slower than the whole image).
pub const MIN_CORE: u32 = 128;

/// One tile: the extent the network runs on and the core it contributes, in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub core_x0: u32,
    pub core_y0: u32,
    pub core_x1: u32,
    pub core_y1: u32,
}

impl Tile {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// The core relative to the tile, as the norm layers need it.
    pub fn core_region(&self, image_w: u32, image_h: u32) -> CoreRegion {
        CoreRegion {
            x0: (self.core_x0 - self.x0) as usize,
            y0: (self.core_y0 - self.y0) as usize,
            x1: (self.core_x1 < image_w).then(|| (self.core_x1 - self.x0) as usize),
            y1: (self.core_y1 < image_h).then(|| (self.core_y1 - self.y0) as usize),
        }
    }
}

/// Per-channel mean and biased variance of one normalisation layer over a whole image.
#[derive(Debug, Clone)]
pub struct ChannelStats {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
}

/// Running per-channel count / mean / M2 (sum of squared deviations), merged across
/// tiles with Chan's formula so that large images don't lose precision.
#[derive(Debug, Clone, Default)]
pub struct StatsAccumulator {
    count: f64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl StatsAccumulator {
    /// Adds the statistics of the region `x` (shape `(1, C, h, w)`).
    pub fn add(&mut self, x: &Tensor) -> candle_core::Result<()> {
        let (_, c, h, w) = x.dims4()?;
        let n = (h * w) as f64;
        if n == 0.0 {
            return Ok(());
        }
        let flat = x.reshape((c, h * w))?.to_dtype(DType::F32)?;
        let mean_t = flat.mean_keepdim(1)?;
        let m2: Vec<f32> = flat.broadcast_sub(&mean_t)?.sqr()?.sum(1)?.to_vec1()?;
        let mean: Vec<f32> = mean_t.squeeze(1)?.to_vec1()?;
        if self.mean.is_empty() {
            self.mean = vec![0.0; c];
            self.m2 = vec![0.0; c];
        }
        let total = self.count + n;
        for ch in 0..c {
            let delta = mean[ch] as f64 - self.mean[ch];
            self.mean[ch] += delta * n / total;
            self.m2[ch] += m2[ch] as f64 + delta * delta * self.count * n / total;
        }
        self.count = total;
        Ok(())
    }

    /// Adds the statistics of `region` (in input pixels) of the feature map `map` (shape
    /// `(1, C, h, w)`), whose pixels each stand for `scale` input pixels.
    pub fn add_region(
        &mut self,
        map: &Tensor,
        region: CoreRegion,
        scale: usize,
    ) -> candle_core::Result<()> {
        let (_, _, h, w) = map.dims4()?;
        let (x0, y0) = (region.x0 / scale, region.y0 / scale);
        let x1 = region.x1.map_or(w, |v| v / scale).min(w);
        let y1 = region.y1.map_or(h, |v| v / scale).min(h);
        if x1 > x0 && y1 > y0 {
            self.add(&map.narrow(2, y0, y1 - y0)?.narrow(3, x0, x1 - x0)?)?;
        }
        Ok(())
    }

    pub fn finish(&self) -> ChannelStats {
        let count = self.count.max(1.0);
        ChannelStats {
            mean: self.mean.clone(),
            var: self.m2.iter().map(|m| m / count).collect(),
        }
    }
}

/// Which part of a tile's feature map belongs to the tile's core (in input pixels,
/// relative to the tile). `x1`/`y1` of `None` mean "to the end of the map", which is
/// how the whole-image map ends too, conv-transpose overshoot included.
#[derive(Debug, Clone, Copy)]
pub struct CoreRegion {
    pub x0: usize,
    pub y0: usize,
    pub x1: Option<usize>,
    pub y1: Option<usize>,
}

/// Turns host statistics into `(1, C, 1, 1)` tensors on `device`.
pub fn stats_to_tensors(
    stats: &ChannelStats,
    device: &Device,
    dtype: DType,
) -> candle_core::Result<(Tensor, Tensor)> {
    let c = stats.mean.len();
    let mean = Tensor::from_iter(stats.mean.iter().map(|&v| v as f32), device)?
        .reshape((1, c, 1, 1))?
        .to_dtype(dtype)?;
    let var = Tensor::from_iter(stats.var.iter().map(|&v| v as f32), device)?
        .reshape((1, c, 1, 1))?
        .to_dtype(dtype)?;
    Ok((mean, var))
}

/// (extent start, extent end, core start, core end) along one axis.
fn plan_axis(len: u32, core: u32, halo: u32) -> Vec<(u32, u32, u32, u32)> {
    let mut out = Vec::new();
    let mut a = 0;
    while a < len {
        let b = (a + core).min(len);
        let e0 = a.saturating_sub(halo) / 4 * 4;
        let mut e1 = if b == len { len } else { (b + halo).min(len) };
        while e1 < len && (e1 - e0) % 4 != len % 4 {
            e1 += 1;
        }
        out.push((e0, e1.min(len), a, b));
        a = b;
    }
    out
}

/// Tiles covering a `w`×`h` image with cores of at most `core` pixels (rounded down to
/// a multiple of 4) and `halo` pixels of context on each inner side.
pub fn plan(w: u32, h: u32, core: u32, halo: u32) -> Vec<Tile> {
    let core = (core / 4 * 4).max(4);
    let halo = halo.div_ceil(4) * 4;
    let xs = plan_axis(w, core, halo);
    let ys = plan_axis(h, core, halo);
    let mut tiles = Vec::with_capacity(xs.len() * ys.len());
    for &(y0, y1, cy0, cy1) in &ys {
        for &(x0, x1, cx0, cx1) in &xs {
            tiles.push(Tile {
                x0,
                y0,
                x1,
                y1,
                core_x0: cx0,
                core_y0: cy0,
                core_x1: cx1,
                core_y1: cy1,
            });
        }
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_partition_the_image_and_extents_follow_the_rules() {
        for (w, h) in [(1030, 517), (64, 64), (4097, 3), (999, 1001)] {
            let tiles = plan(w, h, 256, 64);
            let mut covered = vec![0u8; (w * h) as usize];
            for t in &tiles {
                assert_eq!(t.x0 % 4, 0);
                assert_eq!(t.y0 % 4, 0);
                assert_eq!(t.width() % 4, w % 4);
                assert_eq!(t.height() % 4, h % 4);
                assert!(t.x0 <= t.core_x0 && t.core_x1 <= t.x1);
                assert!(t.core_x0 - t.x0 >= 64 || t.x0 == 0);
                assert!(t.x1 - t.core_x1 >= 64 || t.x1 == w);
                for y in t.core_y0..t.core_y1 {
                    for x in t.core_x0..t.core_x1 {
                        covered[(y * w + x) as usize] += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{w}x{h}");
        }
    }
}
