//! An interactive run's stdin through its shim (`shim run -i`): the worker
//! execs `/.jobs/shim feed` in the container and sends numbered input
//! frames down it; the shim writes each byte to the command once, in order,
//! and acknowledges how far it got. The shim outlives this worker, so a
//! restarted worker reads where the input stands from the shim's first ack
//! and goes on from there: nothing lost, nothing repeated.
//!
//! The frames (`shim.c`, `feed`): `D`, offset (u64 LE), length (u32 LE),
//! bytes; `E`, the offset where the input ends; `W`, rows and columns (u16
//! LE each) of a terminal. Acks: `A`, offset.

use std::time::Duration;

use bollard::container::LogOutput;
use futures::StreamExt;
use tokio::{io::AsyncWriteExt, sync::watch};

use crate::runtime::{ContainerInput, Runtime};

/// The most bytes of one frame; the shim takes up to 64 KiB.
const FRAME_BYTES: usize = 32 * 1024;
/// How long the shim may take to answer a new connection: its socket opens
/// a moment after the container starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The input side of a shim-run interactive run.
pub struct ShimInput {
    runtime: Runtime,
    container_id: String,
    link: Option<Link>,
    /// Input bytes handed to the current link: the offset of the next.
    sent: u64,
    /// What the shim acknowledged: written to the command's stdin.
    acked: u64,
}

/// One `shim feed` exec.
struct Link {
    input: ContainerInput,
    acks: watch::Receiver<u64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// What sending did.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Handed to the shim (or nothing new in it).
    Ok,
    /// The link was made again and the shim stands before this frame:
    /// what lies between must come again from the API.
    Behind,
    /// No shim to send to: the run is over.
    Closed,
}

impl ShimInput {
    /// Connects to the run's shim; its first ack says where the input
    /// stands. That one is the shim's word (a restarted worker sent
    /// nothing yet); every later ack is held to what was sent since.
    pub async fn connect(runtime: Runtime, container_id: String) -> anyhow::Result<Self> {
        let mut input = Self {
            runtime,
            container_id,
            link: None,
            sent: 0,
            acked: 0,
        };
        input.relink().await?;
        Ok(input)
    }

    /// The offset up to which the command's stdin was written.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Input bytes handed to the shim so far: where raw input goes on.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Sends the part of `data` (input from `offset`) the shim lacks.
    pub async fn send(&mut self, offset: u64, data: &[u8]) -> Sent {
        if !self.linked().await {
            return Sent::Closed;
        }
        // Offsets come from afar: one past u64 is a frame that skips ahead.
        let Some(end) = offset.checked_add(data.len() as u64) else {
            return Sent::Behind;
        };
        if end <= self.sent {
            return Sent::Ok;
        }
        if offset > self.sent {
            return Sent::Behind;
        }
        let fresh = &data[(self.sent - offset) as usize..];
        for piece in fresh.chunks(FRAME_BYTES) {
            let mut frame = Vec::with_capacity(13 + piece.len());
            frame.push(b'D');
            frame.extend_from_slice(&self.sent.to_le_bytes());
            frame.extend_from_slice(&(piece.len() as u32).to_le_bytes());
            frame.extend_from_slice(piece);
            if !self.write(&frame).await {
                return Sent::Closed;
            }
            self.sent += piece.len() as u64;
        }
        Sent::Ok
    }

    /// Tells the shim the input ends at `at`: the command's stdin closes
    /// once it got every byte before.
    pub async fn end(&mut self, at: u64) -> Sent {
        let mut frame = vec![b'E'];
        frame.extend_from_slice(&at.to_le_bytes());
        self.send_frame(&frame).await
    }

    /// Sets the size of the run's terminal (the shim's pty).
    pub async fn resize(&mut self, rows: u16, cols: u16) -> Sent {
        let mut frame = vec![b'W'];
        frame.extend_from_slice(&rows.to_le_bytes());
        frame.extend_from_slice(&cols.to_le_bytes());
        self.send_frame(&frame).await
    }

    /// Sends a frame outside the input's bytes, on a link made again if
    /// the last one went away.
    async fn send_frame(&mut self, frame: &[u8]) -> Sent {
        if self.linked().await && self.write(frame).await {
            Sent::Ok
        } else {
            Sent::Closed
        }
    }

    /// Whether there is a link to the shim, made again if need be.
    async fn linked(&mut self) -> bool {
        self.link.is_some() || self.relink().await.is_ok()
    }

    /// Waits for the shim to acknowledge more; pends for ever once the
    /// link is gone (the run is over, or the next send makes it again).
    pub async fn acked_more(&mut self) -> u64 {
        loop {
            let Some(link) = self.link.as_mut() else {
                return std::future::pending().await;
            };
            if link.acks.changed().await.is_err() {
                self.link = None;
                continue;
            }
            // The socket lies where the job can write (and the job can feed
            // it itself): an ack past what this link was sent is not
            // believed beyond that.
            let acked = (*link.acks.borrow_and_update()).min(self.sent);
            if acked > self.acked {
                self.acked = acked;
                return acked;
            }
        }
    }

    async fn write(&mut self, frame: &[u8]) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let written = async {
            link.input.write_all(frame).await?;
            link.input.flush().await
        };
        if let Err(error) = written.await {
            tracing::debug!(container_id = self.container_id, %error, "the shim's input link closed");
            self.link = None;
            return false;
        }
        true
    }

    /// Execs `shim feed` and waits for its first ack.
    async fn relink(&mut self) -> anyhow::Result<()> {
        let (output, input) = self
            .runtime
            .exec_attached(
                &self.container_id,
                vec![crate::shim::PATH.to_owned(), "feed".to_owned()],
            )
            .await?;
        let (first_sender, first) = tokio::sync::oneshot::channel();
        let (sender, acks) = watch::channel(0);
        let reader = tokio::spawn(read_acks(output, first_sender, sender));
        let first = tokio::time::timeout(CONNECT_TIMEOUT, first)
            .await
            .map_err(|_| anyhow::anyhow!("the shim did not answer in {CONNECT_TIMEOUT:?}"))?
            .map_err(|_| anyhow::anyhow!("the shim's input socket is closed"))?;
        self.acked = self.acked.max(first);
        self.sent = first;
        self.link = Some(Link {
            input,
            acks,
            reader,
        });
        Ok(())
    }
}

/// Reads `A` + u64 LE acks off the exec's stdout, the first into `first`
/// and every later one into `acks`; ends with the stream.
async fn read_acks(
    mut output: crate::runtime::OutputStream,
    first: tokio::sync::oneshot::Sender<u64>,
    acks: watch::Sender<u64>,
) {
    let mut first = Some(first);
    let mut pending: Vec<u8> = Vec::with_capacity(18);
    while let Some(Ok(item)) = output.next().await {
        let message = match item {
            LogOutput::StdOut { message } => message,
            // `shim feed` says why it could not connect on stderr.
            LogOutput::StdErr { message } => {
                tracing::debug!(message = %String::from_utf8_lossy(&message), "shim feed");
                continue;
            }
            _ => continue,
        };
        pending.extend_from_slice(&message);
        let mut at = 0;
        while pending.len() - at >= 9 {
            if pending[at] != b'A' {
                tracing::warn!("a malformed ack from the shim; dropping the link");
                return;
            }
            let offset = u64::from_le_bytes(pending[at + 1..at + 9].try_into().expect("8 bytes"));
            match first.take() {
                Some(first) => {
                    let _ = first.send(offset);
                }
                None => {
                    acks.send_replace(offset);
                }
            }
            at += 9;
        }
        pending.drain(..at);
    }
}
