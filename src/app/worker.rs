//! The stylising thread: owns the device and the loaded networks, so the UI thread
//! never waits on candle. Requests go in over a channel; previews, finished tiles and
//! results come back as events. A newer request cancels the one in flight.

use crate::device::DeviceChoice;
use crate::progress::Throughput;
use crate::stylize::{Hooks, Stylizer, Tiling};
use image::RgbImage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One restyle of one photo.
#[derive(Clone)]
pub struct StylizeRequest {
    pub id: u64,
    pub photo: Arc<RgbImage>,
    pub style: PathBuf,
    /// Strokes this many times larger ([`crate::stylize::stroke`]).
    pub stroke_scale: f32,
    /// Show a quick low-resolution pass first (when the photo is large enough to need one).
    pub preview: bool,
    /// Set when a newer request replaces this one.
    pub cancel: Arc<AtomicBool>,
}

pub enum Request {
    Stylize(StylizeRequest),
    /// Reopen on another device; later requests run there.
    SetDevice(DeviceChoice),
}

#[derive(Debug)]
pub enum WorkerEvent {
    /// The device the worker opened (`auto` resolved), or why it fell back.
    Device(String),
    /// The quick low-resolution pass, already scaled up to the photo's size.
    Preview {
        id: u64,
        image: RgbImage,
        ms: f64,
    },
    /// The full-resolution pass began; `expected` is its time at this device's measured
    /// speed (`None` until a pass was measured).
    Started {
        id: u64,
        expected: Option<Duration>,
    },
    /// A finished region of the full-resolution result at (x, y).
    Tile {
        id: u64,
        x: u32,
        y: u32,
        image: RgbImage,
    },
    /// Progress of the full-resolution pass, 0..1.
    Progress {
        id: u64,
        fraction: f32,
    },
    Done {
        id: u64,
        image: Arc<RgbImage>,
        ms: f64,
    },
    Failed {
        id: u64,
        error: crate::Error,
    },
}

/// The UI's end of the worker.
pub struct WorkerHandle {
    requests: Sender<Request>,
    pub events: Receiver<WorkerEvent>,
    current_cancel: Option<Arc<AtomicBool>>,
}

impl WorkerHandle {
    /// Starts the thread; `wake` is called after each event so the UI repaints.
    pub fn spawn(device: DeviceChoice, wake: impl Fn() + Send + 'static) -> Self {
        let (req_tx, req_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        std::thread::Builder::new()
            .name("atelier-stylize".into())
            .spawn(move || worker_loop(device, req_rx, ev_tx, wake))
            .expect("spawn the stylising thread");
        Self {
            requests: req_tx,
            events: ev_rx,
            current_cancel: None,
        }
    }

    /// Queues a restyle and cancels whatever was running.
    pub fn stylize(
        &mut self,
        id: u64,
        photo: Arc<RgbImage>,
        style: PathBuf,
        stroke_scale: f32,
        preview: bool,
    ) {
        self.cancel();
        let cancel = Arc::new(AtomicBool::new(false));
        self.current_cancel = Some(cancel.clone());
        let _ = self.requests.send(Request::Stylize(StylizeRequest {
            id,
            photo,
            style,
            stroke_scale,
            preview,
            cancel,
        }));
    }

    pub fn cancel(&mut self) {
        if let Some(c) = self.current_cancel.take() {
            c.store(true, Ordering::Relaxed);
        }
    }

    pub fn set_device(&mut self, device: DeviceChoice) {
        self.cancel();
        let _ = self.requests.send(Request::SetDevice(device));
    }
}

fn open_device(choice: DeviceChoice, events: &Sender<WorkerEvent>) -> candle_core::Device {
    match choice.open() {
        Ok(d) => {
            let _ = events.send(WorkerEvent::Device(crate::device::describe(&d)));
            d
        }
        Err(e) => {
            // Plain words in the status line; the details are for a bug report.
            eprintln!("atelier: {choice} unavailable ({e}); using the processor");
            let _ = events.send(WorkerEvent::Device(
                "processor (the graphics card could not be used)".into(),
            ));
            candle_core::Device::Cpu
        }
    }
}

fn worker_loop(
    choice: DeviceChoice,
    requests: Receiver<Request>,
    events: Sender<WorkerEvent>,
    wake: impl Fn(),
) {
    let send = |e: WorkerEvent| {
        let _ = events.send(e);
        wake();
    };
    let mut device = open_device(choice, &events);
    wake();
    let mut models: HashMap<PathBuf, Stylizer> = HashMap::new();
    let mut speed = Throughput::default();
    while let Ok(first) = requests.recv() {
        // Device changes apply in order; of the restyles queued, only the newest runs.
        let mut latest = None;
        for req in std::iter::once(first).chain(std::iter::from_fn(|| requests.try_recv().ok())) {
            match req {
                Request::SetDevice(c) => {
                    models.clear();
                    speed = Throughput::default();
                    device = open_device(c, &events);
                    wake();
                }
                Request::Stylize(r) => latest = Some(r),
            }
        }
        let Some(r) = latest else { continue };
        if let Err(e) = run_one(&r, &device, &mut models, &mut speed, &send) {
            if !matches!(e, crate::Error::Cancelled) {
                send(WorkerEvent::Failed { id: r.id, error: e });
            }
        }
    }
}

fn run_one(
    r: &StylizeRequest,
    device: &candle_core::Device,
    models: &mut HashMap<PathBuf, Stylizer>,
    speed: &mut Throughput,
    send: &dyn Fn(WorkerEvent),
) -> crate::Result<()> {
    let cancel = &*r.cancel;
    if !models.contains_key(&r.style) {
        // A handful of styles stay loaded so switching back is instant.
        if models.len() >= 6 {
            models.clear();
        }
        models.insert(r.style.clone(), Stylizer::load(&r.style, device)?);
    }
    let stylizer = &models[&r.style];
    let photo = &*r.photo;
    let (w, h) = photo.dimensions();
    let side = crate::stylize::preview_side(device);
    // Worth it only when the full pass is several times the preview's work (the network
    // runs at 1/stroke scale of the photo's size).
    let (nw, nh) = crate::stylize::stroke::network_size(w, h, r.stroke_scale);
    if r.preview && nw.max(nh) > 2 * side {
        let t = Instant::now();
        let mut hooks = Hooks {
            cancel: Some(cancel),
            ..Default::default()
        };
        let image = stylizer.quick_preview(photo, side, &mut hooks)?;
        let (pw, ph) = crate::stylize::resample::fit_within(w, h, side.max(16));
        speed.record(u64::from(pw) * u64::from(ph), t.elapsed());
        send(WorkerEvent::Preview {
            id: r.id,
            image,
            ms: t.elapsed().as_secs_f64() * 1e3,
        });
    }
    let pixels = u64::from(w) * u64::from(h);
    send(WorkerEvent::Started {
        id: r.id,
        expected: speed.expected(pixels),
    });
    let t = Instant::now();
    let mut on_tile = |x: u32, y: u32, img: &RgbImage| {
        send(WorkerEvent::Tile {
            id: r.id,
            x,
            y,
            image: img.clone(),
        })
    };
    let mut on_progress = |done: usize, total: usize| {
        send(WorkerEvent::Progress {
            id: r.id,
            fraction: done as f32 / total.max(1) as f32,
        })
    };
    // At another stroke scale the network's tiles are not the result's: nothing to stream.
    let unscaled = r.stroke_scale == 1.0;
    let mut hooks = Hooks {
        progress: Some(&mut on_progress),
        tile_done: if unscaled { Some(&mut on_tile) } else { None },
        cancel: Some(cancel),
    };
    let out = stylizer.stylize_raw_scaled(photo, Tiling::Auto, r.stroke_scale, &mut hooks)?;
    speed.record(pixels, t.elapsed());
    send(WorkerEvent::Done {
        id: r.id,
        image: Arc::new(out),
        ms: t.elapsed().as_secs_f64() * 1e3,
    });
    Ok(())
}
