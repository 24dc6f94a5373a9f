//! `aside`: see `aside --help`.

/// mimalloc: a hit allocates a few dozen small objects; glibc malloc was ~20%
/// of the hit path's instructions in bench/PROFILE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // mimalloc asks for transparent huge pages on its arenas (madvise): every
    // touched 4 KiB then costs a 2 MiB page, which added 15-25 MiB of RSS in
    // bench/ for no measurable speed. Opt this process out before it allocates.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    aside_proxy::cli::main()
}
