//! The `atelier` command line.

mod cli;

/// The networks allocate and free tensors of hundreds of MB per layer; glibc returns
/// those to the OS each time and the next layer page-faults them back in (a large share of
/// CPU inference time: `docs/benchmarks.md`). mimalloc keeps and reuses them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc's `mi_option_purge_delay`: -1 keeps freed memory mapped for reuse.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// mimalloc's `mi_option_arena_reserve`, in KiB (default 1 GiB of address space).
const MI_OPTION_ARENA_RESERVE: libmimalloc_sys::mi_option_t = 23;

#[cfg(unix)]
fn address_space_limited() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the valid pointer it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) } == 0;
    ok && lim.rlim_cur != libc::RLIM_INFINITY
}

#[cfg(not(unix))]
fn address_space_limited() -> bool {
    false
}

fn main() -> ExitCode {
    // Under an address-space limit (`ulimit -v`) memory kept mapped for reuse is memory the
    // next pass cannot have: there the allocator returns what is freed, as by default, and
    // reserves address space in small steps instead of its default 1 GiB arenas.
    if address_space_limited() {
        // SAFETY: sets a process-wide allocator option before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_RESERVE, 32 << 10) };
    } else {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // The one place the `ATELIER_*` switches are read (the app runs under this `main` too).
    atelier::tuning::Tuning::from_env().install();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
