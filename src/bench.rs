//! Timing the style network the way `../shared/bench/pytorch_reference.py` does:
//! one forward pass of a random-weight network on a device-resident input, batch 1,
//! median over runs after warm-up, device synchronised.

use crate::model::StyleModel;
use crate::nn::{Precision, StyleNet, Variant};
use crate::stylize::{Stylizer, Tiling};
use crate::tuning::NcuTarget;
use crate::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use image::RgbImage;
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

/// A network with random weights (speed does not depend on the values), as plain tensors:
/// inference must not pay for gradient tracking.
/// What [`Tuning::ncu`](crate::tuning::Tuning::ncu) asks to bracket with the profiler API.
fn ncu_target() -> Option<NcuTarget> {
    crate::tuning::current().ncu
}

pub fn random_net(variant: Variant, device: &Device, precision: Precision) -> Result<StyleNet> {
    crate::model::random_model(variant, "bench")?.build_with(device, precision)
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
    let gpu_pool = gpu_memory::reset_peak(device);
    for _ in 0..warmup {
        net.forward(&x)?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs.max(1) {
        // Under `ncu --profile-from-start off`, `Tuning::ncu` set to inference profiles the
        // first timed pass only (not the warm-up, whose algorithm searches launch hundreds of
        // kernels).
        let ncu = i == 0 && ncu_target() == Some(NcuTarget::Inference);
        if ncu {
            gpu_memory::profiler(device, true);
        }
        let t = Instant::now();
        let y = net.forward(&x)?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if ncu {
            gpu_memory::profiler(device, false);
        }
        drop(y);
    }
    let peak_mem_mb = baseline
        .and_then(cpu_memory::peak_above)
        .or_else(|| gpu_pool.and_then(|_| gpu_memory::peak_mb(device)));
    times.sort_by(f64::total_cmp);
    Ok(InferTiming {
        width,
        height,
        median_ms: times[times.len() / 2],
        min_ms: times[0],
        peak_mem_mb,
    })
}

/// Where one forward pass's time goes at `width`×`height`: milliseconds per span (see
/// [`LayerTimer`]), averaged over `runs` after one warm-up,
/// plus "output" for the last conv and the read-back.
pub fn profile_inference(
    net: &StyleNet,
    device: &Device,
    (width, height): (usize, usize),
    runs: usize,
) -> Result<Vec<(String, f64)>> {
    use crate::nn::norm::NormCtx;
    let x = (Tensor::rand(0f32, 1f32, (1, 3, height, width), device)? * 255.0)?;
    let mut timer = LayerTimer::new(device);
    for i in 0..runs.max(1) + 1 {
        if i == 1 {
            timer.spans.clear();
        }
        timer.start()?;
        let mut mark = |label: &str| timer.mark(label);
        let mut ctx = NormCtx {
            marks: Some(&mut mark),
            ..Default::default()
        };
        // The output is dropped before the last mark, as every activation before it.
        drop(net.forward_ctx(&x, &mut ctx)?);
        timer.mark("output")?;
    }
    let n = runs.max(1) as f64;
    Ok(timer.spans.into_iter().map(|(l, ms)| (l, ms / n)).collect())
}

/// Wall time of the stretches of a forward pass between instance norms ("conv i": padding,
/// conv and residual add before norm i) and of each norm ("norm i"), the device synchronised
/// at every mark. Summed over passes; `atelier bench` prints it under `Tuning::profile`.
pub struct LayerTimer {
    device: Device,
    last: std::time::Instant,
    pub spans: Vec<(String, f64)>,
}

impl LayerTimer {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            last: std::time::Instant::now(),
            spans: Vec::new(),
        }
    }

    /// Starts a pass: what happens before now is not counted.
    pub fn start(&mut self) -> candle_core::Result<()> {
        self.device.synchronize()?;
        self.last = std::time::Instant::now();
        Ok(())
    }

    /// Ends the span `label` now and adds its milliseconds to that label's total.
    pub fn mark(&mut self, label: &str) -> candle_core::Result<()> {
        self.device.synchronize()?;
        let now = std::time::Instant::now();
        let ms = (now - self.last).as_secs_f64() * 1e3;
        self.last = now;
        match self.spans.iter_mut().find(|(l, _)| l == label) {
            Some((_, total)) => *total += ms,
            None => self.spans.push((label.to_string(), ms)),
        }
        Ok(())
    }
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

/// Peak device memory on CUDA: the high-water mark of the device's default memory pool, from
/// which cudarc's stream-ordered allocations (every tensor and cuDNN workspace of ours) come.
/// This counts what PyTorch's `max_memory_allocated` counts: tensors and workspaces, not the
/// CUDA context or library code.
mod gpu_memory {
    use candle_core::Device;

    #[cfg(feature = "cuda")]
    fn with_pool<R>(
        device: &Device,
        f: impl FnOnce(candle_core::cuda_backend::cudarc::driver::sys::CUmemoryPool) -> Option<R>,
    ) -> Option<R> {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let Device::Cuda(d) = device else {
            return None;
        };
        let stream = d.cuda_stream();
        let ctx = stream.context();
        ctx.bind_to_thread().ok()?;
        let mut pool = std::ptr::null_mut();
        // SAFETY: the context is bound to this thread and `pool` is a valid out-pointer.
        let status = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) };
        (status == sys::CUresult::CUDA_SUCCESS).then_some(())?;
        f(pool)
    }

    /// Starts or stops the CUDA profiler's capture (for `ncu --profile-from-start off`).
    pub fn profiler(device: &Device, on: bool) {
        #[cfg(feature = "cuda")]
        {
            use candle_core::cuda_backend::cudarc::driver::sys;
            let _ = with_pool(device, |_| {
                // SAFETY: plain driver calls on the bound context; failures are ignored.
                unsafe {
                    if on {
                        sys::cuProfilerStart();
                    } else {
                        sys::cuProfilerStop();
                    }
                }
                Some(())
            });
        }
        #[cfg(not(feature = "cuda"))]
        let _ = (device, on);
    }

    /// Starts a new peak; `None` where it cannot be measured.
    pub fn reset_peak(device: &Device) -> Option<()> {
        used_high(device, Some(0)).map(|_| ())
    }

    /// The most memory in use at once since [`reset_peak`], in MB.
    pub fn peak_mb(device: &Device) -> Option<f64> {
        used_high(device, None).map(|b| b as f64 / 1e6)
    }

    /// The pool's high-water mark of memory in use, in bytes, after setting it to `set` (the
    /// driver accepts only 0, which restarts it). The device is synchronised first.
    fn used_high(device: &Device, set: Option<u64>) -> Option<u64> {
        #[cfg(feature = "cuda")]
        {
            use candle_core::cuda_backend::cudarc::driver::sys;
            device.synchronize().ok()?;
            with_pool(device, |pool| {
                let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
                let mut value = set.unwrap_or(0);
                let ptr = &mut value as *mut u64 as *mut std::ffi::c_void;
                // SAFETY: the attribute is a 64-bit value and `ptr` points at one.
                let status = unsafe {
                    if set.is_some() {
                        sys::cuMemPoolSetAttribute(pool, attr, ptr)
                    } else {
                        sys::cuMemPoolGetAttribute(pool, attr, ptr)
                    }
                };
                (status == sys::CUresult::CUDA_SUCCESS).then_some(value)
            })
        }
        #[cfg(not(feature = "cuda"))]
        {
            let _ = (device, set);
            None
        }
    }
}

/// How closely a device's output at some precision follows the f32 CPU result.
#[derive(Debug, Clone)]
pub struct Quality {
    pub photos: usize,
    pub min_psnr_db: f64,
    pub mean_psnr_db: f64,
}

/// Stylises each photo with `model` on `device` at `precision` and on the CPU in f32 (the
/// reference: plain f32 arithmetic, no TF32 or f16), and compares the two.
pub fn quality_against_cpu(
    model: &StyleModel,
    device: &Device,
    precision: Precision,
    photos: &[RgbImage],
) -> Result<Quality> {
    let reference = Stylizer::with_precision(model, &Device::Cpu, Precision::F32)?;
    let ours = Stylizer::with_precision(model, device, precision)?;
    let mut scores = Vec::with_capacity(photos.len());
    for photo in photos {
        let hooks = &mut Default::default();
        let want = reference.stylize_raw(photo, Tiling::Off, hooks)?;
        let got = ours.stylize_raw(photo, Tiling::Off, hooks)?;
        scores.push(psnr(&want, &got));
    }
    if scores.is_empty() {
        return Err(crate::Error::Invalid(
            "no photos for the quality check".into(),
        ));
    }
    Ok(Quality {
        photos: scores.len(),
        min_psnr_db: scores.iter().copied().fold(f64::INFINITY, f64::min),
        mean_psnr_db: scores.iter().sum::<f64>() / scores.len() as f64,
    })
}

/// Peak signal-to-noise ratio of two same-sized 8-bit images, in dB (∞ when identical).
pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "psnr of different sizes");
    let sq: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sq / a.as_raw().len().max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
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
    if ncu_target() == Some(NcuTarget::Training) {
        gpu_memory::profiler(device, true);
        step(&net, &objective, &mut adam, &x)?;
        device.synchronize()?;
        gpu_memory::profiler(device, false);
    }
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
    let vgg = Vgg16::load(vgg_path, device)?;
    // The loss of `pytorch_reference.py` (relu2_2 content at 1e5, relu1_2..relu4_3 Grams at
    // 3e6), so the two training rates compare like for like. `atelier train`'s default loss
    // reads the same layers, normalised, with content at relu3_3 and a smoothness term.
    let spec = crate::train::loss::LossSpec::raw(1e5, 3e6, 0.0);
    let x = (Tensor::rand(0f32, 1f32, (batch, 3, size, size), device)? * 255.0)?;
    let objective = Perceptual::new(vgg, &style, &spec, None)?;
    Ok((net, objective, adam, x))
}

/// Mean milliseconds of each phase of a training step (style network forward, perceptual
/// loss forward — with the loss network's hand-written backward pass where `train::step` uses
/// it —, backward through autograd, Adam), the device synchronised between phases; the phases then
/// cannot overlap, so their sum exceeds an unsynchronised step.
pub fn profile_training(
    device: &Device,
    vgg_path: &std::path::Path,
    batch: usize,
    size: usize,
    iters: usize,
) -> Result<Vec<(&'static str, f64)>> {
    use crate::train::step;
    let (net, objective, mut adam, x) = training_setup(device, vgg_path, batch, size)?;
    let mut total = [0f64; 4];
    for i in 0..iters + 3 {
        let mut marks = [Instant::now(); 5];
        device.synchronize()?;
        marks[0] = Instant::now();
        let y = net.forward(&x)?;
        device.synchronize()?;
        marks[1] = Instant::now();
        // As `train::step`: the loss network's gradient by hand where that path runs.
        let target = if crate::train::manual_loss_backward(&y) {
            let (_, grad_y) = objective.compute_with_grad(&x, &y.detach())?;
            y.mul(&grad_y)?.sum_all()?
        } else {
            objective.compute(&x, &y)?.total
        };
        device.synchronize()?;
        marks[2] = Instant::now();
        let grads = target.backward()?;
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
    // Whole steps: how long the host takes to queue one against how long it takes to run.
    // When the two are about equal the GPU waits on the host (launch and bookkeeping
    // overhead), not the other way round.
    let (mut queued, mut whole) = (0f64, 0f64);
    for _ in 0..iters {
        device.synchronize()?;
        let t = Instant::now();
        step(&net, &objective, &mut adam, &x)?;
        queued += t.elapsed().as_secs_f64() * 1e3;
        device.synchronize()?;
        whole += t.elapsed().as_secs_f64() * 1e3;
    }
    let n = iters.max(1) as f64;
    Ok(["net_forward", "loss_forward", "backward", "adam"]
        .into_iter()
        .zip(total.map(|t| t / n))
        .chain([("step_queued", queued / n), ("step_total", whole / n)])
        .collect())
}
