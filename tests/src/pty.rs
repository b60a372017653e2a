//! A real pseudo-terminal for the CLI, as a person's terminal would be.
//!
//! [`PtyProcess::spawn`] opens a pty pair (openpty), starts the command in
//! a new session whose controlling terminal is the pty's slave (setsid +
//! TIOCSCTTY), so that `isatty` holds for its stdin, stdout and stderr and
//! a resize of the master (TIOCSWINSZ) reaches it as SIGWINCH, exactly as
//! when a terminal window is resized. The test types through the master
//! and reads everything the command wrote to the terminal.
//!
//! Only libc is needed: openpty, ioctl and tcgetattr are all there, and a
//! pty crate would add a dependency for fewer than a hundred lines.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::cli::{Capture, describe};
use crate::poll::poll_until;

/// The terminal settings that matter to a shell, comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSettings {
    pub iflag: libc::tcflag_t,
    pub oflag: libc::tcflag_t,
    pub cflag: libc::tcflag_t,
    pub lflag: libc::tcflag_t,
    pub cc: [libc::cc_t; libc::NCCS],
}

impl TermSettings {
    /// Canonical input (line editing), as a shell's terminal has it.
    pub fn canonical(&self) -> bool {
        self.lflag & libc::ICANON != 0
    }

    /// Local echo of typed characters.
    pub fn echo(&self) -> bool {
        self.lflag & libc::ECHO != 0
    }

    /// Ctrl-C and friends raise signals.
    pub fn signals(&self) -> bool {
        self.lflag & libc::ISIG != 0
    }
}

/// A command running on a pseudo-terminal.
pub struct PtyProcess {
    command_line: String,
    /// The terminal's settings before the command started.
    pub initial_settings: TermSettings,
    master: File,
    child: Option<Child>,
    output: Option<Capture>,
}

impl PtyProcess {
    /// Starts `command` on a new pty of `rows` x `cols`.
    #[track_caller]
    pub fn spawn(mut command: Command, rows: u16, cols: u16) -> PtyProcess {
        let command_line = describe(&command);
        let (master, slave) = open_pty(rows, cols);
        let initial_settings = term_settings(&master);
        let stdio = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty slave"));
        command
            .stdin(stdio(&slave))
            .stdout(stdio(&slave))
            .stderr(stdio(&slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // stdin is the slave by now: make it the controlling terminal.
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {command_line} on a pty: {error}"));
        // Only the child holds the slave from here on, so that reading the
        // master ends (EIO) once the child and its descendants are gone.
        drop(command);
        drop(slave);
        let reader = master.try_clone().expect("dup the pty master");
        PtyProcess {
            command_line,
            initial_settings,
            master,
            child: Some(child),
            output: Some(Capture::start(reader)),
        }
    }

    /// Types `bytes` on the terminal.
    #[track_caller]
    pub fn type_bytes(&mut self, bytes: &[u8]) {
        self.master
            .write_all(bytes)
            .and_then(|()| self.master.flush())
            .unwrap_or_else(|error| panic!("cannot type on the pty: {error}"));
    }

    /// Resizes the terminal, as a terminal window would: the foreground
    /// process group gets SIGWINCH.
    #[track_caller]
    pub fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        let result = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(result, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The terminal's settings now (the pair shares them; the master keeps
    /// them after the command exits).
    #[track_caller]
    pub fn settings(&self) -> TermSettings {
        term_settings(&self.master)
    }

    /// Everything written to the terminal so far.
    pub fn output_so_far(&self) -> Vec<u8> {
        self.output
            .as_ref()
            .map(Capture::snapshot)
            .unwrap_or_default()
    }

    /// Waits until the terminal's output satisfies `condition`, and returns
    /// that output. Panics with the output if the command exits or
    /// `timeout` passes first.
    #[track_caller]
    pub fn wait_for_output(
        &mut self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&[u8]) -> bool,
    ) -> Vec<u8> {
        let found = poll_until(timeout, || {
            let output = self.output_so_far();
            if condition(&output) {
                return Some(output);
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|child| child.try_wait().expect("try_wait works").is_some());
            if exited {
                if let Some(capture) = self.output.as_mut() {
                    capture.wait_for_end();
                }
                let output = self.output_so_far();
                if condition(&output) {
                    return Some(output);
                }
                panic!(
                    "{} exited before {what}; the terminal shows: {:?}",
                    self.command_line,
                    String::from_utf8_lossy(&output)
                );
            }
            None
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {what} on the terminal of {}; it shows: {:?}",
                self.command_line,
                String::from_utf8_lossy(&self.output_so_far())
            )
        })
    }

    /// Waits for the command to exit, at most `timeout`, and returns its
    /// status and everything it wrote to the terminal. The terminal stays
    /// open, so that its settings can still be read.
    #[track_caller]
    pub fn wait(&mut self, timeout: Duration) -> (ExitStatus, Vec<u8>) {
        let mut child = self.child.take().expect("the child is there");
        let status = poll_until(timeout, || child.try_wait().expect("try_wait works"));
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not exit within {timeout:?}; the terminal shows: {:?}",
                self.command_line,
                String::from_utf8_lossy(&self.output_so_far())
            );
        };
        // The capture ends when the last holder of the slave is gone.
        let output = self.output.take().map(Capture::finish).unwrap_or_default();
        (status, output)
    }
}

impl Drop for PtyProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn open_pty(rows: u16, cols: u16) -> (File, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors; null name and termios mean
    // the system's defaults (a cooked terminal, as a new window has).
    let result = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(result, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh descriptors that nothing else owns.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn term_settings(fd: &impl AsRawFd) -> TermSettings {
    // SAFETY: termios is plain data that tcgetattr fills.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a termios owned by this frame.
    let result = unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut termios) };
    assert_eq!(result, 0, "tcgetattr: {}", std::io::Error::last_os_error());
    TermSettings {
        iflag: termios.c_iflag,
        oflag: termios.c_oflag,
        cflag: termios.c_cflag,
        lflag: termios.c_lflag,
        cc: termios.c_cc,
    }
}

/// Whether `output` ends with a shell prompt (`$ ` or `# `). Busybox's line
/// editor follows its prompt with terminal controls: "where is the
/// cursor?" (`ESC [ 6 n`) and "erase below" (`ESC [ J`).
pub fn ends_with_prompt(output: &[u8]) -> bool {
    let mut output = output;
    while let Some(rest) = strip_trailing_control(output) {
        output = rest;
    }
    output.ends_with(b"$ ") || output.ends_with(b"# ")
}

/// `output` without its last `ESC [ params letter` sequence, if it ends
/// with one.
fn strip_trailing_control(output: &[u8]) -> Option<&[u8]> {
    let (&last, rest) = output.split_last()?;
    if !last.is_ascii_alphabetic() {
        return None;
    }
    let params = rest
        .iter()
        .rev()
        .take_while(|byte| byte.is_ascii_digit() || **byte == b';')
        .count();
    rest[..rest.len() - params].strip_suffix(b"\x1b[")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_on_the_pty_sees_a_terminal_of_the_given_size_and_its_resizes() {
        // `stty size` prints the size of the terminal on its stdin.
        let mut command = Command::new("sh");
        command.args(["-c", "stty size; read line; stty size"]);
        let mut pty = PtyProcess::spawn(command, 24, 80);
        let before = pty.initial_settings;
        assert!(
            before.canonical() && before.echo() && before.signals(),
            "{before:?}"
        );
        pty.wait_for_output("the first size", Duration::from_secs(10), |out| {
            out.windows(6).any(|w| w == b"24 80\r")
        });
        pty.resize(30, 100);
        pty.type_bytes(b"go\n");
        let (status, output) = pty.wait(Duration::from_secs(10));
        assert!(status.success(), "{status}");
        let text = String::from_utf8_lossy(&output);
        assert!(
            text.contains("24 80\r\n") && text.ends_with("30 100\r\n"),
            "{text:?}"
        );
    }
}
