//! The worker's socket of an interactive run: output from it, input to it.
//!
//! A worker that reconnects (a network blip) replaces its older connection,
//! which stops and hands the input queue over.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use jobs_core::attach::{OutputFrame, WorkerCommand};
use tokio_util::sync::CancellationToken;

use super::{AttachHub, OutputChunk, Session, WorkerInput};

pub async fn serve(
    hub: Arc<AttachHub>,
    session: Arc<Session>,
    socket: WebSocket,
    shutdown: CancellationToken,
) {
    let generation = session.attach_worker();
    let mut workers = session.watch_worker_generation();
    workers.borrow_and_update();
    // An older connection of this run gives the queue up once it sees the
    // newer generation.
    let mut input = tokio::select! {
        input = session.input_queue.lock() => input,
        () = shutdown.cancelled() => return,
    };
    if *workers.borrow() != generation {
        return;
    }
    hub.poke();
    tracing::info!(job_id = %session.job_id, "worker attached");
    let (mut sink, mut stream) = socket.split();
    if let Some(size) = session.last_resize() {
        if send_command(&mut sink, &WorkerCommand::Resize(size))
            .await
            .is_err()
        {
            return;
        }
    }
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
                Message::Close(_) => return,
                Message::Text(_) | Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    };
    let writing = async {
        while let Some(item) = input.recv().await {
            let sent = match item {
                WorkerInput::Stdin(bytes) => sink.send(Message::Binary(bytes)).await,
                WorkerInput::Command(command) => send_command(&mut sink, &command).await,
            };
            if sent.is_err() {
                return;
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

async fn send_command(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    command: &WorkerCommand,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(command).expect("worker commands serialize");
    sink.send(Message::Text(text.into())).await
}
