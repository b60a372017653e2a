//! `jobs logs --timestamps`: each line prefixed with the time of the chunk
//! that started it, for people reading along.
//!
//! A line may span several chunks, and stdout and stderr interleave, so each
//! stream remembers on its own whether its next byte starts a line.

use chrono::{DateTime, SecondsFormat, Utc};
use jobs_core::wire::LogStream;

#[derive(Debug)]
pub struct LineTimestamps {
    stdout_at_line_start: bool,
    stderr_at_line_start: bool,
}

impl Default for LineTimestamps {
    fn default() -> Self {
        Self {
            stdout_at_line_start: true,
            stderr_at_line_start: true,
        }
    }
}

impl LineTimestamps {
    pub fn new() -> Self {
        Self::default()
    }

    /// The chunk's bytes with `TIME ` before every line that starts in it.
    pub fn prefix(&mut self, stream: LogStream, time: &DateTime<Utc>, bytes: &[u8]) -> Vec<u8> {
        let at_line_start = match stream {
            LogStream::Stdout => &mut self.stdout_at_line_start,
            LogStream::Stderr => &mut self.stderr_at_line_start,
        };
        let stamp = format!("{} ", time.to_rfc3339_opts(SecondsFormat::Millis, true));
        let mut out = Vec::with_capacity(bytes.len() + stamp.len());
        for line in bytes.split_inclusive(|byte| *byte == b'\n') {
            if *at_line_start {
                out.extend_from_slice(stamp.as_bytes());
            }
            out.extend_from_slice(line);
            *at_line_start = line.ends_with(b"\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn prefixes_lines_that_start_in_each_chunk() {
        let t1 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        let t2 = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 6).unwrap();
        let mut stamps = LineTimestamps::new();
        let out = [
            stamps.prefix(LogStream::Stdout, &t1, b"a\npar"),
            stamps.prefix(LogStream::Stderr, &t1, b"err\n"),
            stamps.prefix(LogStream::Stdout, &t2, b"tial\nb\n"),
        ]
        .concat();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-01-02T03:04:05.000Z a\n\
             2025-01-02T03:04:05.000Z par\
             2025-01-02T03:04:05.000Z err\n\
             tial\n\
             2025-01-02T03:04:06.000Z b\n"
        );
    }
}
