//! One interactive run's meeting point in this API process: the worker's
//! socket feeds it output and drains its input; client sockets come and go.
//!
//! Live output is best effort: a client that lags, or that reconnects, gets
//! what it missed from the store, where the worker writes every chunk under
//! the same sequence number. The small `recent` buffer covers the chunks
//! the store may not have committed yet when a client comes back.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use jobs_core::attach::{WindowSize, WorkerCommand};
use tokio::sync::{broadcast, mpsc, watch};

/// Output chunks a live client may lag behind before it reads from the store.
const LIVE_CHUNKS: usize = 256;
/// The bytes of recent output kept for a client that reconnects.
const RECENT_BYTES: usize = 1024 * 1024;
/// Input messages that wait for the worker (e.g. typed before it dialed
/// back) before the client's socket is no longer read: backpressure.
const INPUT_MESSAGES: usize = 64;

/// One output chunk as the worker sent it: its sequence number and the
/// encoded frame, forwarded to clients as is.
#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub seq: i64,
    pub frame: Bytes,
}

/// What the API passes on to the worker, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerInput {
    Stdin(Bytes),
    Command(WorkerCommand),
}

/// Who is attached, so that only the newest client counts, and whether the
/// last one left on purpose.
#[derive(Debug, Default)]
struct ClientSlot {
    generation: u64,
    attached: bool,
    detached: bool,
}

/// The latest output chunks and their total size.
#[derive(Default)]
struct Recent {
    chunks: VecDeque<OutputChunk>,
    bytes: usize,
}

pub struct Session {
    pub job_id: String,
    output: broadcast::Sender<OutputChunk>,
    recent: Mutex<Recent>,
    input: mpsc::Sender<WorkerInput>,
    /// Held by the connected worker's handler for as long as it serves.
    pub(super) input_queue: tokio::sync::Mutex<mpsc::Receiver<WorkerInput>>,
    last_resize: Mutex<Option<WindowSize>>,
    client: Mutex<ClientSlot>,
    /// The newest client generation; older client handlers stop on a change.
    client_generation: watch::Sender<u64>,
    /// The newest worker connection; an older one stops on a change.
    worker_generation: watch::Sender<u64>,
    /// The run's place in line while no worker slot is free.
    position: watch::Sender<Option<u32>>,
}

impl Session {
    pub fn new(job_id: String) -> Arc<Self> {
        let (input, input_queue) = mpsc::channel(INPUT_MESSAGES);
        Arc::new(Self {
            job_id,
            output: broadcast::channel(LIVE_CHUNKS).0,
            recent: Mutex::new(Recent::default()),
            input,
            input_queue: tokio::sync::Mutex::new(input_queue),
            last_resize: Mutex::new(None),
            client: Mutex::new(ClientSlot::default()),
            client_generation: watch::channel(0).0,
            worker_generation: watch::channel(0).0,
            position: watch::channel(None).0,
        })
    }

    /// Output from the worker: kept briefly, and sent to live clients.
    pub fn publish(&self, chunk: OutputChunk) {
        {
            let mut recent = self.recent.lock().expect("recent lock");
            recent.bytes += chunk.frame.len();
            recent.chunks.push_back(chunk.clone());
            while recent.bytes > RECENT_BYTES && recent.chunks.len() > 1 {
                if let Some(old) = recent.chunks.pop_front() {
                    recent.bytes -= old.frame.len();
                }
            }
        }
        // No receiver is fine: nobody is attached right now.
        let _ = self.output.send(chunk);
    }

    pub fn subscribe_output(&self) -> broadcast::Receiver<OutputChunk> {
        self.output.subscribe()
    }

    /// The kept chunks after `seq`, oldest first.
    pub fn recent_after(&self, seq: i64) -> Vec<OutputChunk> {
        let recent = self.recent.lock().expect("recent lock");
        recent
            .chunks
            .iter()
            .filter(|c| c.seq > seq)
            .cloned()
            .collect()
    }

    /// Queues input for the worker; waits while the queue is full.
    pub async fn send_input(&self, input: WorkerInput) {
        if let WorkerInput::Command(WorkerCommand::Resize(size)) = &input {
            *self.last_resize.lock().expect("resize lock") = Some(*size);
        }
        // The receiver lives as long as the session.
        let _ = self.input.send(input).await;
    }

    /// Queues a command without waiting; false when the queue is full.
    pub fn try_send_command(&self, command: WorkerCommand) -> bool {
        self.input.try_send(WorkerInput::Command(command)).is_ok()
    }

    pub fn last_resize(&self) -> Option<WindowSize> {
        *self.last_resize.lock().expect("resize lock")
    }

    /// A client attached; returns its generation. An older client stops.
    pub fn attach_client(&self) -> u64 {
        let mut slot = self.client.lock().expect("client lock");
        slot.generation += 1;
        slot.attached = true;
        slot.detached = false;
        self.client_generation.send_replace(slot.generation);
        slot.generation
    }

    /// The client of `generation` left; `on_purpose` after a detach. Returns
    /// whether the run is now unattended and should get a grace deadline.
    pub fn client_left(&self, generation: u64, on_purpose: bool) -> bool {
        let mut slot = self.client.lock().expect("client lock");
        if slot.generation != generation {
            return false;
        }
        slot.attached = false;
        slot.detached = on_purpose;
        !on_purpose
    }

    /// Whether no client came back since `generation` left unexpectedly.
    pub fn still_abandoned(&self, generation: u64) -> bool {
        let slot = self.client.lock().expect("client lock");
        slot.generation == generation && !slot.attached && !slot.detached
    }

    pub fn watch_client_generation(&self) -> watch::Receiver<u64> {
        self.client_generation.subscribe()
    }

    /// A worker connection begins; returns its generation.
    pub fn attach_worker(&self) -> u64 {
        let mut generation = 0;
        self.worker_generation.send_modify(|current| {
            *current += 1;
            generation = *current;
        });
        generation
    }

    pub fn watch_worker_generation(&self) -> watch::Receiver<u64> {
        self.worker_generation.subscribe()
    }

    pub fn set_position(&self, position: Option<u32>) {
        self.position.send_if_modified(|current| {
            let changed = *current != position;
            *current = position;
            changed
        });
    }

    pub fn watch_position(&self) -> watch::Receiver<Option<u32>> {
        self.position.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seq: i64, bytes: usize) -> OutputChunk {
        OutputChunk {
            seq,
            frame: Bytes::from(vec![0u8; bytes]),
        }
    }

    #[test]
    fn recent_output_is_bounded_and_ordered() {
        let session = Session::new("job".into());
        for seq in 1..=40 {
            session.publish(chunk(seq, 64 * 1024));
        }
        let kept = session.recent_after(0);
        assert!(kept.len() <= 16, "kept {} chunks", kept.len());
        assert_eq!(kept.last().map(|c| c.seq), Some(40));
        assert!(kept.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(session.recent_after(39).len(), 1);
    }

    #[test]
    fn only_the_newest_client_counts() {
        let session = Session::new("job".into());
        let first = session.attach_client();
        let second = session.attach_client();
        assert!(!session.client_left(first, false), "a replaced client");
        assert!(session.client_left(second, false));
        assert!(session.still_abandoned(second));
        let third = session.attach_client();
        assert!(!session.still_abandoned(second));
        assert!(
            !session.client_left(third, true),
            "a detach has no deadline"
        );
        assert!(!session.still_abandoned(third));
    }
}
