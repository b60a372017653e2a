//! `jobs` in the real shells of Debian, where the name is also the
//! job-control builtin: the CLI installed by `deploy/install.sh`, the
//! integration loaded as the README says, and the README's commands typed
//! at a terminal. Job control answers as before, completions complete,
//! man pages render, and scripts reach the CLI as `jobsctl`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use jobs_e2e::cli::run_bounded;
use jobs_e2e::install::Installed;
use jobs_e2e::pty::PtyProcess;
use jobs_e2e::{DevEnv, TEST_IMAGE, binaries};

const STEP_TIMEOUT: Duration = Duration::from_secs(90);
const SHORT: Duration = Duration::from_secs(30);

/// One shell, as a person starts it at a terminal.
struct Shell {
    name: &'static str,
    args: &'static [&'static str],
    /// The variable that holds the last command's exit status.
    status: &'static str,
    /// How to call the builtin past the integration's function.
    builtin: &'static str,
}

const BASH: Shell = Shell {
    name: "bash",
    args: &["-i"],
    status: "$?",
    builtin: "builtin jobs",
};
const ZSH: Shell = Shell {
    name: "zsh",
    args: &["-i"],
    status: "$?",
    builtin: "builtin jobs",
};
const FISH: Shell = Shell {
    name: "fish",
    args: &["-i"],
    status: "$status",
    builtin: "builtin jobs",
};
/// dash reads the file named by `$ENV` when interactive.
const DASH: Shell = Shell {
    name: "dash",
    args: &["-i"],
    status: "$?",
    builtin: "command jobs",
};

/// The README's first steps, typed as they are there, with the exit code
/// and output line it promises. Only the image is this machine's.
const README_STEPS: &[(&str, i32, Option<&str>)] = &[
    ("jobs apps create demo --image busybox:latest", 0, None),
    ("jobs run -- sh -c 'echo hi; exit 4'", 4, Some("hi")),
];

#[test]
fn the_readme_works_as_typed_in_bash() {
    the_readme_works_as_typed_in(&BASH);
}

#[test]
fn the_readme_works_as_typed_in_zsh() {
    the_readme_works_as_typed_in(&ZSH);
}

#[test]
fn the_readme_works_as_typed_in_fish() {
    the_readme_works_as_typed_in(&FISH);
}

#[test]
fn the_readme_works_as_typed_in_dash() {
    the_readme_works_as_typed_in(&DASH);
}

fn the_readme_works_as_typed_in(shell: &'static Shell) {
    let readme = readme();
    for (line, _, _) in README_STEPS {
        assert!(
            readme.contains(&format!("$ {line}")),
            "the README no longer shows `{line}`"
        );
    }
    let mut dev = DevEnv::in_default_data_dir();
    dev.start(&[]);
    let installed = Installed::into(&dev.root.join("prefix"), &[]);
    load_integration_as_the_readme_says(&dev, &installed, shell);

    let mut command = dev.command(Path::new(shell.name));
    command
        .args(shell.args)
        .env("PATH", installed.path_env())
        .env("TERM", "xterm")
        .env("ENV", dev.home().join(".shinit"));
    let mut terminal = TypedShell {
        pty: PtyProcess::spawn(command, 24, 80),
        shell,
        steps: 0,
    };

    // A hint names the command that works where the user is: `jobs`,
    // through the integration.
    let output = terminal.run("jobs list");
    assert_eq!(output.code, 2, "{output:?}");
    assert!(
        output
            .lines
            .iter()
            .any(|line| line
                .ends_with("(jobs dev has no app yet: jobs apps create NAME --image IMAGE)")),
        "{output:?}"
    );
    for (line, code, output_line) in README_STEPS {
        let typed = line.replace("busybox:latest", TEST_IMAGE);
        let output = terminal.run(&typed);
        assert_eq!(
            output.code, *code,
            "`{typed}` in {}: {output:?}",
            shell.name
        );
        if let Some(expected) = output_line {
            assert!(
                output.lines.iter().any(|line| line == expected),
                "`{typed}` in {} printed no line {expected:?}: {output:?}",
                shell.name
            );
        }
    }
    let output = terminal.run("jobs --version");
    assert_eq!(output.code, 0, "{output:?}");
    assert!(output.lines.iter().any(|line| line.starts_with("jobs ")));

    job_control_answers_as_the_builtin_does(&mut terminal, &dev);

    terminal.pty.type_bytes(b"exit 0\n");
    let (status, text) = terminal.pty.wait(SHORT);
    assert!(
        status.success(),
        "{} exited {status}: {}",
        shell.name,
        String::from_utf8_lossy(&text)
    );
    dev.finish();
}

/// `jobs`, `jobs -l` and `jobs %1` print what the builtin prints, for a
/// background `sleep`.
fn job_control_answers_as_the_builtin_does(terminal: &mut TypedShell, dev: &DevEnv) {
    let shell = terminal.shell;
    terminal.run("sleep 300 &");
    for (index, args) in ["", " -l", " %1"].iter().enumerate() {
        let through_function = dev.home().join(format!("function-{index}.txt"));
        let builtin = dev.home().join(format!("builtin-{index}.txt"));
        let output = terminal.run(&format!(
            "jobs{args} > {} 2>&1; {}{args} > {} 2>&1",
            through_function.display(),
            shell.builtin,
            builtin.display()
        ));
        assert_eq!(output.code, 0, "`jobs{args}` in {}: {output:?}", shell.name);
        let got = std::fs::read_to_string(&through_function).unwrap();
        let expected = std::fs::read_to_string(&builtin).unwrap();
        assert!(
            expected.contains("sleep") || expected.contains("Running"),
            "the builtin `jobs{args}` of {} lists the sleep: {expected:?}",
            shell.name
        );
        assert_eq!(got, expected, "`jobs{args}` in {}", shell.name);
    }
    terminal.run("kill %1; wait");
}

/// Runs the README's line that loads the integration for `shell` (dash:
/// the `sh` one), as a user would paste it.
fn load_integration_as_the_readme_says(dev: &DevEnv, installed: &Installed, shell: &Shell) {
    let integration = if shell.name == "dash" {
        "sh"
    } else {
        shell.name
    };
    let needle = format!("env jobs shell-init {integration})");
    let fish_needle = format!("env jobs shell-init {integration} |");
    let readme = readme();
    let lines: Vec<&str> = readme
        .lines()
        .filter(|line| line.contains(&needle) || line.contains(&fish_needle))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "the README has one line loading the {integration} integration: {lines:?}"
    );
    if shell.name == "zsh" {
        // The README's line goes after compinit, as it says.
        std::fs::write(
            dev.home().join(".zshrc"),
            "autoload -Uz compinit && compinit -u\n",
        )
        .unwrap();
    }
    let mut command = dev.command(Path::new("sh"));
    command
        .arg("-c")
        .arg(lines[0])
        .env("PATH", installed.path_env());
    run_bounded(command, None, SHORT).assert_success();
}

/// A shell at a terminal, typed into one command at a time.
struct TypedShell {
    pty: PtyProcess,
    shell: &'static Shell,
    steps: usize,
}

#[derive(Debug)]
struct StepOutput {
    code: i32,
    /// The lines printed after the typed line, escape sequences removed.
    lines: Vec<String>,
}

impl TypedShell {
    /// Types `line` followed by a marker that prints its exit status, and
    /// waits for the marker.
    fn run(&mut self, line: &str) -> StepOutput {
        self.steps += 1;
        let step = self.steps;
        let before = self.pty.output_so_far().len();
        // `&` ends a command as `;` does; `&;` is a syntax error in most.
        let separator = if line.ends_with('&') { " " } else { "; " };
        let typed = format!(
            "{line}{separator}echo \"[step-{step} rc={}]\"\n",
            self.shell.status
        );
        self.pty.type_bytes(typed.as_bytes());
        let marker = format!("[step-{step} rc=");
        let output =
            self.pty
                .wait_for_output(&format!("the end of `{line}`"), STEP_TIMEOUT, |output| {
                    let text = plain_text(&output[before.min(output.len())..]);
                    marker_code(&text, &marker).is_some()
                });
        let text = plain_text(&output[before..]);
        let code = marker_code(&text, &marker).expect("the marker is there");
        let lines = text
            .split(['\n', '\r'])
            .map(str::trim_end)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect();
        StepOutput { code, lines }
    }
}

/// The status printed after `marker` (`[step-N rc=`), once the digits and
/// the closing bracket are there. The typed line's own echo shows the
/// variable's name, not digits.
fn marker_code(text: &str, marker: &str) -> Option<i32> {
    text.match_indices(marker).find_map(|(at, _)| {
        let rest = &text[at + marker.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let closed = rest[digits.len()..].starts_with(']');
        (!digits.is_empty() && closed).then(|| digits.parse().unwrap())
    })
}

/// Terminal output without escape sequences (CSI, OSC, charset choices)
/// and without backspace-erased characters, as a person reads it.
fn plain_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                Some('(' | ')') => {
                    chars.next();
                }
                _ => {}
            },
            '\u{8}' => {
                out.pop();
            }
            '\u{7}' => {}
            c => out.push(c),
        }
    }
    out
}

fn readme() -> String {
    std::fs::read_to_string(binaries::repo_root().join("README.md")).unwrap()
}

/// A script calls `jobsctl`: in `sh -c`, the job's exit code comes back;
/// `jobs` there is the builtin, which is why the second name exists.
#[test]
fn a_script_reaches_the_cli_as_jobsctl_and_gets_the_job_s_exit_code() {
    let mut dev = DevEnv::in_default_data_dir();
    dev.start(&[]);
    dev.create_app("demo");
    let installed = Installed::into(&dev.root.join("prefix"), &[]);
    let script = |text: &str| {
        let mut command = dev.command(Path::new("sh"));
        command
            .arg("-c")
            .arg(text)
            .env("PATH", installed.path_env());
        run_bounded(command, None, STEP_TIMEOUT)
    };
    script(r#"jobsctl run -- sh -c "exit 3""#).assert_code(3);
    let output = script(r#"jobsctl run -- sh -c "echo out; echo err >&2; exit 0""#);
    output.assert_code(0).assert_stdout(b"out\n");
    assert_eq!(output.stderr_text(), "err\n");
    // What the issue was: the builtin answers, the CLI is never reached.
    script(r#"jobs run -- sh -c "exit 3""#)
        .assert_code(2)
        .assert_stderr_contains("No such job");
    // The hints of a script name the command a script can use.
    let id = dev.run_detached(&["--", "sh", "-c", "echo started; sleep 60"]);
    let mut follow = dev.command(&installed.bin_dir().join("jobsctl"));
    follow.args(["follow", &id]);
    let mut follow = jobs_e2e::BackgroundCli::spawn(follow);
    follow.wait_for_stdout("the job's first line", STEP_TIMEOUT, |out| {
        out == b"started\n"
    });
    follow.signal(libc::SIGTERM);
    let detached = follow.wait(SHORT);
    detached
        .assert_code(143)
        .assert_stderr_contains(&format!("follow it: jobsctl follow {id}"));
    dev.jobs(&["cancel", &id]).assert_success();
    dev.finish();
}

#[test]
fn completions_complete_subcommands_and_flags_in_bash() {
    let root = scratch_dir("bash-completions");
    let installed = Installed::into(&root, &[]);
    let script = r#"
        eval "$(env jobs shell-init bash)"
        complete -p jobs
        complete -p jobsctl
        # As bash completes: the function `complete -p` names, called with
        # the command, the word under the cursor and the one before it.
        complete_words() {
            local function
            function=$(complete -p "$1" | sed -E 's/.* -F ([^ ]+) .*/\1/')
            COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            "$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            echo "$* => ${COMPREPLY[*]}"
        }
        complete_words jobs fol
        complete_words jobs run --on-int
        complete_words jobs run --on-interrupt ''
        complete_words jobs apps cr
        complete_words jobsctl st
    "#;
    let mut command = Command::new("bash");
    command
        .args(["--norc", "--noprofile", "-c", script])
        .env("PATH", installed.path_env());
    let output = run_bounded(command, None, SHORT);
    output.assert_success();
    let text = output.stdout_text();
    for expected in [
        "complete -o bashdefault -o default -o nosort -F _jobs jobs\n",
        "-F _jobsctl jobsctl\n",
        "jobs fol => follow\n",
        "jobs run --on-int => --on-interrupt\n",
        "jobs run --on-interrupt  => detach cancel\n",
        "jobs apps cr => create\n",
        "jobsctl st => status stop\n",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn completions_complete_subcommands_and_flags_in_fish() {
    let root = scratch_dir("fish-completions");
    let installed = Installed::into(&root, &[]);
    let script = "env jobs shell-init fish | source
        complete -C 'jobs fol'
        complete -C 'jobs run --on-inter'
        complete -C 'jobs run --on-interrupt '
        complete -C 'jobsctl apps cr'";
    let mut command = Command::new("fish");
    command
        .args(["--no-config", "-c", script])
        .env("HOME", &root)
        .env("PATH", installed.path_env());
    let output = run_bounded(command, None, SHORT);
    output.assert_success();
    let text = output.stdout_text();
    for expected in [
        "follow\t",
        "--on-interrupt\t",
        "detach\t",
        "cancel\t",
        "create\t",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn the_man_pages_are_installed_and_man_renders_them() {
    let root = scratch_dir("man");
    let etc = root.join("etc");
    let installed = Installed::into(
        &root,
        &["--system-integration", "--etc", etc.to_str().unwrap()],
    );
    // One program under two names.
    for name in ["jobs", "jobsctl"] {
        let mut version = Command::new(installed.bin_dir().join(name));
        version.arg("--version");
        run_bounded(version, None, SHORT)
            .assert_success()
            .assert_stdout(format!("jobs {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
    }
    // Into a pipe, man prints plain text, without a pager.
    let mut man = Command::new("man");
    man.arg("jobs-run")
        .env("MANPATH", installed.man_dir())
        .env("MANWIDTH", "100")
        .env_remove("MANPAGER")
        .env_remove("PAGER")
        .env_remove("MAN_KEEP_FORMATTING");
    let output = run_bounded(man, None, SHORT);
    output.assert_success();
    let page = output.stdout_text();
    for expected in ["jobs-run", "SYNOPSIS", "--on-interrupt", "--detached"] {
        assert!(
            page.contains(expected),
            "man jobs-run shows no {expected}:\n{page}"
        );
    }

    // The system-wide integration: every interactive bash, and fish.
    let mut bash = Command::new("bash");
    bash.args(["--norc", "--noprofile", "-i", "-c"])
        .arg(format!(
            ". {}/profile.d/jobs.sh; type -t jobs; jobs --version",
            etc.display()
        ))
        .env("PATH", installed.path_env());
    run_bounded(bash, None, SHORT)
        .assert_success()
        .assert_stdout(format!("function\njobs {}\n", env!("CARGO_PKG_VERSION")).as_bytes());
    let mut fish = Command::new("fish");
    fish.args(["--no-config", "-i", "-c"])
        .arg(format!(
            "source {}/fish/conf.d/jobs.fish; functions -q jobs; and jobs --version",
            etc.display()
        ))
        .env("HOME", &root)
        .env("PATH", installed.path_env());
    let output = run_bounded(fish, None, SHORT);
    output.assert_success();
    assert!(
        output
            .stdout_text()
            .ends_with(&format!("jobs {}\n", env!("CARGO_PKG_VERSION"))),
        "{:?}",
        output.stdout_text()
    );
    std::fs::remove_dir_all(&root).unwrap();
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "jobs-e2e-shells-{name}-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
