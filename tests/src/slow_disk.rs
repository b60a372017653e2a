//! A slow disk for one process tree: `c/slow_io.c`, an LD_PRELOAD library
//! that makes every write to a regular file and every fsync wait first.
//! This machine has no device-mapper (`dm-delay`) and no I/O cgroup
//! controller, so the latency is put in front of the program's own I/O
//! calls instead of under its block device: what the program sees is the
//! same, a disk that takes that long.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The latencies of a slow disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowDisk {
    /// Before each write to a file.
    pub write: Duration,
    /// Before each fsync, fdatasync and sync_file_range.
    pub sync: Duration,
}

impl SlowDisk {
    /// The environment that gives a program this disk: `LD_PRELOAD` and
    /// the latencies.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("LD_PRELOAD".into(), library().display().to_string()),
            (
                "SLOW_IO_WRITE_US".into(),
                self.write.as_micros().to_string(),
            ),
            ("SLOW_IO_SYNC_US".into(), self.sync.as_micros().to_string()),
        ]
    }
}

/// The library, built once per test process (into the target directory,
/// where every user may read it).
fn library() -> &'static PathBuf {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let dir = crate::binaries::target_dir().join("e2e-bin");
        std::fs::create_dir_all(&dir).expect("create target/e2e-bin");
        let source = dir.join("slow_io.c");
        std::fs::write(&source, include_str!("c/slow_io.c")).expect("write slow_io.c");
        // Each test process builds its own copy and renames it in place, so
        // that none loads a half-written file.
        let built = dir.join(format!("slow_io.{}.so", std::process::id()));
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&built)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("run cc");
        assert!(status.success(), "building slow_io.so failed: {status}");
        let library = dir.join("slow_io.so");
        std::fs::rename(&built, &library).expect("put slow_io.so in place");
        library
    })
}

/// What a slow disk must not change: a job that outlives its timeout ends
/// `timed_out` (124), and an interactive run echoes 256 KiB of stdin byte
/// for byte and keeps its exit code (4). Returns their ids, with the state
/// and exit code each must end with.
pub fn a_timeout_and_an_interactive_run(
    env: &crate::TestEnv,
    deadline: Duration,
) -> Vec<(String, &'static str, Option<i32>)> {
    env.jobs_with_timeout(&["run", "--timeout", "2s", "--", "sleep", "30"], deadline)
        .assert_code(124);
    let timed_out = env.db_last_job_id();
    let stdin: Vec<u8> = (0..256 * 1024).map(|n| (n % 251) as u8).collect();
    let interactive = env.jobs_with_stdin(&["run", "-i", "--", "sh", "-c", "cat; exit 4"], &stdin);
    interactive.assert_code(4);
    crate::expect::assert_bytes_eq(&interactive.stdout, &stdin, "the interactive run's echo");
    vec![
        (timed_out, "timed_out", None),
        (env.db_last_job_id(), "failed", Some(4)),
    ]
}

/// Each job ended as expected, in its first attempt: no lease was lost.
#[track_caller]
pub fn assert_ended_in_first_attempt(
    env: &crate::TestEnv,
    expected: &[(String, &str, Option<i32>)],
) {
    for (id, state, exit_code) in expected {
        let job = env.db_job(id).expect("stored");
        assert_eq!(job.state, *state, "{id}: {job:?}");
        assert_eq!(job.attempt, 1, "{id}: no lease was lost: {job:?}");
        if exit_code.is_some() {
            assert_eq!(job.exit_code, *exit_code, "{id}: {job:?}");
        }
    }
}
