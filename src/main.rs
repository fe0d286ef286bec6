//! The `tron-signer` binary: the allocator, then the command line (`tron_signer::cli`).

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: under concurrent load glibc's arena locking and chunk
/// consolidation showed prominently in a profile of the signer (figures in BENCHMARKS.md,
/// "Service throughput, latency and memory").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's defaults trade memory for speed: arenas committed up front and freed pages kept
/// for a while. The signer keeps its footprint small instead, at the same signing rate
/// (measured in BENCHMARKS.md, "Service throughput, latency and memory"). The option
/// ids are those of mimalloc 3's `mi_option_e`; another major version is left at its defaults.
fn tune_allocator() {
    use libmimalloc_sys as mi;
    const ARENA_EAGER_COMMIT: mi::mi_option_t = 4;
    const PURGE_DELAY: mi::mi_option_t = 15;
    // SAFETY: mi_version takes no arguments and returns a compile-time constant.
    let version = unsafe { mi::mi_version() };
    if (30_000..40_000).contains(&version) {
        // SAFETY: mi_option_set stores an integer in mimalloc's option table; the ids are from
        // the version checked above, and both options may be changed while running.
        unsafe {
            mi::mi_option_set(ARENA_EAGER_COMMIT, 0);
            mi::mi_option_set(PURGE_DELAY, 0);
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    tron_signer::cli::main()
}
