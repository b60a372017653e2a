//! The CLI's own lines on stderr during a session: waiting for a slot,
//! reconnecting. In raw mode the terminal no longer turns `\n` into
//! `\r\n`, so lines end with `\r\n` there. At a terminal, the waiting line
//! is rewritten in place as the position changes, and erased when the job
//! starts; elsewhere each change is a line of its own.

use std::io::{self, Write};

#[derive(Debug)]
pub struct Notices {
    raw: bool,
    stderr_is_terminal: bool,
    /// A waiting line is on the screen without its line end.
    open_status_line: bool,
    last_position: Option<u32>,
}

impl Notices {
    pub fn new(stderr_is_terminal: bool) -> Self {
        Self {
            raw: false,
            stderr_is_terminal,
            open_status_line: false,
            last_position: None,
        }
    }

    /// Raw mode went on or off.
    pub fn set_raw(&mut self, raw: bool) {
        self.raw = raw;
    }

    /// Every worker slot is busy; the run is `position`th in line.
    pub fn waiting(&mut self, position: u32) {
        if self.last_position == Some(position) {
            return;
        }
        self.last_position = Some(position);
        let text = waiting_text(position);
        if self.stderr_is_terminal {
            write_stderr(format!("\r{text}\x1b[K").as_bytes());
            self.open_status_line = true;
        } else {
            self.line(&text);
        }
    }

    /// The job started, or output arrived: no more waiting.
    pub fn started(&mut self) {
        self.last_position = None;
        self.close_status_line();
    }

    /// A line of the CLI's own, such as a reconnect notice.
    pub fn line(&mut self, text: &str) {
        self.close_status_line();
        let end = if self.raw { "\r\n" } else { "\n" };
        write_stderr(format!("{text}{end}").as_bytes());
    }

    /// Erases a waiting line still on the screen, so that what comes next
    /// starts on a clean line.
    pub fn close_status_line(&mut self) {
        if std::mem::take(&mut self.open_status_line) {
            write_stderr(b"\r\x1b[K");
        }
    }
}

pub fn waiting_text(position: u32) -> String {
    format!("jobs: every worker is busy; waiting for a free slot (position {position})")
}

fn write_stderr(bytes: &[u8]) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_all(bytes);
    let _ = stderr.flush();
}
