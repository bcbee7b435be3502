//! The "never lose an artist's work" campaign as a repeatable corpus: each case runs the
//! real `atelier` binary on hostile input and checks the same things — it ends on its
//! own (no hang), with an exit status rather than a panic (101), an abort (134) or a
//! signal; leaves no temporary files; leaves every input byte for byte as it was; and
//! says what is wrong in words a user can act on.

mod common;

use atelier::model::Variant;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The program under test; `ATELIER_BIN` runs the corpus against another build (an
/// installed one, or an older one to see each case fail without its fix).
fn binary() -> PathBuf {
    std::env::var_os("ATELIER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_atelier")))
}

/// What a run left behind.
struct Run {
    code: Option<i32>,
    text: String,
}

/// One case's folder: a tiny random style, its data folders and the inputs to guard.
struct Case {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    model: PathBuf,
}

fn case() -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let model = common::model_file(&dir, Variant::Johnson, "rnd");
    Case {
        _tmp: tmp,
        dir,
        model,
    }
}

impl Case {
    fn photo(&self, rel: &str, w: u32, h: u32) -> PathBuf {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        common::photo(w, h).save(&p).unwrap();
        p
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(binary());
        c.current_dir(&self.dir)
            .env("ATELIER_DATA_DIR", self.dir.join("data"))
            .env("ATELIER_MODELS_DIR", self.dir.join("no-bundled-models"))
            .env_remove("RUST_BACKTRACE");
        c
    }

    fn stylize(&self) -> Command {
        let mut c = self.cmd();
        c.args(["stylize", "--device", "cpu", "--style"])
            .arg(&self.model);
        c
    }

    /// Every file under the case folder with a hash of its bytes.
    fn snapshot(&self) -> BTreeMap<PathBuf, u32> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let ft = e.file_type().unwrap();
                if ft.is_dir() {
                    stack.push(e.path());
                } else if ft.is_file() {
                    let bytes = std::fs::read(e.path()).unwrap();
                    out.insert(e.path(), crc32fast::hash(&bytes));
                }
            }
        }
        out
    }

    /// Runs `c` with the campaign's checks; returns what it said and how it ended.
    fn check(&self, c: &mut Command, expect: &[&str]) -> Run {
        let before = self.snapshot();
        let run = run_with_timeout(c, Duration::from_secs(60));
        assert_no_crash(&run);
        let t = &run.text;
        for e in expect {
            assert!(t.contains(e), "expected {e:?} in:\n{t}");
        }
        assert!(
            !t.contains("stack backtrace") && !t.contains("panicked"),
            "{t}"
        );
        let after = self.snapshot();
        for (path, hash) in &before {
            assert_eq!(
                after.get(path),
                Some(hash),
                "{} changed or vanished\n{t}",
                path.display()
            );
        }
        assert_no_temp_files(&self.dir);
        run
    }
}

fn assert_no_crash(run: &Run) {
    match run.code {
        None => panic!("killed by a signal:\n{}", run.text),
        Some(101) => panic!("panicked:\n{}", run.text),
        Some(134) => panic!("aborted:\n{}", run.text),
        Some(_) => {}
    }
}

fn assert_no_temp_files(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".atelier-"),
                "left behind: {}",
                e.path().display()
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// Runs a command; a run past `limit` is killed and the test fails as a hang.
fn run_with_timeout(c: &mut Command, limit: Duration) -> Run {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        text: format!("{}{}", out.join().unwrap(), err.join().unwrap()),
    }
}

fn failed(run: &Run) {
    assert!(
        matches!(run.code, Some(c) if c != 0),
        "should have failed:\n{}",
        run.text
    );
}

#[test]
fn an_output_that_is_a_later_input_is_refused_even_with_overwrite() {
    let k = case();
    let a = k.photo("a.png", 24, 16);
    let b = k.photo("a_rnd.png", 24, 16);
    let r = k.check(
        k.stylize().arg(&a).arg(&b).arg("--overwrite"),
        &["replace the input", "nothing was written"],
    );
    failed(&r);
    // -o naming the input itself, with --overwrite.
    let r = k.check(
        k.stylize().arg(&a).arg("-o").arg(&a).arg("--overwrite"),
        &["replace the input"],
    );
    failed(&r);
    // The same photo through a hard link.
    let link = k.dir.join("link.png");
    std::fs::hard_link(&a, &link).unwrap();
    let r = k.check(
        k.stylize().arg(&a).arg("-o").arg(&link).arg("--overwrite"),
        &["replace the input"],
    );
    failed(&r);
}

#[test]
fn two_inputs_with_one_output_name_are_refused() {
    let k = case();
    let a = k.photo("x/a.png", 24, 16);
    let b = k.photo("y/a.png", 20, 12);
    let r = k.check(
        k.stylize()
            .arg(&a)
            .arg(&b)
            .arg("--out-dir")
            .arg("out")
            .arg("--overwrite"),
        &["would both be written", "nothing was written"],
    );
    failed(&r);
    assert!(!k.dir.join("out/a_rnd.png").exists());
}

#[test]
fn import_never_replaces_its_own_source() {
    let k = case();
    let r = k.check(
        k.cmd()
            .arg("import")
            .arg(&k.model)
            .arg("-o")
            .arg(&k.model)
            .arg("--overwrite"),
        &["replace the checkpoint being imported"],
    );
    failed(&r);
}

#[test]
fn a_tensorflow_checkpoint_is_refused_with_the_way_forward() {
    let k = case();
    // fast-style-transfer publishes its styles as TensorFlow `.ckpt` files, which are not
    // torch.save zips: they must not be unpickled as one.
    let ckpt = k.dir.join("udnie.ckpt");
    std::fs::write(&ckpt, b"\x00\x00\x00\x00 a tensorflow checkpoint").unwrap();
    let r = k.check(
        k.cmd().arg("import").arg(&ckpt),
        &["udnie.ckpt", "TensorFlow checkpoint", "manifest.json"],
    );
    failed(&r);
    assert!(!k.dir.join("data/styles").exists());
}

#[cfg(unix)]
#[test]
fn a_file_name_that_is_not_utf8_is_processed_with_the_rest_of_the_batch() {
    use std::os::unix::ffi::OsStringExt;
    let k = case();
    let good = k.photo("good.png", 24, 16);
    let odd = k.dir.join(OsString::from_vec(b"caf\xe9.png".to_vec()));
    common::photo(20, 12).save(&odd).unwrap();
    let r = k.check(k.stylize().arg(&odd).arg(&good).arg("--json"), &[]);
    assert_eq!(r.code, Some(0), "{}", r.text);
    assert!(k.dir.join("good_rnd.png").is_file());
    // The result keeps the photo's own bytes in its name.
    assert!(k
        .dir
        .join(OsString::from_vec(b"caf\xe9_rnd.png".to_vec()))
        .is_file());
    let lines: Vec<serde_json::Value> = r
        .text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.text);
    assert!(lines.iter().all(|v| v["ok"] == true), "{}", r.text);
}

/// A PNG header claiming `w`×`h` with almost no pixel data: decoding must allocate the
/// whole image before it finds out.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = atelier::image_io::encode_png(&common::photo(8, 8)).unwrap();
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[cfg(unix)]
#[test]
fn running_out_of_memory_is_an_error_not_an_abort() {
    let k = case();
    let big = k.dir.join("big.png");
    // 16000² RGB is 768 MB: within the pixel limit, beyond the memory allowed below.
    std::fs::write(&big, png_claiming(16_000, 16_000)).unwrap();
    let small = k.photo("small.png", 24, 16);
    // The limit applies to the shell's child only; `exec` hands it to atelier.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("ulimit -v 500000 && exec \"$0\" \"$@\"")
        .arg(binary())
        .args(["stylize", "--device", "cpu", "--style"])
        .arg(&k.model)
        .arg(&big)
        .arg(&small)
        .current_dir(&k.dir)
        .env("ATELIER_DATA_DIR", k.dir.join("data"))
        .env("ATELIER_MODELS_DIR", k.dir.join("none"))
        .env_remove("RUST_BACKTRACE");
    let r = k.check(&mut sh, &["big.png", "not enough memory"]);
    assert_eq!(r.code, Some(1), "{}", r.text);
    // The rest of the batch still ran.
    assert!(k.dir.join("small_rnd.png").is_file(), "{}", r.text);
}

#[cfg(unix)]
fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_instead_of_read_forever() {
    let k = case();
    let fifo = k.dir.join("pipe.png");
    mkfifo(&fifo);
    let good = k.photo("good.png", 24, 16);
    let r = k.check(
        k.stylize().arg(&fifo).arg(&good),
        &["pipe.png", "not a regular file"],
    );
    assert_eq!(r.code, Some(1), "{}", r.text);
    assert!(k.dir.join("good_rnd.png").is_file());

    // As a style, and as a variable file named in a fast-style-transfer manifest.
    let r = k.check(
        k.cmd().args(["stylize", "--style"]).arg(&fifo).arg(&good),
        &["pipe"],
    );
    failed(&r);
    let fst = k.dir.join("fst");
    std::fs::create_dir(&fst).unwrap();
    let mut manifest = serde_json::Map::new();
    for i in 0..48 {
        let name = if i == 0 {
            "Variable".to_string()
        } else {
            format!("Variable_{i}")
        };
        manifest.insert(
            name.clone(),
            serde_json::json!({"filename": name, "shape": [1]}),
        );
    }
    std::fs::write(
        fst.join("manifest.json"),
        serde_json::Value::Object(manifest).to_string(),
    )
    .unwrap();
    mkfifo(&fst.join("Variable"));
    let r = k.check(
        k.cmd().arg("import").arg(&fst),
        &["Variable", "not a regular file"],
    );
    failed(&r);
}

#[cfg(unix)]
#[test]
fn sigterm_and_sighup_stop_cleanly_and_leave_no_temporary_files() {
    for signal in [libc::SIGTERM, libc::SIGHUP] {
        let k = case();
        let photos: Vec<PathBuf> = (0..40)
            .map(|i| k.photo(&format!("p{i}.png"), 160, 120))
            .collect();
        let mut c = k.stylize();
        c.args(&photos)
            .arg("--out-dir")
            .arg("out")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Wait until it is working on the batch, then signal it.
        let out = k.dir.join("out");
        let start = Instant::now();
        while std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no output appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(130),
            "signal {signal}: {status:?}\n{err}"
        );
        assert!(err.contains("interrupted"), "{err}");
        assert_no_temp_files(&k.dir);
        // Every result written is complete.
        for e in std::fs::read_dir(&out).unwrap().flatten() {
            image::open(e.path()).unwrap();
        }
    }
}

#[test]
fn stale_temporary_files_from_a_killed_run_are_swept() {
    let k = case();
    let a = k.photo("a.png", 24, 16);
    let stale = k.dir.join(".atelier-killed.part");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let f = std::fs::File::options().write(true).open(&stale).unwrap();
    f.set_modified(std::time::SystemTime::now() - 2 * atelier::fsutil::STALE_AFTER)
        .unwrap();
    drop(f);
    let fresh = k.dir.join(".atelier-running.part");
    std::fs::write(&fresh, b"x").unwrap();
    let r = run_with_timeout(k.stylize().arg(&a), Duration::from_secs(60));
    assert_eq!(r.code, Some(0), "{}", r.text);
    assert!(!stale.exists(), "a stale temporary file was kept");
    assert!(fresh.exists(), "a live run's temporary file was removed");
}

#[test]
fn tiny_tiles_are_refused_with_the_minimum() {
    let k = case();
    let a = k.photo("a.png", 24, 16);
    for n in ["1", "8", "127"] {
        let r = k.check(k.stylize().arg(&a).args(["--tile", n]), &["at least 128"]);
        failed(&r);
    }
    let r = k.check(k.stylize().arg(&a).args(["--tile", "128"]), &[]);
    assert_eq!(r.code, Some(0), "{}", r.text);
}

#[test]
fn checkpoints_given_as_a_style_point_to_import() {
    let k = case();
    let a = k.photo("a.png", 24, 16);
    let pth = k.dir.join("wave.pth");
    std::fs::write(&pth, b"PK\x03\x04 a torch.save zip would follow").unwrap();
    let r = k.check(
        k.cmd().args(["stylize", "--style"]).arg(&pth).arg(&a),
        &["PyTorch checkpoint", "atelier import"],
    );
    failed(&r);
    let tf = k.dir.join("udnie");
    std::fs::create_dir(&tf).unwrap();
    std::fs::write(tf.join("manifest.json"), b"{}").unwrap();
    let r = k.check(
        k.cmd().args(["stylize", "--style"]).arg(&tf).arg(&a),
        &["fast-style-transfer", "atelier import"],
    );
    failed(&r);
}

#[test]
fn a_truncated_jpeg_is_refused_not_filled_with_grey() {
    let k = case();
    let mut jpeg = Vec::new();
    common::photo(64, 64)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut jpeg, 90,
        ))
        .unwrap();
    let cut = k.dir.join("cut.jpg");
    std::fs::write(&cut, &jpeg[..jpeg.len() * 3 / 4]).unwrap();
    let whole = k.dir.join("whole.jpg");
    std::fs::write(&whole, &jpeg).unwrap();
    let r = k.check(k.stylize().arg(&cut).arg(&whole), &["cut.jpg", "truncated"]);
    assert_eq!(r.code, Some(1), "{}", r.text);
    assert!(!k.dir.join("cut_rnd.png").exists());
    assert!(k.dir.join("whole_rnd.png").is_file());
}

#[test]
fn several_styles_with_one_name_are_flagged_and_not_guessed() {
    let k = case();
    let styles = k.dir.join("data/styles");
    std::fs::create_dir_all(&styles).unwrap();
    for file in ["one", "two", "three"] {
        let mut m = atelier::model::random_model(Variant::Johnson, "Same").unwrap();
        m.meta.name = "Same".into();
        m.save(&styles.join(format!("{file}.safetensors")), false, true)
            .unwrap();
    }
    let r = k.check(
        k.cmd().arg("models"),
        &["warning: 3 styles are named 'Same'"],
    );
    assert_eq!(r.code, Some(0), "{}", r.text);
    let a = k.photo("a.png", 24, 16);
    let r = k.check(
        k.cmd().args(["stylize", "--style", "same"]).arg(&a),
        &[
            "3 styles are named 'same'",
            "one.safetensors",
            "two.safetensors",
            "three.safetensors",
        ],
    );
    failed(&r);
}

/// A zip archive (stored, no compression) holding `data.pkl`: enough for candle's
/// PyTorch reader to get as far as unpickling, where it fails on junk.
fn torch_zip_with_junk_pickle() -> Vec<u8> {
    let name = b"archive/data.pkl";
    let data = b"\x80\x02junkjunk";
    let crc = crc32fast::hash(data);
    let mut z = Vec::new();
    let le16 = |v: u16| v.to_le_bytes();
    let le32 = |v: u32| v.to_le_bytes();
    z.extend(le32(0x0403_4b50));
    z.extend(le16(20));
    z.extend(le16(0));
    z.extend(le16(0));
    z.extend(le32(0));
    z.extend(le32(crc));
    z.extend(le32(data.len() as u32));
    z.extend(le32(data.len() as u32));
    z.extend(le16(name.len() as u16));
    z.extend(le16(0));
    z.extend(name);
    z.extend(data);
    let central = z.len() as u32;
    z.extend(le32(0x0201_4b50));
    z.extend(le16(20));
    z.extend(le16(20));
    z.extend(le16(0));
    z.extend(le16(0));
    z.extend(le32(0));
    z.extend(le32(crc));
    z.extend(le32(data.len() as u32));
    z.extend(le32(data.len() as u32));
    z.extend(le16(name.len() as u16));
    z.extend([0; 12]);
    z.extend(le32(0));
    z.extend(name);
    let central_len = z.len() as u32 - central;
    z.extend(le32(0x0605_4b50));
    z.extend([0; 4]);
    z.extend(le16(1));
    z.extend(le16(1));
    z.extend(le32(central_len));
    z.extend(le32(central));
    z.extend(le16(0));
    z
}

#[test]
fn no_backtrace_reaches_a_message_with_rust_backtrace_set() {
    let k = case();
    let pth = k.dir.join("junk.pth");
    std::fs::write(&pth, torch_zip_with_junk_pickle()).unwrap();
    let r = k.check(
        k.cmd().env("RUST_BACKTRACE", "1").arg("import").arg(&pth),
        &["junk.pth", "PyTorch"],
    );
    failed(&r);
    assert!(
        !r.text.contains("candle_core::") && !r.text.contains("   0: "),
        "{}",
        r.text
    );
}

fn have_ffmpeg() -> bool {
    Command::new("ffmpeg").arg("-version").output().is_ok()
}

#[test]
#[ignore = "needs ffmpeg"]
fn video_into_a_missing_folder_creates_it() {
    assert!(have_ffmpeg());
    let k = case();
    let clip = common::video_clip(&k.dir);
    let r = k.check(
        k.cmd()
            .args(["video", "--device", "cpu", "--max-side", "32", "--style"])
            .arg(&k.model)
            .arg(&clip)
            .arg("-o")
            .arg("new/folder/out.mp4"),
        &[],
    );
    assert_eq!(r.code, Some(0), "{}", r.text);
    assert!(k.dir.join("new/folder/out.mp4").is_file());
}

#[cfg(unix)]
#[test]
#[ignore = "needs ffmpeg"]
fn video_killed_with_sigkill_leaves_no_temporary_file() {
    assert!(have_ffmpeg());
    let k = case();
    let clip = common::video_clip_lasting(&k.dir, 120.0);
    let mut child = k
        .cmd()
        .args(["video", "--device", "cpu", "--style"])
        .arg(&k.model)
        .arg(&clip)
        .arg("-o")
        .arg("out/styled.mp4")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The encoder has started once the output folder exists and a moment has passed.
    let start = Instant::now();
    while !k.dir.join("out").is_dir() {
        assert!(start.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before it could be interrupted; the clip is too short for this machine"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // ffmpeg finishes on its own once its input pipe closes.
    std::thread::sleep(Duration::from_millis(1500));
    assert_no_temp_files(&k.dir);
    assert!(!k.dir.join("out/styled.mp4").exists());
}

#[test]
#[ignore = "needs ffmpeg"]
fn a_truncated_video_gets_a_warning() {
    assert!(have_ffmpeg());
    let k = case();
    let clip = k.dir.join("clip.mkv");
    let ok = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=64x48:rate=25",
        ])
        .args(["-t", "4", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let bytes = std::fs::read(&clip).unwrap();
    std::fs::write(&clip, &bytes[..bytes.len() / 2]).unwrap();
    let r = k.check(
        k.cmd()
            .args(["video", "--device", "cpu", "--style"])
            .arg(&k.model)
            .arg(&clip)
            .arg("-o")
            .arg("out.mp4"),
        &["warning:", "truncated"],
    );
    assert_no_crash(&r);
}
