//! `aside`: see `aside --help`.

/// mimalloc: a hit allocates a few dozen small objects; glibc malloc was ~20%
/// of the hit path's instructions in bench/PROFILE.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aside_proxy::cli::main()
}
