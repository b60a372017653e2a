//! Builds the shim (`shim/shim.c`), the static helper that runs as a job
//! container's command: see `src/shim.rs`. The system C compiler links it
//! statically (`CC`, else `cc`), so it runs in any image, scratch included.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let source = "shim/shim.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("jobs-shim");
    let compiler = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let status = Command::new(&compiler)
        .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(source)
        .status()
        .unwrap_or_else(|error| panic!("running {compiler} for the shim: {error}"));
    assert!(status.success(), "{compiler} failed to build {source}");
}
