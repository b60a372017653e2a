//! The worker's Prometheus metrics, served at `GET /metrics` on
//! `--metrics-listen` (no token: counts only, no app names or job ids).
//!
//! Names follow `jobs_<noun>_<unit>`; the only label is a job's end state,
//! a handful of values.

use std::{sync::LazyLock, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use jobs_core::JobState;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Buckets in seconds for the waits before a job runs: from a warm
/// start's tens of milliseconds to a queue of minutes.
const WAIT_BUCKETS: &[f64] = &[
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
/// Buckets in seconds for run durations: one-offs of a second to imports
/// of hours.
const RUN_BUCKETS: &[f64] = &[
    0.5,
    1.0,
    5.0,
    15.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    12.0 * 3600.0,
];

/// Bytes of job output stored, after secret masking: one count per
/// process, which the log writer (`log_pump`) adds to without a context.
pub static LOG_BYTES: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "jobs_log_bytes_total",
        "Bytes of job output stored, after secret masking.",
    )
    .expect("a valid metric")
});

#[derive(Clone)]
pub struct WorkerMetrics {
    registry: Registry,
    /// Job slots of this worker, and how many run a job now.
    pub slots: IntGauge,
    pub slots_used: IntGauge,
    /// From a job's creation to its claim by this worker, by priority.
    time_in_queue: HistogramVec,
    /// From the claim to the container's start.
    pub start_latency: Histogram,
    /// From the container's start to the recorded end, by end state.
    run_duration: HistogramVec,
    /// Attempts ended on this worker, by end state.
    jobs_ended: IntCounterVec,
    /// Containers that could not be created or started.
    pub container_start_failures: IntCounter,
    /// Attempts whose lease another worker or the reaper took.
    pub leases_lost: IntCounter,
    /// Containers of a dead predecessor taken over at start.
    pub takeovers: IntCounter,
    /// Warm containers started and waiting for a job.
    pub warm_containers: IntGauge,
    /// Jobs that ran in a warm container instead of one of their own.
    pub warm_starts: IntCounter,
}

impl WorkerMetrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let counter = |name: &str, help: &str| -> anyhow::Result<IntCounter> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| -> anyhow::Result<Histogram> {
            let histogram =
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
            registry.register(Box::new(histogram.clone()))?;
            Ok(histogram)
        };
        let run_duration = HistogramVec::new(
            HistogramOpts::new(
                "jobs_run_duration_seconds",
                "From the container's start to the job's recorded end, by end state.",
            )
            .buckets(RUN_BUCKETS.to_vec()),
            &["state"],
        )?;
        registry.register(Box::new(run_duration.clone()))?;
        let time_in_queue = HistogramVec::new(
            HistogramOpts::new(
                "jobs_time_in_queue_seconds",
                "From a job's creation to its claim, by the database clock, by priority.",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
            &["priority"],
        )?;
        registry.register(Box::new(time_in_queue.clone()))?;
        let jobs_ended = IntCounterVec::new(
            Opts::new(
                "jobs_worker_jobs_ended_total",
                "Attempts this worker ended, by end state.",
            ),
            &["state"],
        )?;
        registry.register(Box::new(jobs_ended.clone()))?;
        registry.register(Box::new(LOG_BYTES.clone()))?;
        Ok(Self {
            slots: gauge("jobs_worker_slots", "Job slots of this worker.")?,
            slots_used: gauge("jobs_worker_slots_used", "Job slots running a job now.")?,
            time_in_queue,
            start_latency: histogram(
                "jobs_start_latency_seconds",
                "From a job's claim to its container's start (uploads included).",
                WAIT_BUCKETS,
            )?,
            container_start_failures: counter(
                "jobs_container_start_failures_total",
                "Containers that could not be created or started.",
            )?,
            leases_lost: counter(
                "jobs_leases_lost_total",
                "Attempts whose lease was taken by the reaper or another worker.",
            )?,
            takeovers: counter(
                "jobs_worker_takeovers_total",
                "Containers of a dead worker with this id taken over at start.",
            )?,
            warm_containers: gauge(
                "jobs_worker_warm_containers",
                "Warm containers started and waiting for a job (the warm pool's size).",
            )?,
            warm_starts: counter(
                "jobs_worker_warm_starts_total",
                "Jobs that ran in a warm container instead of one of their own.",
            )?,
            run_duration,
            jobs_ended,
            registry,
        })
    }

    /// Counts an attempt's end; `ran_for` is `None` when no container ran.
    /// A claimed job waited `waited` since its creation.
    pub fn queued_for(&self, priority: jobs_core::scheduling::Priority, waited: Duration) {
        self.time_in_queue
            .with_label_values(&[priority.as_str()])
            .observe(waited.as_secs_f64());
    }

    pub fn ended(&self, state: JobState, ran_for: Option<Duration>) {
        self.jobs_ended.with_label_values(&[state.as_str()]).inc();
        if let Some(ran_for) = ran_for {
            self.run_duration
                .with_label_values(&[state.as_str()])
                .observe(ran_for.as_secs_f64());
        }
    }

    fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: WorkerMetrics) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the metrics endpoint stopped");
    }
}

async fn scrape(State(metrics): State<WorkerMetrics>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}
