//! The Ctrl-P Ctrl-Q sequence that leaves an attached TTY session while the
//! job goes on, as `docker attach` has it.
//!
//! In raw mode every key is a byte for the container, Ctrl-C included, so
//! leaving needs a sequence no program is likely to want. A Ctrl-P is held
//! back until the next byte decides: Ctrl-Q detaches (neither byte is
//! sent), anything else sends the held Ctrl-P and then that byte as usual.
//! A held Ctrl-P waits for as long as it takes, possibly into the next read.

/// Ctrl-P.
pub const CTRL_P: u8 = 0x10;
/// Ctrl-Q.
pub const CTRL_Q: u8 = 0x11;

/// What one chunk of typed input amounts to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// The bytes for the container, in order.
    pub forward: Vec<u8>,
    /// The user typed Ctrl-P Ctrl-Q; whatever followed it in the chunk is
    /// dropped, since the session ends there.
    pub detach: bool,
}

#[derive(Debug, Default)]
pub struct DetachKeys {
    holding_ctrl_p: bool,
}

impl DetachKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Splits a chunk of typed bytes into what to send and whether to detach.
    pub fn filter(&mut self, input: &[u8]) -> Filtered {
        let mut forward = Vec::with_capacity(input.len() + 1);
        for &byte in input {
            if self.holding_ctrl_p {
                self.holding_ctrl_p = false;
                if byte == CTRL_Q {
                    return Filtered {
                        forward,
                        detach: true,
                    };
                }
                forward.push(CTRL_P);
            }
            if byte == CTRL_P {
                self.holding_ctrl_p = true;
            } else {
                forward.push(byte);
            }
        }
        Filtered {
            forward,
            detach: false,
        }
    }

    /// At the end of input, a Ctrl-P still held is just a Ctrl-P.
    pub fn finish(&mut self) -> Option<u8> {
        std::mem::take(&mut self.holding_ctrl_p).then_some(CTRL_P)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(bytes: &[u8]) -> Filtered {
        Filtered {
            forward: bytes.to_vec(),
            detach: false,
        }
    }

    #[test]
    fn ordinary_bytes_and_ctrl_c_pass_through() {
        let mut keys = DetachKeys::new();
        assert_eq!(
            keys.filter(b"echo hi\r\x03\x11"),
            forward(b"echo hi\r\x03\x11")
        );
        assert_eq!(keys.finish(), None);
    }

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_sends_neither() {
        let mut keys = DetachKeys::new();
        assert_eq!(
            keys.filter(b"ls\x10\x11more"),
            Filtered {
                forward: b"ls".to_vec(),
                detach: true
            }
        );
    }

    #[test]
    fn the_sequence_may_straddle_two_reads() {
        let mut keys = DetachKeys::new();
        assert_eq!(keys.filter(b"a\x10"), forward(b"a"));
        assert_eq!(
            keys.filter(b"\x11"),
            Filtered {
                forward: vec![],
                detach: true
            }
        );
    }

    #[test]
    fn a_ctrl_p_followed_by_anything_else_is_sent_as_is() {
        let mut keys = DetachKeys::new();
        assert_eq!(keys.filter(b"\x10x"), forward(b"\x10x"));
        // Held into the next read, then released by an ordinary byte.
        assert_eq!(keys.filter(b"\x10"), forward(b""));
        assert_eq!(keys.filter(b"y"), forward(b"\x10y"));
    }

    #[test]
    fn ctrl_p_twice_sends_the_first_and_holds_the_second() {
        let mut keys = DetachKeys::new();
        assert_eq!(keys.filter(b"\x10\x10"), forward(b"\x10"));
        assert_eq!(
            keys.filter(b"\x11"),
            Filtered {
                forward: vec![],
                detach: true
            }
        );
        assert_eq!(keys.filter(b"\x10\x10z"), forward(b"\x10\x10z"));
    }

    #[test]
    fn a_ctrl_p_held_at_the_end_of_input_is_released() {
        let mut keys = DetachKeys::new();
        assert_eq!(keys.filter(b"\x10"), forward(b""));
        assert_eq!(keys.finish(), Some(CTRL_P));
        assert_eq!(keys.finish(), None);
    }
}
