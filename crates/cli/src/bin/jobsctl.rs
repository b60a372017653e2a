//! `jobsctl`: the `jobs` CLI under a name that no shell shadows, for
//! scripts and CI. The same program as `jobs`; only the name differs.

fn main() -> std::process::ExitCode {
    jobs_cli::main()
}
