//! The worker's side of an interactive run's bridge: a WebSocket it dials
//! to the API that created the run (the worker only ever connects out).
//!
//! Output chunks go up as they are cut; stdin, window sizes, EOF and a
//! terminate come down. A dropped connection is dialed again; if the API
//! stays unreachable for the grace period, the run is stopped.
//!
//! Stdin is exactly-once (`jobs_core::attach::input`): this worker is its
//! point of truth. Every input frame names the offset of its first byte;
//! bytes below what was already written (a resend) are dropped, and an
//! `input_ack` goes up after writes (at once after 256 KiB, else 5 ms
//! later, to ack several frames at once), and first on every connection, so
//! that the API and the client resend exactly what is missing. The ack
//! follows the write into the container's stdin (handed to the Docker
//! engine's attach stream and flushed): it never covers a byte not written.
//! Under the shim (a run without a terminal) the shim is the point of
//! truth instead: the ack is the shim's own ([`crate::shim_input`]), which
//! a worker that restarts reads back.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobs_core::attach::{
    INPUT_OFFSETS_QUERY, OutputFrame, WindowSize, WorkerCommand, WorkerMessage,
    input::{Fresh, InputFrame, fresh_part},
};
use jobs_store::{AttachEndpoint, NewChunk};
use reqwest_websocket::{Message, Upgrade, WebSocket};
use tokio::{
    io::AsyncWriteExt,
    sync::{mpsc, watch},
};

use crate::{
    runtime::{ContainerInput, Runtime},
    shim_input::{Sent, ShimInput},
    stop_signal::{StopReason, StopSignal},
};

/// How often a quiet socket is pinged.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Written bytes after which an ack goes up at once; fewer wait up to
/// [`ACK_DELAY`], so that a stream of frames gets one ack for several.
const ACK_EVERY_BYTES: u64 = 256 * 1024;
const ACK_DELAY: Duration = Duration::from_millis(5);

/// What one bridge needs.
pub struct Bridge {
    pub client: reqwest::Client,
    pub endpoint: AttachEndpoint,
    pub job_id: String,
    pub attempt: i32,
    pub runtime: Runtime,
    pub container_id: String,
    /// Where stdin goes.
    pub input: BridgeInput,
    /// Turns true once the container started: resizes wait for it.
    pub started: watch::Receiver<bool>,
    /// How long the API may stay unreachable before the run is stopped.
    pub grace: Duration,
    /// Where the container's stdin stands.
    pub stdin: StdinProgress,
}

/// Where an interactive run's stdin goes.
pub enum BridgeInput {
    /// Docker's attach stream of a terminal's container; `None` once closed.
    Attach(Option<ContainerInput>),
    /// The shim's socket: the shim acknowledges what it wrote.
    Shim(Box<ShimInput>),
}

impl BridgeInput {
    /// The shim's next ack; pends for ever without the shim.
    async fn acked_more(&mut self) -> u64 {
        match self {
            Self::Shim(shim) => shim.acked_more().await,
            Self::Attach(_) => std::future::pending().await,
        }
    }
}

/// How far the container's stdin got, across connections.
#[derive(Debug, Default)]
pub struct StdinProgress {
    /// Input bytes written to the container's stdin so far: the offset of
    /// the next one.
    pub written: u64,
    /// Where the input ends, once told; stdin is closed when `written`
    /// gets there.
    pub end_at: Option<u64>,
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
        // The API resends from here: what it sent on a connection that
        // dropped may not have arrived.
        if send_ack(&mut sink, self.stdin.written).await.is_err() {
            return Disconnect::Dropped;
        }
        // Until the API says otherwise, it is one that sends raw stdin.
        let mut offsets = false;
        let mut acked = self.stdin.written;
        let mut acked_at = tokio::time::Instant::now();
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
                    Some(Ok(Message::Binary(bytes))) => {
                        if !self.take_input(&bytes, offsets).await {
                            // What the shim lacks must come again: a new
                            // connection starts from its ack.
                            return Disconnect::Dropped;
                        }
                        if self.stdin.written >= acked + ACK_EVERY_BYTES {
                            if send_ack(&mut sink, self.stdin.written).await.is_err() {
                                return Disconnect::Dropped;
                            }
                            (acked, acked_at) = (self.stdin.written, tokio::time::Instant::now());
                        }
                    }
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<WorkerCommand>(&text) {
                        Ok(WorkerCommand::Resize(size)) => {
                            *pending_resize = Some(size);
                            self.apply_resize(pending_resize).await;
                        }
                        Ok(WorkerCommand::Eof) => self.close_stdin().await,
                        Ok(WorkerCommand::InputOffsets) => offsets = true,
                        Ok(WorkerCommand::InputEnd { offset }) => {
                            self.stdin.end_at = Some(offset);
                            self.close_stdin_at_end().await;
                        }
                        Ok(WorkerCommand::Terminate { reason }) => {
                            tracing::info!(job_id = self.job_id, reason, "the API stops the run");
                            stop.request(StopReason::Abandoned);
                        }
                        Err(error) => tracing::warn!(job_id = self.job_id, %error, "ignoring a malformed command"),
                    },
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return Disconnect::Dropped,
                },
                written = self.input.acked_more() => {
                    self.stdin.written = written;
                    if self.stdin.written >= acked + ACK_EVERY_BYTES {
                        if send_ack(&mut sink, self.stdin.written).await.is_err() {
                            return Disconnect::Dropped;
                        }
                        (acked, acked_at) = (self.stdin.written, tokio::time::Instant::now());
                    }
                }
                // Only until the start: a sender gone after it is no news.
                changed = self.started.changed(), if !*self.started.borrow() => {
                    if changed.is_ok() {
                        self.apply_resize(pending_resize).await;
                    }
                }
                // What was written since the last ack, a moment later.
                () = tokio::time::sleep_until(acked_at + ACK_DELAY), if self.stdin.written > acked => {
                    if send_ack(&mut sink, self.stdin.written).await.is_err() {
                        return Disconnect::Dropped;
                    }
                    (acked, acked_at) = (self.stdin.written, tokio::time::Instant::now());
                }
            }
        }
    }

    /// Writes the new part of an input frame (raw bytes from an API
    /// without `offsets`) into the container's stdin; `written` moves by
    /// what was written (under the shim, by the shim's acks). False when
    /// the shim stands before the frame: the API must send again.
    async fn take_input(&mut self, frame: &[u8], offsets: bool) -> bool {
        if let BridgeInput::Shim(shim) = &mut self.input {
            let sent = match (offsets, InputFrame::decode(frame)) {
                (true, Ok(frame)) => shim.send(frame.offset, frame.data).await,
                (true, Err(error)) => {
                    tracing::warn!(job_id = self.job_id, %error, "ignoring a malformed input frame");
                    Sent::Ok
                }
                (false, _) => shim.send(shim.sent(), frame).await,
            };
            return sent != Sent::Behind;
        }
        let frame = if offsets {
            InputFrame::decode(frame)
        } else {
            Ok(InputFrame {
                offset: self.stdin.written,
                data: frame,
            })
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                tracing::warn!(job_id = self.job_id, %error, "ignoring a malformed input frame");
                return true;
            }
        };
        let skip = match fresh_part(self.stdin.written, &frame) {
            Fresh::From(skip) => skip,
            Fresh::Gap => {
                // Not written, so not acknowledged: the API resends from
                // the ack after the next reconnect.
                tracing::warn!(
                    job_id = self.job_id,
                    written = self.stdin.written,
                    offset = frame.offset,
                    "an input frame skips ahead; dropping it"
                );
                return true;
            }
        };
        let fresh = &frame.data[skip..];
        if fresh.is_empty() || !self.write_stdin(fresh).await {
            return true;
        }
        self.stdin.written += fresh.len() as u64;
        self.close_stdin_at_end().await;
        true
    }

    /// Writes and flushes; false if the container's stdin is closed.
    async fn write_stdin(&mut self, bytes: &[u8]) -> bool {
        let BridgeInput::Attach(Some(input)) = &mut self.input else {
            return false;
        };
        let written = async {
            input.write_all(bytes).await?;
            input.flush().await
        };
        if let Err(error) = written.await {
            tracing::debug!(job_id = self.job_id, %error, "the container's stdin is closed");
            self.input = BridgeInput::Attach(None);
            return false;
        }
        true
    }

    async fn close_stdin_at_end(&mut self) {
        if let BridgeInput::Shim(shim) = &mut self.input {
            // The shim closes it once it wrote every byte before the end.
            if let Some(end) = self.stdin.end_at {
                shim.end(end).await;
            }
            return;
        }
        if self
            .stdin
            .end_at
            .is_some_and(|end| self.stdin.written >= end)
        {
            self.close_stdin().await;
        }
    }

    /// Closes stdin where it stands (EOF from an API without offsets).
    async fn close_stdin(&mut self) {
        if let BridgeInput::Shim(shim) = &mut self.input {
            let at = shim.sent();
            shim.end(at).await;
            return;
        }
        if let BridgeInput::Attach(input) = &mut self.input
            && let Some(mut input) = input.take()
        {
            if let Err(error) = input.shutdown().await {
                tracing::debug!(job_id = self.job_id, %error, "closing the container's stdin failed");
            }
        }
    }

    async fn apply_resize(&mut self, pending: &mut Option<WindowSize>) {
        // Only a terminal has a size.
        if !*self.started.borrow() || matches!(self.input, BridgeInput::Shim(_)) {
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
    let (name, value) = INPUT_OFFSETS_QUERY;
    let url = format!(
        "{}/v1/jobs/{job_id}/attach/worker?attempt={attempt}&{name}={value}",
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

async fn send_ack<S>(sink: &mut S, written: u64) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    let ack = WorkerMessage::InputAck { offset: written };
    let text = serde_json::to_string(&ack).expect("worker messages serialize");
    sink.send(Message::Text(text)).await
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
