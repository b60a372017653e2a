//! Reading back a job's output log, the ring the shim writes under
//! `/.jobs/log` (see `shim/shim.c` for the writer), after a worker restart.
//!
//! The format: each segment starts with `JOBSLOG1`, its number and the raw
//! offsets of stdout and stderr at its start (u64 LE each); then records of
//! one type byte, a u32 LE length and the data. Type 1 is stdout, 2 stderr,
//! 5 the end of the run's output, 6 "the next segment follows".
//!
//! The worker knows where its stored output ends in each stream (the raw
//! offsets of [`jobs_store::RawOffsets`]); [`LogReader`] yields what comes
//! after, in write order, and a [`Piece::Gap`] for bytes that rotated away
//! before they were read.
//!
//! The log lies in the container, where the job can write it: it is read
//! as hostile data. A record is at most [`MAX_RECORD`] bytes (the shim's
//! read buffer: it writes one record per read), a segment's offsets at most
//! [`MAX_RAW_OFFSET`], and the reader holds at most one record and what it
//! was fed at once. Anything else (a forged length, an unknown record, a
//! segment without its magic) ends the reading with one
//! [`Piece::Unreadable`], which the pump stores as a marked line; the job
//! still ends with the exit code Docker recorded. A running container is followed with `shim cat`
//! (an exec in its namespace); what that did not deliver, and the log of a
//! stopped container, is read with Docker's archive API: [`recover`].

use bytes::Bytes;
use futures::StreamExt;
use jobs_core::wire::LogStream;
use jobs_store::RawOffsets;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::mpsc,
};

use crate::{log_pump::Piece, runtime::Runtime, shim};

const MAGIC: &[u8; 8] = b"JOBSLOG1";
const HEADER_BYTES: usize = 32;
const RECORD_HEAD: usize = 5;
const REC_STDOUT: u8 = 1;
const REC_STDERR: u8 = 2;
const REC_END: u8 = 5;
const REC_SEGMENT_END: u8 = 6;
/// The longest record the shim writes: one read of its 64 KiB buffer
/// (`READ_BYTES` in `shim.c`).
pub const MAX_RECORD: usize = 64 * 1024;
/// The largest raw offset a segment may claim (an exabyte): far beyond any
/// output, and far from overflowing the store's `i64` offsets.
pub const MAX_RAW_OFFSET: u64 = 1 << 60;

/// An incremental reader of segments, fed bytes as they come.
#[derive(Debug)]
pub struct LogReader {
    /// Raw bytes of each stream already delivered (or stored before).
    delivered: [u64; 2],
    /// Raw position of each stream in the segment being read.
    position: [u64; 2],
    buffer: Vec<u8>,
    in_header: bool,
    ended: bool,
    broken: bool,
}

impl LogReader {
    pub fn new(from: RawOffsets) -> Self {
        Self {
            delivered: [
                u64::try_from(from.stdout).unwrap_or(0),
                u64::try_from(from.stderr).unwrap_or(0),
            ],
            position: [0, 0],
            buffer: Vec::new(),
            in_header: true,
            ended: false,
            broken: false,
        }
    }

    /// Whether the run's end was read: nothing more will come.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether the log turned out unreadable ([`Piece::Unreadable`] was
    /// given): nothing more will come either.
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Ends the reading with the marked piece that says why.
    fn unreadable(&mut self, why: String, pieces: &mut Vec<Piece>) {
        tracing::warn!(why, "the output log is not readable; reading stops");
        self.broken = true;
        self.buffer = Vec::new();
        pieces.push(Piece::Unreadable(why));
    }

    /// Where delivery stands: a reader made from it goes on without a
    /// duplicate.
    pub fn delivered(&self) -> RawOffsets {
        RawOffsets {
            stdout: self.delivered[0] as i64,
            stderr: self.delivered[1] as i64,
        }
    }

    /// Starts reading a segment file on its own: what is left of the one
    /// before (a record cut short by a kill) is dropped.
    pub fn start_segment(&mut self) {
        self.buffer.clear();
        self.in_header = true;
    }

    /// Feeds bytes; returns the pieces they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut pieces = Vec::new();
        if self.ended || self.broken {
            return pieces;
        }
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        loop {
            let rest = &self.buffer[at..];
            if self.in_header {
                if rest.len() < HEADER_BYTES {
                    break;
                }
                if &rest[..8] != MAGIC {
                    self.unreadable("a segment without its header".to_owned(), &mut pieces);
                    return pieces;
                }
                let offsets = [u64_at(rest, 16), u64_at(rest, 24)];
                if offsets.iter().any(|&offset| offset > MAX_RAW_OFFSET) {
                    let why = format!("a segment at offsets {} and {}", offsets[0], offsets[1]);
                    self.unreadable(why, &mut pieces);
                    return pieces;
                }
                for (index, stream) in [LogStream::Stdout, LogStream::Stderr]
                    .into_iter()
                    .enumerate()
                {
                    let from = self.delivered[index].max(self.position[index]);
                    if offsets[index] > from {
                        pieces.push(Piece::Gap(stream, offsets[index] - from));
                        self.delivered[index] = offsets[index];
                    }
                    self.position[index] = offsets[index];
                }
                self.in_header = false;
                at += HEADER_BYTES;
                continue;
            }
            if rest.len() < RECORD_HEAD {
                break;
            }
            let kind = rest[0];
            let len = u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let valid = match kind {
                REC_STDOUT | REC_STDERR => len <= MAX_RECORD,
                REC_END | REC_SEGMENT_END => len == 0,
                _ => false,
            };
            if !valid {
                self.unreadable(
                    format!("a record of type {kind} and {len} bytes"),
                    &mut pieces,
                );
                return pieces;
            }
            if rest.len() < RECORD_HEAD + len {
                break;
            }
            let data = &rest[RECORD_HEAD..RECORD_HEAD + len];
            match kind {
                REC_STDOUT | REC_STDERR => {
                    let index = usize::from(kind - REC_STDOUT);
                    let start = self.position[index];
                    let end = start.saturating_add(len as u64);
                    if end > self.delivered[index] {
                        let skip = self.delivered[index].saturating_sub(start) as usize;
                        let stream = if index == 0 {
                            LogStream::Stdout
                        } else {
                            LogStream::Stderr
                        };
                        pieces.push(Piece::Output(stream, Bytes::copy_from_slice(&data[skip..])));
                        self.delivered[index] = end;
                    }
                    self.position[index] = end;
                }
                REC_SEGMENT_END => self.in_header = true,
                _ => {
                    self.ended = true;
                    self.buffer = Vec::new();
                    return pieces;
                }
            }
            at += RECORD_HEAD + len;
        }
        self.buffer.drain(..at);
        pieces
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// Sends what the container wrote after `from` into `pieces`, in order:
/// followed live with `shim cat` while the container runs, then, once it
/// has stopped, whatever that missed, from the segment files.
pub async fn recover(
    runtime: Runtime,
    container_id: String,
    from: RawOffsets,
    pieces: mpsc::Sender<Piece>,
) {
    let mut reader = LogReader::new(from);
    if runtime.is_running(&container_id).await.unwrap_or(false) {
        match runtime
            .exec_output(&container_id, vec![shim::PATH.to_owned(), "cat".to_owned()])
            .await
        {
            Ok(mut output) => {
                while let Some(item) = output.next().await {
                    let Ok(bollard::container::LogOutput::StdOut { message }) = item else {
                        if let Err(error) = item {
                            tracing::info!(container_id, %error, "following the output log ended");
                            break;
                        }
                        continue;
                    };
                    for piece in reader.feed(&message) {
                        // What `shim cat` gives may be the engine's own
                        // words (an exec into a container that is
                        // stopping): only the files have the last word.
                        if matches!(piece, Piece::Unreadable(_)) {
                            continue;
                        }
                        if pieces.send(piece).await.is_err() {
                            return;
                        }
                    }
                    if reader.ended() {
                        return;
                    }
                    if reader.broken() {
                        tracing::info!(
                            container_id,
                            "following the output log broke off; reading it at the end"
                        );
                        break;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(container_id, %error, "cannot follow the output log; reading it at the end");
            }
        }
        // The container ends (or was killed): the rest is in its files.
        let _ = runtime.wait(&container_id).await;
    }
    let mut reader = LogReader::new(reader.delivered());
    if let Err(error) = read_segments(&runtime, &container_id, &mut reader, &pieces).await {
        tracing::warn!(container_id, %error, "reading the output log failed");
    }
}

/// Reads the segment files of a stopped container, oldest first.
async fn read_segments(
    runtime: &Runtime,
    container_id: &str,
    reader: &mut LogReader,
    pieces: &mpsc::Sender<Piece>,
) -> anyhow::Result<()> {
    // First their numbers, from their headers only, then each in order.
    let mut numbered = Vec::new();
    for slot in 0..shim::SEGMENTS {
        let path = format!("{}/seg.{slot}", shim::LOG_DIR);
        let Ok(mut file) = open_file(runtime, container_id, &path).await else {
            continue;
        };
        let mut header = [0u8; HEADER_BYTES];
        if file.read_exact(&mut header).await.is_ok() && &header[..8] == MAGIC {
            numbered.push((u64_at(&header, 8), path));
        }
    }
    numbered.sort();
    for (_, path) in numbered {
        let mut file = open_file(runtime, container_id, &path).await?;
        reader.start_segment();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            for piece in reader.feed(&buffer[..read]) {
                if pieces.send(piece).await.is_err() {
                    return Ok(());
                }
            }
        }
        if reader.ended() || reader.broken() {
            break;
        }
    }
    Ok(())
}

/// Why the shim could not execute the command, from its status file: the
/// reason Docker would have given had it executed the command itself.
pub async fn exec_failure(runtime: &Runtime, container_id: &str) -> Option<String> {
    let mut file = match open_file(runtime, container_id, shim::STATUS_FILE).await {
        Ok(file) => file,
        Err(error) => {
            tracing::info!(container_id, %error, "no reason from the shim");
            return None;
        }
    };
    let mut text = String::new();
    if let Err(error) = (&mut file).take(4096).read_to_string(&mut text).await {
        tracing::info!(container_id, %error, "reading the shim's reason failed");
        return None;
    }
    let (code, program) = text.split_once(' ')?;
    match code {
        "127" => Some(format!("command not found: {program}")),
        "126" => Some(format!("command not executable: {program}")),
        _ => None,
    }
}

/// The bytes of one regular file of a container ([`Runtime::read_file`]).
async fn open_file(
    runtime: &Runtime,
    container_id: &str,
    path: &str,
) -> anyhow::Result<impl AsyncRead + Unpin + use<>> {
    runtime.read_file(container_id, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(number: u64, stdout_at: u64, stderr_at: u64) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for value in [number, stdout_at, stderr_at] {
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    fn record(kind: u8, data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    fn out(text: &str) -> Piece {
        Piece::Output(LogStream::Stdout, Bytes::copy_from_slice(text.as_bytes()))
    }

    fn err(text: &str) -> Piece {
        Piece::Output(LogStream::Stderr, Bytes::copy_from_slice(text.as_bytes()))
    }

    #[test]
    fn delivers_what_follows_the_stored_offsets_in_write_order() {
        let mut log = segment(0, 0, 0);
        log.extend(record(1, b"hello "));
        log.extend(record(2, b"oops\n"));
        log.extend(record(1, b"world\n"));
        log.extend(record(REC_SEGMENT_END, b""));
        log.extend(segment(1, 12, 5));
        log.extend(record(2, b"more\n"));
        log.extend(record(REC_END, b""));
        // Stored: "hel" of stdout, nothing of stderr. Fed a byte at a time.
        let mut reader = LogReader::new(RawOffsets {
            stdout: 3,
            stderr: 0,
        });
        let mut pieces = Vec::new();
        for byte in &log {
            pieces.extend(reader.feed(std::slice::from_ref(byte)));
        }
        assert_eq!(
            pieces,
            vec![out("lo "), err("oops\n"), out("world\n"), err("more\n")]
        );
        assert!(reader.ended());
        assert_eq!(
            reader.delivered(),
            RawOffsets {
                stdout: 12,
                stderr: 10
            }
        );
    }

    #[test]
    fn rotated_bytes_become_a_gap_and_a_cut_record_waits_for_its_end() {
        // The oldest kept segment starts after what was stored.
        let mut log = segment(7, 100, 4);
        log.extend(record(1, b"tail\n"));
        let mut reader = LogReader::new(RawOffsets {
            stdout: 40,
            stderr: 4,
        });
        let (first, second) = log.split_at(log.len() - 2);
        assert_eq!(reader.feed(first), vec![Piece::Gap(LogStream::Stdout, 60)]);
        assert_eq!(reader.feed(second), vec![out("tail\n")]);
        assert!(!reader.ended());
        // Read again from the files: nothing twice.
        let mut again = LogReader::new(reader.delivered());
        again.start_segment();
        assert!(again.feed(&log).is_empty());
    }

    #[test]
    fn a_forged_length_ends_the_reading_without_waiting_for_its_bytes() {
        let mut log = segment(0, 0, 0);
        log.extend(record(1, b"kept\n"));
        // A stdout record that claims 1.5 GiB, and some of its "bytes".
        log.extend([REC_STDOUT, 0, 0, 0, 0x60]);
        log.extend(vec![0u8; 1 << 20]);
        let mut reader = LogReader::new(RawOffsets::default());
        let mut pieces = Vec::new();
        for part in log.chunks(64 * 1024) {
            pieces.extend(reader.feed(part));
            // Never more than a record and what was fed at once.
            assert!(reader.buffer.len() <= RECORD_HEAD + MAX_RECORD + 64 * 1024);
        }
        let mut bytewise = LogReader::new(RawOffsets::default());
        let mut one_by_one = Vec::new();
        for byte in &log[..200] {
            one_by_one.extend(bytewise.feed(std::slice::from_ref(byte)));
        }
        assert_eq!(one_by_one[..], pieces[..]);
        assert_eq!(pieces[0], out("kept\n"));
        assert_eq!(
            pieces[1],
            Piece::Unreadable("a record of type 1 and 1610612736 bytes".into())
        );
        assert_eq!(pieces.len(), 2);
        assert!(reader.broken() && !reader.ended());
        // Nothing more comes, from this segment or another.
        reader.start_segment();
        assert!(reader.feed(&segment(1, 5, 0)).is_empty());
        assert_eq!(
            reader.delivered(),
            RawOffsets {
                stdout: 5,
                stderr: 0
            }
        );
        // The longest honest record still passes.
        let mut honest = segment(0, 0, 0);
        honest.extend(record(2, &vec![b'e'; MAX_RECORD]));
        let pieces = LogReader::new(RawOffsets::default()).feed(&honest);
        assert!(
            matches!(&pieces[..], [Piece::Output(LogStream::Stderr, bytes)] if bytes.len() == MAX_RECORD)
        );
    }

    #[test]
    fn garbage_magic_an_unknown_record_or_wild_offsets_end_the_reading() {
        let mut garbage = b"JOBSLOGX".to_vec();
        garbage.extend([0u8; 24]);
        let mut unknown = segment(0, 0, 0);
        unknown.extend(record(9, b"?"));
        let mut sized_end = segment(0, 0, 0);
        sized_end.extend(record(REC_END, b"x"));
        let wild = segment(0, u64::MAX, 0);
        for (log, why) in [
            (garbage, "a segment without its header"),
            (unknown, "a record of type 9 and 1 bytes"),
            (sized_end, "a record of type 5 and 1 bytes"),
            (wild, "a segment at offsets 18446744073709551615 and 0"),
        ] {
            let pieces = LogReader::new(RawOffsets::default()).feed(&log);
            assert_eq!(pieces, vec![Piece::Unreadable(why.into())], "{why}");
        }
        // Offsets as far as the bound are read (a gap), without overflow.
        let mut far = segment(0, MAX_RAW_OFFSET, 0);
        far.extend(record(1, b"x"));
        let mut reader = LogReader::new(RawOffsets::default());
        assert_eq!(
            reader.feed(&far),
            vec![Piece::Gap(LogStream::Stdout, MAX_RAW_OFFSET), out("x")]
        );
        assert_eq!(reader.delivered().stdout, (MAX_RAW_OFFSET + 1) as i64);
    }

    #[test]
    fn a_truncated_record_waits_and_a_new_segment_drops_it() {
        let mut log = segment(0, 0, 0);
        log.extend(record(1, b"whole\n"));
        let cut = record(1, b"cut short");
        log.extend(&cut[..7]);
        let mut reader = LogReader::new(RawOffsets::default());
        assert_eq!(reader.feed(&log), vec![out("whole\n")]);
        assert!(!reader.broken() && !reader.ended());
        // The next file starts afresh: the cut record is dropped, not read
        // as the start of a header.
        reader.start_segment();
        let mut next = segment(1, 6, 0);
        next.extend(record(1, b"next\n"));
        next.extend(record(REC_END, b""));
        assert_eq!(reader.feed(&next), vec![out("next\n")]);
        assert!(reader.ended());
    }
}
