//! The attach protocol of interactive runs: what travels over the two
//! WebSockets that the API bridges (CLI ⇄ API ⇄ worker).
//!
//! - Output (worker → API → CLI) is a binary frame: one stream byte
//!   (1 stdout, 2 stderr), the chunk's log sequence number (8 bytes, big
//!   endian), then the bytes. The sequence number is the one the chunk is
//!   stored under, so a client that reconnects with `after=SEQ` gets the
//!   rest without a gap or a duplicate.
//! - Input (CLI → API → worker) is a binary frame. A peer that connects
//!   with `input=offsets` in its query ([`INPUT_OFFSETS_QUERY`]) sends and
//!   gets [`input::InputFrame`]s: one kind byte (0, stdin), the offset of
//!   the first byte in the run's input stream (8 bytes, big endian), then
//!   the bytes. Stdin is then exactly-once across reconnects (module
//!   [`input`]). Without it, a binary frame is raw stdin bytes, and a cut
//!   connection may lose some (the protocol before offsets, still served).
//! - Everything else is a JSON text frame: [`ClientMessage`] from the CLI,
//!   [`ServerMessage`] to the CLI, [`WorkerCommand`] to the worker,
//!   [`WorkerMessage`] from the worker.
//!
//! Routes: `GET /v1/jobs/{id}/attach?after=SEQ&input=offsets` (the CLI; a
//! token with the `run` role) and
//! `GET /v1/jobs/{id}/attach/worker?attempt=N&input=offsets` (the worker,
//! with the job's attach secret as its bearer token).
//!
//! Input with offsets, step by step:
//! 1. The API's first message, `attached`, carries `input_offset`: where
//!    this client's input goes on (the end of what the API holds). A
//!    client sends stdin only once it knows it; an `attached` without it
//!    is an API that speaks only raw input.
//! 2. The worker's first message on each connection is `input_ack`: the
//!    offset up to which it wrote the container's stdin. It sends another
//!    after writes. The API relays the newest to the client as
//!    `input_ack`, and both drop what lies below it.
//! 3. Each side drops bytes below what it already has, so a resend after
//!    a reconnect repeats nothing; each keeps what is not acknowledged, so
//!    a cut loses nothing. The end of input is `input_end` with its
//!    offset, applied once every byte before it was written.

pub mod input;

use serde::{Deserialize, Serialize};

use crate::{JobState, wire::LogStream};

/// The bytes before the data in an output frame.
pub const OUTPUT_HEADER_BYTES: usize = 9;

/// The close code with which the API lets go of a client because another
/// client attached to the same run. Only the newest client is served, so
/// the older one must leave rather than reconnect, or the two would take
/// the session from each other forever. Any other close (an API that
/// restarts, a proxy) is reconnected.
pub const CLOSE_REPLACED: u16 = 4001;

/// The grace period a dropped interactive run waits for its client by default.
pub const DEFAULT_ATTACH_GRACE_SECONDS: u64 = 60;

/// The query pair with which a client or a worker asks for input frames
/// with offsets and acknowledgements.
pub const INPUT_OFFSETS_QUERY: (&str, &str) = ("input", "offsets");

/// One output frame, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputFrame<'a> {
    pub stream: LogStream,
    pub seq: i64,
    pub data: &'a [u8],
}

impl OutputFrame<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(OUTPUT_HEADER_BYTES + self.data.len());
        frame.push(stream_byte(self.stream));
        frame.extend_from_slice(&self.seq.to_be_bytes());
        frame.extend_from_slice(self.data);
        frame
    }

    pub fn decode(frame: &[u8]) -> Result<OutputFrame<'_>, FrameError> {
        if frame.len() < OUTPUT_HEADER_BYTES {
            return Err(FrameError::Short(frame.len()));
        }
        let stream = match frame[0] {
            1 => LogStream::Stdout,
            2 => LogStream::Stderr,
            other => return Err(FrameError::Stream(other)),
        };
        let seq = i64::from_be_bytes(frame[1..OUTPUT_HEADER_BYTES].try_into().expect("8 bytes"));
        Ok(OutputFrame {
            stream,
            seq,
            data: &frame[OUTPUT_HEADER_BYTES..],
        })
    }
}

fn stream_byte(stream: LogStream) -> u8 {
    match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("an output frame needs {OUTPUT_HEADER_BYTES} header bytes, got {0}")]
    Short(usize),
    #[error("unknown output stream {0}")]
    Stream(u8),
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// What the CLI sends besides stdin bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The local terminal's size, at start and on every change.
    Resize(WindowSize),
    /// Local stdin ended; the container's stdin is closed. The raw-input
    /// form: it ends the input after what the API has.
    Eof,
    /// Local stdin ended after `offset` bytes (with `input=offsets`): the
    /// container's stdin is closed once every byte before it is written.
    /// Sent again after a reconnect; a repeat is harmless.
    InputEnd { offset: u64 },
    /// Ctrl-P Ctrl-Q: the client leaves on purpose; the run goes on with no
    /// grace-period deadline, and `jobs attach ID` comes back to it.
    Detach,
}

/// What the API sends the CLI besides output frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The first message of every connection: output frames follow from
    /// the one after `after`. A client that attached with no `after` (live
    /// output only) resumes from here if it must reconnect before any
    /// output came.
    ///
    /// `input_offset` (only for a client that asked for `input=offsets`):
    /// the offset from which this client's input goes on. A client that
    /// reconnects resends what it holds from there; a new client's first
    /// byte gets this offset. Absent: this API takes raw input only.
    Attached {
        after: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_offset: Option<u64>,
    },
    /// Every input byte below `offset` was written to the container's
    /// stdin (with `input=offsets`): the client may forget them.
    InputAck { offset: u64 },
    /// Every worker slot is taken; the run is `position`th in line.
    Waiting { position: u32 },
    /// A worker took the run; its container is starting.
    Started { worker_id: String },
    /// The job ended, after every output frame was sent.
    Ended {
        state: JobState,
        exit_code: Option<i32>,
        reason: Option<String>,
    },
}

/// What the API sends the worker besides stdin bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerCommand {
    Resize(WindowSize),
    /// The raw-input form of [`WorkerCommand::InputEnd`]: close stdin now.
    Eof,
    /// Close the container's stdin once every byte below `offset` is
    /// written (with `input=offsets`).
    InputEnd {
        offset: u64,
    },
    /// The API's first message to a worker that asked for `input=offsets`:
    /// input frames on this connection carry offsets. An older API never
    /// sends it, and its binary frames are raw stdin bytes.
    InputOffsets,
    /// No client came back within the grace period: stop the container.
    Terminate {
        reason: String,
    },
}

/// What the worker sends the API besides output frames (with
/// `input=offsets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerMessage {
    /// Every input byte below `offset` is written to the container's stdin.
    /// The first message of each connection, then one after writes (at
    /// once after 256 KiB, else a few milliseconds later).
    InputAck { offset: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_frames_round_trip_any_bytes() {
        let data = [0u8, 0xff, b'\n', 0x1b];
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            for seq in [0, 1, i64::MAX] {
                let frame = OutputFrame {
                    stream,
                    seq,
                    data: &data,
                };
                assert_eq!(OutputFrame::decode(&frame.encode()), Ok(frame));
            }
        }
        let empty = OutputFrame {
            stream: LogStream::Stdout,
            seq: 7,
            data: &[],
        };
        assert_eq!(OutputFrame::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn malformed_output_frames_are_errors() {
        assert_eq!(OutputFrame::decode(&[1, 0, 0]), Err(FrameError::Short(3)));
        assert_eq!(
            OutputFrame::decode(&[9, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(FrameError::Stream(9))
        );
    }

    #[test]
    fn messages_are_tagged_json() {
        let resize = ClientMessage::Resize(WindowSize { rows: 24, cols: 80 });
        assert_eq!(
            serde_json::to_string(&resize).unwrap(),
            r#"{"type":"resize","rows":24,"cols":80}"#
        );
        assert_eq!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"eof"}"#).unwrap(),
            ClientMessage::Eof
        );
        let ended = ServerMessage::Ended {
            state: JobState::Failed,
            exit_code: Some(3),
            reason: Some("exit status 3".into()),
        };
        let json = serde_json::to_string(&ended).unwrap();
        assert_eq!(serde_json::from_str::<ServerMessage>(&json).unwrap(), ended);
        // The input messages of `input=offsets`.
        assert_eq!(
            serde_json::to_string(&ClientMessage::InputEnd { offset: 10 }).unwrap(),
            r#"{"type":"input_end","offset":10}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::InputAck { offset: 4 }).unwrap(),
            r#"{"type":"input_ack","offset":4}"#
        );
        assert_eq!(
            serde_json::to_string(&WorkerMessage::InputAck { offset: 4 }).unwrap(),
            r#"{"type":"input_ack","offset":4}"#
        );
        assert_eq!(
            serde_json::to_string(&WorkerCommand::InputEnd { offset: 9 }).unwrap(),
            r#"{"type":"input_end","offset":9}"#
        );
        // `attached` keeps its old form for a client without offsets, and
        // an old one still decodes.
        let attached = |input_offset| ServerMessage::Attached {
            after: 3,
            input_offset,
        };
        assert_eq!(
            serde_json::to_string(&attached(None)).unwrap(),
            r#"{"type":"attached","after":3}"#
        );
        assert_eq!(
            serde_json::to_string(&attached(Some(12))).unwrap(),
            r#"{"type":"attached","after":3,"input_offset":12}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(r#"{"type":"attached","after":3}"#).unwrap(),
            attached(None)
        );
        let terminate: WorkerCommand =
            serde_json::from_str(r#"{"type":"terminate","reason":"gone"}"#).unwrap();
        assert_eq!(
            terminate,
            WorkerCommand::Terminate {
                reason: "gone".into()
            }
        );
    }
}
