//! Video stylisation through the system `ffmpeg`: frames are decoded to raw RGB on a
//! pipe, stylised one by one with instance-norm statistics smoothed over time, and
//! piped into an encoder that also takes the original's audio. The result is written
//! to a temporary file beside the output and renamed into place only when complete.

use crate::nn::norm::TemporalStats;
use crate::stylize::{blend, Hooks, Stylizer};
use crate::{Error, Result};
use image::RgbImage;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

/// What ffprobe says about the first video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frame rate as ffmpeg writes it, e.g. "30000/1001".
    pub frame_rate: String,
    pub frames: Option<u64>,
    pub duration_s: Option<f64>,
    pub has_audio: bool,
}

impl VideoInfo {
    pub fn fps(&self) -> f64 {
        match self.frame_rate.split_once('/') {
            Some((n, d)) => {
                n.parse::<f64>().unwrap_or(0.0) / d.parse::<f64>().unwrap_or(1.0).max(1e-9)
            }
            None => self.frame_rate.parse().unwrap_or(0.0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct VideoOptions {
    pub strength: f32,
    pub preserve_colors: bool,
    /// Scale frames so the longer side is at most this (even sizes, for the encoder).
    pub max_side: Option<u32>,
    /// 0: per-frame statistics (flickers); up to 1: statistics smoothed over time.
    pub stability: f64,
    pub overwrite: bool,
    /// Strokes this many times larger than the network paints at the frame's size (1 =
    /// unchanged; see [`crate::stylize::stroke`]).
    pub stroke_scale: f32,
    /// Strength per pixel, as `stylize --mask` (any size; fitted to the frames).
    pub mask: Option<image::GrayImage>,
}

/// Flicker measured during a run: mean absolute difference between consecutive output
/// frames divided by that between consecutive input frames (1 = the output changes
/// exactly as much as the input; more = flicker added).
#[derive(Debug, Clone, Default)]
pub struct VideoReport {
    pub frames: u64,
    pub flicker_ratio: f64,
    pub seconds: f64,
    /// Seconds the frame loop spent waiting for decoded frames, stylising (network and the
    /// copies to and from the device), settling and blending, and waiting for the encoder.
    pub stage_seconds: [f64; 4],
    /// Problems with the input that did not stop the run (a damaged or truncated file:
    /// frames the decoder could not read, fewer frames than the file announced).
    pub warnings: Vec<String>,
}

fn tool(name: &str) -> Result<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| {
        Error::Invalid(format!(
            "`{name}` was not found on PATH; video needs FFmpeg (e.g. `apt install ffmpeg`, `brew install ffmpeg`)"
        ))
    })
}

/// Reads the first video stream's size, rate and length, and whether there is audio.
pub fn probe(input: &Path) -> Result<VideoInfo> {
    let ffprobe = tool("ffprobe")?;
    if !input.is_file() {
        return Err(Error::Invalid(format!(
            "{} does not exist",
            input.display()
        )));
    }
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(input)
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run ffprobe: {e}")))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "{} is not a readable video: {}",
            input.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Invalid(format!("unexpected ffprobe output: {e}")))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or_else(|| Error::Invalid(format!("{} has no video stream", input.display())))?;
    let num = |x: &serde_json::Value| -> Option<f64> {
        x.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| x.as_f64())
    };
    let rate = |x: &serde_json::Value| x.as_str().filter(|s| *s != "0/0").map(String::from);
    Ok(VideoInfo {
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        frame_rate: rate(&video["avg_frame_rate"])
            .or_else(|| rate(&video["r_frame_rate"]))
            .unwrap_or_else(|| "25/1".into()),
        frames: num(&video["nb_frames"]).map(|f| f as u64),
        duration_s: num(&video["duration"]).or_else(|| num(&v["format"]["duration"])),
        has_audio: streams.iter().any(|s| s["codec_type"] == "audio"),
    })
}

/// The frame at `t_s` seconds (for scrubbing in the app), scaled to at most `max_side`.
pub fn frame_at(input: &Path, t_s: f64, max_side: Option<u32>) -> Result<RgbImage> {
    let ffmpeg = tool("ffmpeg")?;
    let info = probe(input)?;
    let (w, h) = output_size(info.width, info.height, max_side);
    let out = Command::new(ffmpeg)
        .args(["-v", "error", "-nostdin", "-ss"])
        .arg(format!("{:.3}", t_s.max(0.0)))
        .arg("-i")
        .arg(input)
        .args(["-map", "0:v:0", "-frames:v", "1", "-vf"])
        .arg(format!("scale={w}:{h}:flags=bicubic"))
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run ffmpeg: {e}")))?;
    RgbImage::from_raw(w, h, out.stdout).ok_or_else(|| {
        Error::Invalid(format!(
            "no frame at {t_s:.2} s in {}: {}",
            input.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

/// Output size: fits `max_side`, both sides even (yuv420p needs it).
pub fn output_size(w: u32, h: u32, max_side: Option<u32>) -> (u32, u32) {
    let (w, h) = match max_side {
        Some(m) => crate::stylize::resample::fit_within(w, h, m.max(2)),
        None => (w, h),
    };
    ((w / 2 * 2).max(2), (h / 2 * 2).max(2))
}

/// Kills and reaps a child process when dropped, so no ffmpeg outlives a failed run.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn encoder_args(ffmpeg: &Path, out: &Path) -> Vec<String> {
    let has_x264 = Command::new(ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libx264"))
        .unwrap_or(false);
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut a: Vec<String> = if ext == "webm" {
        ["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "30"]
            .map(String::from)
            .to_vec()
    } else if has_x264 {
        ["-c:v", "libx264", "-crf", "18", "-preset", "medium"]
            .map(String::from)
            .to_vec()
    } else {
        ["-c:v", "mpeg4", "-q:v", "2"].map(String::from).to_vec()
    };
    a.extend(["-pix_fmt", "yuv420p"].map(String::from));
    a.extend(
        match ext.as_str() {
            "mkv" => ["-c:a", "copy"],
            "webm" => ["-c:a", "libopus"],
            _ => ["-c:a", "aac"],
        }
        .map(String::from),
    );
    a
}

/// Stylises `input` into `output`. `on_frame(done, total)` reports progress; `cancel`
/// stops between frames and leaves no output behind.
pub fn stylize_video(
    stylizer: &Stylizer,
    input: &Path,
    output: &Path,
    opts: &VideoOptions,
    on_frame: &mut dyn FnMut(u64, Option<u64>),
    cancel: Option<&AtomicBool>,
) -> Result<VideoReport> {
    let ffmpeg = tool("ffmpeg")?;
    let info = probe(input)?;
    if info.width == 0 || info.height == 0 {
        return Err(Error::Invalid(format!(
            "{} has no frame size",
            input.display()
        )));
    }
    if crate::fsutil::same_file(input, output) {
        return Err(Error::Invalid(
            "the output would replace the input video (even with --overwrite); choose another name"
                .into(),
        ));
    }
    if output.exists() && !opts.overwrite {
        return Err(Error::Invalid(format!(
            "{} exists (pass --overwrite to replace it)",
            output.display()
        )));
    }
    let (w, h) = output_size(info.width, info.height, opts.max_side);
    // Fitted once: every frame has the output's size.
    let mask = opts
        .mask
        .as_ref()
        .map(|m| crate::stylize::mask::fit(m, w, h));
    let frame_bytes = crate::alloc::rgb_len(w, h).ok_or_else(|| Error::OutOfMemory {
        what: format!("{w}×{h} video frames"),
        bytes: u64::MAX,
    })?;
    let started = std::time::Instant::now();

    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // As `stylize` does: a missing output folder is made, not an error.
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("{}: cannot create folder", dir.display()), e))?;
    crate::fsutil::sweep_stale(dir);
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_else(|| "mp4".into());
    // Same folder, so the final step is atomic. Unnamed where the system allows, so
    // nothing is left even if we are killed; ffmpeg writes it through /proc, and as the
    // path has no extension then, it is told the container.
    let mut tmp = crate::fsutil::PendingFile::new_in(dir, &format!(".{ext}"))
        .map_err(|e| Error::Invalid(format!("cannot write in {}: {e}", dir.display())))?;
    let muxer = muxer_for(&ext);
    if tmp.is_anonymous() && muxer.is_none() {
        // ffmpeg could not tell the container from a /proc path: use a named file.
        tmp = named_pending(dir, &ext)?;
    }
    let tmp_path = tmp.path_for_writer();

    let mut decoder = Reaped(
        Command::new(&ffmpeg)
            .args(["-v", "error", "-nostdin", "-i"])
            .arg(input)
            .args(["-map", "0:v:0", "-vf"])
            .arg(format!("scale={w}:{h}:flags=bicubic"))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Invalid(format!("cannot start ffmpeg: {e}")))?,
    );
    // What the decoder says about the input (damage, truncation) becomes a warning.
    let decoder_log = decoder.0.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = e.read_to_string(&mut s);
            s
        })
    });
    let mut enc_cmd = Command::new(&ffmpeg);
    enc_cmd
        .args([
            "-v", "error", "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        ])
        .arg("-s")
        .arg(format!("{w}x{h}"))
        .arg("-framerate")
        .arg(&info.frame_rate)
        .args(["-i", "-", "-i"])
        .arg(input)
        .args(["-map", "0:v:0", "-map", "1:a?", "-map_metadata", "1"])
        .args(encoder_args(&ffmpeg, output))
        .args(["-shortest"]);
    if let (true, Some(m)) = (tmp.is_anonymous(), muxer) {
        enc_cmd.args(["-f", m]);
    }
    enc_cmd
        .arg(&tmp_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut encoder = Reaped(
        enc_cmd
            .spawn()
            .map_err(|e| Error::Invalid(format!("cannot start ffmpeg: {e}")))?,
    );

    // Decoding and encoding run beside the network: a thread reads frames ahead and one
    // feeds the encoder, each through a short queue. Read and written inline, a 64 KiB pipe
    // would make ffmpeg and the network take turns.
    let mut reader = decoder.0.stdout.take().expect("piped stdout");
    let mut writer = encoder.0.stdin.take().expect("piped stdin");
    let (frame_tx, frame_rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(3);
    let partial_frame = std::sync::Arc::new(AtomicBool::new(false));
    let partial = partial_frame.clone();
    std::thread::spawn(move || loop {
        let item = crate::alloc::zeroed::<u8>(frame_bytes, "a video frame").and_then(|mut buf| {
            match read_full(&mut reader, &mut buf) {
                Ok(Frame::Full) => Ok(Some(buf)),
                Ok(Frame::End) => Ok(None),
                Ok(Frame::Partial) => {
                    partial.store(true, Ordering::Relaxed);
                    Ok(None)
                }
                Err(e) => Err(Error::Invalid(format!("reading decoded frames: {e}"))),
            }
        });
        let item = match item {
            Ok(Some(buf)) => Ok(buf),
            Ok(None) => break,
            Err(e) => Err(e),
        };
        let failed = item.is_err();
        if frame_tx.send(item).is_err() || failed {
            break;
        }
    });
    let (out_tx, out_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(3);
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        for frame in out_rx {
            writer.write_all(&frame)?;
        }
        Ok(())
    });
    let encoder_failed = |encoder: &mut Reaped, e: String| {
        let msg = encoder_error(encoder);
        Error::Invalid(format!("the encoder stopped: {e} {msg}"))
    };
    let mut temporal = TemporalStats::new(opts.stability);
    let (mut prev_in, mut prev_out): (Option<RgbImage>, Option<RgbImage>) = (None, None);
    let mut prev_styled: Option<RgbImage> = None;
    let (mut diff_in, mut diff_out) = (0f64, 0f64);
    let mut frames = 0u64;
    let mut stages = [0f64; 4];
    let mut mark = std::time::Instant::now();
    let mut lap = |stage: usize, stages: &mut [f64; 4]| {
        let now = std::time::Instant::now();
        stages[stage] += (now - mark).as_secs_f64();
        mark = now;
    };
    for item in frame_rx {
        lap(0, &mut stages);
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Cancelled);
        }
        let frame = RgbImage::from_raw(w, h, item?)
            .ok_or_else(|| Error::Invalid("a decoded frame has the wrong size".into()))?;
        let mut hooks = Hooks {
            cancel,
            ..Default::default()
        };
        let mut styled =
            stylizer.stylize_frame_scaled(&frame, &mut temporal, opts.stroke_scale, &mut hooks)?;
        lap(1, &mut stages);
        if let (Some(pi), Some(ps)) = (&prev_in, &prev_styled) {
            styled = settle(pi, &frame, ps, &styled, opts.stability as f32);
        }
        prev_styled = Some(styled.clone());
        let out = if let Some(m) = &mask {
            blend::blend_masked(&frame, &styled, opts.strength, opts.preserve_colors, m)
        } else if opts.strength < 1.0 || opts.preserve_colors {
            blend::blend(&frame, &styled, opts.strength, opts.preserve_colors)
        } else {
            styled
        };
        if let (Some(pi), Some(po)) = (&prev_in, &prev_out) {
            diff_in += mean_abs_diff(pi, &frame);
            diff_out += mean_abs_diff(po, &out);
        }
        lap(2, &mut stages);
        let mut raw = crate::alloc::zeroed::<u8>(frame_bytes, "a video frame")?;
        raw.copy_from_slice(out.as_raw());
        if out_tx.send(raw).is_err() {
            // The feeder stopped on a write error; it says which.
            drop(out_tx);
            let e = match feeder.join() {
                Ok(Err(e)) => e.to_string(),
                _ => "the encoder input closed".into(),
            };
            return Err(encoder_failed(&mut encoder, e));
        }
        lap(3, &mut stages);
        prev_in = Some(frame);
        prev_out = Some(out);
        frames += 1;
        on_frame(frames, info.frames);
    }
    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::Cancelled);
    }
    drop(out_tx);
    match feeder.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(encoder_failed(&mut encoder, e.to_string())),
        Err(_) => return Err(encoder_failed(&mut encoder, "feeder panicked".into())),
    }
    let status = encoder
        .0
        .wait()
        .map_err(|e| Error::Invalid(format!("ffmpeg: {e}")))?;
    if !status.success() {
        let msg = encoder_error(&mut encoder);
        return Err(Error::Invalid(format!(
            "ffmpeg could not encode the video: {msg}"
        )));
    }
    if frames == 0 {
        return Err(Error::Invalid(format!(
            "{} has no decodable frames",
            input.display()
        )));
    }
    tmp.persist(output, opts.overwrite).map_err(|e| {
        Error::Invalid(format!(
            "cannot move the result to {}: {e}",
            output.display()
        ))
    })?;
    let mut warnings = Vec::new();
    let log = decoder_log.and_then(|t| t.join().ok()).unwrap_or_default();
    if !log.trim().is_empty() {
        let first: Vec<&str> = log.lines().take(3).collect();
        warnings.push(format!(
            "{} is damaged or truncated; the decoder reported: {}",
            input.display(),
            first.join(" / ")
        ));
    }
    if let Some(expected) = expected_frames(&info) {
        // Containers round their frame counts and durations: only a clear shortfall counts.
        if frames + 2 < expected && (frames as f64) < 0.98 * expected as f64 {
            warnings.push(format!(
                "only {frames} of the {expected} frames {} announces could be decoded (truncated file?)",
                input.display()
            ));
        }
    }
    if partial_frame.load(Ordering::Relaxed) {
        warnings.push(format!(
            "{} ends inside a frame; that frame was left out",
            input.display()
        ));
    }
    Ok(VideoReport {
        warnings,
        frames,
        flicker_ratio: if diff_in > 0.0 {
            diff_out / diff_in
        } else {
            0.0
        },
        seconds: started.elapsed().as_secs_f64(),
        stage_seconds: stages,
    })
}

/// Where the input pixel barely changed since the previous frame, keep most of the
/// previous stylised pixel: the network turns sensor noise and compression wobble
/// into texture that shimmers, which smoothing the statistics alone does not stop.
/// Where the input changed (motion, cuts) the new output wins, so nothing ghosts.
pub fn settle(
    prev_in: &RgbImage,
    frame: &RgbImage,
    prev_styled: &RgbImage,
    styled: &RgbImage,
    stability: f32,
) -> RgbImage {
    use rayon::prelude::*;
    if stability <= 0.0 || prev_in.dimensions() != frame.dimensions() {
        return styled.clone();
    }
    let mut out = styled.clone();
    out.as_mut()
        .par_chunks_mut(3 * 1024)
        .zip(prev_in.as_raw().par_chunks(3 * 1024))
        .zip(frame.as_raw().par_chunks(3 * 1024))
        .zip(prev_styled.as_raw().par_chunks(3 * 1024))
        .for_each(|(((o, a), b), p)| {
            for (((o, a), b), p) in o
                .chunks_exact_mut(3)
                .zip(a.chunks_exact(3))
                .zip(b.chunks_exact(3))
                .zip(p.chunks_exact(3))
            {
                let d = (a[0].abs_diff(b[0]) as f32
                    + a[1].abs_diff(b[1]) as f32
                    + a[2].abs_diff(b[2]) as f32)
                    / 3.0;
                // Unchanged: keep `stability` of the old pixel; a change of 10 levels keeps
                // about a third of that, 20 almost none.
                let keep = stability * (-(d / 10.0).powi(2)).exp();
                for c in 0..3 {
                    o[c] = (p[c] as f32 * keep + o[c] as f32 * (1.0 - keep)).round() as u8;
                }
            }
        });
    out
}

fn encoder_error(encoder: &mut Reaped) -> String {
    let mut s = String::new();
    if let Some(mut e) = encoder.0.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s.trim().to_string()
}

enum Frame {
    Full,
    End,
    /// The stream ended inside a frame: the rest of it never came.
    Partial,
}

/// Fills `buf` completely, or says where the stream ended.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<Frame> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(Frame::End),
            Ok(0) => return Ok(Frame::Partial),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Frame::Full)
}

/// Frames the container announces: its frame count, else duration × rate.
fn expected_frames(info: &VideoInfo) -> Option<u64> {
    info.frames.or_else(|| {
        let n = info.duration_s? * info.fps();
        (n.is_finite() && n > 0.0).then(|| n.round() as u64)
    })
}

/// The ffmpeg container for an output extension, for outputs written through a path
/// that has none.
fn muxer_for(ext: &str) -> Option<&'static str> {
    match ext.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" => Some("mp4"),
        "mov" => Some("mov"),
        "mkv" => Some("matroska"),
        "webm" => Some("webm"),
        "avi" => Some("avi"),
        _ => None,
    }
}

fn named_pending(dir: &Path, ext: &str) -> Result<crate::fsutil::PendingFile> {
    let (file, path) = crate::fsutil::temp_file_in(dir, ".atelier-video-", &format!(".{ext}"))
        .map_err(|e| Error::Invalid(format!("cannot write in {}: {e}", dir.display())))?
        .into_parts();
    Ok(crate::fsutil::PendingFile::from_named(file, path, dir))
}

pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    use rayon::prelude::*;
    let sum: u64 = a
        .as_raw()
        .par_chunks(1 << 16)
        .zip(b.as_raw().par_chunks(1 << 16))
        .map(|(a, b)| {
            a.iter()
                .zip(b)
                .map(|(&x, &y)| x.abs_diff(y) as u64)
                .sum::<u64>()
        })
        .sum();
    sum as f64 / a.as_raw().len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_are_even_and_fit() {
        assert_eq!(output_size(1921, 1081, None), (1920, 1080));
        assert_eq!(output_size(3840, 2160, Some(1280)), (1280, 720));
        assert_eq!(output_size(1, 1, None), (2, 2));
        let i = VideoInfo {
            width: 2,
            height: 2,
            frame_rate: "30000/1001".into(),
            frames: None,
            duration_s: None,
            has_audio: false,
        };
        assert!((i.fps() - 29.97).abs() < 0.01);
    }
}
