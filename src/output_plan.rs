//! Every output of a batch is decided before anything is written, and the batch is
//! refused when one output would destroy an input or another output: writing `a.png`'s
//! result over `b.png` before `b.png` is read, or two photos called `a.png` from two
//! folders into one `--out-dir`, loses work that `--overwrite` never asked to lose.

use crate::fsutil::{file_id, FileId};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Checks `(input, output)` pairs; the error lists every conflict, not just the first.
pub fn check(pairs: &[(PathBuf, PathBuf)]) -> Result<()> {
    let inputs: HashMap<FileId, &Path> = pairs
        .iter()
        .map(|(i, _)| (file_id(i), i.as_path()))
        .collect();
    let mut problems = Vec::new();
    let mut seen_inputs: HashMap<FileId, &Path> = HashMap::new();
    let mut seen_outputs: HashMap<FileId, &Path> = HashMap::new();
    for (input, output) in pairs {
        let in_id = file_id(input);
        if let Some(first) = seen_inputs.insert(in_id.clone(), input) {
            problems.push(format!(
                "{} is given twice (also as {})",
                input.display(),
                first.display()
            ));
            continue;
        }
        let out_id = file_id(output);
        if let Some(victim) = inputs.get(&out_id) {
            problems.push(format!(
                "the result of {} would replace the input {}",
                input.display(),
                victim.display()
            ));
        }
        if let Some(first) = seen_outputs.insert(out_id, input) {
            problems.push(format!(
                "{} and {} would both be written to {}",
                first.display(),
                input.display(),
                output.display()
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "nothing was written, because {} (even --overwrite never replaces an input or a result of the same run; use --out-dir, -o or rename)",
        problems.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_over_inputs_and_collisions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["a.png", "b.png", "x/a.png"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let p = |s: &str| d.join(s);
        assert!(check(&[(p("a.png"), p("a_s.png")), (p("b.png"), p("b_s.png"))]).is_ok());
        let e = check(&[(p("a.png"), p("b.png")), (p("b.png"), p("b_s.png"))]).unwrap_err();
        assert!(e.to_string().contains("replace the input"), "{e}");
        let e = check(&[
            (p("a.png"), p("out/a_s.png")),
            (p("x/a.png"), p("out/a_s.png")),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("would both be written"), "{e}");
        let e = check(&[(p("a.png"), p("o1.png")), (p("x/../a.png"), p("o2.png"))]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
    }
}
