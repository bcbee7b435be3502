//! Timing the style network the way `../shared/bench/pytorch_reference.py` does:
//! one forward pass of a random-weight network on a device-resident input, batch 1,
//! median over runs after warm-up, device synchronised.

use crate::model::{StyleNet, Variant};
use crate::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct InferTiming {
    pub width: usize,
    pub height: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    /// Peak memory above the baseline while running, where the device lets us measure it.
    pub peak_mem_mb: Option<f64>,
}

/// A network with random weights (speed does not depend on the values).
pub fn random_net(variant: Variant, device: &Device) -> Result<StyleNet> {
    // The CPU backend cannot be seeded; weights need not be reproducible for timing.
    let _ = device.set_seed(0);
    // Plain tensors, not variables: inference must not pay for gradient tracking.
    let params = crate::model::random_params(variant, device)?;
    Ok(StyleNet::new(
        variant,
        VarBuilder::from_tensors(params, DType::F32, device),
    )?)
}

pub fn time_inference(
    net: &StyleNet,
    device: &Device,
    (width, height): (usize, usize),
    warmup: usize,
    runs: usize,
) -> Result<InferTiming> {
    let x = (Tensor::rand(0f32, 1f32, (1, 3, height, width), device)? * 255.0)?;
    // Measured from before the warm-up: the allocator keeps freed buffers for reuse, so
    // later runs would not raise the peak again.
    let baseline = cpu_memory::reset_peak(device);
    for _ in 0..warmup {
        net.forward(&x)?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let y = net.forward(&x)?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        drop(y);
    }
    let peak_mem_mb = baseline.and_then(cpu_memory::peak_above);
    times.sort_by(f64::total_cmp);
    Ok(InferTiming {
        width,
        height,
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        peak_mem_mb,
    })
}

/// Median time of the app's quick preview of a `width`×`height` photo.
pub fn time_preview(
    variant: Variant,
    device: &Device,
    (width, height): (usize, usize),
    warmup: usize,
    runs: usize,
) -> Result<f64> {
    let model = crate::model::random_model(variant, "bench")?;
    let stylizer = crate::stylize::Stylizer::new(&model, device)?;
    let photo = image::RgbImage::from_fn(width as u32, height as u32, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let side = crate::stylize::preview_side(device);
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs.max(1) {
        let t = Instant::now();
        stylizer.quick_preview(&photo, side, &mut Default::default())?;
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Peak resident memory on Linux, via `/proc/self/status` (VmHWM), reset through
/// `/proc/self/clear_refs` so each size is measured on its own.
mod cpu_memory {
    use candle_core::Device;

    fn read_kb(key: &str) -> Option<f64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Returns the current resident size in kB when peak tracking works here.
    pub fn reset_peak(device: &Device) -> Option<f64> {
        if !device.is_cpu() {
            return None;
        }
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        read_kb("VmRSS:")
    }

    pub fn peak_above(baseline_kb: f64) -> Option<f64> {
        Some((read_kb("VmHWM:")? - baseline_kb).max(0.0) / 1024.0)
    }
}

/// "512" → 512×512, "3840x2160" → 3840×2160.
pub fn parse_size(s: &str) -> Option<(usize, usize)> {
    let s = s.trim();
    match s.split_once(['x', 'X']) {
        Some((w, h)) => Some((w.parse().ok()?, h.parse().ok()?)),
        None => s.parse().ok().map(|n| (n, n)),
    }
    .filter(|&(w, h)| w > 0 && h > 0)
}

/// Training iterations per second: batch `batch` of `size`² random photos, the given
/// VGG16, Gram style loss at four layers + content loss, Adam — what
/// `pytorch_reference.py` measures as `train_it_per_s_b4_256`.
pub fn time_training(
    device: &Device,
    vgg_path: &std::path::Path,
    batch: usize,
    size: usize,
    warmup: usize,
    iters: usize,
) -> Result<f64> {
    use crate::train::step;
    let (net, objective, mut adam, x) = training_setup(device, vgg_path, batch, size)?;
    for _ in 0..warmup {
        step(&net, &objective, &mut adam, &x)?;
    }
    device.synchronize()?;
    let t = Instant::now();
    for _ in 0..iters.max(1) {
        step(&net, &objective, &mut adam, &x)?;
    }
    device.synchronize()?;
    Ok(iters.max(1) as f64 / t.elapsed().as_secs_f64())
}

type TrainingSetup = (
    StyleNet,
    crate::train::loss::Perceptual,
    crate::train::adam::Adam,
    Tensor,
);

fn training_setup(
    device: &Device,
    vgg_path: &std::path::Path,
    batch: usize,
    size: usize,
) -> Result<TrainingSetup> {
    use crate::train::{adam::Adam, loss::Perceptual, vgg::Vgg16};
    let vm = candle_nn::VarMap::new();
    let net = StyleNet::new(
        Variant::Johnson,
        VarBuilder::from_varmap(&vm, DType::F32, device),
    )?;
    let adam = Adam::for_varmap(&vm, 1e-3)?;
    let style = (Tensor::rand(0f32, 1f32, (1, 3, 512, 512), device)? * 255.0)?;
    let objective = Perceptual::new(Vgg16::load(vgg_path, device)?, &style, 1e5, 3e6, 0.0)?;
    let x = (Tensor::rand(0f32, 1f32, (batch, 3, size, size), device)? * 255.0)?;
    Ok((net, objective, adam, x))
}

/// Mean milliseconds of each phase of a training step (style network forward, perceptual
/// loss forward, backward, Adam), the device synchronised between phases; the phases then
/// cannot overlap, so their sum exceeds an unsynchronised step.
pub fn profile_training(
    device: &Device,
    vgg_path: &std::path::Path,
    batch: usize,
    size: usize,
    iters: usize,
) -> Result<Vec<(&'static str, f64)>> {
    let (net, objective, mut adam, x) = training_setup(device, vgg_path, batch, size)?;
    let mut total = [0f64; 4];
    for i in 0..iters + 3 {
        let mut marks = [Instant::now(); 5];
        device.synchronize()?;
        marks[0] = Instant::now();
        let y = net.forward(&x)?;
        device.synchronize()?;
        marks[1] = Instant::now();
        let losses = objective.compute(&x, &y)?;
        device.synchronize()?;
        marks[2] = Instant::now();
        let grads = losses.total.backward()?;
        device.synchronize()?;
        marks[3] = Instant::now();
        adam.apply(&grads)?;
        device.synchronize()?;
        marks[4] = Instant::now();
        if i >= 3 {
            for (t, w) in total.iter_mut().zip(marks.windows(2)) {
                *t += (w[1] - w[0]).as_secs_f64() * 1e3;
            }
        }
    }
    let n = iters.max(1) as f64;
    Ok(["net_forward", "loss_forward", "backward", "adam"]
        .into_iter()
        .zip(total.map(|t| t / n))
        .collect())
}
