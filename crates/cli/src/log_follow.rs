//! Following a job's log stream until the job ends, across any number of
//! dropped connections.
//!
//! The API serves `GET /v1/jobs/{id}/logs/stream` as Server-Sent Events:
//! `event: log` with `id: SEQ` and a `LogChunk`, then one `event: end` with
//! the final `Job` once every chunk was sent. A connection that drops, goes
//! quiet, or ends without `end` is reopened from the last printed sequence
//! number, after a delay that doubles from 200 ms to 5 s, for as long as the
//! API's answers say that trying again may work. A refusal (401, 404) ends
//! the follow with that error.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use jobs_core::wire::{Job, LogChunk};

use crate::backoff::Backoff;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::log_cursor::LogCursor;
use crate::output::{self, LogSink};

const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(200);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);

/// A stream silent for this long is presumed dead and reopened. A laptop
/// that slept leaves behind connections that look open but never deliver;
/// only a deadline notices. Reopening a healthy but quiet stream costs one
/// request and loses nothing, since the resume is exact.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// Prints the job's chunks after `cursor` through `sink` until the API says
/// the job ended, and returns the ended job.
pub async fn follow_until_end(
    client: &ApiClient,
    job_id: &str,
    cursor: &mut LogCursor,
    sink: &mut LogSink,
) -> Result<Job, CliError> {
    let mut backoff = Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY);
    let mut outage_reported = false;
    loop {
        let session = follow_one_connection(client, job_id, cursor, sink).await?;
        if session.received_events {
            backoff.reset();
            outage_reported = false;
        }
        match session.outcome {
            SessionOutcome::JobEnded(job) => return Ok(*job),
            // A quiet stream is routine: reopen it at once, without a word.
            SessionOutcome::WentIdle => {}
            SessionOutcome::Interrupted(cause) => {
                if !outage_reported {
                    output::print_reconnecting(&cause);
                    outage_reported = true;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

struct Session {
    /// Whether the connection delivered anything, which proves the API
    /// healthy enough to start the next reconnect from a short delay.
    received_events: bool,
    outcome: SessionOutcome,
}

enum SessionOutcome {
    JobEnded(Box<Job>),
    WentIdle,
    /// The connection failed in a way that trying again may fix.
    Interrupted(CliError),
}

/// One connection: open it after the cursor, print what it brings, and say
/// how it ended. Errors that retrying cannot fix come back as `Err`.
async fn follow_one_connection(
    client: &ApiClient,
    job_id: &str,
    cursor: &mut LogCursor,
    sink: &mut LogSink,
) -> Result<Session, CliError> {
    let interrupted = |cause| Session {
        received_events: false,
        outcome: SessionOutcome::Interrupted(cause),
    };
    // An API that accepts the connection but never answers is as good as
    // gone; the same deadline as for a quiet stream applies.
    let opening = client.open_log_stream(job_id, cursor.last_seq());
    let response = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, opening).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) if err.is_retryable() => return Ok(interrupted(err)),
        Ok(Err(err)) => return Err(err),
        Err(_elapsed) => {
            return Ok(interrupted(stream_broke(
                client,
                &"no answer to the log stream request",
            )));
        }
    };

    let mut events = response.bytes_stream().eventsource();
    let mut received_events = false;
    loop {
        let next = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, events.next()).await {
            Ok(next) => next,
            Err(_elapsed) => {
                return Ok(Session {
                    received_events,
                    outcome: SessionOutcome::WentIdle,
                });
            }
        };
        let event = match next {
            Some(Ok(event)) => event,
            Some(Err(err)) => {
                return Ok(Session {
                    received_events,
                    outcome: SessionOutcome::Interrupted(stream_broke(client, &err)),
                });
            }
            None => {
                return Ok(Session {
                    received_events,
                    outcome: SessionOutcome::Interrupted(stream_broke(
                        client,
                        &"the API closed the log stream before the job ended",
                    )),
                });
            }
        };
        received_events = true;
        if let Some(job) = handle_event(&event, cursor, sink)? {
            return Ok(Session {
                received_events,
                outcome: SessionOutcome::JobEnded(Box::new(job)),
            });
        }
    }
}

/// Prints a `log` event's chunk unless it was printed already, and returns
/// the job of an `end` event. Other events (keep-alives, future kinds) are
/// ignored.
fn handle_event(
    event: &Event,
    cursor: &mut LogCursor,
    sink: &mut LogSink,
) -> Result<Option<Job>, CliError> {
    match event.event.as_str() {
        "log" => {
            let chunk: LogChunk = serde_json::from_str(&event.data).map_err(|err| {
                CliError::UnexpectedAnswer(format!(
                    "the API sent a log event this CLI does not understand: {err}"
                ))
            })?;
            if cursor.admit(chunk.seq) {
                sink.write(chunk.stream, &chunk_bytes(&chunk)?)?;
            }
            Ok(None)
        }
        "end" => {
            let job: Job = serde_json::from_str(&event.data).map_err(|err| {
                CliError::UnexpectedAnswer(format!(
                    "the API sent an end event this CLI does not understand: {err}"
                ))
            })?;
            Ok(Some(job))
        }
        _ => Ok(None),
    }
}

/// The bytes a chunk carries; data that is not base64 is an API bug, not
/// something to print.
pub fn chunk_bytes(chunk: &LogChunk) -> Result<Vec<u8>, CliError> {
    chunk.bytes().map_err(|err| {
        CliError::UnexpectedAnswer(format!(
            "the API sent log chunk {} with data that is not base64: {err}",
            chunk.seq
        ))
    })
}

fn stream_broke(client: &ApiClient, cause: &dyn std::fmt::Display) -> CliError {
    CliError::Unreachable {
        api_url: client.api_url().to_owned(),
        cause: cause.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_event(seq: i64, data: &[u8]) -> Event {
        let chunk = LogChunk::new(
            seq,
            jobs_core::wire::LogStream::Stdout,
            chrono::Utc::now(),
            data,
        );
        Event {
            event: "log".into(),
            data: serde_json::to_string(&chunk).unwrap(),
            id: seq.to_string(),
            retry: None,
        }
    }

    #[test]
    fn replayed_log_events_move_nothing() {
        let mut cursor = LogCursor::after(2);
        let mut sink = LogSink::new();
        assert!(
            handle_event(&log_event(2, b""), &mut cursor, &mut sink)
                .unwrap()
                .is_none()
        );
        assert_eq!(cursor.last_seq(), 2);
        assert!(
            handle_event(&log_event(3, b""), &mut cursor, &mut sink)
                .unwrap()
                .is_none()
        );
        assert_eq!(cursor.last_seq(), 3);
    }

    #[test]
    fn the_end_event_carries_the_job() {
        let job = crate::job_end::tests::job(jobs_core::JobState::Succeeded, Some(0), None);
        let event = Event {
            event: "end".into(),
            data: serde_json::to_string(&job).unwrap(),
            id: String::new(),
            retry: None,
        };
        let mut cursor = LogCursor::from_start();
        let ended = handle_event(&event, &mut cursor, &mut LogSink::new()).unwrap();
        assert_eq!(ended, Some(job));
    }

    #[test]
    fn unknown_events_are_ignored_and_garbage_is_an_error() {
        let mut cursor = LogCursor::from_start();
        let ping = Event {
            event: "ping".into(),
            ..Event::default()
        };
        assert!(
            handle_event(&ping, &mut cursor, &mut LogSink::new())
                .unwrap()
                .is_none()
        );
        let garbage = Event {
            event: "log".into(),
            data: "{".into(),
            ..Event::default()
        };
        let err = handle_event(&garbage, &mut cursor, &mut LogSink::new()).unwrap_err();
        assert_eq!(err.exit_code(), 125);
    }
}
