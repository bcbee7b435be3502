//! `atelier import-arbitrary` and `atelier style-vector`: the instant-style network's file
//! and what it sees in a painting.

use super::{open_device, parse_device};
use atelier::device::DeviceChoice;
use atelier::image_io;
use atelier::model::magenta_import;
use atelier::stylize::instant::InstantStylizer;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// Magenta's style predictor (`arbitrary_predict.onnx`).
    #[arg(long)]
    predictor: PathBuf,
    /// Magenta's style transformer (`arbitrary_transform.onnx`).
    #[arg(long)]
    transformer: PathBuf,
    /// Where to write the network file.
    #[arg(short, long)]
    output: PathBuf,
    /// Store weights as f16 (half the size).
    #[arg(long)]
    half: bool,
    /// Replace an existing file.
    #[arg(long)]
    overwrite: bool,
}

pub fn import(a: ImportArgs) -> anyhow::Result<ExitCode> {
    let params = magenta_import::params_from_onnx(&a.predictor, &a.transformer)?;
    magenta_import::save(&params, &a.output, a.overwrite, a.half)?;
    eprintln!(
        "imported the arbitrary-style network ({} tensors) → {}",
        params.len(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct VectorArgs {
    /// The painting (any size).
    painting: PathBuf,
    /// Print the vector as a JSON array (default: one value per line).
    #[arg(long)]
    json: bool,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: DeviceChoice,
}

pub fn style_vector(a: VectorArgs) -> anyhow::Result<ExitCode> {
    let device = open_device(a.device, true)?;
    let net = InstantStylizer::bundled(&device)?;
    let painting = image_io::load_rgb(&a.painting)?;
    let v = net.style_vector(&painting)?;
    if a.json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        for x in v {
            println!("{x}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
