//! `GET /v1/jobs/{id}/logs/stream`: a job's logs as Server-Sent Events.
//!
//! Each chunk is an `event: log` whose `id` is its sequence number, so that a
//! client that reconnects with `Last-Event-ID` resumes with no gap and no
//! duplicate. Once the job has ended and every chunk was sent, one
//! `event: end` carries the final job, and the stream closes.
//!
//! The stream is fed by one task per follower through a small bounded
//! channel: a slow client holds at most a few events in memory, and the task
//! waits for room instead of reading ahead. Between reads the task sleeps
//! until the database says the job changed (LISTEN/NOTIFY, fanned out by
//! [`jobs_store::JobNotifications`]) or a few seconds pass, so it
//! never polls in a tight loop.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::HeaderMap,
    response::{
        IntoResponse,
        sse::{Event, KeepAlive, Sse},
    },
};
use jobs_core::{InvalidInput, wire::Job};
use jobs_store::{Store, StoreError};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::{
    error::ApiError,
    extract::{PathParam, QueryParams},
    principal::{Principal, TokenKey},
    requests::FollowQuery,
    routes::jobs::visible_job,
    state::AppState,
    token_slots::TokenSlot,
};

/// How many log streams may be open at once; each token has a smaller
/// share of them (`JOBS_MAX_LOG_STREAMS_PER_TOKEN`, [`crate::token_slots`]).
pub const MAX_FOLLOWERS: usize = 1024;
/// How many chunks, and about how many bytes, one read takes.
const PAGE_CHUNKS: i64 = 256;
const PAGE_BYTES: i64 = 1024 * 1024;
/// How long a follower sleeps without a wake-up before it looks again; this
/// bounds the delay when a notification is lost (the listener reconnecting).
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How many events wait between the task and the client's connection.
const CHANNEL_EVENTS: usize = 16;

/// The stream handler. It answers a normal JSON 404 for an unknown job, and
/// only then switches to SSE.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/logs/stream",
    tag = "logs",
    params(
        ("id" = String, Path, description = "The job's id."),
        ("after" = Option<i64>, Query, description = "The sequence number to resume after; 0 by default."),
        ("Last-Event-ID" = Option<i64>, Header, description = "The sequence number to resume after; wins over `after`."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `event: log` with `id: SEQ` and a `LogChunk` as JSON data, then one `event: end` with the final `Job` as JSON data once the job has ended, then the stream closes.", content_type = "text/event-stream", body = String),
        (status = 404, description = "`not_found`: no such job, or one outside the token's app.", body = jobs_core::wire::ApiError),
        (status = 422, description = "`invalid_input`: an `after` or `Last-Event-ID` that is not a sequence number.", body = jobs_core::wire::ApiError),
        (status = 429, description = "`rate_limited`: this token already holds its limit of log streams open (`JOBS_MAX_LOG_STREAMS_PER_TOKEN`, 64 by default).", body = jobs_core::wire::ApiError),
        (status = 503, description = "`unavailable`: too many log streams are open; try again shortly.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn follow_logs(
    State(state): State<AppState>,
    principal: Principal,
    token: TokenKey,
    PathParam(job_id): PathParam<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<FollowQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            InvalidInput::new(
                "Last-Event-ID",
                "Last-Event-ID is not text: must be a log sequence number",
            )
        })?),
    };
    let after = query.resume_after(last_event_id)?;
    // The token's share first: one token cannot take every stream.
    let token_slot = state.log_streams_per_token.take(&token.0)?;
    let permit = state.followers.clone().try_acquire_owned().map_err(|_| {
        ApiError::Unavailable(format!(
            "too many log streams are open: the limit is {MAX_FOLLOWERS}; try again shortly"
        ))
    })?;
    // Subscribe before the first read: a change that lands between a read
    // and the wait is then still in the receiver, and not missed.
    let wake_ups = state.notifications.subscribe();
    visible_job(&state, &principal, &job_id).await?;

    let (sender, receiver) = mpsc::channel(CHANNEL_EVENTS);
    let follower = Follower {
        store: state.store.clone(),
        job_id,
        after,
        wake_ups,
        notifications_closed: false,
        sender,
        shutdown: state.shutdown.clone(),
        _slot: FollowerSlot::take(permit, state.metrics.followers.clone()),
        _token_slot: token_slot,
    };
    tokio::spawn(follower.run());
    let events = Sse::new(ReceiverStream::new(receiver)).keep_alive(
        KeepAlive::new()
            .interval(KEEP_ALIVE_INTERVAL)
            .text("keep-alive"),
    );
    // nginx buffers proxied responses by default, which would hold events
    // back; this header turns that off for this response only.
    Ok(([("x-accel-buffering", "no")], events))
}

/// Why a follower stopped early.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("the client went away")]
    ClientGone,
    #[error("the server is shutting down")]
    Shutdown,
    #[error("reading the job or its logs failed: {0}")]
    Store(#[from] StoreError),
    #[error("encoding an event failed: {0}")]
    Encode(#[from] axum::Error),
}

/// A place among the [`MAX_FOLLOWERS`], held for the life of the task, and
/// counted in the `jobs_api_followers` gauge.
struct FollowerSlot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl FollowerSlot {
    fn take(permit: OwnedSemaphorePermit, gauge: IntGauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge,
        }
    }
}

impl Drop for FollowerSlot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

struct Follower {
    store: Store,
    job_id: String,
    /// The last sequence number sent (or the resume point).
    after: i64,
    wake_ups: broadcast::Receiver<String>,
    notifications_closed: bool,
    sender: mpsc::Sender<Result<Event, Infallible>>,
    shutdown: CancellationToken,
    _slot: FollowerSlot,
    /// The token's share, held as long as the stream.
    _token_slot: TokenSlot,
}

impl Follower {
    async fn run(mut self) {
        match self.stream().await {
            Ok(()) => tracing::debug!(job_id = %self.job_id, "log stream ended with the job"),
            Err(Stop::ClientGone | Stop::Shutdown) => {
                tracing::debug!(job_id = %self.job_id, after = self.after, "log stream closed early");
            }
            // Ending the stream lets the client reconnect and resume from
            // its last event id, which is the most useful thing to offer.
            Err(error) => tracing::warn!(job_id = %self.job_id, %error, "log stream failed"),
        }
    }

    /// Sends every chunk after `self.after`, then the end event once the job
    /// has ended.
    ///
    /// The state is read before the logs: a worker stores all of a job's
    /// logs before it records the terminal state, so a terminal state
    /// followed by an empty page means that nothing is left to send.
    async fn stream(&mut self) -> Result<(), Stop> {
        loop {
            let job = self.store.get_job(&self.job_id).await?;
            let chunks = self
                .store
                .logs_after(&self.job_id, self.after, PAGE_CHUNKS, PAGE_BYTES)
                .await?;
            if chunks.is_empty() {
                if job.state.is_terminal() {
                    return self.send(end_event(&job)?).await;
                }
                self.wait_for_change().await?;
                continue;
            }
            for chunk in chunks {
                let seq = chunk.seq;
                let event = Event::default()
                    .event("log")
                    .id(seq.to_string())
                    .json_data(&chunk)?;
                self.send(event).await?;
                self.after = seq;
            }
        }
    }

    /// Waits for room in the channel; this is where a slow client slows the
    /// task down instead of growing a buffer.
    async fn send(&self, event: Event) -> Result<(), Stop> {
        tokio::select! {
            sent = self.sender.send(Ok(event)) => sent.map_err(|_| Stop::ClientGone),
            _ = self.shutdown.cancelled() => Err(Stop::Shutdown),
        }
    }

    /// Returns when this job may have changed: a notification for it, a
    /// lagged receiver (which may have dropped one), or the re-check timer.
    async fn wait_for_change(&mut self) -> Result<(), Stop> {
        let recheck = tokio::time::sleep(RECHECK_INTERVAL);
        tokio::pin!(recheck);
        loop {
            tokio::select! {
                _ = &mut recheck => return Ok(()),
                _ = self.sender.closed() => return Err(Stop::ClientGone),
                _ = self.shutdown.cancelled() => return Err(Stop::Shutdown),
                received = self.wake_ups.recv(), if !self.notifications_closed => {
                    match received {
                        Ok(job_id) if job_id == self.job_id => return Ok(()),
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return Ok(()),
                        // Without notifications the timer alone wakes us.
                        Err(broadcast::error::RecvError::Closed) => self.notifications_closed = true,
                    }
                }
            }
        }
    }
}

fn end_event(job: &Job) -> Result<Event, axum::Error> {
    Event::default().event("end").json_data(job)
}
