//! The `atelier` command line.

mod cli;

/// The networks allocate and free tensors of hundreds of MB per layer; glibc returns
/// those to the OS each time and the next layer page-faults them back in (≈ 15 % of CPU
/// inference time). mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc's `mi_option_purge_delay`: -1 keeps freed memory mapped for reuse.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // SAFETY: sets a process-wide allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
