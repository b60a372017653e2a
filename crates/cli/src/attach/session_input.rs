//! A session's stdin, exactly once across reconnects
//! (`jobs_core::attach::input`): the bytes read but not yet acknowledged
//! by the worker, and where the current connection sends from.
//!
//! Bytes stay in the window until an `input_ack` covers them, so those a
//! dying connection had taken are sent again on the next one, from the
//! offset its `attached` names; the API and the worker drop what they
//! already have. The window is bounded: when it is full, local stdin is
//! not read (backpressure), nothing is dropped.
//!
//! An API that answers `attached` without `input_offset` takes raw input
//! only: bytes are forgotten once handed to its socket, as before offsets.

use jobs_core::attach::input::{InputFrame, InputWindow};

/// The most input bytes held unacknowledged before local stdin waits.
pub const WINDOW_BYTES: usize = 4 * 1024 * 1024;
/// The most input bytes one frame holds.
pub const FRAME_BYTES: usize = 32 * 1024;

/// How the current connection takes input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No `attached` yet: nothing is sent.
    Waiting,
    /// Frames with offsets, the next from `cursor`.
    Offsets { cursor: u64, end_sent: bool },
    /// Raw bytes (an API without offsets).
    Raw { end_sent: bool },
}

/// What to send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// An input frame with offsets, encoded.
    Frame { end: u64, frame: Vec<u8> },
    /// Raw bytes, for an API without offsets.
    Raw(Vec<u8>),
    /// `input_end` at this offset.
    End(u64),
    /// The raw `eof`.
    RawEof,
}

/// What sending an [`Outgoing`] moved: all [`SessionInput::sent`] needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A frame with offsets up to this offset.
    FrameUpTo(u64),
    /// Raw bytes, this many.
    Raw(usize),
    End,
}

impl Outgoing {
    pub fn progress(&self) -> Progress {
        match self {
            Outgoing::Frame { end, .. } => Progress::FrameUpTo(*end),
            Outgoing::Raw(bytes) => Progress::Raw(bytes.len()),
            Outgoing::End(_) | Outgoing::RawEof => Progress::End,
        }
    }
}

#[derive(Debug)]
pub struct SessionInput {
    window: InputWindow,
    mode: Mode,
}

impl Default for SessionInput {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionInput {
    /// Placed by the first `attached`: a client that attaches to a run
    /// whose input others began does not know its offsets before.
    pub fn new() -> Self {
        Self {
            window: InputWindow::unplaced(),
            mode: Mode::Waiting,
        }
    }

    /// A new connection: it sends nothing until its `attached`.
    pub fn new_connection(&mut self) {
        self.mode = Mode::Waiting;
    }

    /// Whether local stdin may be read: it has not ended and the window
    /// has room.
    pub fn wants_more(&self) -> bool {
        !self.window.is_ended() && self.window.len() < WINDOW_BYTES
    }

    /// Bytes read from local stdin (minus a detach sequence).
    pub fn push(&mut self, bytes: &[u8]) {
        self.window.push(bytes);
    }

    /// Local stdin ended.
    pub fn end(&mut self) {
        self.window.end_input();
    }

    /// The connection's `attached`: where its input goes on, or `None` for
    /// an API that takes raw input.
    pub fn attached(&mut self, input_offset: Option<u64>) {
        let Some(offset) = input_offset else {
            self.window.place(0);
            self.mode = Mode::Raw { end_sent: false };
            return;
        };
        self.window.place(offset);
        if self.window.is_empty() {
            // Nothing of ours is pending: go on where the API is.
            self.window.skip_to(offset);
        }
        let (start, end) = self.bounds();
        self.mode = Mode::Offsets {
            cursor: offset.clamp(start, end),
            end_sent: false,
        };
    }

    /// The worker wrote every byte below `offset`.
    pub fn acked(&mut self, offset: u64) {
        if matches!(self.mode, Mode::Offsets { .. }) {
            self.window.ack(offset);
        }
    }

    /// The bytes held, not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.window.len()
    }

    /// What the connection should send next, if anything; changes nothing
    /// until [`SessionInput::sent`].
    pub fn next(&self) -> Option<Outgoing> {
        match self.mode {
            Mode::Waiting => None,
            Mode::Offsets { cursor, end_sent } => {
                if let Some((offset, bytes)) = self.window.chunk_at(cursor, FRAME_BYTES) {
                    let frame = InputFrame {
                        offset,
                        data: &bytes,
                    };
                    return Some(Outgoing::Frame {
                        end: frame.end(),
                        frame: frame.encode(),
                    });
                }
                let end = self.window.end()?;
                (self.window.is_ended() && !end_sent).then_some(Outgoing::End(end))
            }
            Mode::Raw { end_sent } => {
                let start = self.window.start()?;
                if let Some((_, bytes)) = self.window.chunk_at(start, FRAME_BYTES) {
                    return Some(Outgoing::Raw(bytes));
                }
                (self.window.is_ended() && !end_sent).then_some(Outgoing::RawEof)
            }
        }
    }

    /// What [`SessionInput::next`] gave was handed to the socket.
    pub fn sent(&mut self, progress: Progress) {
        match (&mut self.mode, progress) {
            (Mode::Offsets { cursor, .. }, Progress::FrameUpTo(end)) => *cursor = end,
            (Mode::Offsets { end_sent, .. } | Mode::Raw { end_sent }, Progress::End) => {
                *end_sent = true;
            }
            (Mode::Raw { .. }, Progress::Raw(bytes)) => {
                // An API without offsets acknowledges nothing: handed over
                // is as far as this client can know.
                if let Some(start) = self.window.start() {
                    self.window.ack(start + bytes as u64);
                }
            }
            _ => {}
        }
    }

    fn bounds(&self) -> (u64, u64) {
        let start = self.window.start().unwrap_or(0);
        (start, self.window.end().unwrap_or(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(outgoing: &Outgoing) -> (u64, Vec<u8>) {
        match outgoing {
            Outgoing::Frame { frame, .. } => {
                let decoded = InputFrame::decode(frame).unwrap();
                (decoded.offset, decoded.data.to_vec())
            }
            other => panic!("not a frame: {other:?}"),
        }
    }

    fn send_all(input: &mut SessionInput) -> Vec<Outgoing> {
        let mut sent = Vec::new();
        while let Some(next) = input.next() {
            input.sent(next.progress());
            sent.push(next);
        }
        sent
    }

    #[test]
    fn nothing_goes_before_attached_then_everything_from_its_offset() {
        let mut input = SessionInput::new();
        input.push(b"early");
        assert_eq!(input.next(), None, "waiting for attached");
        // Another client's input came first: ours follows it.
        input.attached(Some(7));
        let sent = send_all(&mut input);
        assert_eq!(sent.len(), 1);
        assert_eq!(frame_of(&sent[0]), (7, b"early".to_vec()));
        input.end();
        assert_eq!(send_all(&mut input), [Outgoing::End(12)]);
        assert_eq!(input.next(), None, "the end goes once per connection");
    }

    #[test]
    fn a_reconnect_resends_what_was_not_acknowledged_and_the_end_again() {
        let mut input = SessionInput::new();
        input.attached(Some(0));
        input.push(b"hello ");
        input.push(b"world");
        input.end();
        let sent = send_all(&mut input);
        assert_eq!(frame_of(&sent[0]), (0, b"hello world".to_vec()));
        assert_eq!(sent[1], Outgoing::End(11));
        // Only "hello" was written before the connection dropped; the API
        // holds " w" too.
        input.acked(5);
        assert_eq!(input.unacknowledged(), 6);
        input.new_connection();
        assert_eq!(input.next(), None);
        input.attached(Some(7));
        let sent = send_all(&mut input);
        assert_eq!(frame_of(&sent[0]), (7, b"orld".to_vec()));
        assert_eq!(sent[1], Outgoing::End(11));
        // A restarted API knows only the worker's ack: resend from there.
        input.new_connection();
        input.attached(Some(5));
        assert_eq!(frame_of(&send_all(&mut input)[0]), (5, b" world".to_vec()));
        input.acked(11);
        assert_eq!(input.unacknowledged(), 0);
    }

    #[test]
    fn the_window_is_bounded_and_frees_on_acks() {
        let mut input = SessionInput::new();
        input.attached(Some(0));
        let chunk = vec![7u8; FRAME_BYTES];
        while input.wants_more() {
            input.push(&chunk);
        }
        assert_eq!(input.unacknowledged(), WINDOW_BYTES);
        let sent = send_all(&mut input);
        assert_eq!(sent.len(), WINDOW_BYTES / FRAME_BYTES);
        assert!(!input.wants_more(), "sent is not acknowledged");
        input.acked(FRAME_BYTES as u64);
        assert!(input.wants_more());
    }

    #[test]
    fn an_api_without_offsets_gets_raw_bytes_and_eof_once() {
        let mut input = SessionInput::new();
        input.push(b"abc");
        input.attached(None);
        input.end();
        assert_eq!(
            send_all(&mut input),
            [Outgoing::Raw(b"abc".to_vec()), Outgoing::RawEof]
        );
        assert_eq!(input.unacknowledged(), 0, "handed over is forgotten");
    }
}
