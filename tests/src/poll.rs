//! Waiting for a condition with a deadline.
//!
//! This is the only way the tests synchronise with the system: they never
//! sleep for a fixed time and hope. The short pause between two polls is not
//! synchronisation, only a way not to spin.

use std::time::{Duration, Instant};

/// How long to pause between two polls.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Calls `probe` until it returns `Some`, and returns that value.
///
/// Panics, naming `what`, if `timeout` passes first.
#[track_caller]
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Like [`wait_until`], but returns `None` on timeout instead of panicking.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
