//! Exactly-once stdin: the bookkeeping of a run's input stream, the same
//! at each of its three holders.
//!
//! Every stdin byte of a run has an offset in one stream of bytes that
//! starts at 0 and may end once (EOF). The worker is the point of truth:
//! it writes each byte into the container's stdin once, in order, and
//! acknowledges the offset up to which it wrote. The CLI and the API each
//! keep an [`InputWindow`]: the bytes they took but the worker has not
//! acknowledged yet. A cut connection loses nothing, because the sender
//! still holds what was not acknowledged and sends it again; and repeats
//! nothing, because a receiver drops what lies below what it already has
//! ([`InputWindow::accept`], [`fresh_part`]).

use std::collections::VecDeque;

/// The bytes before the data in an input frame.
pub const INPUT_HEADER_BYTES: usize = 9;
/// The first byte of an input frame: stdin bytes (the only kind so far).
pub const INPUT_KIND_STDIN: u8 = 0;

/// One input frame: stdin bytes and the offset of the first of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputFrame<'a> {
    pub offset: u64,
    pub data: &'a [u8],
}

impl InputFrame<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(INPUT_HEADER_BYTES + self.data.len());
        frame.push(INPUT_KIND_STDIN);
        frame.extend_from_slice(&self.offset.to_be_bytes());
        frame.extend_from_slice(self.data);
        frame
    }

    pub fn decode(frame: &[u8]) -> Result<InputFrame<'_>, InputFrameError> {
        if frame.len() < INPUT_HEADER_BYTES {
            return Err(InputFrameError::Short(frame.len()));
        }
        if frame[0] != INPUT_KIND_STDIN {
            return Err(InputFrameError::Kind(frame[0]));
        }
        let offset = u64::from_be_bytes(frame[1..INPUT_HEADER_BYTES].try_into().expect("8 bytes"));
        Ok(InputFrame {
            offset,
            data: &frame[INPUT_HEADER_BYTES..],
        })
    }

    /// The offset after the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputFrameError {
    #[error("an input frame needs {INPUT_HEADER_BYTES} header bytes, got {0}")]
    Short(usize),
    #[error("unknown input frame kind {0}")]
    Kind(u8),
}

/// What a receiver that has every byte below `next` should do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Write the frame's bytes from this index on; those before it are
    /// duplicates (a resend). The index may be the frame's length: nothing
    /// new.
    From(usize),
    /// The frame starts after `next`: bytes in between are missing, so none
    /// of it may be written yet. The sender resends from the receiver's
    /// acknowledged offset after its next reconnect.
    Gap,
}

/// Which part of `frame` is new to a receiver that holds every byte below
/// `next`.
pub fn fresh_part(next: u64, frame: &InputFrame<'_>) -> Fresh {
    if frame.offset > next {
        return Fresh::Gap;
    }
    let skip = (next - frame.offset).min(frame.data.len() as u64);
    Fresh::From(skip as usize)
}

/// What [`InputWindow::accept`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// This many new bytes were added (0: a duplicate).
    New(usize),
    /// The frame starts after the window's end; nothing was added.
    Gap { expected: u64 },
    /// The window has no position yet; nothing was added.
    Unplaced,
    /// The input has ended; nothing may follow its end.
    AfterEnd,
}

/// A contiguous run of input bytes that its holder took but the worker
/// has not acknowledged yet: `[start, end)`, and whether the input ends at
/// `end`.
///
/// A window may be unplaced: it holds bytes whose offsets are not known
/// yet (a client attaching to a run whose input others began, an API that
/// restarted before the worker told it where the stream is). Placing it
/// numbers those bytes from the given offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputWindow {
    start: Option<u64>,
    data: VecDeque<u8>,
    ended: bool,
}

impl InputWindow {
    /// A window with no position yet.
    pub fn unplaced() -> Self {
        Self::default()
    }

    /// An empty window at `start`.
    pub fn at(start: u64) -> Self {
        Self {
            start: Some(start),
            ..Self::default()
        }
    }

    /// Gives an unplaced window its start; returns false (and changes
    /// nothing) if it had one.
    pub fn place(&mut self, start: u64) -> bool {
        if self.start.is_some() {
            return false;
        }
        self.start = Some(start);
        true
    }

    pub fn is_placed(&self) -> bool {
        self.start.is_some()
    }

    /// The offset of the first byte held: everything below it is
    /// acknowledged.
    pub fn start(&self) -> Option<u64> {
        self.start
    }

    /// The offset of the next byte to come.
    pub fn end(&self) -> Option<u64> {
        self.start.map(|start| start + self.data.len() as u64)
    }

    /// The bytes held.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether the input ends at [`InputWindow::end`].
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Appends bytes that come next (local stdin, or a client that sends
    /// no offsets). Bytes after the end are dropped: there are none.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.ended {
            self.data.extend(bytes);
        }
    }

    /// The input ends after the bytes pushed so far.
    pub fn end_input(&mut self) {
        self.ended = true;
    }

    /// Adds the new part of a frame: bytes below the end are duplicates
    /// and dropped.
    pub fn accept(&mut self, frame: &InputFrame<'_>) -> Accepted {
        let Some(end) = self.end() else {
            return Accepted::Unplaced;
        };
        match fresh_part(end, frame) {
            Fresh::Gap => Accepted::Gap { expected: end },
            Fresh::From(skip) => {
                let new = &frame.data[skip..];
                if new.is_empty() {
                    return Accepted::New(0);
                }
                if self.ended {
                    return Accepted::AfterEnd;
                }
                self.data.extend(new);
                Accepted::New(new.len())
            }
        }
    }

    /// The input ends at `offset`, as its sender says: taken once every
    /// byte before it is here. Returns whether the window is ended now.
    pub fn accept_end(&mut self, offset: u64) -> bool {
        if self.end() == Some(offset) {
            self.ended = true;
        }
        self.ended
    }

    /// Everything below `offset` is acknowledged: drops it. An offset past
    /// the end acknowledges the whole window (never more). Returns the
    /// bytes dropped.
    pub fn ack(&mut self, offset: u64) -> usize {
        let (Some(start), Some(end)) = (self.start, self.end()) else {
            return 0;
        };
        let upto = offset.clamp(start, end);
        let dropped = (upto - start) as usize;
        self.data.drain(..dropped);
        self.start = Some(upto);
        dropped
    }

    /// Moves an empty window to `offset`: the receiver is ahead of what
    /// this holder knew (bytes another holder sent). Returns false if
    /// bytes are held, which would be renumbered.
    pub fn skip_to(&mut self, offset: u64) -> bool {
        if !self.data.is_empty() {
            return false;
        }
        if self.start.is_none_or(|start| start < offset) {
            self.start = Some(offset);
        }
        true
    }

    /// Up to `max` bytes from `offset` on (never before the start); `None`
    /// when there are none, or the window is unplaced.
    pub fn chunk_at(&self, offset: u64, max: usize) -> Option<(u64, Vec<u8>)> {
        let (start, end) = (self.start?, self.end()?);
        let from = offset.max(start);
        if from >= end {
            return None;
        }
        let skip = (from - start) as usize;
        let take = ((end - from) as usize).min(max);
        // Two slice copies rather than a byte-by-byte iterator: this is
        // the hot path of every stdin byte.
        let mut chunk = Vec::with_capacity(take);
        let (front, back) = self.data.as_slices();
        let wanted = skip..skip + take;
        if wanted.start < front.len() {
            chunk.extend_from_slice(&front[wanted.start..wanted.end.min(front.len())]);
        }
        if wanted.end > front.len() {
            let from_back = wanted.start.saturating_sub(front.len());
            chunk.extend_from_slice(&back[from_back..wanted.end - front.len()]);
        }
        Some((from, chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(offset: u64, data: &[u8]) -> InputFrame<'_> {
        InputFrame { offset, data }
    }

    #[test]
    fn input_frames_round_trip_any_bytes() {
        for offset in [0, 1, u64::MAX] {
            let data = [0u8, 0xff, b'\n'];
            let encoded = frame(offset, &data).encode();
            assert_eq!(encoded[0], INPUT_KIND_STDIN);
            assert_eq!(InputFrame::decode(&encoded), Ok(frame(offset, &data)));
        }
        assert_eq!(
            InputFrame::decode(&frame(7, &[]).encode()),
            Ok(frame(7, &[]))
        );
        assert_eq!(InputFrame::decode(&[0, 1]), Err(InputFrameError::Short(2)));
        assert_eq!(
            InputFrame::decode(&[5, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(InputFrameError::Kind(5))
        );
    }

    #[test]
    fn a_receiver_keeps_only_what_it_has_not_got() {
        assert_eq!(fresh_part(10, &frame(10, b"abc")), Fresh::From(0));
        assert_eq!(fresh_part(11, &frame(10, b"abc")), Fresh::From(1));
        assert_eq!(fresh_part(13, &frame(10, b"abc")), Fresh::From(3));
        assert_eq!(fresh_part(50, &frame(10, b"abc")), Fresh::From(3));
        assert_eq!(fresh_part(9, &frame(10, b"abc")), Fresh::Gap);
    }

    #[test]
    fn a_window_drops_duplicates_and_refuses_gaps() {
        let mut window = InputWindow::at(100);
        assert_eq!(window.accept(&frame(100, b"hello")), Accepted::New(5));
        // A resend that overlaps: only the new tail is taken.
        assert_eq!(window.accept(&frame(103, b"lo world")), Accepted::New(6));
        assert_eq!(window.accept(&frame(100, b"hel")), Accepted::New(0));
        assert_eq!(
            window.accept(&frame(200, b"x")),
            Accepted::Gap { expected: 111 }
        );
        assert_eq!(window.chunk_at(0, 64), Some((100, b"hello world".to_vec())));
        assert_eq!(
            InputWindow::unplaced().accept(&frame(0, b"x")),
            Accepted::Unplaced
        );
    }

    #[test]
    fn acks_free_the_window_and_never_more_than_it_holds() {
        let mut window = InputWindow::at(0);
        window.push(b"0123456789");
        assert_eq!(window.ack(4), 4);
        assert_eq!((window.start(), window.end()), (Some(4), Some(10)));
        assert_eq!(window.ack(2), 0, "an old ack changes nothing");
        assert_eq!(window.chunk_at(0, 3), Some((4, b"456".to_vec())));
        assert_eq!(window.chunk_at(8, 64), Some((8, b"89".to_vec())));
        assert_eq!(window.chunk_at(10, 64), None);
        assert_eq!(window.ack(99), 6);
        assert_eq!((window.start(), window.end()), (Some(10), Some(10)));
        assert!(window.is_empty());
    }

    #[test]
    fn chunks_are_right_across_the_ring_buffers_wrap() {
        let mut window = InputWindow::at(0);
        let mut expected = Vec::new();
        for round in 0..50u32 {
            let bytes: Vec<u8> = (0..37).map(|n| (n * 7 + round) as u8).collect();
            window.push(&bytes);
            expected.extend_from_slice(&bytes);
            // Free a part, so that the ring buffer wraps around.
            let freed = window.ack(window.start().unwrap() + 20);
            expected.drain(..freed);
            let start = window.start().unwrap();
            for (skip, max) in [(0, 1000), (3, 10), (15, 9)] {
                let got = window.chunk_at(start + skip as u64, max).unwrap().1;
                let end = (skip + max).min(expected.len());
                assert_eq!(got, expected[skip..end], "round {round}");
            }
        }
    }

    #[test]
    fn an_unplaced_window_numbers_its_bytes_once_placed() {
        let mut window = InputWindow::unplaced();
        window.push(b"typed early");
        assert_eq!(window.end(), None);
        assert_eq!(window.chunk_at(0, 64), None);
        assert!(window.place(40));
        assert!(!window.place(0), "placed once");
        assert_eq!(window.chunk_at(0, 5), Some((40, b"typed".to_vec())));
        assert_eq!(window.end(), Some(51));
    }

    #[test]
    fn the_end_is_taken_once_every_byte_before_it_is_there() {
        let mut window = InputWindow::at(0);
        window.accept(&frame(0, b"abc"));
        assert!(!window.accept_end(5), "two bytes are missing");
        assert_eq!(window.accept(&frame(3, b"de")), Accepted::New(2));
        assert!(window.accept_end(5));
        assert!(window.accept_end(5), "a repeated end is the same end");
        assert_eq!(window.accept(&frame(0, b"abcde")), Accepted::New(0));
        assert_eq!(window.accept(&frame(5, b"f")), Accepted::AfterEnd);
        window.push(b"g");
        assert_eq!(window.end(), Some(5), "nothing follows the end");
    }

    #[test]
    fn an_empty_window_skips_ahead_but_never_renumbers_bytes() {
        let mut window = InputWindow::at(3);
        assert!(window.skip_to(9));
        assert_eq!(window.start(), Some(9));
        assert!(window.skip_to(5));
        assert_eq!(window.start(), Some(9), "never backwards");
        window.push(b"x");
        assert!(!window.skip_to(20));
        assert_eq!(window.start(), Some(9));
    }

    /// The whole protocol in miniature: a sender's window, a receiver that
    /// writes what is new and acknowledges, and connections that lose
    /// whatever was in flight. Every byte arrives once, in order.
    #[test]
    fn resends_after_lost_connections_deliver_every_byte_once() {
        let data: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
        let mut sender = InputWindow::at(0);
        let mut written: Vec<u8> = Vec::new();
        let mut fed = 0;
        for connection in 0..50u64 {
            // Every other connection, the receiver's acknowledgement is
            // lost: the sender resends from the last one it heard, and
            // the receiver drops what it already wrote.
            if connection % 2 == 0 {
                sender.ack(written.len() as u64);
            }
            let mut cursor = sender.start().expect("placed");
            // New input, as much as the window allows.
            let room = 3_000 - sender.len();
            let more = (data.len() - fed).min(room).min(700);
            sender.push(&data[fed..fed + more]);
            fed += more;
            // Some frames get through, the one after them is lost, and the
            // acknowledgement of the last one is lost too.
            for index in 0..(connection % 4) {
                let Some((offset, bytes)) = sender.chunk_at(cursor, 97 + index as usize) else {
                    break;
                };
                let frame = frame(offset, &bytes);
                cursor = frame.end();
                if let Fresh::From(skip) = fresh_part(written.len() as u64, &frame) {
                    written.extend_from_slice(&frame.data[skip..]);
                }
            }
        }
        // The last connection stays up until everything is through.
        loop {
            sender.ack(written.len() as u64);
            if fed < data.len() {
                let more = (data.len() - fed).min(3_000 - sender.len());
                sender.push(&data[fed..fed + more]);
                fed += more;
            }
            let cursor = sender.start().expect("placed");
            let Some((offset, bytes)) = sender.chunk_at(cursor, 512) else {
                break;
            };
            let frame = frame(offset, &bytes);
            if let Fresh::From(skip) = fresh_part(written.len() as u64, &frame) {
                written.extend_from_slice(&frame.data[skip..]);
            }
        }
        assert_eq!(written, data);
    }
}
