//! The worker's socket of an interactive run: output from it, input to it.
//!
//! A worker that reconnects (a network blip) replaces its older connection,
//! which stops and hands the command queue over.
//!
//! Input with offsets (`input=offsets`, every worker of this version): the
//! worker's first message is its `input_ack`, and stdin goes from there, out
//! of the session's input window, so that what a dropped connection had in
//! flight is sent again and the worker drops what it already wrote. An
//! older worker gets raw bytes, taken as done once sent.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use jobs_core::attach::{
    OutputFrame, WorkerCommand, WorkerMessage,
    input::{InputFrame, InputWindow},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{AttachHub, OutputChunk, Session};

/// The most input bytes one frame to the worker holds.
const INPUT_FRAME_BYTES: usize = 32 * 1024;

pub async fn serve(
    hub: Arc<AttachHub>,
    session: Arc<Session>,
    socket: WebSocket,
    shutdown: CancellationToken,
    offsets: bool,
) {
    let generation = session.attach_worker();
    let mut workers = session.watch_worker_generation();
    workers.borrow_and_update();
    // An older connection of this run gives the queue up once it sees the
    // newer generation.
    let mut commands = tokio::select! {
        commands = session.command_queue.lock() => commands,
        () = shutdown.cancelled() => return,
    };
    if *workers.borrow() != generation {
        return;
    }
    hub.poke();
    tracing::info!(job_id = %session.job_id, offsets, "worker attached");
    let (mut sink, mut stream) = socket.split();
    if offsets
        && send_command(&mut sink, &WorkerCommand::InputOffsets)
            .await
            .is_err()
    {
        return;
    }
    if let Some(size) = session.last_resize() {
        if send_command(&mut sink, &WorkerCommand::Resize(size))
            .await
            .is_err()
        {
            return;
        }
    }
    // The worker's first ack on this connection: where its stdin stands.
    let (worker_at, mut worker_at_changes) = watch::channel(None::<u64>);
    // Reading and writing go on independently: a write that waits (the
    // worker is busy feeding the container's stdin) must never stop the
    // reads, or the worker, waiting to send output, and this handler,
    // waiting to send it input, would wait for each other.
    let reading = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(frame) => match OutputFrame::decode(&frame) {
                    Ok(decoded) => {
                        let seq = decoded.seq;
                        session.publish(OutputChunk { seq, frame });
                    }
                    Err(error) => {
                        tracing::warn!(job_id = %session.job_id, %error, "ignoring a malformed output frame")
                    }
                },
                Message::Text(text) => match serde_json::from_str::<WorkerMessage>(&text) {
                    Ok(WorkerMessage::InputAck { offset }) => {
                        session.input_written(offset);
                        worker_at.send_if_modified(|at| at.replace(offset).is_none());
                    }
                    Err(error) => {
                        tracing::warn!(job_id = %session.job_id, %error, "ignoring a malformed worker message")
                    }
                },
                Message::Close(_) => return,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    if !offsets {
        // An older worker numbers nothing: any place will do.
        session.place_input(0);
    }
    let writing = async {
        let mut input = session.watch_input();
        // Where the next input frame starts on this connection; with
        // offsets, unknown until the worker's first ack.
        let mut cursor = (!offsets).then(|| input.borrow().start()).flatten();
        let mut end_sent = false;
        loop {
            if cursor.is_none() {
                cursor = if offsets {
                    *worker_at_changes.borrow_and_update()
                } else {
                    input.borrow().start()
                };
            }
            if let Some(at) = cursor.as_mut() {
                loop {
                    let next = next_input(&mut input, *at, end_sent);
                    let sent = match next {
                        NextInput::Bytes(offset, bytes) => {
                            *at = offset + bytes.len() as u64;
                            let frame = if offsets {
                                InputFrame {
                                    offset,
                                    data: &bytes,
                                }
                                .encode()
                            } else {
                                bytes
                            };
                            let sent = sink.send(Message::Binary(frame.into())).await;
                            if !offsets {
                                // An older worker acknowledges nothing.
                                session.input_written(*at);
                            }
                            sent
                        }
                        NextInput::End(offset) => {
                            end_sent = true;
                            let command = if offsets {
                                WorkerCommand::InputEnd { offset }
                            } else {
                                WorkerCommand::Eof
                            };
                            send_command(&mut sink, &command).await
                        }
                        NextInput::Nothing => break,
                    };
                    if sent.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    if send_command(&mut sink, &command).await.is_err() {
                        return;
                    }
                }
                changed = input.changed() => if changed.is_err() { return },
                changed = worker_at_changes.changed() => if changed.is_err() { return },
            }
        }
    };
    tokio::select! {
        () = shutdown.cancelled() => {}
        _ = workers.changed() => {}
        () = reading => {}
        () = writing => {}
    }
    tracing::info!(job_id = %session.job_id, "worker connection ended");
    let _ = sink.close().await;
}

enum NextInput {
    Bytes(u64, Vec<u8>),
    /// Every byte is sent and the input ends at this offset.
    End(u64),
    Nothing,
}

/// What to send the worker next from `at`; marks the window seen.
fn next_input(input: &mut watch::Receiver<InputWindow>, at: u64, end_sent: bool) -> NextInput {
    let window = input.borrow_and_update();
    if let Some((offset, bytes)) = window.chunk_at(at, INPUT_FRAME_BYTES) {
        return NextInput::Bytes(offset, bytes);
    }
    match window.end() {
        Some(end) if window.is_ended() && !end_sent && at >= end => NextInput::End(end),
        _ => NextInput::Nothing,
    }
}

async fn send_command(
    sink: &mut SplitSink<WebSocket, Message>,
    command: &WorkerCommand,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(command).expect("worker commands serialize");
    sink.send(Message::Text(text.into())).await
}
