//! Local stdin as a bounded stream of chunks.
//!
//! A plain thread does the blocking reads. Tokio's own stdin runs them on
//! its blocking pool, where a read that never returns (a terminal nobody
//! types at) would hold up the runtime's shutdown at exit; a detached
//! thread just ends with the process. The channel is small, so a fast
//! producer (`jobs run -i cat < 10GB`) waits for the socket instead of
//! filling memory.

use std::io::Read;

use tokio::sync::mpsc;

/// The most one chunk holds: one read, one binary frame.
pub const CHUNK_BYTES: usize = 32 * 1024;
/// How many chunks may wait for the socket.
const CHANNEL_CHUNKS: usize = 4;

/// What the reader thread sends.
#[derive(Debug)]
pub enum Input {
    Bytes(Vec<u8>),
    /// Stdin ended (or failed: the same for the job, whose stdin closes).
    End,
}

/// Starts reading stdin in a thread of its own.
pub fn spawn() -> mpsc::Receiver<Input> {
    let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
    let started = std::thread::Builder::new()
        .name("jobs-stdin".into())
        .spawn(move || read_all(std::io::stdin().lock(), &sender));
    if started.is_err() {
        // No thread, no input: the job sees its stdin end.
        let (sender, receiver) = mpsc::channel(1);
        let _ = sender.try_send(Input::End);
        return receiver;
    }
    receiver
}

fn read_all(mut reader: impl Read, sender: &mpsc::Sender<Input>) {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if sender
                    .blocking_send(Input::Bytes(buffer[..n].to_vec()))
                    .is_err()
                {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = sender.blocking_send(Input::End);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_arrives_in_bounded_chunks_then_the_end() {
        let data: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        let (sender, mut receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let input = data.clone();
        let reader = std::thread::spawn(move || read_all(&input[..], &sender));
        let mut got = Vec::new();
        loop {
            match receiver.blocking_recv() {
                Some(Input::Bytes(chunk)) => {
                    assert!(!chunk.is_empty() && chunk.len() <= CHUNK_BYTES);
                    got.extend_from_slice(&chunk);
                }
                Some(Input::End) => break,
                None => panic!("the reader left without saying the input ended"),
            }
        }
        reader.join().unwrap();
        assert_eq!(got, data);
    }
}
