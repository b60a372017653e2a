//! Uploads and artifacts through the object store, on both stores: S3
//! (moto, a fresh bucket per test) and `file://`.
//!
//! - files and a directory land in /tmp/uploads before the command starts,
//!   byte for byte, readable by a non-root `--user`; `--detached` too;
//! - artifacts are collected on success, failure and timeout, and
//!   `jobs artifacts` gives back the exact bytes; a missing path is noted
//!   in `jobs status` and leaves the outcome alone;
//! - the purge deletes the job's objects (the store is listed before and
//!   after), and so does deleting the app;
//! - an interactive run takes uploads and gives artifacts too;
//! - a 1 GiB file reaches the container with its SHA-256, while the peak
//!   memory of the CLI, the API and the worker each stays under 100 MB.
//!
//! Synchronisation: each CLI call runs to its end; the purge is awaited by
//! polling the store's listing (jobs_e2e::poll).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jobs_e2e::{ObjectStoreKind, TestEnv, assert_bytes_eq, wait_until};

/// How long a run with uploads may take end to end.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// A scratch directory of local files for one test, removed at the end.
struct LocalFiles(PathBuf);

impl LocalFiles {
    fn new(env: &TestEnv) -> Self {
        let dir = env.log_dir.join("local");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        LocalFiles(dir)
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> String {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }

    fn path(&self, relative: &str) -> String {
        self.0.join(relative).display().to_string()
    }
}

impl Drop for LocalFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes that are not text: every byte value, then a counter pattern.
fn binary_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

fn sha256_hex(path: &str) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success(), "sha256sum {path}");
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

fn files_and_a_directory_land_in_tmp_uploads(kind: ObjectStoreKind) {
    let mut env = TestEnv::start_with_objects(1, kind, &[], &[]);
    let local = LocalFiles::new(&env);
    let data = binary_bytes(300_000);
    let data_path = local.write("in/data.bin", &data);
    let notes_path = local.write("in/notes.txt", b"first line\nsecond line\n");
    local.write("tree/a.txt", b"alpha\n");
    local.write("tree/sub/b.txt", b"beta\n");
    std::os::unix::fs::symlink("../a.txt", local.0.join("tree/sub/link")).unwrap();
    let data_sha = sha256_hex(&data_path);

    // Read as a non-root user, as an app with `--user` runs.
    env.jobs(&["apps", "set", "demo", "--user", "65534"])
        .assert_success();
    let script = "set -e; id -u; ls /tmp/uploads; sha256sum /tmp/uploads/data.bin; \
                  cat /tmp/uploads/notes.txt; mkdir /tmp/x; \
                  tar -xzf /tmp/uploads/tree.tar.gz -C /tmp/x; cat /tmp/x/tree/a.txt \
                  /tmp/x/tree/sub/b.txt /tmp/x/tree/sub/link";
    let output = env.jobs_with_timeout(
        &[
            "run",
            "-f",
            &data_path,
            "-f",
            &notes_path,
            "-f",
            &local.path("tree"),
            "--",
            script,
        ],
        RUN_TIMEOUT,
    );
    output.assert_success();
    let expected = format!(
        "65534\ndata.bin\nnotes.txt\ntree.tar.gz\n{data_sha}  /tmp/uploads/data.bin\n\
         first line\nsecond line\nalpha\nbeta\nalpha\n"
    );
    assert_bytes_eq(&output.stdout, expected.as_bytes(), "the job's stdout");
    // Without a terminal, no progress bar: stderr is empty.
    assert!(output.stderr.is_empty(), "{output:?}");

    // The job names its uploads with their sizes and hashes.
    let job_id = env.db_last_job_id();
    let status = env.status(&job_id);
    let uploads = status["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 3, "{status}");
    assert_eq!(uploads[0]["name"], "data.bin");
    assert_eq!(uploads[0]["size"], 300_000);
    assert_eq!(uploads[0]["sha256"], data_sha.as_str());
    assert_eq!(uploads[2]["name"], "tree.tar.gz");
    let keys = env.objects.keys();
    assert_eq!(keys.len(), 3, "one object per upload: {keys:?}");

    // Detached: queued, then run later with the same files.
    env.jobs(&["apps", "set", "demo", "--user", "0"])
        .assert_success();
    let detached =
        env.run_detached(&["-f", &data_path, "--", "sha256sum", "/tmp/uploads/data.bin"]);
    env.jobs_with_timeout(&["wait", &detached], RUN_TIMEOUT)
        .assert_success();
    let logs = env.jobs(&["logs", &detached]);
    logs.assert_success();
    assert_bytes_eq(
        &logs.stdout,
        format!("{data_sha}  /tmp/uploads/data.bin\n").as_bytes(),
        "the detached job's stdout",
    );
    env.finish();
}

#[test]
fn files_and_a_directory_land_in_tmp_uploads_s3() {
    files_and_a_directory_land_in_tmp_uploads(ObjectStoreKind::S3);
}

#[test]
fn files_and_a_directory_land_in_tmp_uploads_file() {
    files_and_a_directory_land_in_tmp_uploads(ObjectStoreKind::File);
}

/// Runs a job that writes `/out/result.bin` and `/out/dir/…` then ends as
/// `end` says, and checks what `jobs artifacts` gives back.
fn artifacts_are_collected_whatever_the_end(kind: ObjectStoreKind) {
    // A short retention, so that the purge can be seen at the end.
    let mut env = TestEnv::start_with_objects(1, kind, &[("JOBS_RETENTION_DAYS", "0.00005")], &[]);
    let local = LocalFiles::new(&env);
    let payload = binary_bytes(70_000);
    let payload_path = local.write("payload.bin", &payload);
    let write_outputs = "mkdir -p /out/dir && cp /tmp/uploads/payload.bin /out/result.bin \
                         && echo nested > /out/dir/n.txt";
    for (end, code, state) in [
        ("exit 0", 0, "succeeded"),
        ("exit 3", 3, "failed"),
        ("sleep 300", 124, "timed_out"),
    ] {
        let script = format!("{write_outputs} && {end}");
        let output = env.jobs_with_timeout(
            &[
                "run",
                "--timeout",
                "3s",
                "-f",
                &payload_path,
                "--artifact",
                "/out/result.bin",
                "--artifact",
                "/out/missing.txt",
                "--artifact",
                "/out/dir",
                "--",
                &script,
            ],
            RUN_TIMEOUT,
        );
        output.assert_code(code);
        let job_id = env.db_last_job_id();
        let status = env.status(&job_id);
        assert_eq!(status["state"], state, "{status}");
        let artifacts = status["artifacts"].as_array().unwrap();
        assert_eq!(artifacts.len(), 3, "{status}");
        assert!(artifacts[0]["size"].as_i64().unwrap() > 70_000, "{status}");
        assert_eq!(
            artifacts[1]["error"], "no such file or directory",
            "{status}"
        );
        assert_eq!(artifacts[1]["size"], serde_json::Value::Null);
        assert!(artifacts[2]["error"].is_null(), "{status}");

        // The human status lists them, with the missing one noted.
        let human = env.jobs(&["status", &job_id]);
        human.assert_success();
        let text = human.stdout_text();
        assert!(
            text.contains("/out/missing.txt: not collected: no such file or directory"),
            "{text}"
        );
        assert!(
            text.contains(&format!("/out/result.bin ({} bytes)", artifacts[0]["size"])),
            "{text}"
        );

        let out = local.path(&format!("artifacts-{state}"));
        let downloaded = env.jobs(&["artifacts", &job_id, "-o", &out]);
        downloaded.assert_success();
        assert!(
            downloaded.stderr_text().contains(
                "jobs: artifact /out/missing.txt was not collected: no such file or directory"
            ),
            "{downloaded:?}"
        );
        assert_bytes_eq(
            &std::fs::read(Path::new(&out).join("result.bin")).unwrap(),
            &payload,
            "the artifact's bytes",
        );
        assert_bytes_eq(
            &std::fs::read(Path::new(&out).join("dir/n.txt")).unwrap(),
            b"nested\n",
            "the nested artifact's bytes",
        );
    }

    // The purge deletes the jobs and every object: the store empties.
    let deadline = Duration::from_secs(60);
    wait_until("the purge to delete every object", deadline, || {
        env.objects.keys().is_empty().then_some(())
    });
    assert_eq!(env.db_count_jobs(), 0);
    env.finish();
}

#[test]
fn artifacts_are_collected_whatever_the_end_s3() {
    artifacts_are_collected_whatever_the_end(ObjectStoreKind::S3);
}

#[test]
fn artifacts_are_collected_whatever_the_end_file() {
    artifacts_are_collected_whatever_the_end(ObjectStoreKind::File);
}

/// `VmHWM` (peak resident memory) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Runs `command` to its end and returns its exit code and its peak
/// resident memory, from wait4(2)'s rusage.
// The child is reaped by wait4(2) itself, which `Child::wait` cannot do
// while also giving the rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(mut command: Command, timeout: Duration) -> (i32, u64, Vec<u8>) {
    use std::process::Stdio;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("piped");
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: rusage is plain data, written by wait4 on our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(waited, pid, "wait4");
        let _ = sender.send((libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024));
    });
    let (code, rss) = receiver.recv_timeout(timeout).unwrap_or_else(|_| {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the CLI did not end within {timeout:?}");
    });
    (code, rss, reader.join().unwrap())
}

const MB: u64 = 1000 * 1000;
const RSS_LIMIT: u64 = 100 * MB;

fn a_gibibyte_streams_with_bounded_memory(kind: ObjectStoreKind) {
    let mut env = TestEnv::start_with_objects(1, kind, &[], &[]);
    let local = LocalFiles::new(&env);
    let big = local.path("big.bin");
    let made = Command::new("head")
        .args(["-c", "1073741824", "/dev/urandom"])
        .stdout(std::fs::File::create(&big).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    let sha = sha256_hex(&big);

    let started = Instant::now();
    let command = env.jobs_command(&["run", "-f", &big, "--", "sha256sum", "/tmp/uploads/big.bin"]);
    let (code, cli_rss, stdout) = run_measured(command, Duration::from_secs(600));
    let took = started.elapsed();
    assert_eq!(code, 0);
    assert_bytes_eq(
        &stdout,
        format!("{sha}  /tmp/uploads/big.bin\n").as_bytes(),
        "sha256sum in the container",
    );
    let (api_pid, worker_pid) = env.server_pids();
    let (api_rss, worker_rss) = (peak_rss(api_pid), peak_rss(worker_pid));
    eprintln!(
        "1 GiB upload ({kind:?}): {took:?} end to end; peak RSS: cli {} MB, api {} MB, worker {} MB",
        cli_rss / MB,
        api_rss / MB,
        worker_rss / MB
    );
    for (what, rss) in [("CLI", cli_rss), ("API", api_rss), ("worker", worker_rss)] {
        assert!(
            rss < RSS_LIMIT,
            "the {what} peaked at {rss} bytes of memory"
        );
    }
    env.finish();
}

#[test]
fn a_gibibyte_streams_with_bounded_memory_s3() {
    a_gibibyte_streams_with_bounded_memory(ObjectStoreKind::S3);
}

#[test]
fn a_gibibyte_streams_with_bounded_memory_file() {
    a_gibibyte_streams_with_bounded_memory(ObjectStoreKind::File);
}

/// An interactive run (`-i`, no queue) takes its uploads and gives its
/// artifacts like a queued one: the files are in place before the command
/// reads stdin, and the artifact is collected before the run is seen ended.
fn an_interactive_run_takes_uploads_and_gives_artifacts(kind: ObjectStoreKind) {
    let mut env = TestEnv::start_with_objects(1, kind, &[], &[]);
    let local = LocalFiles::new(&env);
    let data = binary_bytes(200_000);
    let data_path = local.write("in/data.bin", &data);
    let data_sha = sha256_hex(&data_path);
    let output = jobs_e2e::cli::run_bounded(
        env.jobs_command(&[
            "run",
            "-i",
            "-f",
            &data_path,
            "--artifact",
            "/out/both.bin",
            "--",
            "sh",
            "-c",
            "mkdir /out && cat /tmp/uploads/data.bin - > /out/both.bin && \
             sha256sum /tmp/uploads/data.bin && wc -c < /out/both.bin",
        ]),
        Some(b"and stdin\n"),
        RUN_TIMEOUT,
    );
    output.assert_success();
    let expected = format!("{data_sha}  /tmp/uploads/data.bin\n200010\n");
    assert_bytes_eq(&output.stdout, expected.as_bytes(), "the run's stdout");

    let job_id = env.db_last_job_id();
    let out = local.path("out");
    env.jobs(&["artifacts", &job_id, "-o", &out])
        .assert_success();
    let mut both = data.clone();
    both.extend_from_slice(b"and stdin\n");
    assert_bytes_eq(
        &std::fs::read(Path::new(&out).join("both.bin")).unwrap(),
        &both,
        "the artifact",
    );

    // Deleting the app deletes its objects at once, not at a later purge.
    assert_eq!(env.objects.keys().len(), 2, "the upload and the artifact");
    env.jobs(&["apps", "delete", "demo"]).assert_success();
    let keys = env.objects.keys();
    assert!(keys.is_empty(), "left behind: {keys:?}");
    env.finish();
}

#[test]
fn an_interactive_run_takes_uploads_and_gives_artifacts_s3() {
    an_interactive_run_takes_uploads_and_gives_artifacts(ObjectStoreKind::S3);
}

#[test]
fn an_interactive_run_takes_uploads_and_gives_artifacts_file() {
    an_interactive_run_takes_uploads_and_gives_artifacts(ObjectStoreKind::File);
}
