//! Per-token limits on what a token holds open: log streams
//! ([`crate::follow`]) and attach sockets ([`crate::attach`]), well below
//! the server's own limits, so that one token cannot take every slot.
//!
//! Tokens are told apart by the SHA-256 of the presented secret, as the
//! request rate is ([`crate::rate_limit`]); the bootstrap admin token has
//! its own count. An entry lives only while its token holds something
//! open, so memory is bounded by what is open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::error::ApiError;

/// Log streams one token may hold open, by default.
pub const DEFAULT_LOG_STREAMS_PER_TOKEN: usize = 64;
/// Attach sockets one token may hold open, by default.
pub const DEFAULT_ATTACH_SOCKETS_PER_TOKEN: usize = 16;

/// The open things of every token, of one kind.
pub struct TokenSlots {
    limit: usize,
    /// What is counted, plural: "log streams".
    what: &'static str,
    /// The environment variable that sets the limit.
    setting: &'static str,
    held: Mutex<HashMap<Vec<u8>, usize>>,
}

impl TokenSlots {
    pub fn new(limit: usize, what: &'static str, setting: &'static str) -> Arc<Self> {
        Arc::new(Self {
            limit,
            what,
            setting,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one for the token `key`, or refuses with 429 `rate_limited`
    /// naming the limit and its setting.
    pub fn take(self: &Arc<Self>, key: &[u8]) -> Result<TokenSlot, ApiError> {
        let mut held = self.held.lock().expect("token slots lock");
        let count = held.entry(key.to_vec()).or_insert(0);
        if *count >= self.limit {
            return Err(ApiError::TooManyRequests {
                code: "rate_limited",
                message: format!(
                    "this token already has {} {} open: the limit is {} per token ({}); \
                     close one, or use another token",
                    count, self.what, self.limit, self.setting
                ),
                retry_after: None,
            });
        }
        *count += 1;
        Ok(TokenSlot {
            slots: self.clone(),
            key: key.to_vec(),
        })
    }

    /// How many tokens hold something open.
    pub fn tokens(&self) -> usize {
        self.held.lock().expect("token slots lock").len()
    }
}

/// One open thing of a token; given back on drop.
pub struct TokenSlot {
    slots: Arc<TokenSlots>,
    key: Vec<u8>,
}

impl Drop for TokenSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().expect("token slots lock");
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_past_its_limit_gets_429_naming_it_and_others_are_not_affected() {
        let slots = TokenSlots::new(2, "log streams", "JOBS_MAX_LOG_STREAMS_PER_TOKEN");
        let first = slots.take(b"a").unwrap();
        let _second = slots.take(b"a").unwrap();
        let refused = slots.take(b"a").err().expect("over the limit");
        assert_eq!(refused.status().as_u16(), 429);
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(
            refused.to_string(),
            "this token already has 2 log streams open: the limit is 2 per token \
             (JOBS_MAX_LOG_STREAMS_PER_TOKEN); close one, or use another token"
        );
        let _other = slots.take(b"b").unwrap();
        drop(first);
        let _again = slots.take(b"a").unwrap();
    }

    #[test]
    fn entries_go_when_their_count_drops_to_zero() {
        let slots = TokenSlots::new(3, "attach sockets", "X");
        let held: Vec<_> = (0..100u8).map(|key| slots.take(&[key]).unwrap()).collect();
        assert_eq!(slots.tokens(), 100);
        drop(held);
        assert_eq!(slots.tokens(), 0);
    }
}
