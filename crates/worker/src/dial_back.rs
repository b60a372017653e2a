//! The worker's side of an interactive run's bridge: a WebSocket it dials
//! to the API that created the run (the worker only ever connects out).
//!
//! Output chunks go up as they are cut; stdin, window sizes, EOF and a
//! terminate come down. A dropped connection is dialed again; if the API
//! stays unreachable for the grace period, the run is stopped.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobs_core::attach::{OutputFrame, WindowSize, WorkerCommand};
use jobs_store::{AttachEndpoint, NewChunk};
use reqwest_websocket::{Message, Upgrade, WebSocket};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
};

use crate::{
    runtime::{ContainerInput, Runtime},
    stop_signal::{StopReason, StopSignal},
};

/// How often a quiet socket is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);

/// What one bridge needs.
pub struct Bridge {
    pub client: reqwest::Client,
    pub endpoint: AttachEndpoint,
    pub job_id: String,
    pub attempt: i32,
    pub runtime: Runtime,
    pub container_id: String,
    /// The container's stdin; `None` once closed.
    pub input: Option<ContainerInput>,
    /// Turns true once the container started: resizes wait for it.
    pub started: watch::Receiver<bool>,
    /// How long the API may stay unreachable before the run is stopped.
    pub grace: Duration,
}

/// Why a connection ended.
enum Disconnect {
    /// The output ended: the run is over.
    OutputEnded,
    /// The connection dropped; dial again.
    Dropped,
}

impl Bridge {
    /// Serves the bridge until the output ends, dialing again after drops.
    /// `live` carries output chunks as the log pump cuts them, and closes
    /// when it ends.
    pub async fn run(mut self, mut live: mpsc::Receiver<NewChunk>, stop: &StopSignal) {
        let mut pending_resize: Option<WindowSize> = None;
        let mut unreachable_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(50);
        loop {
            let socket = tokio::select! {
                socket = dial(&self.client, &self.endpoint, &self.job_id, self.attempt) => socket,
                // Output that ends while dialing: nothing left to bridge.
                () = drain(&mut live) => return,
            };
            let socket = match socket {
                Ok(socket) => socket,
                Err(DialError::Refused(reason)) => {
                    tracing::warn!(
                        job_id = self.job_id,
                        reason,
                        "the API refused the dial-back"
                    );
                    stop.request(StopReason::ApiUnreachable);
                    drain(&mut live).await;
                    return;
                }
                Err(DialError::Unreachable(error)) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.grace {
                        tracing::warn!(job_id = self.job_id, %error, "the API stayed unreachable for the grace period; stopping the run");
                        stop.request(StopReason::ApiUnreachable);
                        drain(&mut live).await;
                        return;
                    }
                    tracing::info!(job_id = self.job_id, %error, "dialing the API failed; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            match self
                .serve(socket, &mut live, stop, &mut pending_resize)
                .await
            {
                Disconnect::OutputEnded => return,
                Disconnect::Dropped => {
                    unreachable_since = Some(Instant::now());
                }
            }
        }
    }

    async fn serve(
        &mut self,
        socket: WebSocket,
        live: &mut mpsc::Receiver<NewChunk>,
        stop: &StopSignal,
        pending_resize: &mut Option<WindowSize>,
    ) -> Disconnect {
        let (mut sink, mut stream) = socket.split();
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                // A quiet shell sends nothing for hours: a ping keeps
                // proxies from closing the socket, and finds a dead one.
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() {
                        return Disconnect::Dropped;
                    }
                }
                chunk = live.recv() => {
                    let Some(chunk) = chunk else {
                        let _ = sink.close().await;
                        return Disconnect::OutputEnded;
                    };
                    let frame = OutputFrame { stream: chunk.stream, seq: chunk.seq, data: &chunk.data }.encode();
                    // A chunk lost here is in the store, which fills the gap.
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        return Disconnect::Dropped;
                    }
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => self.write_stdin(&bytes).await,
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<WorkerCommand>(&text) {
                        Ok(WorkerCommand::Resize(size)) => {
                            *pending_resize = Some(size);
                            self.apply_resize(pending_resize).await;
                        }
                        Ok(WorkerCommand::Eof) => self.close_stdin().await,
                        Ok(WorkerCommand::Terminate { reason }) => {
                            tracing::info!(job_id = self.job_id, reason, "the API stops the run");
                            stop.request(StopReason::Abandoned);
                        }
                        Err(error) => tracing::warn!(job_id = self.job_id, %error, "ignoring a malformed command"),
                    },
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Disconnect::Dropped,
                },
                changed = self.started.changed() => {
                    if changed.is_ok() {
                        self.apply_resize(pending_resize).await;
                    }
                }
            }
        }
    }

    async fn write_stdin(&mut self, bytes: &[u8]) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        if let Err(error) = input.write_all(bytes).await {
            tracing::debug!(job_id = self.job_id, %error, "the container's stdin is closed");
            self.input = None;
        }
    }

    async fn close_stdin(&mut self) {
        if let Some(mut input) = self.input.take() {
            if let Err(error) = input.shutdown().await {
                tracing::debug!(job_id = self.job_id, %error, "closing the container's stdin failed");
            }
        }
    }

    async fn apply_resize(&mut self, pending: &mut Option<WindowSize>) {
        if !*self.started.borrow() {
            return;
        }
        if let Some(size) = pending.take() {
            if let Err(error) = self
                .runtime
                .resize(&self.container_id, size.rows, size.cols)
                .await
            {
                tracing::debug!(job_id = self.job_id, %error, "resizing the terminal failed");
            }
        }
    }
}

/// Opens the run's socket on the API that created it.
async fn dial(
    client: &reqwest::Client,
    endpoint: &AttachEndpoint,
    job_id: &str,
    attempt: i32,
) -> Result<WebSocket, DialError> {
    let url = format!(
        "{}/v1/jobs/{job_id}/attach/worker?attempt={attempt}",
        endpoint.url.trim_end_matches('/'),
    );
    let response = client
        .get(&url)
        .bearer_auth(&endpoint.secret)
        .upgrade()
        .send()
        .await
        .map_err(|error| DialError::Unreachable(error.to_string()))?;
    let status = response.status();
    if status.is_client_error() {
        return Err(DialError::Refused(format!("{url}: {status}")));
    }
    response
        .into_websocket()
        .await
        .map_err(|error| DialError::Unreachable(error.to_string()))
}

/// Reads the live output to its end with nobody to send it to: it is in
/// the store, where a client catches up on it.
async fn drain(live: &mut mpsc::Receiver<NewChunk>) {
    while live.recv().await.is_some() {}
}

#[derive(Debug)]
enum DialError {
    /// The API answered no (401, 404, 409): dialing again will not help.
    Refused(String),
    Unreachable(String),
}
