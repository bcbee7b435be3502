//! `atelier video`: a short clip made here with FFmpeg (test pattern + tone) goes
//! through the real command. Needs ffmpeg/ffprobe, so these are run by `.ci/run`.

mod common;

use atelier::model::Variant;
use std::path::Path;
use std::process::Command;

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stream<'a>(v: &'a serde_json::Value, kind: &str) -> Option<&'a serde_json::Value> {
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
}

fn atelier(args: &[&str], data: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(args)
        .env("ATELIER_DATA_DIR", data)
        .output()
        .unwrap()
}

fn flicker(stderr: &str) -> f64 {
    stderr
        .rsplit("flicker (output/input frame change): ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no flicker figure in: {stderr}"))
}

#[test]
#[ignore = "needs ffmpeg"]
fn video_keeps_rate_frames_duration_and_audio_and_stability_reduces_flicker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let input = common::video_clip(dir);
    let model = common::model_file(dir, Variant::Johnson, "vid");
    let s = model.to_str().unwrap();
    let i = input.to_str().unwrap();
    let mut ratios = Vec::new();
    for (stability, name) in [("0", "plain.mp4"), ("0.95", "stable.mp4")] {
        let out = dir.join(name);
        let o = atelier(
            &[
                "video",
                i,
                "-o",
                out.to_str().unwrap(),
                "--style",
                s,
                "--device",
                "cpu",
                "--stability",
                stability,
            ],
            dir,
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        ratios.push(flicker(&stderr));
        let (a, b) = (ffprobe(&input), ffprobe(&out));
        let (va, vb) = (stream(&a, "video").unwrap(), stream(&b, "video").unwrap());
        assert_eq!(vb["nb_frames"], va["nb_frames"]);
        assert_eq!(vb["avg_frame_rate"], va["avg_frame_rate"]);
        // yuv420p needs even sizes: 99x67 becomes 98x66.
        assert_eq!(
            (vb["width"].as_u64(), vb["height"].as_u64()),
            (Some(98), Some(66))
        );
        let dur = |v: &serde_json::Value| {
            v["format"]["duration"]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        assert!(
            (dur(&a) - dur(&b)).abs() < 0.1,
            "{} vs {}",
            dur(&a),
            dur(&b)
        );
        assert!(stream(&b, "audio").is_some(), "audio track lost");
    }
    assert!(
        ratios[1] < ratios[0],
        "stability should lower flicker: {ratios:?}"
    );
    // Leftover temporary files would mean a non-atomic write.
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".atelier-video")
        })
        .collect();
    assert!(stray.is_empty());
}

#[test]
#[ignore = "needs ffmpeg"]
fn bad_videos_and_existing_outputs_give_clear_errors_and_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = common::model_file(dir, Variant::Johnson, "vid");
    let s = model.to_str().unwrap();
    let junk = dir.join("junk.mp4");
    std::fs::write(&junk, b"definitely not a video").unwrap();
    let out = dir.join("out.mp4");
    let o = atelier(
        &[
            "video",
            junk.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--style",
            s,
        ],
        dir,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("junk.mp4") && err.contains("not a readable video"),
        "{err}"
    );
    assert!(!out.exists());

    let input = common::video_clip(dir);
    std::fs::write(&out, b"keep me").unwrap();
    let o = atelier(
        &[
            "video",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--style",
            s,
            "--device",
            "cpu",
        ],
        dir,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}

/// Runs everywhere: with no FFmpeg on PATH the command says what to install.
#[test]
fn missing_ffmpeg_is_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["video", "in.mp4", "-o", "out.mp4", "--style", "x"])
        .env("PATH", tmp.path())
        .env("ATELIER_DATA_DIR", tmp.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ffprobe") && err.contains("FFmpeg"), "{err}");
}
