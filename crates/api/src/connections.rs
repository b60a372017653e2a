//! The connections the API holds: how many at once, and how long one may
//! wait without a request.
//!
//! - At most [`ConnectionSettings::max_connections`] connections are open
//!   (`JOBS_MAX_CONNECTIONS`; by default three quarters of the file
//!   descriptor limit, whose soft value is raised to the hard one at start,
//!   as most servers do). At the limit, a new connection closes the one
//!   idle the longest (no request in progress: silent, trickling its head,
//!   or kept alive between requests) to make room, as nginx reuses its
//!   idle keep-alive connections; when every connection is busy, new ones
//!   wait in the kernel's accept queue until one ends.
//! - A connection with no request in progress is closed after
//!   [`ConnectionSettings::idle_timeout`] (`JOBS_IDLE_TIMEOUT`), counted
//!   from its opening or from the end of its last response.
//! - A request head (request line and headers) must be complete within
//!   [`ConnectionSettings::header_read_timeout`] of its first byte
//!   (`JOBS_HEADER_READ_TIMEOUT`), and within the idle timeout.
//!
//! Request bodies have a minimum rate instead of a total time
//! ([`crate::body_rate`]), so that a large upload at any reasonable speed
//! goes through. Upgraded connections (WebSockets) are never idle: they
//! hold their slot until they close.
//!
//! [`Tracker`] and [`Connection`] keep the state; [`crate::serve`] runs the
//! accept loop and the connections with it.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// How long a request head may take from its first byte.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may stay without a request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The fewest connections the derived default allows.
const MIN_DEFAULT_CONNECTIONS: u64 = 64;
/// The most connections the derived default allows, whatever the limit.
const MAX_DEFAULT_CONNECTIONS: u64 = 262_144;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Connections open at once, TLS handshakes and WebSockets included.
    pub max_connections: usize,
    /// How long a request head may take from its first byte.
    pub header_read_timeout: Duration,
    /// How long a connection may stay with no request in progress.
    pub idle_timeout: Duration,
}

impl ConnectionSettings {
    /// The defaults, the connection limit derived from the file descriptor
    /// limit (raised first; see [`raise_fd_limit`]).
    pub fn from_fd_limit() -> Self {
        Self {
            max_connections: default_max_connections(raise_fd_limit()),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Three quarters of the descriptors: the rest is for the database pool,
/// upload files, relayed sockets and the connection that waits for a slot.
pub fn default_max_connections(fd_limit: u64) -> usize {
    let derived = (fd_limit / 4).saturating_mul(3);
    usize::try_from(derived.clamp(MIN_DEFAULT_CONNECTIONS, MAX_DEFAULT_CONNECTIONS))
        .unwrap_or(usize::MAX)
}

/// Raises the soft limit of open files to the hard one, once, and returns
/// the soft limit then in force. Each connection is a descriptor; the usual
/// soft limit (1,024) would cap the server far below what it can hold.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(
                from = limit.rlim_cur,
                to = limit.rlim_max,
                "raised the open file limit"
            );
            limit = raised;
        }
    }
    limit.rlim_cur
}

/// Why the server closed a connection, the `reason` label of
/// `jobs_api_connections_closed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No request within the idle timeout.
    IdleTimeout,
    /// A request head not complete within the header timeout.
    HeaderTimeout,
    /// Closed at the connection limit to make room for a new one.
    Limit,
    /// A request body below the minimum rate ([`crate::body_rate`]).
    BodyTooSlow,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::Limit => "limit",
            CloseReason::BodyTooSlow => "body_too_slow",
        }
    }
}

/// When a connection waiting for a request is closed, and why: the idle
/// timeout from `idle_since`, or the header timeout from the head's first
/// byte when that comes sooner.
pub fn waiting_deadline(
    idle_since: Instant,
    head_started: Option<Instant>,
    settings: &ConnectionSettings,
) -> (Instant, CloseReason) {
    let idle = idle_since + settings.idle_timeout;
    match head_started.map(|started| started + settings.header_read_timeout) {
        Some(header) if header < idle => (header, CloseReason::HeaderTimeout),
        _ => (idle, CloseReason::IdleTimeout),
    }
}

/// The gauge and counter of connections, registered in [`crate::metrics`].
#[derive(Clone)]
pub struct ConnectionMetrics {
    /// `jobs_api_connections`: open right now.
    pub open: IntGauge,
    /// `jobs_api_connections_closed_total{reason}`: closed by the server.
    pub closed: IntCounterVec,
}

impl ConnectionMetrics {
    pub fn count_close(&self, reason: CloseReason) {
        self.closed.with_label_values(&[reason.as_str()]).inc();
    }
}

/// Every connection of one server: the slots, and the idle ones in the
/// order they went idle, to close the idlest at the limit.
pub struct Tracker {
    settings: ConnectionSettings,
    slots: Arc<Semaphore>,
    idle: Mutex<BTreeMap<(Instant, u64), CancellationToken>>,
    next_id: AtomicU64,
    metrics: ConnectionMetrics,
}

impl Tracker {
    pub fn new(settings: ConnectionSettings, metrics: ConnectionMetrics) -> Arc<Self> {
        Arc::new(Self {
            settings,
            slots: Arc::new(Semaphore::new(settings.max_connections.max(1))),
            idle: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            metrics,
        })
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    pub fn metrics(&self) -> &ConnectionMetrics {
        &self.metrics
    }

    /// A free slot at once, or `None` at the limit.
    pub fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// Waits for a free slot.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .expect("the slots are never closed")
    }

    /// Asks the connection idle the longest to close; `false` when none is
    /// idle (every connection has a request in progress or is upgraded).
    pub fn close_idlest(&self) -> bool {
        let idlest = self.idle.lock().expect("idle lock").pop_first();
        match idlest {
            Some((_, close)) => {
                close.cancel();
                self.metrics.count_close(CloseReason::Limit);
                true
            }
            None => false,
        }
    }

    /// Registers a new connection that holds `slot`; it starts idle.
    pub fn register(self: &Arc<Self>, slot: OwnedSemaphorePermit) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let close = CancellationToken::new();
        self.idle
            .lock()
            .expect("idle lock")
            .insert((now, id), close.clone());
        self.metrics.open.inc();
        Arc::new(Connection {
            id,
            tracker: self.clone(),
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: now,
                head_started: None,
                done: false,
            }),
            close,
            _slot: slot,
        })
    }

    /// How many connections are idle (for tests).
    pub fn idle_count(&self) -> usize {
        self.idle.lock().expect("idle lock").len()
    }
}

struct State {
    /// Requests read and not yet answered to the end.
    in_flight: usize,
    /// When the last request ended, or the connection opened.
    idle_since: Instant,
    /// The first byte of the next request head, when one came.
    head_started: Option<Instant>,
    /// Ended, or upgraded: never idle again.
    done: bool,
}

/// One connection: shared by its task, its I/O (which outlives the task
/// when the connection is upgraded) and its requests. It holds its slot
/// until the last of them drops it.
pub struct Connection {
    id: u64,
    tracker: Arc<Tracker>,
    state: Mutex<State>,
    close: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Bytes came from the client: with no request in progress, they start
    /// a request head.
    pub fn on_read(&self) {
        let mut state = self.state.lock().expect("connection lock");
        if state.in_flight == 0 && state.head_started.is_none() && !state.done {
            state.head_started = Some(Instant::now());
        }
    }

    /// A request head was read; the connection is busy until the returned
    /// guard drops (with the end of its response body).
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut state = self.state.lock().expect("connection lock");
        if state.in_flight == 0 && !state.done {
            self.tracker
                .idle
                .lock()
                .expect("idle lock")
                .remove(&(state.idle_since, self.id));
        }
        state.in_flight += 1;
        state.head_started = None;
        RequestGuard(self.clone())
    }

    fn request_ended(&self) {
        let mut state = self.state.lock().expect("connection lock");
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 && !state.done {
            let now = Instant::now();
            state.idle_since = now;
            state.head_started = None;
            self.tracker
                .idle
                .lock()
                .expect("idle lock")
                .insert((now, self.id), self.close.clone());
        }
    }

    /// The connection ended, or was upgraded: it is never idle again.
    pub fn finish(&self) {
        let mut state = self.state.lock().expect("connection lock");
        if !state.done && state.in_flight == 0 {
            self.tracker
                .idle
                .lock()
                .expect("idle lock")
                .remove(&(state.idle_since, self.id));
        }
        state.done = true;
    }

    /// No request in progress.
    pub fn is_idle(&self) -> bool {
        self.state.lock().expect("connection lock").in_flight == 0
    }

    /// When the server closes this connection if nothing changes, and why;
    /// `None` while a request is in progress.
    pub fn deadline(&self) -> Option<(Instant, CloseReason)> {
        let state = self.state.lock().expect("connection lock");
        (state.in_flight == 0)
            .then(|| waiting_deadline(state.idle_since, state.head_started, &self.tracker.settings))
    }

    /// Resolves when the tracker asks this connection to close.
    pub async fn close_requested(&self) {
        self.close.cancelled().await;
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.tracker.metrics.open.dec();
    }
}

/// A request in progress on its connection.
pub struct RequestGuard(Arc<Connection>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn settings(max: usize) -> ConnectionSettings {
        ConnectionSettings {
            max_connections: max,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }

    fn tracker(max: usize) -> Arc<Tracker> {
        Tracker::new(
            settings(max),
            ConnectionMetrics {
                open: IntGauge::new("open", "open").unwrap(),
                closed: IntCounterVec::new(Opts::new("closed", "closed"), &["reason"]).unwrap(),
            },
        )
    }

    #[test]
    fn the_default_limit_is_three_quarters_of_the_descriptors_within_bounds() {
        assert_eq!(default_max_connections(20_000), 15_000);
        assert_eq!(default_max_connections(1_024), 768);
        assert_eq!(default_max_connections(16), 64);
        assert_eq!(default_max_connections(u64::MAX), 262_144);
    }

    #[test]
    fn a_waiting_connection_closes_at_the_idle_or_the_header_deadline_whichever_is_first() {
        let settings = settings(10);
        let opened = Instant::now();
        assert_eq!(
            waiting_deadline(opened, None, &settings),
            (opened + Duration::from_secs(60), CloseReason::IdleTimeout)
        );
        // A head that starts early must end within the header timeout.
        let early = opened + Duration::from_secs(5);
        assert_eq!(
            waiting_deadline(opened, Some(early), &settings),
            (early + Duration::from_secs(30), CloseReason::HeaderTimeout)
        );
        // One that starts late still ends within the idle timeout: silence
        // then a trickle is closed within 60 s of the last response.
        let late = opened + Duration::from_secs(50);
        assert_eq!(
            waiting_deadline(opened, Some(late), &settings),
            (opened + Duration::from_secs(60), CloseReason::IdleTimeout)
        );
    }

    #[test]
    fn busy_connections_have_no_deadline_and_the_idlest_is_closed_first() {
        let tracker = tracker(3);
        let first = tracker.register(tracker.try_slot().unwrap());
        let second = tracker.register(tracker.try_slot().unwrap());
        let third = tracker.register(tracker.try_slot().unwrap());
        assert!(tracker.try_slot().is_none(), "at the limit");
        assert_eq!(tracker.idle_count(), 3);

        // The first has a request in progress: not idle, no deadline.
        let request = first.request_started();
        assert!(first.deadline().is_none());
        assert_eq!(tracker.idle_count(), 2);

        // The idlest of the others is the second.
        assert!(tracker.close_idlest());
        assert!(second.close.is_cancelled());
        assert!(!third.close.is_cancelled());
        assert!(!first.close.is_cancelled());
        second.finish();
        drop(second);
        assert!(
            tracker.try_slot().is_some(),
            "the closed one's slot is free"
        );

        // The first's request ends: idle again, after the third.
        drop(request);
        assert!(first.is_idle());
        assert!(tracker.close_idlest());
        assert!(third.close.is_cancelled());
        assert!(tracker.close_idlest());
        assert!(first.close.is_cancelled());
        assert!(!tracker.close_idlest(), "nothing idle is left");
    }

    #[test]
    fn an_upgraded_connection_is_never_idle_again() {
        let tracker = tracker(2);
        let connection = tracker.register(tracker.try_slot().unwrap());
        let request = connection.request_started();
        connection.finish();
        drop(request);
        assert_eq!(tracker.idle_count(), 0);
        assert!(!tracker.close_idlest());
        // The slot is held as long as the connection (its upgraded I/O).
        let other = tracker.try_slot().expect("one slot is free");
        assert!(tracker.try_slot().is_none());
        drop(other);
        drop(connection);
        assert!(tracker.try_slot().is_some());
    }

    #[test]
    fn bytes_between_requests_start_a_head_and_a_request_clears_it() {
        let tracker = tracker(1);
        let connection = tracker.register(tracker.try_slot().unwrap());
        assert_eq!(connection.deadline().unwrap().1, CloseReason::IdleTimeout);
        connection.on_read();
        assert_eq!(connection.deadline().unwrap().1, CloseReason::HeaderTimeout);
        let request = connection.request_started();
        connection.on_read(); // the body's bytes
        drop(request);
        assert_eq!(connection.deadline().unwrap().1, CloseReason::IdleTimeout);
    }
}
