//! The worker's side of an interactive run's bridge: a WebSocket it dials
//! to the API that created the run (the worker only ever connects out).
//!
//! Output chunks go up as they are cut; stdin, window sizes, EOF and a
//! terminate come down. A dropped connection is dialed again; if the API
//! stays unreachable for the grace period, the run is stopped.
//!
//! Stdin is exactly-once (`jobs_core::attach::input`): the run's shim is
//! its point of truth ([`crate::shim_input`]). Every input frame names the
//! offset of its first byte and goes on to the shim with it; the shim
//! writes each byte to the command once and acknowledges how far it got,
//! and that ack goes up as the `input_ack` (at once after 256 KiB, else 5
//! ms later, to ack several frames at once), and first on every
//! connection, so that the API and the client resend exactly what is
//! missing. The shim outlives this worker: a restarted one starts from the
//! shim's ack.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobs_core::attach::{
    INPUT_OFFSETS_QUERY, OutputFrame, WorkerCommand, WorkerMessage, input::InputFrame,
};
use jobs_store::{AttachEndpoint, NewChunk};
use reqwest_websocket::{Message, Upgrade, WebSocket};
use tokio::sync::mpsc;

use crate::{
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
    /// The run's shim, where stdin goes; `None` when there is none to
    /// reach (the run is over).
    pub input: Option<Box<ShimInput>>,
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
    /// `live` carries output chunks as the log pump stores them, and closes
    /// when it ends.
    pub async fn run(mut self, mut live: mpsc::Receiver<NewChunk>, stop: &StopSignal) {
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
            match self.serve(socket, &mut live, stop).await {
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
    ) -> Disconnect {
        let (mut sink, mut stream) = socket.split();
        // The API resends from here: what it sent on a connection that
        // dropped may not have arrived.
        let mut written = self.written();
        if send_ack(&mut sink, written).await.is_err() {
            return Disconnect::Dropped;
        }
        // Until the API says otherwise, it is one that sends raw stdin.
        let mut offsets = false;
        let mut acked = written;
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
                    }
                    Some(Ok(Message::Text(text))) => match serde_json::from_str::<WorkerCommand>(&text) {
                        // The terminal is the shim's; without one, the
                        // size goes nowhere.
                        Ok(WorkerCommand::Resize(size)) => {
                            if let Some(shim) = self.input.as_mut() {
                                shim.resize(size.rows, size.cols).await;
                            }
                        }
                        // EOF where the input stands (an API without offsets).
                        Ok(WorkerCommand::Eof) => {
                            if let Some(shim) = self.input.as_mut() {
                                let at = shim.sent();
                                shim.end(at).await;
                            }
                        }
                        Ok(WorkerCommand::InputOffsets) => offsets = true,
                        // The shim closes stdin once it wrote every byte before.
                        Ok(WorkerCommand::InputEnd { offset }) => {
                            if let Some(shim) = self.input.as_mut() {
                                shim.end(offset).await;
                            }
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
                more = acked_more(&mut self.input) => {
                    written = more;
                    if written >= acked + ACK_EVERY_BYTES {
                        if send_ack(&mut sink, written).await.is_err() {
                            return Disconnect::Dropped;
                        }
                        (acked, acked_at) = (written, tokio::time::Instant::now());
                    }
                }
                // What was written since the last ack, a moment later.
                () = tokio::time::sleep_until(acked_at + ACK_DELAY), if written > acked => {
                    if send_ack(&mut sink, written).await.is_err() {
                        return Disconnect::Dropped;
                    }
                    (acked, acked_at) = (written, tokio::time::Instant::now());
                }
            }
        }
    }

    /// Where the command's stdin stands, as the shim last said.
    fn written(&self) -> u64 {
        self.input.as_ref().map_or(0, |shim| shim.acked())
    }

    /// Hands an input frame (raw bytes from an API without `offsets`) to
    /// the shim. False when the shim stands before the frame: the API must
    /// send again from the shim's ack.
    async fn take_input(&mut self, frame: &[u8], offsets: bool) -> bool {
        let Some(shim) = self.input.as_mut() else {
            // No shim to write to: nothing is acknowledged, as with a
            // closed stdin.
            return true;
        };
        let sent = if offsets {
            match InputFrame::decode(frame) {
                Ok(frame) => shim.send(frame.offset, frame.data).await,
                Err(error) => {
                    tracing::warn!(job_id = self.job_id, %error, "ignoring a malformed input frame");
                    Sent::Ok
                }
            }
        } else {
            let at = shim.sent();
            shim.send(at, frame).await
        };
        sent != Sent::Behind
    }
}

/// The shim's next ack; pends for ever without a shim.
async fn acked_more(input: &mut Option<Box<ShimInput>>) -> u64 {
    match input {
        Some(shim) => shim.acked_more().await,
        None => std::future::pending().await,
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
