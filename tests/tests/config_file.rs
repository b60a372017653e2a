//! The servers' configuration files, through the real binaries: a file's
//! values under the environment and the flags, and a bad file's message.
//!
//! Which setting won is read from the API's `listening on ADDR` line: the
//! file, the environment and the flag each name another loopback address
//! (127.0.0.2, .3, .4, all on `lo`), each with port 0, so no port is raced
//! for. Synchronisation: that line is read with a deadline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jobs_e2e::{TestEnv, binaries, cli::run_bounded};

const START_DEADLINE: Duration = Duration::from_secs(30);

/// Starts `jobs-api` with `args` and `env` (and nothing inherited that
/// starts with `JOBS_`), returns its first stdout line, and stops it.
fn first_line_of_api(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(binaries::jobs_api());
    for (name, _) in std::env::vars() {
        if name.starts_with("JOBS_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("start jobs-api");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(START_DEADLINE);
    let _ = child.kill();
    let _ = child.wait();
    line.expect("jobs-api printed its listening line in time")
        .trim()
        .to_owned()
}

fn write(path: &Path, text: &str) -> String {
    std::fs::write(path, text).expect("write the configuration file");
    path.display().to_string()
}

#[test]
fn file_values_rank_under_the_environment_and_the_flags() {
    let mut env = TestEnv::start(1);
    let file = write(
        &env.log_dir.join("api.toml"),
        &format!(
            "# every setting a running API needs, from the file alone\n\
             listen = \"127.0.0.2:0\"\n\
             database_url = \"{}\"\n\
             admin_token = \"{}\"\n\
             amqp_queue = \"{}\"\n",
            env.database_url, env.admin_token, env.queue
        ),
    );

    let from_file = first_line_of_api(&["--config", &file], &[]);
    assert!(
        from_file.starts_with("listening on 127.0.0.2:"),
        "{from_file}"
    );

    let from_env_var = first_line_of_api(&[], &[("JOBS_CONFIG", &file)]);
    assert!(
        from_env_var.starts_with("listening on 127.0.0.2:"),
        "{from_env_var}"
    );

    let env_beats_file = first_line_of_api(&["--config", &file], &[("JOBS_LISTEN", "127.0.0.3:0")]);
    assert!(
        env_beats_file.starts_with("listening on 127.0.0.3:"),
        "{env_beats_file}"
    );

    let flag_beats_env = first_line_of_api(
        &["--config", &file, "--listen", "127.0.0.4:0"],
        &[("JOBS_LISTEN", "127.0.0.3:0")],
    );
    assert!(
        flag_beats_env.starts_with("listening on 127.0.0.4:"),
        "{flag_beats_env}"
    );
    env.finish();
}

#[test]
fn a_bad_file_fails_the_start_naming_the_key_and_the_file() {
    let dir = std::env::temp_dir().join(format!("jobs-config-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cases: [(&str, &str, &str); 4] = [
        (
            "unknown.toml",
            "listen = \"127.0.0.1:0\"\nlissen = \"x\"\n",
            "unknown key `lissen`; the keys are: ",
        ),
        (
            "bad-value.toml",
            "lease = \"soon\"\n",
            "key `lease`: soon is not valid (",
        ),
        (
            "bad-kind.toml",
            "slots = [1, 2]\n",
            "key `slots` must be a string, a number or a boolean",
        ),
        ("syntax.toml", "lease = \n", "TOML parse error at line 1"),
    ];
    for (name, text, expected) in cases {
        let path = write(&dir.join(name), text);
        for binary in [binaries::jobs_api(), binaries::jobs_worker()] {
            let program = binary.file_name().unwrap().to_string_lossy().into_owned();
            // The API has no `lease` or `slots`: for it those keys
            // are unknown, which is just as clear a refusal.
            let expected = match (program.as_str(), name) {
                ("jobs-api", "bad-value.toml") => "unknown key `lease`",
                ("jobs-api", "bad-kind.toml") => "unknown key `slots`",
                _ => expected,
            };
            let mut command = Command::new(&binary);
            command
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .args(["--config", &path]);
            let output = run_bounded(command, None, START_DEADLINE);
            assert_eq!(output.code(), 2, "{program} {name}: {output:?}");
            let stderr = output.stderr_text();
            let first = stderr.lines().next().unwrap_or("");
            assert!(
                first.starts_with(&format!("{program}: configuration file {path}: ")),
                "{program} {name}: {stderr}"
            );
            assert!(first.contains(expected), "{program} {name}: {stderr}");
        }
    }
    let missing = dir.join("missing.toml").display().to_string();
    let mut command = Command::new(binaries::jobs_worker());
    command.env_clear().env("JOBS_CONFIG", &missing);
    let output = run_bounded(command, None, START_DEADLINE);
    assert_eq!(output.code(), 2, "{output:?}");
    assert!(
        output.stderr_text().starts_with(&format!(
            "jobs-worker: configuration file {missing}: No such file"
        )),
        "{output:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_files_under_deploy_are_accepted() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    for (binary, file) in [
        (binaries::jobs_api(), "api.toml"),
        (binaries::jobs_worker(), "worker.toml"),
    ] {
        let path = deploy.join(file);
        let mut command = Command::new(&binary);
        // `--help` after the file's values: every key must be known and
        // every value must parse before help is printed.
        command.env_clear().arg("--config").arg(&path).arg("--help");
        let output = run_bounded(command, None, START_DEADLINE);
        assert_eq!(output.code(), 0, "{}: {output:?}", path.display());
        assert!(
            output.stdout_text().contains("--config <PATH>"),
            "{output:?}"
        );
    }
}
