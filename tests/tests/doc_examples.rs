//! The commands of the README and `docs/` reach the CLI where they are
//! meant to run.
//!
//! - A script-shaped block (```` ```sh ````, `bash`, `shell`) is what a CI
//!   step or a script runs: no shell integration is loaded there, so
//!   `jobs run` would reach the shell's job-control builtin. Each of its
//!   commands runs under `dash` with the integration off and must never
//!   draw the builtin's "No such job".
//! - A `console` block shows an interactive shell with the integration
//!   loaded: each `$ jobs …` line runs under `dash` with the integration
//!   that `jobsctl shell-init sh` prints, and must reach the CLI.
//!
//! Nothing real runs: `PATH` holds only stand-ins for `jobs` and `jobsctl`
//! that say they were reached, so every other program is "not found", and
//! `HOME` and the working directory are a scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use jobs_e2e::binaries;
use jobs_e2e::cli::run_bounded;

const REACHED: &str = "reached-the-cli";

#[derive(Debug)]
struct Example {
    place: String,
    kind: BlockKind,
    command: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Script,
    Console,
}

#[test]
fn every_jobs_example_reaches_the_cli_where_it_runs() {
    let scratch = std::env::temp_dir().join(format!(
        "jobs-e2e-doc-examples-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let stand_ins = scratch.join("bin");
    std::fs::create_dir_all(&stand_ins).unwrap();
    for name in ["jobs", "jobsctl"] {
        let path = stand_ins.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho {REACHED} >&2\n")).unwrap();
        make_executable(&path);
    }
    // The real integration, with the stand-in in the binary's place.
    let mut shell_init = Command::new(binaries::jobsctl());
    shell_init.args(["shell-init", "sh"]);
    let integration = run_bounded(shell_init, None, Duration::from_secs(30))
        .assert_success()
        .stdout_text()
        .replace(
            &sh_quoted(binaries::jobsctl().to_str().unwrap()),
            &sh_quoted(stand_ins.join("jobsctl").to_str().unwrap()),
        );
    assert!(
        integration.contains(stand_ins.join("jobsctl").to_str().unwrap()),
        "the integration calls the stand-in: {integration}"
    );

    let examples = examples();
    let mut failures = Vec::new();
    for example in &examples {
        let script = match example.kind {
            BlockKind::Script => example.command.clone(),
            BlockKind::Console => format!("{integration}\n{}\nwait", example.command),
        };
        // An example's input file (`< dump.sql`) exists, empty.
        for input in input_files(&example.command) {
            std::fs::write(scratch.join(input), "").unwrap();
        }
        let mut dash = Command::new("/bin/dash");
        dash.args(["-c", &script])
            .env_clear()
            .env("PATH", &stand_ins)
            .env("HOME", &scratch)
            .current_dir(&scratch);
        let output = run_bounded(dash, None, Duration::from_secs(30));
        let stderr = output.stderr_text();
        let builtin = stderr
            .lines()
            .any(|line| line.contains("jobs: No such job"));
        let reached = stderr.contains(REACHED);
        match example.kind {
            BlockKind::Script if builtin => failures.push(format!(
                "{}: `{}` reaches the shell's `jobs` builtin in a script: call it `jobsctl`",
                example.place, example.command
            )),
            BlockKind::Console if builtin || !reached => failures.push(format!(
                "{}: `{}` does not reach the CLI through the shell integration: {stderr}",
                example.place, example.command
            )),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let scripts = examples
        .iter()
        .filter(|e| e.kind == BlockKind::Script)
        .count();
    let consoles = examples.len() - scripts;
    assert!(
        scripts >= 3 && consoles >= 10,
        "the examples were found: {scripts} script lines, {consoles} console lines"
    );

    std::fs::remove_dir_all(&scratch).unwrap();
}

/// Every command of the README's and docs' shell blocks, and every
/// `$ jobs …` line of their console blocks.
fn examples() -> Vec<Example> {
    let root = binaries::repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);

    let mut examples = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        examples.extend(examples_in(&name, &text));
    }
    examples
}

fn examples_in(name: &str, text: &str) -> Vec<Example> {
    let mut examples = Vec::new();
    let mut block: Option<Option<BlockKind>> = None;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(match info.trim() {
                    "sh" | "bash" | "shell" => Some(BlockKind::Script),
                    "console" => Some(BlockKind::Console),
                    _ => None,
                }),
            };
            continue;
        }
        let Some(Some(kind)) = block else { continue };
        let command = match kind {
            BlockKind::Script if pending.is_empty() => trimmed,
            BlockKind::Script => line,
            BlockKind::Console => match trimmed.strip_prefix("$ ") {
                Some(command) if command.starts_with("jobs ") => command,
                _ => continue,
            },
        };
        if command.is_empty() || command.starts_with('#') {
            continue;
        }
        if pending.is_empty() {
            pending_line = index + 1;
        }
        // A backslash at the end continues the command on the next line.
        if let Some(head) = command.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(command);
        examples.push(Example {
            place: format!("{name}:{pending_line}"),
            kind,
            command: std::mem::take(&mut pending),
        });
    }
    examples
}

/// The plain file names a command reads with `<`.
fn input_files(command: &str) -> Vec<&str> {
    command
        .split('<')
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .collect()
}

fn sh_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_script_example_with_jobs_is_caught_and_one_with_jobsctl_is_not() {
    let text = "```sh\njobsctl run -- true\n```\n```console\n$ jobs run -- true\n```\n```sh\nexport A=1 \\\n  B=2\njobs run -d -- ./x.sh && echo\n```\n";
    let found = examples_in("x.md", text);
    let summary: Vec<(String, BlockKind, String)> = found
        .into_iter()
        .map(|e| (e.place, e.kind, e.command))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "x.md:2".into(),
                BlockKind::Script,
                "jobsctl run -- true".into()
            ),
            (
                "x.md:5".into(),
                BlockKind::Console,
                "jobs run -- true".into()
            ),
            (
                "x.md:8".into(),
                BlockKind::Script,
                "export A=1   B=2".into()
            ),
            (
                "x.md:10".into(),
                BlockKind::Script,
                "jobs run -d -- ./x.sh && echo".into()
            ),
        ]
    );
    // And dash does answer that last one with the builtin's refusal.
    let mut dash = Command::new("/bin/dash");
    dash.args(["-c", "jobs run -d -- ./x.sh && echo"]);
    let output = run_bounded(dash, None, Duration::from_secs(30));
    assert!(
        output.stderr_text().contains("jobs: No such job"),
        "{}",
        output.stderr_text()
    );
}
