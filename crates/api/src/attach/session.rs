//! One interactive run's meeting point in this API process: the worker's
//! socket feeds it output and drains its input; client sockets come and go.
//!
//! Live output is best effort: a client that lags, or that reconnects, gets
//! what it missed from the store, where the worker writes every chunk under
//! the same sequence number. The small `recent` buffer covers the chunks
//! the store may not have committed yet when a client comes back.
//!
//! Input is exactly-once (`jobs_core::attach::input`): the session holds an
//! [`InputWindow`] of the bytes clients sent that the worker has not
//! acknowledged yet. It survives both sockets, so a worker that reconnects
//! gets the rest from its own ack, and a client that reconnects goes on
//! from the window's end. An API that restarts loses the window, but no
//! client forgot those bytes: a client forgets only what the worker
//! acknowledged, and resends the rest to the new API, which places its
//! fresh window at the worker's ack.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use jobs_core::attach::{
    WindowSize, WorkerCommand,
    input::{Accepted, InputFrame, InputWindow},
};
use tokio::sync::{broadcast, mpsc, watch};

/// Output chunks a live client may lag behind before it reads from the store.
const LIVE_CHUNKS: usize = 256;
/// The bytes of recent output kept for a client that reconnects.
const RECENT_BYTES: usize = 1024 * 1024;
/// Commands that wait for the worker before the client's socket is no
/// longer read: backpressure.
const COMMANDS: usize = 64;
/// The input bytes held for the worker (e.g. typed before it dialed back)
/// before the client's socket is no longer read: backpressure. Above the
/// CLI's own window, so that a client with offsets never meets it.
pub const INPUT_WINDOW_BYTES: usize = 8 * 1024 * 1024;

/// One output chunk as the worker sent it: its sequence number and the
/// encoded frame, forwarded to clients as is.
#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub seq: i64,
    pub frame: Bytes,
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
    commands: mpsc::Sender<WorkerCommand>,
    /// Held by the connected worker's handler for as long as it serves.
    pub(super) command_queue: tokio::sync::Mutex<mpsc::Receiver<WorkerCommand>>,
    /// Input not acknowledged by the worker yet; watchers learn of every
    /// change (new bytes, an ack, the end, the window's placing).
    input: watch::Sender<InputWindow>,
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
        let (commands, command_queue) = mpsc::channel(COMMANDS);
        Arc::new(Self {
            job_id,
            output: broadcast::channel(LIVE_CHUNKS).0,
            recent: Mutex::new(Recent::default()),
            commands,
            command_queue: tokio::sync::Mutex::new(command_queue),
            // Placed by the first who knows where the input stands: a run
            // put in line (nothing written yet) or its worker's first ack.
            input: watch::channel(InputWindow::unplaced()).0,
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

    /// Queues a command for the worker; waits while the queue is full.
    pub async fn send_command(&self, command: WorkerCommand) {
        if let WorkerCommand::Resize(size) = &command {
            *self.last_resize.lock().expect("resize lock") = Some(*size);
        }
        // The receiver lives as long as the session.
        let _ = self.commands.send(command).await;
    }

    /// Queues a command without waiting; false when the queue is full.
    pub fn try_send_command(&self, command: WorkerCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }

    pub fn watch_input(&self) -> watch::Receiver<InputWindow> {
        self.input.subscribe()
    }

    /// The input stands at `start` (a run nobody wrote stdin for yet);
    /// nothing changes if its place is known.
    pub fn place_input(&self, start: u64) {
        self.input.send_if_modified(|window| window.place(start));
    }

    /// Waits until the input window has room, for backpressure.
    pub async fn input_room(&self) {
        let mut input = self.input.subscribe();
        // The sender lives as long as the session.
        let _ = input
            .wait_for(|window| window.len() < INPUT_WINDOW_BYTES)
            .await;
    }

    /// A frame from a client with offsets; a resend's old part is dropped.
    pub fn accept_input(&self, frame: &InputFrame<'_>) -> Accepted {
        let mut accepted = Accepted::New(0);
        self.input.send_if_modified(|window| {
            accepted = window.accept(frame);
            matches!(accepted, Accepted::New(n) if n > 0)
        });
        accepted
    }

    /// Raw bytes from a client without offsets: they come next.
    pub fn push_input(&self, bytes: &[u8]) {
        self.input.send_if_modified(|window| {
            window.push(bytes);
            !bytes.is_empty()
        });
    }

    /// The input ends after what is held (a client without offsets).
    pub fn end_input(&self) {
        self.input.send_if_modified(|window| {
            let was = window.is_ended();
            window.end_input();
            !was
        });
    }

    /// The input ends at `offset` (a client with offsets): taken once every
    /// byte before it is held.
    pub fn accept_input_end(&self, offset: u64) {
        self.input.send_if_modified(|window| {
            let was = window.is_ended();
            window.accept_end(offset) && !was
        });
    }

    /// The worker wrote every byte below `offset`: they are dropped. The
    /// first ack of a worker after an API restart places the window.
    pub fn input_written(&self, offset: u64) {
        self.input.send_if_modified(|window| {
            if window.place(offset) {
                return true;
            }
            let before = (window.start(), window.len());
            window.ack(offset);
            // A worker ahead of this window wrote bytes another API
            // process relayed; nothing held here is still owed.
            window.skip_to(offset);
            before != (window.start(), window.len())
        });
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
    fn input_is_placed_once_acked_by_the_worker_and_resends_are_dropped() {
        let session = Session::new("job".into());
        let input = session.watch_input();
        // After an API restart: raw bytes wait for the worker to say where
        // the stream stands.
        session.push_input(b"raw");
        assert!(!input.borrow().is_placed());
        session.input_written(10);
        assert_eq!(input.borrow().chunk_at(0, 64), Some((10, b"raw".to_vec())));
        session.place_input(0);
        assert_eq!(input.borrow().start(), Some(10), "placed once");
        // A client resends from the ack: only the new part is taken.
        let frame = InputFrame {
            offset: 10,
            data: b"raw and more",
        };
        assert_eq!(session.accept_input(&frame), Accepted::New(9));
        session.input_written(13);
        assert_eq!(
            input.borrow().chunk_at(0, 64),
            Some((13, b" and more".to_vec()))
        );
        session.accept_input_end(22);
        assert!(input.borrow().is_ended());
        session.input_written(22);
        assert!(input.borrow().is_empty());
        assert_eq!(input.borrow().end(), Some(22));
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
