//! Moves a container's output into the store: chunked, sequenced, batched.
//!
//! Memory stays bounded whatever the output rate. The reader stops reading
//! when the writer's queue is full, and Docker then stops reading the
//! container's pipes, so a fast writer is slowed down instead of buffered.
//!
//! Secret config values are masked before chunking ([`crate::secret_mask`]),
//! so no stored chunk, and thus no `jobs logs` or follower, ever holds one.
//!
//! Each chunk also records where it ends in its stream's raw bytes (before
//! masking), when it ends exactly at a known place: a restarted worker
//! reads the container's output log ([`crate::capture`]) from there.
//!
//! A job keeps at most its app's `max_output_bytes` of output: past it, the
//! pump stores nothing more of it, and at the end one marked line says how
//! many bytes were not kept ([`jobs_core::storage::output_cap_line`]). The
//! job goes on, and ends with its own exit code.

use std::time::Duration;

use bollard::container::LogOutput;
use bytes::Bytes;
use chrono::Utc;
use futures::{Stream, StreamExt};
use jobs_core::{storage::output_cap_line, wire::LogStream};
use jobs_store::{NewChunk, RawOffsets, Store};
use tokio::{sync::mpsc, time::Instant};

use crate::{
    runtime::OutputStream,
    secret_mask::{SecretMasker, Secrets},
};

/// The largest chunk stored in one row.
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;
/// The longest a byte waits in the pump before it is flushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A chunk is also cut once the output has been quiet this long: a line
/// printed now and then reaches followers at once, while a steady stream
/// (whose pieces come back to back) still fills chunks.
const IDLE_FLUSH: Duration = Duration::from_millis(10);
/// How long a pump that cuts at every read (an interactive run) holds back
/// bytes that may begin a secret before it releases them as they are.
const INTERACTIVE_HOLD: Duration = Duration::from_millis(30);
/// A piece of output at least this large starts a chunk with room for a
/// whole one.
const LARGE_PIECE_BYTES: usize = 4 * 1024;
/// How many chunks may wait for the writer: the pump's memory bound.
const QUEUE_CHUNKS: usize = 32;
/// How many chunks one insert may carry.
const BATCH_CHUNKS: usize = 64;
/// The most raw bytes given to a masker at once: a chunk is cut before a
/// piece that would not fit, so that it ends at a known raw offset.
const MASK_PIECE_BYTES: usize = 16 * 1024;

/// One item of a container's output, as the pump reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes the container wrote to a stream.
    Output(LogStream, Bytes),
    /// This many bytes of a stream were written but are not kept: the
    /// pump stores a marked line in their place.
    Gap(LogStream, u64),
    /// What follows in the shim's output log cannot be read (a forged or
    /// corrupt record, said why): the pump stores a marked line on stderr,
    /// and nothing more comes from that log.
    Unreadable(String),
}

/// A container's output as pieces.
pub type Pieces = std::pin::Pin<Box<dyn Stream<Item = Piece> + Send>>;

/// The pieces of Docker's attach stream; a read error ends them.
pub fn pieces_of(output: OutputStream) -> Pieces {
    Box::pin(
        output
            .filter_map(|item| async move {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        Some(Some(Piece::Output(LogStream::Stdout, message)))
                    }
                    Ok(LogOutput::StdErr { message }) => {
                        Some(Some(Piece::Output(LogStream::Stderr, message)))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                    Err(error) => {
                        tracing::warn!(%error, "reading container output failed");
                        Some(None)
                    }
                }
            })
            .take_while(|piece| std::future::ready(piece.is_some()))
            .filter_map(std::future::ready),
    )
}

/// The marked line stored in place of bytes that were not kept.
pub fn gap_line(stream: LogStream, bytes: u64) -> String {
    let stream = match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    };
    format!("[jobs: {bytes} bytes of {stream} written while the worker was away were not kept]\n")
}

/// What the pump does to a job's output besides storing it: mask the
/// app's secrets, and keep at most `max_output` bytes.
#[derive(Debug, Clone)]
pub struct OutputRules {
    pub secrets: Secrets,
    pub max_output: u64,
}

impl OutputRules {
    pub fn new(secret_values: &[String], max_output: u64) -> Self {
        Self {
            secrets: Secrets::new(secret_values),
            max_output,
        }
    }
}

/// The marked line stored when the rest of a shim's output log cannot be
/// read: the job itself may have written over its log.
pub fn unreadable_line(why: &str) -> String {
    format!(
        "[jobs: the rest of the output written while the worker was away is not readable: {why}]\n"
    )
}

/// How chunks are cut and where else they go.
#[derive(Debug, Clone)]
pub struct PumpOptions {
    /// The longest a byte waits before its chunk is cut; zero cuts a chunk
    /// at every read, as a terminal needs.
    pub flush_interval: Duration,
    /// Also sends every chunk here as soon as it is stored, without
    /// waiting: the live view of an interactive run. A full channel drops
    /// the chunk from the live view only.
    pub live: Option<mpsc::Sender<NewChunk>>,
}

impl Default for PumpOptions {
    fn default() -> Self {
        Self {
            flush_interval: FLUSH_INTERVAL,
            live: None,
        }
    }
}

/// What the pump stored, for the job's record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PumpReport {
    pub chunks: i64,
    pub bytes: u64,
}

/// Reads `output` to its end and stores it as the logs of `job_id`, with
/// sequence numbers starting after `last_seq`. Returns once every byte is
/// committed. Every occurrence of one of the `rules`' secrets is masked
/// first, and at most their `max_output` bytes are kept.
pub async fn pump(
    store: Store,
    job_id: String,
    last_seq: i64,
    rules: OutputRules,
    output: OutputStream,
    options: PumpOptions,
) -> PumpReport {
    pump_pieces(
        store,
        job_id,
        last_seq,
        RawOffsets::default(),
        rules,
        pieces_of(output),
        options,
    )
    .await
}

/// [`pump`] over pieces, with raw offsets counted on from `raw_start`
/// (where the stored output ends, for a taken-over container).
pub async fn pump_pieces(
    store: Store,
    job_id: String,
    last_seq: i64,
    raw_start: RawOffsets,
    rules: OutputRules,
    output: Pieces,
    options: PumpOptions,
) -> PumpReport {
    // The count only: a value must never reach a log line.
    tracing::debug!(job_id, secrets = rules.secrets.len(), "pumping output");
    let (sender, receiver) = mpsc::channel(QUEUE_CHUNKS);
    let writer = tokio::spawn(write_batches(store, job_id, receiver, options.live));
    let report = read_chunks(
        output,
        MaskingChunker::new(last_seq, raw_start, rules.secrets).with_output_cap(rules.max_output),
        Sinks { store: sender },
        options.flush_interval,
    )
    .await;
    if let Err(error) = writer.await {
        tracing::error!(%error, "the log writer task failed");
    }
    report
}

/// Cuts the output into chunks: a chunk ends when the stream switches, when
/// it reaches [`MAX_CHUNK_BYTES`], [`FLUSH_INTERVAL`] after its first byte,
/// or after [`IDLE_FLUSH`] with no new output.
async fn read_chunks(
    mut output: Pieces,
    mut chunker: MaskingChunker,
    sender: Sinks,
    flush_interval: Duration,
) -> PumpReport {
    let mut report = PumpReport::default();
    let mut deadline: Option<Instant> = None;
    let mut last_piece = Instant::now();
    loop {
        // At a terminal every read is cut already; the deadline only
        // releases a held-back possible secret, after its hold.
        let wake = deadline.map(|at| {
            if flush_interval.is_zero() {
                at
            } else {
                at.min(last_piece + IDLE_FLUSH)
            }
        });
        let item = match wake {
            Some(at) => tokio::select! {
                item = output.next() => item,
                () = tokio::time::sleep_until(at) => {
                    deadline = None;
                    // At a terminal, bytes held back as a possible secret's
                    // start are released after a short hold: a typed key
                    // that begins a secret must still echo.
                    let chunks = if flush_interval.is_zero() {
                        chunker.finish()
                    } else {
                        chunker.flush().into_iter().collect()
                    };
                    for chunk in chunks {
                        if !send(&sender, chunk, &mut report).await { return report; }
                    }
                    continue;
                }
            },
            None => output.next().await,
        };
        last_piece = Instant::now();
        let was_empty = chunker.is_empty();
        let mut chunks = match item {
            Some(Piece::Output(stream, bytes)) => chunker.push(stream, &bytes),
            Some(Piece::Gap(stream, bytes)) => {
                tracing::warn!(
                    ?stream,
                    bytes,
                    "output written while no worker was attached was not kept"
                );
                chunker.gap(stream, bytes)
            }
            Some(Piece::Unreadable(why)) => {
                tracing::warn!(why, "the rest of the shim's output log is not readable");
                chunker.note(LogStream::Stderr, &unreadable_line(&why), 0)
            }
            None => break,
        };
        if flush_interval.is_zero() {
            chunks.extend(chunker.flush());
        }
        for chunk in chunks {
            if !send(&sender, chunk, &mut report).await {
                return report;
            }
        }
        if chunker.is_empty() {
            deadline = None;
        } else if was_empty || deadline.is_none() {
            deadline = Some(Instant::now() + flush_interval.max(INTERACTIVE_HOLD));
        }
    }
    for chunk in chunker.end() {
        if !send(&sender, chunk, &mut report).await {
            break;
        }
    }
    report
}

/// Where cut chunks go: the store's writer (waited for: backpressure).
struct Sinks {
    store: mpsc::Sender<NewChunk>,
}

async fn send(sinks: &Sinks, chunk: NewChunk, report: &mut PumpReport) -> bool {
    report.chunks += 1;
    report.bytes += chunk.data.len() as u64;
    sinks.store.send(chunk).await.is_ok()
}

/// Inserts chunks in batches. A failed insert is retried until it succeeds:
/// a job's logs must survive a database restart, and the bounded queue
/// holds the container back meanwhile.
///
/// Each stored chunk then goes to `live` (never waited for): only stored
/// chunks are shown live, because a chunk's number is only final once
/// stored. A worker that restarts numbers again from the last stored
/// chunk, and cuts the bytes after it anew; a client that had been shown
/// an unstored chunk under that number would skip the new one.
async fn write_batches(
    store: Store,
    job_id: String,
    mut receiver: mpsc::Receiver<NewChunk>,
    live: Option<mpsc::Sender<NewChunk>>,
) {
    let mut batch = Vec::with_capacity(BATCH_CHUNKS);
    while receiver.recv_many(&mut batch, BATCH_CHUNKS).await > 0 {
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = store.append_logs(&job_id, &batch).await {
            tracing::warn!(job_id, %error, "storing logs failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        let bytes: usize = batch.iter().map(|chunk| chunk.data.len()).sum();
        crate::metrics::LOG_BYTES.inc_by(bytes as u64);
        match &live {
            Some(live) => {
                for chunk in batch.drain(..) {
                    let _ = live.try_send(chunk);
                }
            }
            None => batch.clear(),
        }
    }
}

/// A [`Chunker`] behind one [`SecretMasker`] per stream.
///
/// A masker holds back at most a possible secret's start (fewer bytes than
/// the longest secret). It is released only when the next bytes of its own
/// stream decide it, or at the end. Not on a switch to the other stream:
/// Docker reads a container's stdout and stderr pipes separately, so their
/// frames can arrive in another order than they were written (a stderr
/// write may come before the end of a secret written to stdout just
/// before it). On the flush deadline only what is decided is flushed, and
/// the undecided tail waits: a secret written in two parts with a pause
/// between them is still masked. Such a tail is bounded and rare (it must
/// look like the start of a secret).
struct MaskingChunker {
    chunker: Chunker,
    stdout: SecretMasker,
    stderr: SecretMasker,
    /// Raw bytes of stdout and stderr pushed so far (and skipped by gaps).
    raw: [i64; 2],
    cap: OutputCap,
    /// Whether the last byte kept ends a line (or none was kept): the cap's
    /// line then needs no newline of its own before it.
    ends_line: bool,
}

/// The most raw bytes of output a job keeps, and what it did not keep.
#[derive(Debug, Clone, Copy)]
struct OutputCap {
    limit: u64,
    /// Raw bytes kept, counted from the job's first byte.
    kept: u64,
    /// Raw bytes past the limit, not kept.
    dropped: u64,
}

impl OutputCap {
    /// How many of `len` more bytes are kept; the rest count as dropped.
    fn admit(&mut self, len: usize) -> usize {
        let kept = (len as u64).min(self.limit.saturating_sub(self.kept));
        self.kept += kept;
        self.dropped += len as u64 - kept;
        kept as usize
    }

    fn reached(&self) -> bool {
        self.kept >= self.limit
    }
}

fn stream_index(stream: LogStream) -> usize {
    match stream {
        LogStream::Stdout => 0,
        LogStream::Stderr => 1,
    }
}

impl MaskingChunker {
    fn new(last_seq: i64, raw_start: RawOffsets, secrets: Secrets) -> Self {
        Self {
            chunker: Chunker::new(last_seq),
            stdout: SecretMasker::new(secrets.clone()),
            stderr: SecretMasker::new(secrets),
            raw: [raw_start.stdout, raw_start.stderr],
            cap: OutputCap {
                limit: u64::MAX,
                kept: 0,
                dropped: 0,
            },
            ends_line: true,
        }
    }

    /// Keeps at most `limit` raw bytes, counting what was stored before
    /// (`raw_start`, for a taken-over container) as kept.
    fn with_output_cap(mut self, limit: u64) -> Self {
        let before = self.raw.iter().map(|raw| raw.max(&0).unsigned_abs()).sum();
        self.cap = OutputCap {
            limit,
            kept: before,
            dropped: 0,
        };
        self
    }

    /// The raw offset of `stream` just past what its masker has released.
    fn released(&mut self, stream: LogStream) -> i64 {
        let pending = self.masker(stream).pending_len() as i64;
        self.raw[stream_index(stream)] - pending
    }

    fn masker(&mut self, stream: LogStream) -> &mut SecretMasker {
        match stream {
            LogStream::Stdout => &mut self.stdout,
            LogStream::Stderr => &mut self.stderr,
        }
    }

    /// Whether bytes wait, in a chunk or in a masker.
    fn is_empty(&self) -> bool {
        self.chunker.is_empty() && !self.stdout.has_pending() && !self.stderr.has_pending()
    }

    fn push(&mut self, stream: LogStream, bytes: &[u8]) -> Vec<NewChunk> {
        let kept = self.cap.admit(bytes.len());
        let (bytes, dropped) = bytes.split_at(kept);
        if let Some(last) = bytes.last() {
            self.ends_line = *last == b'\n';
        }
        let chunks = self.push_kept(stream, bytes);
        // Not stored, but written: the raw offsets still count them.
        self.raw[stream_index(stream)] += dropped.len() as i64;
        chunks
    }

    fn push_kept(&mut self, stream: LogStream, bytes: &[u8]) -> Vec<NewChunk> {
        let mut chunks = Vec::new();
        if !self.masker(stream).masks_anything() {
            // Nothing to mask: the bytes go to the chunk as they are, with
            // no copy on the way (the profile of log ingest showed it).
            for piece in bytes.chunks(MASK_PIECE_BYTES) {
                self.raw[stream_index(stream)] += piece.len() as i64;
                let raw_end = self.released(stream);
                chunks.extend(self.chunker.push(stream, piece, raw_end));
            }
            return chunks;
        }
        for piece in bytes.chunks(MASK_PIECE_BYTES) {
            let masked = self.masker(stream).push(piece);
            self.raw[stream_index(stream)] += piece.len() as i64;
            if masked.is_empty() {
                // All held back: no reason to cut the other stream's chunk.
                continue;
            }
            let raw_end = self.released(stream);
            chunks.extend(self.chunker.push(stream, &masked, raw_end));
        }
        chunks
    }

    /// `bytes` of `stream` are not kept: what the masker holds goes first,
    /// then the marked line in their place.
    fn gap(&mut self, stream: LogStream, bytes: u64) -> Vec<NewChunk> {
        if self.cap.reached() {
            // Past the cap they would not have been kept anyway.
            self.cap.dropped += bytes;
            self.raw[stream_index(stream)] += i64::try_from(bytes).unwrap_or(i64::MAX);
            return Vec::new();
        }
        self.note(stream, &gap_line(stream, bytes), bytes)
    }

    /// A marked `line` of the worker's own on `stream`, where `skipped`
    /// raw bytes were not kept: what the masker holds goes first.
    fn note(&mut self, stream: LogStream, line: &str, skipped: u64) -> Vec<NewChunk> {
        let mut chunks = Vec::new();
        let tail = self.masker(stream).finish();
        let at = self.raw[stream_index(stream)];
        if !tail.is_empty() {
            chunks.extend(self.chunker.push(stream, &tail, at));
        }
        let raw = &mut self.raw[stream_index(stream)];
        *raw = raw.saturating_add(i64::try_from(skipped).unwrap_or(i64::MAX));
        let after = *raw;
        chunks.extend(self.chunker.push(stream, line.as_bytes(), after));
        chunks
    }

    /// The deadline's flush: what is decided; an undecided tail waits.
    fn flush(&mut self) -> Option<NewChunk> {
        self.chunker.flush()
    }

    /// The end: everything, masked; the current stream's tail first, so
    /// that it joins its chunk.
    fn finish(&mut self) -> Vec<NewChunk> {
        let current = self.chunker.stream;
        let other = match current {
            LogStream::Stdout => LogStream::Stderr,
            LogStream::Stderr => LogStream::Stdout,
        };
        let mut chunks = Vec::new();
        for stream in [current, other] {
            let tail = self.masker(stream).finish();
            if !tail.is_empty() {
                let raw_end = self.raw[stream_index(stream)];
                chunks.extend(self.chunker.push(stream, &tail, raw_end));
            }
        }
        chunks.extend(self.chunker.flush());
        chunks
    }

    /// The output's end: [`Self::finish`], then the marked line of what the
    /// cap dropped, if anything.
    fn end(&mut self) -> Vec<NewChunk> {
        let mut chunks = self.finish();
        if self.cap.dropped > 0 {
            let mut line = output_cap_line(self.cap.dropped, self.cap.limit);
            if !self.ends_line {
                line.insert(0, '\n');
            }
            let raw_end = self.raw[stream_index(LogStream::Stderr)];
            chunks.extend(
                self.chunker
                    .push(LogStream::Stderr, line.as_bytes(), raw_end),
            );
            chunks.extend(self.chunker.flush());
        }
        chunks
    }
}

/// The pure part of the pump: bytes in, bounded chunks out.
struct Chunker {
    next_seq: i64,
    stream: LogStream,
    buffer: Vec<u8>,
    /// The raw offset just past the buffer's bytes, when known.
    buffer_raw_end: Option<i64>,
}

impl Chunker {
    fn new(last_seq: i64) -> Self {
        Self {
            next_seq: last_seq + 1,
            stream: LogStream::Stdout,
            buffer: Vec::new(),
            buffer_raw_end: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Adds bytes that end at raw offset `raw_end` of their stream;
    /// returns the chunks that are complete. A chunk is cut before bytes
    /// that would not fit, so that it ends at a known raw offset; only a
    /// push larger than a chunk makes chunks that end at none.
    fn push(&mut self, stream: LogStream, mut bytes: &[u8], raw_end: i64) -> Vec<NewChunk> {
        let mut full = Vec::new();
        if stream != self.stream {
            full.extend(self.flush());
            self.stream = stream;
        }
        if self.buffer.len() + bytes.len() > MAX_CHUNK_BYTES {
            full.extend(self.flush());
        }
        // A steady stream fills whole chunks: room for one at once, rather
        // than a buffer grown (and copied) five times over on the way.
        if self.buffer.is_empty() && bytes.len() >= LARGE_PIECE_BYTES {
            self.buffer.reserve(MAX_CHUNK_BYTES);
        }
        while !bytes.is_empty() {
            let room = MAX_CHUNK_BYTES - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            bytes = rest;
            self.buffer_raw_end = bytes.is_empty().then_some(raw_end);
            if self.buffer.len() == MAX_CHUNK_BYTES {
                full.extend(self.flush());
            }
        }
        full
    }

    fn flush(&mut self) -> Option<NewChunk> {
        if self.buffer.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.buffer);
        // A chunk cut short keeps only what it holds: chunks wait in
        // queues, and a terminal's are a few bytes each.
        if data.capacity() > 2 * data.len() + LARGE_PIECE_BYTES {
            data.shrink_to_fit();
        }
        let chunk = NewChunk {
            seq: self.next_seq,
            stream: self.stream,
            time: Utc::now(),
            data,
            raw_end: self.buffer_raw_end.take(),
        };
        self.next_seq += 1;
        Some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output stream fed by hand, and the chunks the pump cut from it.
    fn interactive_pump(
        secrets: &[&str],
    ) -> (
        mpsc::UnboundedSender<LogOutput>,
        mpsc::Receiver<NewChunk>,
        tokio::task::JoinHandle<PumpReport>,
    ) {
        pump_with(secrets, Duration::ZERO)
    }

    fn pump_with(
        secrets: &[&str],
        flush_interval: Duration,
    ) -> (
        mpsc::UnboundedSender<LogOutput>,
        mpsc::Receiver<NewChunk>,
        tokio::task::JoinHandle<PumpReport>,
    ) {
        let (feed, fed) = mpsc::unbounded_channel::<LogOutput>();
        let output: OutputStream = Box::pin(futures::stream::unfold(fed, |mut fed| async {
            fed.recv().await.map(|item| (Ok(item), fed))
        }));
        let (store, stored) = mpsc::channel(QUEUE_CHUNKS);
        let sinks = Sinks { store };
        let pump = tokio::spawn(read_chunks(
            pieces_of(output),
            MaskingChunker::new(0, RawOffsets::default(), Secrets::new(secrets)),
            sinks,
            flush_interval,
        ));
        (feed, stored, pump)
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_output_is_cut_when_idle_and_steady_output_fills_chunks() {
        let (feed, mut stored, pump) = pump_with(&[], FLUSH_INTERVAL);
        let began = Instant::now();
        feed.send(stdout(b"line 1\n")).unwrap();
        assert_eq!(next_chunk(&mut stored).await.data, b"line 1\n");
        let waited = began.elapsed();
        assert!(
            waited >= IDLE_FLUSH && waited < FLUSH_INTERVAL,
            "cut after {waited:?}"
        );
        // Pieces that come back to back make one chunk.
        for piece in [&b"a"[..], b"b", b"c"] {
            feed.send(LogOutput::Console {
                message: bytes::Bytes::copy_from_slice(piece),
            })
            .unwrap();
        }
        assert_eq!(next_chunk(&mut stored).await.data, b"abc");
        drop(feed);
        assert_eq!(pump.await.unwrap().chunks, 2);
    }

    async fn next_chunk(stored: &mut mpsc::Receiver<NewChunk>) -> NewChunk {
        tokio::time::timeout(Duration::from_secs(5), stored.recv())
            .await
            .expect("a chunk within 5 s")
            .expect("a chunk")
    }

    fn stdout(bytes: &'static [u8]) -> LogOutput {
        LogOutput::Console {
            message: bytes::Bytes::from_static(bytes),
        }
    }

    #[tokio::test]
    async fn an_interactive_pump_cuts_every_read_and_releases_a_held_key() {
        let (feed, mut stored, pump) = interactive_pump(&["hunter2"]);
        feed.send(stdout(b"$ ")).unwrap();
        assert_eq!(next_chunk(&mut stored).await.data, b"$ ");
        // `h` may begin the secret: held back, then released without any
        // further byte, as a typed key's echo must be.
        feed.send(stdout(b"h")).unwrap();
        let held = next_chunk(&mut stored).await;
        assert_eq!((held.seq, held.data.as_slice()), (2, &b"h"[..]));
        // A secret in one read is still masked.
        feed.send(stdout(b"pw=hunter2\n")).unwrap();
        assert_eq!(next_chunk(&mut stored).await.data, b"pw=***\n");
        drop(feed);
        let report = pump.await.unwrap();
        assert_eq!(report.chunks, 3);
    }

    #[test]
    fn switching_streams_cuts_a_chunk() {
        let mut chunker = Chunker::new(0);
        assert!(chunker.push(LogStream::Stdout, b"out", 3).is_empty());
        let cut = chunker.push(LogStream::Stderr, b"err", 3);
        assert_eq!(cut.len(), 1);
        assert_eq!(
            (cut[0].seq, cut[0].stream, cut[0].data.as_slice()),
            (1, LogStream::Stdout, &b"out"[..])
        );
        let last = chunker.flush().unwrap();
        assert_eq!(
            (last.seq, last.stream, last.data.as_slice()),
            (2, LogStream::Stderr, &b"err"[..])
        );
        assert!(chunker.flush().is_none());
    }

    fn data(chunks: &[NewChunk]) -> Vec<(LogStream, Vec<u8>)> {
        chunks.iter().map(|c| (c.stream, c.data.clone())).collect()
    }

    #[test]
    fn secrets_are_masked_across_pushes_deadlines_and_stream_switches() {
        let mut chunker = MaskingChunker::new(
            0,
            RawOffsets::default(),
            Secrets::new(["hunter2-very-secret"]),
        );
        let mut chunks = chunker.push(LogStream::Stdout, b"pw=hunter2-");
        // The deadline flushes what is decided; the possible secret waits.
        chunks.extend(chunker.flush());
        assert_eq!(data(&chunks), vec![(LogStream::Stdout, b"pw=".to_vec())]);
        assert!(!chunker.is_empty());
        // Docker may deliver the other stream's frame between the two
        // parts: the held tail waits for its own stream.
        chunks.extend(chunker.push(LogStream::Stderr, b"err hunter2"));
        chunks.extend(chunker.push(LogStream::Stdout, b"very-secret\n"));
        chunks.extend(chunker.push(LogStream::Stderr, b"-very-secret!"));
        chunks.extend(chunker.push(LogStream::Stdout, b"end hunter"));
        chunks.extend(chunker.finish());
        assert_eq!(
            data(&chunks),
            vec![
                (LogStream::Stdout, b"pw=".to_vec()),
                (LogStream::Stderr, b"err ".to_vec()),
                (LogStream::Stdout, b"***\n".to_vec()),
                (LogStream::Stderr, b"***!".to_vec()),
                (LogStream::Stdout, b"end hunter".to_vec()),
            ]
        );
        assert_eq!(
            chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert!(chunker.is_empty());
    }

    #[test]
    fn large_writes_are_split_at_the_chunk_limit_without_losing_bytes() {
        let mut chunker = Chunker::new(41);
        let input: Vec<u8> = (0..MAX_CHUNK_BYTES * 2 + 10)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut chunks = chunker.push(LogStream::Stdout, &input, input.len() as i64);
        chunks.extend(chunker.flush());
        assert_eq!(
            chunks.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![42, 43, 44]
        );
        assert!(chunks.iter().all(|c| c.data.len() <= MAX_CHUNK_BYTES));
        let joined: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
        assert_eq!(joined, input);
    }

    #[test]
    fn chunks_end_at_raw_offsets_that_masking_does_not_shift() {
        let mut chunker = MaskingChunker::new(
            0,
            RawOffsets {
                stdout: 100,
                stderr: 7,
            },
            Secrets::new(["hunter2"]),
        );
        let mut chunks = chunker.push(LogStream::Stdout, b"pw=hunter2 ok hun");
        chunks.extend(chunker.flush());
        // "hun" may begin the secret: held back, so the chunk ends before it.
        assert_eq!(chunks[0].data, b"pw=*** ok ");
        assert_eq!(chunks[0].raw_end, Some(100 + 14));
        chunks = chunker.push(LogStream::Stderr, b"e");
        chunks.extend(chunker.gap(LogStream::Stderr, 1000));
        chunks.extend(chunker.finish());
        let ends: Vec<_> = chunks.iter().map(|c| (c.stream, c.raw_end)).collect();
        assert_eq!(
            ends,
            vec![
                (LogStream::Stderr, Some(1008)),
                // The held "hun", released at the end.
                (LogStream::Stdout, Some(117)),
            ]
        );
        assert_eq!(
            chunks[0].data,
            [
                b"e".as_slice(),
                gap_line(LogStream::Stderr, 1000).as_bytes()
            ]
            .concat()
        );
    }

    #[tokio::test]
    async fn an_unreadable_log_becomes_a_marked_line_on_stderr() {
        let pieces: Pieces = Box::pin(futures::stream::iter([
            Piece::Output(LogStream::Stdout, Bytes::from_static(b"before\n")),
            Piece::Unreadable("a record of type 1 and 1610612736 bytes".into()),
        ]));
        let (store, mut stored) = mpsc::channel(QUEUE_CHUNKS);
        let report = read_chunks(
            pieces,
            MaskingChunker::new(
                0,
                RawOffsets {
                    stdout: 10,
                    stderr: 3,
                },
                Secrets::default(),
            ),
            Sinks { store },
            FLUSH_INTERVAL,
        )
        .await;
        assert_eq!(report.chunks, 2);
        let first = stored.recv().await.unwrap();
        assert_eq!(
            (first.data.as_slice(), first.raw_end),
            (&b"before\n"[..], Some(17))
        );
        let line = stored.recv().await.unwrap();
        assert_eq!(line.stream, LogStream::Stderr);
        // No raw byte of stderr is skipped: a restart reads on from 3.
        assert_eq!(line.raw_end, Some(3));
        assert_eq!(
            String::from_utf8(line.data).unwrap(),
            "[jobs: the rest of the output written while the worker was away is not readable: \
             a record of type 1 and 1610612736 bytes]\n"
        );
    }

    #[test]
    fn output_past_the_cap_is_dropped_and_counted_in_one_line_at_the_end() {
        let mut chunker =
            MaskingChunker::new(0, RawOffsets::default(), Secrets::default()).with_output_cap(10);
        let mut chunks = chunker.push(LogStream::Stdout, b"12345678");
        chunks.extend(chunker.push(LogStream::Stderr, b"abcdef"));
        chunks.extend(chunker.push(LogStream::Stdout, b"more"));
        // A gap past the cap counts as dropped, with no gap line of its own.
        chunks.extend(chunker.gap(LogStream::Stdout, 100));
        chunks.extend(chunker.end());
        let text: Vec<(LogStream, String)> = chunks
            .iter()
            .map(|chunk| {
                (
                    chunk.stream,
                    String::from_utf8_lossy(&chunk.data).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                (LogStream::Stdout, "12345678".to_owned()),
                (LogStream::Stderr, "ab".to_owned()),
                (LogStream::Stderr, format!("\n{}", output_cap_line(108, 10))),
            ]
        );
        // The raw offsets still count what was written.
        assert_eq!(chunker.raw, [8 + 4 + 100, 6]);
    }

    #[test]
    fn a_taken_over_job_counts_what_was_stored_before_against_its_cap() {
        let before = RawOffsets {
            stdout: 6,
            stderr: 2,
        };
        let mut chunker = MaskingChunker::new(3, before, Secrets::default()).with_output_cap(10);
        let mut chunks = chunker.push(LogStream::Stdout, b"xyz");
        chunks.extend(chunker.end());
        assert_eq!(chunks[0].data, b"xy");
        assert!(
            String::from_utf8_lossy(&chunks[1].data).contains("1 more bytes were not kept"),
            "{chunks:?}"
        );
    }

    #[test]
    fn a_chunk_is_cut_before_a_piece_that_would_not_fit() {
        let mut chunker = MaskingChunker::new(0, RawOffsets::default(), Secrets::new(["s3cr3t!"]));
        let piece = vec![b'x'; 40 * 1024];
        let mut chunks = chunker.push(LogStream::Stdout, &piece);
        chunks.extend(chunker.push(LogStream::Stdout, &piece));
        chunks.extend(chunker.finish());
        // Every chunk ends at a known raw offset, and none is over the limit.
        let ends: Vec<_> = chunks.iter().map(|c| c.raw_end.unwrap()).collect();
        let mut total = 0;
        for (chunk, end) in chunks.iter().zip(&ends) {
            total += chunk.data.len() as i64;
            assert_eq!(*end, total);
            assert!(chunk.data.len() <= MAX_CHUNK_BYTES);
        }
        assert_eq!(total, 80 * 1024);
    }

    /// While the store does not take chunks (a database outage), the pump
    /// stops reading: at most its queue and one chunk in the making are
    /// held, and the rest of the output waits in the container's pipes.
    #[tokio::test]
    async fn a_stalled_store_stops_the_pump_reading_so_memory_stays_bounded() {
        let (feed, fed) = mpsc::channel::<Piece>(1);
        let output: Pieces = Box::pin(futures::stream::unfold(fed, |mut fed| async {
            fed.recv().await.map(|piece| (piece, fed))
        }));
        // Nobody reads the store's side.
        let (store, mut stored) = mpsc::channel(QUEUE_CHUNKS);
        let sinks = Sinks { store };
        let pump = tokio::spawn(read_chunks(
            output,
            MaskingChunker::new(0, RawOffsets::default(), Secrets::default()),
            sinks,
            FLUSH_INTERVAL,
        ));
        let block = bytes::Bytes::from(vec![b'y'; MAX_CHUNK_BYTES]);
        let mut accepted = 0usize;
        loop {
            let sent = tokio::time::timeout(
                Duration::from_millis(500),
                feed.send(Piece::Output(LogStream::Stdout, block.clone())),
            )
            .await;
            if sent.is_err() {
                break;
            }
            accepted += 1;
            assert!(
                accepted <= QUEUE_CHUNKS + 4,
                "the pump read on without bound"
            );
        }
        assert!(
            accepted >= QUEUE_CHUNKS,
            "the queue holds {accepted} chunks"
        );
        // The store comes back: every chunk arrives, in order, once.
        drop(feed);
        let mut seqs = Vec::new();
        while let Some(chunk) = stored.recv().await {
            assert_eq!(chunk.data.len(), MAX_CHUNK_BYTES);
            seqs.push(chunk.seq);
        }
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(pump.await.unwrap().chunks, seqs.len() as i64);
    }
}
