//! The `atelier` command line.

mod cli;

/// The networks allocate and free tensors of hundreds of MB per layer; glibc returns
/// those to the OS each time and the next layer page-faults them back in (≈ 15 % of CPU
/// inference time). mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
