//! A client's socket of an interactive run: output to it, input from it.
//!
//! Output is sent in sequence order with no gap and no duplicate: first
//! what is stored after the client's `after`, then live chunks; a live chunk
//! that skips ahead (the client lagged, or the worker reconnected) is
//! preceded by the stored chunks it skipped. The run's end is read from the
//! store, so the client gets `ended` even if the worker vanished.
//!
//! A client with `input=offsets` learns in `attached` where its input goes
//! on, and gets an `input_ack` whenever the worker wrote more. After an API
//! restart that point is the worker's first ack, so `attached` waits for
//! it (a bounded time; then the client is asked to come back).

use std::{sync::Arc, time::Duration};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use jobs_core::{
    JobState,
    attach::{
        CLOSE_REPLACED, ClientMessage, OutputFrame, ServerMessage, WorkerCommand,
        input::{Accepted, InputFrame, InputWindow},
    },
};
use jobs_store::{JobNotifications, Store};
use tokio::sync::{broadcast::error::RecvError, watch};
use tokio_util::sync::CancellationToken;

use super::{AttachHub, OutputChunk, Session};

/// Chunks per store read while catching up.
const CATCH_UP_CHUNKS: i64 = 256;
/// Bytes per store read while catching up, about.
const CATCH_UP_BYTES: i64 = 1024 * 1024;
/// How long a live chunk waits for the stored chunks before it to appear.
const GAP_WAIT: Duration = Duration::from_secs(2);
/// How long `attached` waits for the worker to say where the input stands
/// (only after an API restart, before the worker dialed back).
const INPUT_PLACE_WAIT: Duration = Duration::from_secs(10);

/// Why the client's connection ended.
enum Left {
    Ended,
    Detached,
    Dropped,
    Replaced,
    ServerStopping,
}

#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error("the client's socket closed")]
    Socket,
    #[error("the worker did not say where the input stands within {INPUT_PLACE_WAIT:?}")]
    InputUnplaced,
    #[error(transparent)]
    Store(#[from] jobs_store::StoreError),
}

/// What the handler needs from the server.
pub struct ClientContext {
    pub hub: Arc<AttachHub>,
    pub store: Store,
    pub notifications: Arc<JobNotifications>,
    pub session: Arc<Session>,
    /// Send stored output after this sequence number first; `None` for live
    /// output only.
    pub after: Option<i64>,
    /// The client asked for `input=offsets`.
    pub input_offsets: bool,
    pub shutdown: CancellationToken,
}

pub async fn serve(context: ClientContext, socket: WebSocket) {
    let session = context.session.clone();
    let generation = session.attach_client();
    let (sink, stream) = socket.split();
    let mut reader = tokio::spawn(read_input(session.clone(), stream, context.input_offsets));
    let mut writer = OutputWriter {
        sink,
        store: context.store.clone(),
        job_id: session.job_id.clone(),
        cursor: 0,
        started: false,
    };
    let left = match writer.run(&context, &mut reader).await {
        Ok(left) => left,
        Err(error) => {
            tracing::debug!(job_id = %session.job_id, %error, "client connection ended");
            Left::Dropped
        }
    };
    reader.abort();
    match left {
        Left::Detached => {
            session.client_left(generation, true);
            tracing::info!(job_id = %session.job_id, "client detached");
        }
        Left::Dropped => {
            if session.client_left(generation, false) {
                tracing::info!(job_id = %session.job_id, grace = ?context.hub.grace(), "client dropped; waiting for it to come back");
                context.hub.start_grace(session.clone(), generation);
            }
        }
        Left::Replaced => {
            // Told apart from any other close, so that it does not reconnect
            // and take the run back (crate docs of jobs_core::attach).
            let _ = writer
                .sink
                .send(Message::Close(Some(CloseFrame {
                    code: CLOSE_REPLACED,
                    reason: "another client attached".into(),
                })))
                .await;
        }
        Left::Ended | Left::ServerStopping => {
            session.client_left(generation, true);
        }
    }
    let _ = writer.sink.close().await;
}

/// Passes the client's input on to the worker; returns why it stopped.
async fn read_input(
    session: Arc<Session>,
    mut stream: futures::stream::SplitStream<WebSocket>,
    offsets: bool,
) -> Left {
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Binary(bytes)) => {
                session.input_room().await;
                if offsets {
                    take_frame(&session, &bytes);
                } else {
                    session.push_input(&bytes);
                }
            }
            Ok(Message::Text(text)) => match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage::Resize(size)) => {
                    session.send_command(WorkerCommand::Resize(size)).await;
                }
                Ok(ClientMessage::Eof) => session.end_input(),
                Ok(ClientMessage::InputEnd { offset }) => session.accept_input_end(offset),
                Ok(ClientMessage::Detach) => return Left::Detached,
                Err(error) => {
                    tracing::warn!(job_id = %session.job_id, %error, "ignoring a malformed client message");
                }
            },
            Ok(Message::Close(_)) | Err(_) => return Left::Dropped,
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
        }
    }
    Left::Dropped
}

/// Takes the new part of an input frame; a resend's old part is dropped.
fn take_frame(session: &Session, bytes: &[u8]) {
    let frame = match InputFrame::decode(bytes) {
        Ok(frame) => frame,
        Err(error) => {
            tracing::warn!(job_id = %session.job_id, %error, "ignoring a malformed input frame");
            return;
        }
    };
    match session.accept_input(&frame) {
        Accepted::New(_) => {}
        // The client sends from where `attached` said, so this is a client
        // that breaks the protocol; it resends after a reconnect.
        refused => {
            tracing::warn!(job_id = %session.job_id, offset = frame.offset, ?refused, "dropping an input frame")
        }
    }
}

struct OutputWriter {
    sink: SplitSink<WebSocket, Message>,
    store: Store,
    job_id: String,
    /// The last sequence number sent.
    cursor: i64,
    started: bool,
}

impl OutputWriter {
    async fn run(
        &mut self,
        context: &ClientContext,
        reader: &mut tokio::task::JoinHandle<Left>,
    ) -> Result<Left, ServeError> {
        let session = &context.session;
        // Subscribe before reading the store, so that nothing falls between.
        let mut live = session.subscribe_output();
        let mut events = context.notifications.subscribe();
        let mut position = session.watch_position();
        let mut clients = session.watch_client_generation();
        clients.borrow_and_update();
        let mut input = session.watch_input();
        let input_offset = if context.input_offsets {
            Some(self.input_place(&mut input).await?)
        } else {
            None
        };
        self.cursor = match context.after {
            Some(after) => after,
            None => self.store.last_log_seq(&self.job_id).await?,
        };
        self.send_message(&ServerMessage::Attached {
            after: self.cursor,
            input_offset,
        })
        .await?;
        let mut acked = 0;
        if context.input_offsets {
            acked = self.send_ack(&mut input, acked).await?;
        }
        self.send_stored(i64::MAX).await?;
        for chunk in session.recent_after(self.cursor) {
            self.send_chunk(&chunk).await?;
        }
        let waiting = *position.borrow_and_update();
        if let Some(position) = waiting {
            self.send_message(&ServerMessage::Waiting { position })
                .await?;
        }
        if self.check_state().await? {
            return Ok(Left::Ended);
        }
        loop {
            tokio::select! {
                left = &mut *reader => return Ok(left.unwrap_or(Left::Dropped)),
                () = context.shutdown.cancelled() => return Ok(Left::ServerStopping),
                _ = clients.changed() => return Ok(Left::Replaced),
                changed = input_changes(&mut input, context.input_offsets) => {
                    if changed.is_err() {
                        return Ok(Left::ServerStopping);
                    }
                    acked = self.send_ack(&mut input, acked).await?;
                }
                changed = position.changed() => {
                    let waiting = if changed.is_ok() { *position.borrow_and_update() } else { None };
                    if let Some(position) = waiting {
                        self.send_message(&ServerMessage::Waiting { position }).await?;
                    }
                }
                chunk = live.recv() => match chunk {
                    Ok(chunk) => self.send_live(&chunk).await?,
                    Err(RecvError::Lagged(_)) => self.send_stored(i64::MAX).await?,
                    Err(RecvError::Closed) => return Ok(Left::ServerStopping),
                },
                event = events.recv() => {
                    let concerns_us = match event {
                        Ok(job_id) => job_id == self.job_id,
                        Err(RecvError::Lagged(_)) => true,
                        Err(RecvError::Closed) => return Ok(Left::ServerStopping),
                    };
                    if concerns_us {
                        // Stored output the live view missed (the worker was
                        // still dialing, or reconnecting) comes this way.
                        self.send_stored(i64::MAX).await?;
                        if self.check_state().await? {
                            return Ok(Left::Ended);
                        }
                    }
                }
            }
        }
    }

    /// Where this client's input goes on: the end of the input window, once
    /// it is placed. A run that ended needs no input.
    async fn input_place(
        &self,
        input: &mut watch::Receiver<InputWindow>,
    ) -> Result<u64, ServeError> {
        let placed = async {
            let window = input.wait_for(InputWindow::is_placed).await?;
            Ok::<_, watch::error::RecvError>(window.end())
        };
        let end = match tokio::time::timeout(INPUT_PLACE_WAIT, placed).await {
            Ok(Ok(end)) => end,
            Ok(Err(_)) => return Err(ServeError::Socket),
            Err(_) => None,
        };
        if let Some(end) = end {
            return Ok(end);
        }
        if self.store.get_job(&self.job_id).await?.state.is_terminal() {
            return Ok(0);
        }
        Err(ServeError::InputUnplaced)
    }

    /// Tells the client the worker's newest ack, if it moved past `acked`;
    /// returns the ack sent last.
    async fn send_ack(
        &mut self,
        input: &mut watch::Receiver<InputWindow>,
        acked: u64,
    ) -> Result<u64, ServeError> {
        let start = {
            let window = input.borrow_and_update();
            window.start().unwrap_or(0)
        };
        if start <= acked {
            return Ok(acked);
        }
        self.send_message(&ServerMessage::InputAck { offset: start })
            .await?;
        Ok(start)
    }

    /// Sends `started` once, and everything plus `ended` once the job ended.
    /// Returns whether it ended.
    async fn check_state(&mut self) -> Result<bool, ServeError> {
        let job = self.store.get_job(&self.job_id).await?;
        if job.state.is_terminal() {
            // The worker stores every chunk before the terminal state.
            self.send_stored(i64::MAX).await?;
            self.send_message(&ServerMessage::Ended {
                state: job.state,
                exit_code: job.exit_code,
                reason: job.reason,
            })
            .await?;
            return Ok(true);
        }
        if !self.started && matches!(job.state, JobState::Starting | JobState::Running) {
            if let Some(worker_id) = job.worker_id {
                self.started = true;
                self.send_message(&ServerMessage::Started { worker_id })
                    .await?;
            }
        }
        Ok(false)
    }

    async fn send_live(&mut self, chunk: &OutputChunk) -> Result<(), ServeError> {
        if chunk.seq <= self.cursor {
            return Ok(());
        }
        if chunk.seq > self.cursor + 1 {
            // Chunks in between were missed live; the store has them, or
            // will in a moment (the worker writes them in batches).
            let deadline = tokio::time::Instant::now() + GAP_WAIT;
            loop {
                self.send_stored(chunk.seq - 1).await?;
                if self.cursor + 1 >= chunk.seq || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.cursor + 1 < chunk.seq {
                tracing::warn!(job_id = %self.job_id, from = self.cursor + 1, to = chunk.seq - 1, "output chunks missing from the store; skipping them live");
            }
        }
        self.send_chunk(chunk).await
    }

    /// Sends the stored chunks after the cursor, up to `until`.
    async fn send_stored(&mut self, until: i64) -> Result<(), ServeError> {
        loop {
            let chunks = self
                .store
                .logs_after(&self.job_id, self.cursor, CATCH_UP_CHUNKS, CATCH_UP_BYTES)
                .await?;
            if chunks.is_empty() {
                return Ok(());
            }
            for chunk in chunks {
                if chunk.seq > until {
                    return Ok(());
                }
                let data = chunk.bytes().unwrap_or_default();
                let frame = OutputFrame {
                    stream: chunk.stream,
                    seq: chunk.seq,
                    data: &data,
                }
                .encode();
                self.send(Message::Binary(frame.into())).await?;
                self.cursor = chunk.seq;
            }
        }
    }

    async fn send_chunk(&mut self, chunk: &OutputChunk) -> Result<(), ServeError> {
        if chunk.seq <= self.cursor {
            return Ok(());
        }
        self.send(Message::Binary(chunk.frame.clone())).await?;
        self.cursor = chunk.seq;
        Ok(())
    }

    async fn send_message(&mut self, message: &ServerMessage) -> Result<(), ServeError> {
        let text = serde_json::to_string(message).expect("server messages serialize");
        self.send(Message::Text(text.into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), ServeError> {
        self.sink
            .send(message)
            .await
            .map_err(|_| ServeError::Socket)
    }
}

/// The next change of the input window, for a client with offsets; never
/// for one without.
async fn input_changes(
    input: &mut watch::Receiver<InputWindow>,
    offsets: bool,
) -> Result<(), watch::error::RecvError> {
    if !offsets {
        return std::future::pending().await;
    }
    input.changed().await
}
