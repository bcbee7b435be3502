use atelier::fsutil;
use atelier::model::import;
use atelier::model::registry::Registry;
use atelier::stylize::{thumbnail, Stylizer};
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A pytorch/examples `.pth`/`.model` state dict, or a fast-style-transfer folder (manifest.json).
    src: PathBuf,
    /// Where to write the model. Default: your style folder, as `<name>.safetensors`.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Display name. Default: the file or folder name.
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
    let name = a.name.clone().unwrap_or_else(|| {
        a.src
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "style".into())
    });
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| Registry::from_env().user_model_path(&name));
    refuse_writing_over_source(&a.src, &out)?;
    let mut model = import::import(&a.src, &name)?;
    // Thumbnails are small; the CPU renders one in well under a second.
    let stylizer = Stylizer::new(&model, &Device::Cpu)?;
    model.thumbnail_png = Some(thumbnail::render(&stylizer)?);
    model.save(&out, a.overwrite, a.half)?;
    eprintln!(
        "imported '{}' ({} network) → {}",
        name,
        model.meta.variant,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The source is the only copy of the checkpoint: `--overwrite` means "replace an older
/// import", never "replace what is being imported" (or a file inside its folder).
fn refuse_writing_over_source(src: &Path, out: &Path) -> anyhow::Result<()> {
    let inside_folder =
        src.is_dir() && out.exists() && fsutil::resolved(out).starts_with(fsutil::resolved(src));
    if fsutil::same_file(src, out) || inside_folder {
        anyhow::bail!(
            "{}: the output would replace the checkpoint being imported; choose another -o",
            out.display()
        );
    }
    Ok(())
}
