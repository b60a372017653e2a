//! The `jobs` binary; everything lives in the `jobs_cli` library.

fn main() -> std::process::ExitCode {
    jobs_cli::main()
}
