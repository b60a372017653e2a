//! Prometheus metrics, served at `GET /metrics` without a token.
//!
//! The endpoint needs no token because scrapers rarely carry one and the
//! metrics hold only counts: no app names, job ids or commands. Keep it off
//! the public network if even counts are sensitive.
//!
//! Names follow `<namespace>_<noun>_<unit>_total`, and labels stay
//! low-cardinality: routes are the route templates (`/v1/jobs/{id}`), never
//! the concrete paths.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jobs_core::{JobState, scheduling::Priority};
use prometheus::{
    Encoder, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use tracing::Instrument;

use crate::{error::ApiError, request_id, state::AppState};

/// Every metric the API exports, registered in a registry of its own so
/// that two servers in one test process do not collide.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    pub jobs_created: IntCounter,
    pub publish_failures: IntCounter,
    pub relay_republished: IntCounter,
    pub reaper_requeued: IntCounter,
    pub reaper_lost: IntCounter,
    pub upload_bytes: IntCounter,
    pub purged_jobs: IntCounter,
    pub purged_objects: IntCounter,
    pub followers: IntGauge,
    /// Client sockets of interactive runs open right now.
    pub attach_clients: IntGauge,
    /// Interactive runs waiting in this API's line for a free worker slot.
    pub attach_waiting: IntGauge,
    /// Connections open, and closed by the server by reason.
    pub connections: crate::connections::ConnectionMetrics,
    /// Failed authentications refused without a lookup (their address used
    /// up its failures).
    pub auth_failures_refused: IntCounter,
    /// Stored jobs per state, read from the store at each scrape.
    jobs_by_state: IntGaugeVec,
    /// Jobs waiting to start, read from the store at each scrape.
    queue_depth: IntGauge,
    /// Queued jobs by app (the deepest [`QUEUE_APPS`], the rest as
    /// [`OTHER_APPS`]) and priority, at each scrape.
    queued_by_app: IntGaugeVec,
    /// How long the oldest of those has waited, in seconds.
    queued_oldest: GaugeVec,
}

/// How many apps get a label of their own in the queue metrics: the ones
/// with the most queued jobs. A label per app would grow with the apps.
pub const QUEUE_APPS: usize = 20;
/// The `app` label of the queued jobs of every other app.
pub const OTHER_APPS: &str = "_other";

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "jobs_api_requests_total",
                "HTTP requests answered, by method, route template and status.",
            ),
            &["method", "route", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        let counter = |name: &str, help: &str| -> anyhow::Result<IntCounter> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let jobs_created = counter(
            "jobs_jobs_created_total",
            "Jobs created (not idempotent repeats).",
        )?;
        let publish_failures = counter(
            "jobs_publish_failures_total",
            "Wake-ups the broker did not confirm; the relay sends them again.",
        )?;
        let relay_republished = counter(
            "jobs_relay_republished_total",
            "Wake-ups the relay published for jobs whose first publish was not confirmed.",
        )?;
        let reaper_requeued = counter(
            "jobs_reaper_requeued_total",
            "Jobs whose lease expired before they started, queued again.",
        )?;
        let reaper_lost = counter(
            "jobs_reaper_lost_total",
            "Jobs whose lease expired after they started, ended as lost (or canceled).",
        )?;
        let upload_bytes = counter(
            "jobs_upload_bytes_total",
            "Bytes of uploads stored in the object store.",
        )?;
        let purged_jobs = counter(
            "jobs_purged_jobs_total",
            "Ended jobs deleted after the retention period.",
        )?;
        let purged_objects = counter(
            "jobs_purged_objects_total",
            "Objects (uploads, artifacts) deleted by the purge.",
        )?;
        let followers = IntGauge::new("jobs_api_followers", "Log streams open right now.")?;
        registry.register(Box::new(followers.clone()))?;
        let attach_clients = IntGauge::new(
            "jobs_attach_clients",
            "Client sockets of interactive runs open right now.",
        )?;
        registry.register(Box::new(attach_clients.clone()))?;
        let attach_waiting = IntGauge::new(
            "jobs_attach_waiting",
            "Interactive runs waiting in this API's line for a free worker slot.",
        )?;
        registry.register(Box::new(attach_waiting.clone()))?;
        let connections_open = IntGauge::new(
            "jobs_api_connections",
            "Client connections open right now (WebSockets included).",
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "jobs_api_connections_closed_total",
                "Connections the server closed, by reason: idle_timeout, header_timeout, \
                 limit (to make room at the connection limit), body_too_slow.",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(connections_closed.clone()))?;
        let auth_failures_refused = counter(
            "jobs_api_auth_throttled_total",
            "Requests refused with 429 because their address failed to authenticate too often.",
        )?;
        let jobs_by_state = IntGaugeVec::new(
            Opts::new(
                "jobs_jobs",
                "Jobs in the store, by state (terminal ones until the retention purge).",
            ),
            &["state"],
        )?;
        registry.register(Box::new(jobs_by_state.clone()))?;
        let queue_depth = IntGauge::new(
            "jobs_queue_depth",
            "Jobs queued and not yet claimed by a worker, interactive ones included.",
        )?;
        registry.register(Box::new(queue_depth.clone()))?;
        let queued_by_app = IntGaugeVec::new(
            Opts::new(
                "jobs_queued",
                "Queued jobs (interactive runs aside), by app (the 20 deepest queues; \
                 the rest as app=\"_other\") and priority.",
            ),
            &["app", "priority"],
        )?;
        registry.register(Box::new(queued_by_app.clone()))?;
        let queued_oldest = GaugeVec::new(
            Opts::new(
                "jobs_queued_oldest_seconds",
                "How long the oldest queued job has waited, by app and priority \
                 (labels as jobs_queued).",
            ),
            &["app", "priority"],
        )?;
        registry.register(Box::new(queued_oldest.clone()))?;
        Ok(Self {
            registry,
            requests,
            jobs_created,
            publish_failures,
            relay_republished,
            reaper_requeued,
            reaper_lost,
            upload_bytes,
            purged_jobs,
            purged_objects,
            followers,
            attach_clients,
            attach_waiting,
            connections: crate::connections::ConnectionMetrics {
                open: connections_open,
                closed: connections_closed,
            },
            auth_failures_refused,
            jobs_by_state,
            queue_depth,
            queued_by_app,
            queued_oldest,
        })
    }

    /// Sets the queue gauges from `(app, priority, queued, oldest seconds)`:
    /// the [`QUEUE_APPS`] apps with the most queued jobs by name, the others
    /// summed as [`OTHER_APPS`]. Apps with nothing queued any more vanish.
    pub fn set_queued(&self, queued: &[(String, i16, i64, f64)]) {
        let mut depth_by_app: HashMap<&str, i64> = HashMap::new();
        for (app, _, count, _) in queued {
            *depth_by_app.entry(app.as_str()).or_default() += count;
        }
        let mut deepest: Vec<(&str, i64)> = depth_by_app.into_iter().collect();
        deepest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let named: HashSet<&str> = deepest
            .iter()
            .take(QUEUE_APPS)
            .map(|(app, _)| *app)
            .collect();
        let mut rows: HashMap<(&str, &str), (i64, f64)> = HashMap::new();
        for (app, priority, count, oldest) in queued {
            let app = if named.contains(app.as_str()) {
                app.as_str()
            } else {
                OTHER_APPS
            };
            let priority = Priority::from_i16(*priority).as_str();
            let row = rows.entry((app, priority)).or_default();
            row.0 += count;
            row.1 = row.1.max(*oldest);
        }
        self.queued_by_app.reset();
        self.queued_oldest.reset();
        for ((app, priority), (count, oldest)) in rows {
            self.queued_by_app
                .with_label_values(&[app, priority])
                .set(count);
            self.queued_oldest
                .with_label_values(&[app, priority])
                .set(oldest);
        }
    }

    /// Sets the gauges that count stored jobs, from `counts` (states with
    /// none may be left out).
    pub fn set_job_counts(&self, counts: &[(JobState, i64)]) {
        for state in JobState::ALL {
            let count = counts
                .iter()
                .find(|(counted, _)| *counted == state)
                .map_or(0, |(_, count)| *count);
            self.jobs_by_state
                .with_label_values(&[state.as_str()])
                .set(count);
            if state == JobState::Queued {
                self.queue_depth.set(count);
            }
        }
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format.", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, description = "`internal`: the metrics could not be encoded.", body = jobs_core::wire::ApiError),
    )
)]
pub async fn serve_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    // One grouped count per scrape. When the store is down the gauges keep
    // their last values; `/readyz` is what reports the outage.
    match state.store.jobs_by_state().await {
        Ok(counts) => state.metrics.set_job_counts(&counts),
        Err(error) => tracing::warn!(%error, "counting jobs by state for /metrics failed"),
    }
    match state.store.queued_by_app().await {
        Ok(queued) => state.metrics.set_queued(&queued),
        Err(error) => tracing::warn!(%error, "counting queued jobs by app for /metrics failed"),
    }
    let text = state.metrics.render().map_err(|error| {
        ApiError::Internal(anyhow::Error::new(error).context("encoding metrics"))
    })?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response())
}

/// Logs one line per request and counts it: one event feeds both, so the
/// log and the metric never disagree. The whole request runs in a span that
/// carries its request id (also sent back as `x-request-id`) and, for a
/// job's routes, the job id; a handler that creates a job records it there
/// (see [`record_job_id`]).
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let request_id = request_id::request_id(request.headers());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        job_id = tracing::field::Empty
    );
    if let Some(job_id) = request_id::job_id_in_path(request.uri().path()) {
        span.record("job_id", job_id);
    }
    let mut response = next.run(request).instrument(span.clone()).await;
    response.headers_mut().insert(
        request_id::REQUEST_ID_HEADER,
        request_id::header_value(&request_id),
    );
    let status = response.status();
    state
        .metrics
        .requests
        .with_label_values(&[method, route.as_str(), status.as_str()])
        .inc();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let _in_request = span.enter();
    // Probes and scrapes arrive every few seconds; they would drown the log.
    if is_probe(&route) && status == StatusCode::OK {
        tracing::debug!(
            method,
            route,
            status = status.as_u16(),
            elapsed_ms,
            "request"
        );
    } else {
        tracing::info!(
            method,
            route,
            status = status.as_u16(),
            elapsed_ms,
            "request"
        );
    }
    response
}

/// Puts a job id into the current request's span, for a handler that
/// learns it (creating a job) rather than reading it from the path.
pub fn record_job_id(job_id: &str) {
    tracing::Span::current().record("job_id", job_id);
}

fn is_probe(route: &str) -> bool {
    matches!(route, "/healthz" | "/readyz" | "/metrics")
}

/// A fixed set of method labels, so that odd methods cannot add series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let metrics = Metrics::new().expect("metrics register");
        metrics.jobs_created.inc();
        metrics
            .requests
            .with_label_values(&["GET", "/v1/jobs/{id}", "200"])
            .inc();
        let text = metrics.render().expect("metrics render");
        assert!(text.contains("jobs_jobs_created_total 1"), "{text}");
        assert!(text.contains(
            "jobs_api_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains("jobs_publish_failures_total 0"));
        metrics.set_job_counts(&[(JobState::Queued, 3), (JobState::Failed, 2)]);
        let text = metrics.render().expect("metrics render");
        assert!(text.contains("jobs_jobs{state=\"queued\"} 3"), "{text}");
        assert!(text.contains("jobs_jobs{state=\"failed\"} 2"), "{text}");
        assert!(text.contains("jobs_jobs{state=\"running\"} 0"), "{text}");
        assert!(text.contains("jobs_queue_depth 3"), "{text}");
    }

    #[test]
    fn queue_metrics_name_the_deepest_apps_and_fold_the_rest() {
        let metrics = Metrics::new().expect("metrics register");
        // 25 apps: app-00 has 25 queued jobs, app-24 has 1.
        let mut queued: Vec<(String, i16, i64, f64)> = (0..25)
            .map(|i| (format!("app-{i:02}"), 0, 25 - i, f64::from(i as i32)))
            .collect();
        queued.push(("app-00".into(), 1, 2, 7.5));
        metrics.set_queued(&queued);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("jobs_queued{app=\"app-00\",priority=\"normal\"} 25"),
            "{text}"
        );
        assert!(
            text.contains("jobs_queued{app=\"app-00\",priority=\"high\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("jobs_queued{app=\"app-19\",priority=\"normal\"} 6"),
            "{text}"
        );
        assert!(!text.contains("app=\"app-20\""), "{text}");
        // The five smallest, 5 + 4 + 3 + 2 + 1, and the oldest of them.
        assert!(
            text.contains("jobs_queued{app=\"_other\",priority=\"normal\"} 15"),
            "{text}"
        );
        assert!(
            text.contains("jobs_queued_oldest_seconds{app=\"_other\",priority=\"normal\"} 24"),
            "{text}"
        );
        assert!(
            text.contains("jobs_queued_oldest_seconds{app=\"app-00\",priority=\"high\"} 7.5"),
            "{text}"
        );
        // An app with nothing queued any more vanishes.
        metrics.set_queued(&[("app-03".into(), -1, 4, 1.0)]);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("jobs_queued{app=\"app-03\",priority=\"low\"} 4"),
            "{text}"
        );
        assert!(!text.contains("app=\"app-00\""), "{text}");
    }
}
