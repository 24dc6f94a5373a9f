//! `aside`: see `aside --help`.

fn main() -> std::process::ExitCode {
    aside_proxy::cli::main()
}
