//! A minimum rate for request bodies, rather than a total time, so that a
//! 5 GiB upload at any reasonable speed goes through while a body that
//! trickles (or stops) does not hold its connection for ever.
//!
//! The time counted is the time the server waits for the client's bytes,
//! in windows of [`BodyRate::window`] (`JOBS_BODY_RATE_WINDOW`): a window
//! that brings fewer than `min_bytes_per_second × window` bytes
//! (`JOBS_MIN_BODY_RATE`) cuts the body off. Time the server itself spends
//! elsewhere (writing to the object store) is not the client's and is not
//! counted. The request is then answered with 408 `request_timeout` naming
//! the settings, and its connection is closed.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::error::ApiError;

/// Bytes per second a request body must average, by default.
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// The window over which the rate is measured, by default.
pub const DEFAULT_BODY_RATE_WINDOW: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRate {
    /// Bytes per second; 0 turns the check off.
    pub min_bytes_per_second: u64,
    pub window: Duration,
}

impl Default for BodyRate {
    fn default() -> Self {
        Self {
            min_bytes_per_second: DEFAULT_MIN_BODY_RATE,
            window: DEFAULT_BODY_RATE_WINDOW,
        }
    }
}

impl BodyRate {
    /// The bytes one window must bring.
    pub fn min_bytes_per_window(&self) -> u64 {
        (self.min_bytes_per_second as f64 * self.window.as_secs_f64()).ceil() as u64
    }

    fn message(&self) -> String {
        format!(
            "the request body came too slowly: fewer than {} bytes in {} of waiting; \
             the minimum is {} bytes per second (JOBS_MIN_BODY_RATE) over {} \
             (JOBS_BODY_RATE_WINDOW)",
            self.min_bytes_per_window(),
            humantime::format_duration(self.window),
            self.min_bytes_per_second,
            humantime::format_duration(self.window),
        )
    }
}

/// What the meter says of a body so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fine; look again at this moment if still waiting.
    CheckAt(Instant),
    Fine,
    TooSlow,
}

/// Counts a body's bytes against the time spent waiting for them. Pure:
/// time comes in as arguments.
#[derive(Debug)]
pub struct RateMeter {
    min_bytes: u64,
    window: Duration,
    /// Waiting time in this window before `waiting_since`.
    waited: Duration,
    bytes: u64,
    waiting_since: Option<Instant>,
}

impl RateMeter {
    pub fn new(rate: BodyRate) -> Self {
        Self {
            min_bytes: rate.min_bytes_per_window(),
            window: rate.window,
            waited: Duration::ZERO,
            bytes: 0,
            waiting_since: None,
        }
    }

    /// `bytes` came at `now`.
    pub fn received(&mut self, now: Instant, bytes: u64) -> Verdict {
        if let Some(since) = self.waiting_since.take() {
            self.waited += now.saturating_duration_since(since);
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.waited >= self.window {
            if self.bytes < self.min_bytes {
                return Verdict::TooSlow;
            }
            self.waited = Duration::ZERO;
            self.bytes = 0;
        }
        Verdict::Fine
    }

    /// The server waits for the client at `now` (and may have since an
    /// earlier call).
    pub fn waiting(&mut self, now: Instant) -> Verdict {
        let since = *self.waiting_since.get_or_insert(now);
        let waited = self.waited + now.saturating_duration_since(since);
        if waited < self.window {
            return Verdict::CheckAt(since + (self.window - self.waited));
        }
        if self.bytes < self.min_bytes {
            return Verdict::TooSlow;
        }
        // A good window: the next starts now.
        self.waited = Duration::ZERO;
        self.bytes = 0;
        self.waiting_since = Some(now);
        Verdict::CheckAt(now + self.window)
    }
}

/// The body was cut off for its rate.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TooSlow(String);

/// A request body under the meter.
struct MeteredBody {
    inner: Body,
    meter: RateMeter,
    rate: BodyRate,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    tripped: Arc<AtomicBool>,
}

impl HttpBody for MeteredBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let bytes = match &frame {
                Some(Ok(frame)) => frame.data_ref().map_or(0, |data| data.len() as u64),
                _ => 0,
            };
            if this.meter.received(Instant::now(), bytes) == Verdict::TooSlow {
                return this.cut();
            }
            return Poll::Ready(frame);
        }
        loop {
            match this.meter.waiting(Instant::now()) {
                Verdict::TooSlow => return this.cut(),
                Verdict::Fine => return Poll::Pending,
                Verdict::CheckAt(at) => {
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
                    if timer.deadline() != at.into() {
                        timer.as_mut().reset(at.into());
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl MeteredBody {
    fn cut(&mut self) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.tripped.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(TooSlow(self.rate.message())))))
    }
}

/// What the middleware needs: the rate and the counter of cut bodies.
#[derive(Clone)]
pub struct BodyRateCheck {
    pub rate: BodyRate,
    pub cut: prometheus::IntCounter,
}

/// Middleware: meters the request body; a body cut off for its rate gets
/// 408 `request_timeout` (whatever the handler made of the read error) and
/// its connection closed.
pub async fn enforce_min_body_rate(
    State(check): State<BodyRateCheck>,
    request: Request,
    next: Next,
) -> Response {
    if check.rate.min_bytes_per_second == 0 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let tripped = Arc::new(AtomicBool::new(false));
    let rate = check.rate;
    let flag = tripped.clone();
    let request = request.map(move |body| {
        Body::new(MeteredBody {
            inner: body,
            meter: RateMeter::new(rate),
            rate,
            timer: None,
            tripped: flag,
        })
    });
    let response = next.run(request).await;
    if !tripped.load(Ordering::Relaxed) {
        return response;
    }
    check.cut.inc();
    let mut response = ApiError::RequestTimeout(rate.message()).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: u64, window_seconds: u64) -> BodyRate {
        BodyRate {
            min_bytes_per_second: per_second,
            window: Duration::from_secs(window_seconds),
        }
    }

    #[test]
    fn a_window_of_waiting_with_too_few_bytes_is_too_slow() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut meter = RateMeter::new(rate(100, 10));
        assert_eq!(meter.waiting(at(0)), Verdict::CheckAt(at(10)));
        assert_eq!(meter.received(at(4), 500), Verdict::Fine);
        assert_eq!(meter.waiting(at(4)), Verdict::CheckAt(at(10)));
        assert_eq!(meter.waiting(at(10)), Verdict::TooSlow);
    }

    #[test]
    fn enough_bytes_open_a_new_window() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut meter = RateMeter::new(rate(100, 10));
        meter.waiting(at(0));
        assert_eq!(meter.received(at(9), 1000), Verdict::Fine);
        assert_eq!(meter.waiting(at(9)), Verdict::CheckAt(at(10)));
        assert_eq!(meter.waiting(at(10)), Verdict::CheckAt(at(20)));
        // The new window starts empty.
        assert_eq!(meter.waiting(at(20)), Verdict::TooSlow);
    }

    #[test]
    fn time_the_server_spends_elsewhere_is_not_counted() {
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let mut meter = RateMeter::new(rate(100, 10));
        meter.waiting(at(0));
        assert_eq!(meter.received(at(1), 10), Verdict::Fine);
        // The handler takes 60 s to store what it read; then waits again.
        assert_eq!(meter.waiting(at(61)), Verdict::CheckAt(at(70)));
    }

    #[test]
    fn a_fast_body_is_never_cut() {
        let start = Instant::now();
        let mut meter = RateMeter::new(rate(1024, 20));
        for millis in 0..10_000 {
            let now = start + Duration::from_millis(millis);
            assert_ne!(meter.waiting(now), Verdict::TooSlow);
            assert_eq!(meter.received(now, 64 * 1024), Verdict::Fine);
        }
    }

    #[test]
    fn the_message_names_the_settings() {
        let message = rate(1024, 20).message();
        assert!(message.contains("20480 bytes in 20s"), "{message}");
        assert!(message.contains("JOBS_MIN_BODY_RATE"), "{message}");
        assert!(message.contains("JOBS_BODY_RATE_WINDOW"), "{message}");
    }
}
