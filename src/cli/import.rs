use atelier::install::{import_style, Destination, ImportOptions};
use atelier::model::registry::Registry;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A pytorch/examples `.pth`/`.model` state dict, a fast-style-transfer folder (manifest.json),
    /// or a painting (any image), which becomes an instant style.
    src: PathBuf,
    /// Where to write the model. Default: your style folder, as `<name>.safetensors`.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Display name. Default: the file or folder name (a native style keeps its own).
    #[arg(long)]
    name: Option<String>,
    /// Store weights as f16 (half the size).
    #[arg(long)]
    half: bool,
    /// Replace an existing model file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let destination = match a.output {
        Some(path) => Destination::File {
            path,
            overwrite: a.overwrite,
        },
        None => Destination::UserFolder {
            overwrite: a.overwrite,
        },
    };
    let opts = ImportOptions {
        name: a.name,
        half: a.half,
        destination,
    };
    let done = import_style(&Registry::from_env(), &a.src, &opts)?;
    eprintln!(
        "imported '{}' ({} network) → {}",
        done.name,
        done.variant,
        done.path.display()
    );
    Ok(ExitCode::SUCCESS)
}
