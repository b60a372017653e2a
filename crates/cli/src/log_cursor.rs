//! Where a reader of a job's log stands, so that a reconnect resumes exactly.
//!
//! Sequence numbers start at 1 and grow with every chunk of a job. The
//! cursor holds the highest one already printed. After a reconnect the API
//! may replay chunks the CLI already has (it resumes from what it was told,
//! and a proxy may have buffered more than arrived); the cursor drops those,
//! so that nothing is printed twice and, because the resume point is exactly
//! the last printed chunk, nothing is skipped.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCursor {
    last_printed_seq: i64,
}

impl LogCursor {
    /// Before the first chunk.
    pub fn from_start() -> Self {
        Self::default()
    }

    /// Just after the chunk `seq`, as when `--tail` already printed up to it.
    pub fn after(seq: i64) -> Self {
        Self {
            last_printed_seq: seq.max(0),
        }
    }

    /// The resume point to send as `after` and `Last-Event-ID`.
    pub fn last_seq(&self) -> i64 {
        self.last_printed_seq
    }

    /// Whether chunk `seq` is new. A new chunk moves the cursor past it, so
    /// the caller must print it.
    pub fn admit(&mut self, seq: i64) -> bool {
        if seq <= self.last_printed_seq {
            return false;
        }
        self.last_printed_seq = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_chunks_are_dropped_and_new_ones_admitted() {
        let mut cursor = LogCursor::from_start();
        // A first connection delivers 1..=3, then drops.
        let first: Vec<bool> = [1, 2, 3].map(|seq| cursor.admit(seq)).to_vec();
        assert_eq!(first, [true, true, true]);
        assert_eq!(cursor.last_seq(), 3);
        // The second replays 2 and 3 before going on with 4.
        let second: Vec<bool> = [2, 3, 4, 5].map(|seq| cursor.admit(seq)).to_vec();
        assert_eq!(second, [false, false, true, true]);
        assert_eq!(cursor.last_seq(), 5);
    }

    #[test]
    fn a_tail_resumes_after_its_last_chunk() {
        let mut cursor = LogCursor::after(41);
        assert!(!cursor.admit(41));
        assert!(cursor.admit(42));
        assert_eq!(LogCursor::after(-3).last_seq(), 0);
    }
}
