//! Everything the app does off the UI thread, other than stylising (the worker, which keeps
//! its networks loaded) and training (the library's trainer): one [`Job`] type, each job on
//! a thread of its own, every result back over one channel that the app drains once a
//! frame. So the UI never waits on a file, the clipboard, FFmpeg or a network, and only
//! draws what has arrived.

use super::gallery::{self, DecodedPictures};
use crate::device::DeviceChoice;
use crate::image_io::{self, OutputFormat};
use crate::install::{self, Destination, ImportOptions, Installed};
use crate::model::registry::Registry;
use crate::video::{VideoInfo, VideoOptions, VideoReport};
use crate::{Error, Result};
use image::RgbImage;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::SystemTime;

/// Frames for the canvas are decoded at most this large.
pub const SCRUB_MAX_SIDE: u32 = 2048;

pub enum Job {
    OpenPhoto(PathBuf),
    /// Read a video's size, rate and length.
    ProbeVideo(PathBuf),
    /// An image from the clipboard.
    Paste,
    /// The bundled example photo, written into this folder (so it has a name and a place
    /// to save beside) and opened.
    Example(PathBuf),
    /// An image egui took from the clipboard, to convert.
    PasteImage(Arc<egui::ColorImage>),
    /// Decode one frame of a video for the canvas.
    VideoFrame {
        id: u64,
        path: PathBuf,
        time_s: f64,
    },
    Save(SaveJob),
    /// Read a session sidecar and its mask.
    OpenSession(PathBuf),
    /// Add a model to the user's styles under a name no style has.
    Import {
        src: PathBuf,
        registry: Registry,
    },
    /// Mix instant styles by weight into a new one.
    Mix {
        parts: Vec<(PathBuf, f32)>,
        registry: Registry,
    },
    /// Copy a finished training's model into the user's styles.
    InstallTrained {
        model: PathBuf,
        name: String,
        registry: Registry,
    },
    ExportVideo(ExportJob),
    /// The gallery's pictures, read from the style files: one result per style, then
    /// [`JobResult::PicturesDone`]. Stops early once `cancel` is set.
    Pictures {
        generation: u64,
        styles: Vec<(PathBuf, Option<SystemTime>)>,
        cancel: Arc<AtomicBool>,
    },
}

/// The result blended at the chosen strength, written at full resolution.
pub struct SaveJob {
    pub path: PathBuf,
    pub photo: Arc<RgbImage>,
    pub styled: Arc<RgbImage>,
    /// The opened photo, which is never written over.
    pub source: Option<PathBuf>,
    pub strength: f32,
    pub preserve_colors: bool,
    /// The painted strength mask (display size), scaled to the photo when saving.
    pub mask: Option<Arc<image::GrayImage>>,
    pub jpeg_quality: u8,
    pub overwrite: bool,
    /// When `path` is taken, write `stem-2.ext`, `stem-3.ext`… instead (Export).
    pub free_name: bool,
    /// Written beside the picture, so the work can be reopened (photos with a file only).
    pub session: Option<super::session::Session>,
}

/// A whole video stylised; `frames_done` and `cancel` are shared with the video panel.
pub struct ExportJob {
    pub input: PathBuf,
    pub output: PathBuf,
    pub style: PathBuf,
    pub device: DeviceChoice,
    pub options: VideoOptions,
    pub frames_done: Arc<AtomicU64>,
    pub cancel: Arc<AtomicBool>,
}

pub enum JobResult {
    /// A decoded photo, from a file or (`path: None`) the clipboard.
    Photo {
        path: Option<PathBuf>,
        image: Result<RgbImage>,
    },
    Video {
        path: PathBuf,
        info: Result<VideoInfo>,
    },
    Frame {
        id: u64,
        image: Result<RgbImage>,
    },
    Saved(Result<PathBuf>),
    Session(Result<(super::session::Session, Option<image::GrayImage>)>),
    Imported(Result<Installed>),
    Trained(Result<PathBuf>),
    Exported {
        output: PathBuf,
        report: Result<VideoReport>,
    },
    Picture {
        generation: u64,
        pictures: DecodedPictures,
    },
    PicturesDone {
        generation: u64,
    },
}

/// The runner: starts jobs and hands back what they sent.
pub struct Jobs {
    tx: Sender<JobResult>,
    rx: Receiver<JobResult>,
    ctx: egui::Context,
}

impl Jobs {
    /// Each result wakes `ctx`, so it is drawn without waiting for input.
    pub fn new(ctx: egui::Context) -> Self {
        let (tx, rx) = channel();
        Self { tx, rx, ctx }
    }

    pub fn spawn(&self, job: Job) {
        let out = Outbox {
            tx: self.tx.clone(),
            ctx: self.ctx.clone(),
        };
        std::thread::Builder::new()
            .name(format!("atelier-{}", job.name()))
            .spawn(move || job.run(&out))
            .expect("spawn a job thread");
    }

    pub fn try_recv(&self) -> Option<JobResult> {
        self.rx.try_recv().ok()
    }
}

/// A job's way back to the app.
struct Outbox {
    tx: Sender<JobResult>,
    ctx: egui::Context,
}

impl Outbox {
    fn send(&self, r: JobResult) {
        // Nobody receives once the app has closed; nothing is left to do then.
        let _ = self.tx.send(r);
        self.wake();
    }

    /// Redraws the app, for progress shared through an atomic.
    fn wake(&self) {
        self.ctx.request_repaint();
    }
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Job::OpenPhoto(_) => "open",
            Job::ProbeVideo(_) => "probe",
            Job::Paste | Job::PasteImage(_) => "paste",
            Job::Example(_) => "example",
            Job::VideoFrame { .. } => "frame",
            Job::Save(_) => "save",
            Job::OpenSession(_) => "session",
            Job::Import { .. } => "import",
            Job::Mix { .. } => "mix",
            Job::InstallTrained { .. } => "install",
            Job::ExportVideo(_) => "video-export",
            Job::Pictures { .. } => "pictures",
        }
    }

    fn run(self, out: &Outbox) {
        let send = |r| out.send(r);
        match self {
            Job::OpenPhoto(path) => send(JobResult::Photo {
                image: image_io::load_rgb(&path),
                path: Some(path),
            }),
            Job::ProbeVideo(path) => send(JobResult::Video {
                info: crate::video::probe(&path),
                path,
            }),
            Job::Paste => send(JobResult::Photo {
                path: None,
                image: paste(),
            }),
            Job::Example(dir) => {
                let path = dir.join("chelsea.png");
                let image = write_example(&path).and_then(|()| image_io::load_rgb(&path));
                send(JobResult::Photo {
                    path: Some(path),
                    image,
                })
            }
            Job::PasteImage(image) => send(JobResult::Photo {
                path: None,
                image: Ok(rgb_of(&image)),
            }),
            Job::VideoFrame { id, path, time_s } => send(JobResult::Frame {
                id,
                image: crate::video::frame_at(&path, time_s, Some(SCRUB_MAX_SIDE)),
            }),
            Job::Save(job) => send(JobResult::Saved(save(job))),
            Job::OpenSession(path) => send(JobResult::Session(super::session::read(&path))),
            Job::Import { src, registry } => {
                let opts = ImportOptions {
                    name: None,
                    half: false,
                    destination: Destination::NewStyle,
                };
                send(JobResult::Imported(install::import_style(
                    &registry, &src, &opts,
                )))
            }
            Job::Mix { parts, registry } => send(JobResult::Imported(install::mix_instant_styles(
                &registry, &parts,
            ))),
            Job::InstallTrained {
                model,
                name,
                registry,
            } => send(JobResult::Trained(
                registry.install_as_new(&model, &name).map(|(path, _)| path),
            )),
            Job::ExportVideo(job) => {
                let output = job.output.clone();
                send(JobResult::Exported {
                    output,
                    report: export(job, out),
                })
            }
            Job::Pictures {
                generation,
                styles,
                cancel,
            } => {
                for (path, stamp) in styles {
                    // A later refresh has taken over, and loads whatever this one had not.
                    if cancel.load(Ordering::Relaxed) {
                        return;
                    }
                    let pictures = gallery::decode_pictures(path, stamp);
                    send(JobResult::Picture {
                        generation,
                        pictures,
                    });
                }
                send(JobResult::PicturesDone { generation });
            }
        }
    }
}

fn paste() -> Result<RgbImage> {
    let unreadable = |e: arboard::Error| Error::Invalid(format!("cannot read the clipboard: {e}"));
    let img = arboard::Clipboard::new()
        .map_err(unreadable)?
        .get_image()
        .map_err(|_| Error::Invalid("the clipboard holds no image".into()))?;
    let rgba =
        image::RgbaImage::from_raw(img.width as u32, img.height as u32, img.bytes.into_owned())
            .ok_or_else(|| Error::Invalid("the clipboard image is malformed".into()))?;
    Ok(image::DynamicImage::ImageRgba8(rgba).into_rgb8())
}

/// Chelsea the cat (assets/README.md: CC0), built into the binary so the example works
/// from any install.
const EXAMPLE_PHOTO: &[u8] = include_bytes!("../../assets/examples/chelsea.png");

fn write_example(path: &std::path::Path) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    crate::fsutil::write_atomic_with(path, false, |w| std::io::Write::write_all(w, EXAMPLE_PHOTO))
        .or_else(|e| if path.is_file() { Ok(()) } else { Err(e) })
}

/// The pasted pixels without their alpha (a screenshot's is opaque anyway).
fn rgb_of(image: &egui::ColorImage) -> RgbImage {
    let [w, h] = image.size;
    let raw = image
        .pixels
        .iter()
        .flat_map(|c| {
            let [r, g, b, _] = c.to_srgba_unmultiplied();
            [r, g, b]
        })
        .collect();
    RgbImage::from_raw(w as u32, h as u32, raw).expect("w × h pixels")
}

fn save(job: SaveJob) -> Result<PathBuf> {
    let saved = save_picture(&job)?;
    if let Some(s) = job.session.clone() {
        // The picture is what was asked for: a sidecar that cannot be written must not
        // turn its save into a failure.
        if let Err(e) = super::session::write(&saved, s, job.mask.as_deref(), job.overwrite) {
            eprintln!("atelier: no session saved beside {}: {e}", saved.display());
        }
    }
    Ok(saved)
}

fn save_picture(job: &SaveJob) -> Result<PathBuf> {
    let path = job.path.clone();
    let format = match OutputFormat::from_path(&path)? {
        OutputFormat::Jpeg { .. } => OutputFormat::Jpeg {
            quality: job.jpeg_quality,
        },
        f => f,
    };
    // Checked again here: the file may have been replaced by a link to the photo while
    // the overwrite question was open.
    if job
        .source
        .as_ref()
        .is_some_and(|src| crate::fsutil::same_file(src, &path))
    {
        return Err(Error::image(
            &path,
            "that is the photo you opened; choose another file name",
        ));
    }
    let out = match &job.mask {
        // The same masked blend as `atelier stylize --mask`, at full resolution.
        Some(mask) => {
            let (w, h) = job.photo.dimensions();
            crate::stylize::blend::blend_masked(
                &job.photo,
                &job.styled,
                job.strength,
                job.preserve_colors,
                &crate::stylize::mask::fit(mask, w, h),
            )
        }
        None => {
            crate::stylize::blend::blend(&job.photo, &job.styled, job.strength, job.preserve_colors)
        }
    };
    if !job.free_name {
        image_io::save_rgb(&out, &path, format, job.overwrite)?;
        return Ok(path);
    }
    // The write itself refuses a taken name (atomically), so two exports at once cannot
    // both claim one.
    for candidate in free_names(&path).take(10_000) {
        match image_io::save_rgb(&out, &candidate, format, false) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            }
            r => return r.map(|()| candidate),
        }
    }
    Err(Error::image(&path, "no free file name left in that folder"))
}

/// `path`, then `stem-2.ext`, `stem-3.ext`, …
pub fn free_names(path: &std::path::Path) -> impl Iterator<Item = PathBuf> + '_ {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    std::iter::once(path.to_path_buf())
        .chain((2..).map(move |n| path.with_file_name(format!("{stem}-{n}{ext}"))))
}

fn export(job: ExportJob, out: &Outbox) -> Result<VideoReport> {
    let device = job.device.open()?;
    let stylizer = crate::stylize::Stylizer::load(&job.style, &device)?;
    let mut on_frame = |n: u64, _| {
        job.frames_done.store(n, Ordering::Relaxed);
        out.wake();
    };
    crate::video::stylize_video(
        &stylizer,
        &job.input,
        &job.output,
        &job.options,
        &mut on_frame,
        Some(&job.cancel),
    )
}
