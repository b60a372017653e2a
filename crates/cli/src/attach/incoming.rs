//! What the API sends a client on the attach WebSocket, decoded: output
//! frames, [`ServerMessage`]s, and the close that tells a replaced client
//! from a dropped connection.

use jobs_core::attach::{CLOSE_REPLACED, OutputFrame, ServerMessage};
use reqwest_websocket::{Bytes, Message};

use crate::error::CliError;

/// One message from the API, decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Output {
        stream: jobs_core::wire::LogStream,
        seq: i64,
        data: Bytes,
    },
    Server(ServerMessage),
    Closed {
        /// Closed with [`CLOSE_REPLACED`].
        replaced: bool,
    },
    /// Pings, pongs and messages of a newer API that this CLI can skip.
    Other,
}

impl Incoming {
    pub fn from_message(message: Message) -> Result<Incoming, CliError> {
        match message {
            Message::Binary(frame) => {
                let decoded = OutputFrame::decode(&frame).map_err(|err| {
                    CliError::UnexpectedAnswer(format!(
                        "the API sent an output frame this CLI does not understand: {err}"
                    ))
                })?;
                let (stream, seq) = (decoded.stream, decoded.seq);
                Ok(Incoming::Output {
                    stream,
                    seq,
                    data: frame.slice(jobs_core::attach::OUTPUT_HEADER_BYTES..),
                })
            }
            // A message type added later must not end a session.
            Message::Text(text) => Ok(serde_json::from_str(&text)
                .map(Incoming::Server)
                .unwrap_or(Incoming::Other)),
            Message::Close { code, .. } => Ok(Incoming::Closed {
                replaced: u16::from(code) == CLOSE_REPLACED,
            }),
            _ => Ok(Incoming::Other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jobs_core::{JobState, wire::LogStream};

    #[test]
    fn output_frames_decode_to_their_stream_seq_and_bytes() {
        let frame = OutputFrame {
            stream: LogStream::Stderr,
            seq: 42,
            data: b"\x00\xffboom\n",
        }
        .encode();
        assert_eq!(
            Incoming::from_message(Message::Binary(Bytes::from(frame))).unwrap(),
            Incoming::Output {
                stream: LogStream::Stderr,
                seq: 42,
                data: Bytes::from_static(b"\x00\xffboom\n"),
            }
        );
        let err =
            Incoming::from_message(Message::Binary(Bytes::from_static(b"\x01\x00"))).unwrap_err();
        assert_eq!(err.exit_code(), 125);
    }

    #[test]
    fn server_messages_decode_and_unknown_ones_are_skipped() {
        let ended = r#"{"type":"ended","state":"failed","exit_code":7,"reason":"exit status 7"}"#;
        assert_eq!(
            Incoming::from_message(Message::Text(ended.into())).unwrap(),
            Incoming::Server(ServerMessage::Ended {
                state: JobState::Failed,
                exit_code: Some(7),
                reason: Some("exit status 7".into()),
            })
        );
        let waiting = r#"{"type":"waiting","position":2}"#;
        assert_eq!(
            Incoming::from_message(Message::Text(waiting.into())).unwrap(),
            Incoming::Server(ServerMessage::Waiting { position: 2 })
        );
        assert_eq!(
            Incoming::from_message(Message::Text(r#"{"type":"news"}"#.into())).unwrap(),
            Incoming::Other
        );
        assert_eq!(
            Incoming::from_message(Message::Ping(Bytes::new())).unwrap(),
            Incoming::Other
        );
        let close = |code: u16| Message::Close {
            code: code.into(),
            reason: String::new(),
        };
        assert_eq!(
            Incoming::from_message(close(CLOSE_REPLACED)).unwrap(),
            Incoming::Closed { replaced: true }
        );
        for code in [1000, 1001, 1012] {
            assert_eq!(
                Incoming::from_message(close(code)).unwrap(),
                Incoming::Closed { replaced: false }
            );
        }
    }
}
