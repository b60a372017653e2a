//! What a simulated container "runs": its command line is read, not
//! executed. The last argument of `sh -c SCRIPT` (or the command itself)
//! is a `;`-separated list of `echo WORDS`, `sleep SECONDS`, `exit N`,
//! `true` and `false`; anything else is a no-op. Under the worker's shim
//! (`/.jobs/shim run … -- CMD`), the command is what follows `--`.

use std::time::Duration;

/// One step of a simulated run.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A line on stdout.
    Echo(String),
    Sleep(Duration),
}

/// A simulated run: its steps, then its exit code.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
    pub exit_code: i64,
}

/// The script of a container whose entrypoint and command are `line`.
pub fn parse(line: &[String]) -> Script {
    let command = match line.iter().position(|word| word == "--") {
        Some(at) if line.first().is_some_and(|first| first.ends_with("/shim")) => &line[at + 1..],
        _ => line,
    };
    let text = match command {
        [shell, flag, script, ..] if shell.ends_with("sh") && flag == "-c" => script.clone(),
        words => words.join(" "),
    };
    let mut script = Script {
        steps: Vec::new(),
        exit_code: 0,
    };
    for statement in text.split(';').map(str::trim) {
        let (verb, rest) = statement.split_once(' ').unwrap_or((statement, ""));
        match verb {
            "echo" => script.steps.push(Step::Echo(rest.to_owned())),
            "sleep" => {
                let seconds: f64 = rest.trim().parse().unwrap_or(0.0);
                script
                    .steps
                    .push(Step::Sleep(Duration::from_secs_f64(seconds.max(0.0))));
            }
            "exit" => {
                script.exit_code = rest.trim().parse().unwrap_or(0);
                break;
            }
            "false" => script.exit_code = 1,
            "true" => script.exit_code = 0,
            _ => {}
        }
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &[&str]) -> Vec<String> {
        line.iter().map(|word| (*word).to_owned()).collect()
    }

    #[test]
    fn a_shell_script_under_the_shim_is_simulated() {
        let script = parse(&words(&[
            "/.jobs/shim",
            "run",
            "-a",
            "/tmp/x",
            "--",
            "sh",
            "-c",
            "echo hello world; sleep 0.5; exit 3",
        ]));
        assert_eq!(
            script,
            Script {
                steps: vec![
                    Step::Echo("hello world".into()),
                    Step::Sleep(Duration::from_millis(500))
                ],
                exit_code: 3
            }
        );
    }

    #[test]
    fn plain_commands_exit_as_they_would() {
        assert_eq!(parse(&words(&["true"])).exit_code, 0);
        assert_eq!(parse(&words(&["false"])).exit_code, 1);
        assert_eq!(
            parse(&words(&["echo", "hi"])).steps,
            vec![Step::Echo("hi".into())]
        );
        assert_eq!(parse(&words(&["unknown-program"])).exit_code, 0);
    }
}
