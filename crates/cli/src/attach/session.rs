//! One attach session: from the first connection to the job's end (or a
//! detach), across any number of dropped connections.
//!
//! Each connection runs two halves at once: the reader prints output
//! frames and follows the API's messages; the writer sends stdin, window
//! sizes and pings. They must run concurrently: a writer blocked on a full
//! socket while nobody reads the output could deadlock against a command
//! like `cat` that echoes what it gets.
//!
//! A connection that drops is reopened with `after=LAST`, the last
//! sequence number printed, after a delay that doubles from 200 ms to
//! 5 s, until [`GIVE_UP_AFTER`] has passed without a working connection:
//! the API stops a job whose client stays away for its grace period
//! (60 s by default). Frames at or below LAST are dropped, so nothing is
//! printed twice. Stdin is exactly-once ([`super::session_input`]): what
//! the worker has not acknowledged is kept and sent again on the next
//! connection, and the API and the worker drop what they already have.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use jobs_core::JobState;
use jobs_core::attach::{ClientMessage, ServerMessage, WindowSize};
use reqwest_websocket::{Bytes, Message, WebSocket};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, mpsc};

use super::detach_keys::DetachKeys;
use super::incoming::Incoming;
use super::notice::Notices;
use super::session_input::{Outgoing, SessionInput};
use super::stdin_reader::{self, Input};
use super::terminal::{self, RawMode};
use crate::args::OnInterrupt;
use crate::backoff::Backoff;
use crate::client::ApiClient;
use crate::error::CliError;
use crate::log_cursor::LogCursor;
use crate::log_follow;
use crate::output::LogSink;

const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(200);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(5);
/// How long to keep trying to reconnect: about the API's default grace
/// period, after which the job is stopped anyway.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// A ping this often keeps proxies from closing a quiet session and
/// proves the connection alive.
const PING_EVERY: Duration = Duration::from_secs(15);
/// Nothing at all (not even a pong) for this long: the connection is dead,
/// as after a laptop's sleep, even if the socket looks open.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// How long a detach may take to say goodbye.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to attach to, and how.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub job_id: &'a str,
    /// The job has a TTY: the local window size goes with it.
    pub tty: bool,
    /// Replay the job's output from its start (`jobs run`), or show only
    /// what it prints from now on (`jobs attach`).
    pub from_start: bool,
    /// What SIGINT and SIGTERM do to the job once the session left.
    pub on_interrupt: OnInterrupt,
}

/// How a session ended. The terminal is back to normal by then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    Ended {
        state: JobState,
        exit_code: Option<i32>,
        reason: Option<String>,
    },
    /// Ctrl-P Ctrl-Q: the job goes on.
    Detached,
    /// SIGINT (Ctrl-C without a TTY): the session detached, and the job
    /// goes on unless `--on-interrupt cancel` says otherwise.
    Interrupted,
    /// SIGTERM or SIGHUP reached the CLI: it left without detaching.
    Signaled(i32),
    /// Another client attached to the run, which goes on there.
    Replaced,
}

/// A session's end, and the last output chunk it printed (`None` for a
/// `jobs attach` that printed none), from which output can be followed on.
pub struct Left {
    pub end: SessionEnd,
    pub cursor: Option<LogCursor>,
}

/// Runs the session to its end. Raw mode, when the job has a TTY and stdin
/// is a terminal, lasts from the first connection to the return.
pub async fn run(client: &ApiClient, target: Target<'_>) -> Result<Left, CliError> {
    let raw_wanted = target.tty && terminal::is_terminal(libc::STDIN_FILENO);
    let mut state = State {
        cursor: target.from_start.then(LogCursor::from_start),
        sink: LogSink::new(),
        notices: Notices::new(terminal::is_terminal(libc::STDERR_FILENO)),
        input: None,
        keys: raw_wanted.then(DetachKeys::new),
        outbox: VecDeque::new(),
        stdin: RefCell::new(SessionInput::new()),
        signals: Signals::install(target.tty)?,
    };
    let mut raw_mode: Option<RawMode> = None;
    let mut outage: Option<Outage> = None;
    loop {
        let socket = match connect(client, target, &mut state, &mut outage).await? {
            Connected::Open(socket) => socket,
            Connected::EndedWhileAway(end) => {
                return Ok(Left {
                    end,
                    cursor: state.cursor,
                });
            }
        };
        if raw_wanted && raw_mode.is_none() {
            raw_mode = Some(RawMode::enter(libc::STDIN_FILENO).map_err(|err| {
                CliError::LocalOutput(format!("cannot put the terminal in raw mode: {err}"))
            })?);
            state.notices.set_raw(true);
        }
        if state.input.is_none() {
            state.input = Some(stdin_reader::spawn());
        }
        match pump(socket, target, &mut state, &mut outage).await? {
            Pumped::Done(end) => {
                drop(raw_mode);
                return Ok(Left {
                    end,
                    cursor: state.cursor,
                });
            }
            Pumped::Lost(cause) => {
                outage.get_or_insert_with(Outage::new).report(
                    target.job_id,
                    &cause,
                    &mut state.notices,
                );
            }
        }
    }
}

/// Everything that outlives one connection.
struct State {
    /// The last sequence number printed; `None` until the first frame of a
    /// `jobs attach`, which starts from "now".
    cursor: Option<LogCursor>,
    sink: LogSink,
    notices: Notices,
    input: Option<mpsc::Receiver<Input>>,
    /// The Ctrl-P Ctrl-Q watcher, in raw mode only: without a TTY, stdin is
    /// data, and any byte may be in it.
    keys: Option<DetachKeys>,
    /// Control messages not yet handed to a socket.
    outbox: VecDeque<Message>,
    /// Stdin read but not acknowledged; the reader (acks) and the writer
    /// (new bytes, frames) of a connection both use it, never across an
    /// await.
    stdin: RefCell<SessionInput>,
    signals: Signals,
}

/// A time without a working connection.
struct Outage {
    since: Instant,
    backoff: Backoff,
    reported: bool,
}

impl Outage {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            backoff: Backoff::new(RECONNECT_FIRST_DELAY, RECONNECT_MAX_DELAY),
            reported: false,
        }
    }

    fn report(&mut self, job_id: &str, cause: &dyn std::fmt::Display, notices: &mut Notices) {
        if !std::mem::replace(&mut self.reported, true) {
            notices.line(&format!(
                "jobs: lost the connection to job {job_id} ({cause}); reconnecting"
            ));
        }
    }

    fn recovered(self, job_id: &str, notices: &mut Notices) {
        if self.reported {
            notices.line(&format!("jobs: reconnected to job {job_id}"));
        }
    }
}

enum Connected {
    Open(Box<WebSocket>),
    EndedWhileAway(SessionEnd),
}

/// Opens the next connection, retrying while retrying may help.
async fn connect(
    client: &ApiClient,
    target: Target<'_>,
    state: &mut State,
    outage: &mut Option<Outage>,
) -> Result<Connected, CliError> {
    loop {
        if let Some(current) = outage.as_mut() {
            tokio::time::sleep(current.backoff.next_delay()).await;
        }
        let after = state.cursor.map(|cursor| cursor.last_seq());
        let err = match client.open_attach(target.job_id, after).await {
            Ok(socket) => return Ok(Connected::Open(Box::new(socket))),
            Err(err) => err,
        };
        // The job ended before this connection: while the CLI was away, or
        // (a very short run) before its first connection. What it printed
        // meanwhile is in its stored logs.
        if let (CliError::Api { status: 409, .. }, Some(cursor)) = (&err, state.cursor.as_mut()) {
            let ended = finish_from_storage(client, target.job_id, cursor, &mut state.sink).await?;
            if let Some(end) = ended {
                return Ok(Connected::EndedWhileAway(end));
            }
        }
        if !err.is_retryable() {
            return Err(err);
        }
        let current = outage.get_or_insert_with(Outage::new);
        if current.since.elapsed() >= GIVE_UP_AFTER {
            return Err(CliError::Unreachable {
                api_url: client.api_url().to_owned(),
                cause: format!(
                    "gave up reconnecting to job {id} after {secs}s ({err}); \
                     a job left without a client past its grace period is stopped; \
                     see: {cli} status {id}",
                    cli = crate::shell::command_name(),
                    id = target.job_id,
                    secs = GIVE_UP_AFTER.as_secs()
                ),
            });
        }
        current.report(target.job_id, &err, &mut state.notices);
    }
}

/// Prints the stored output after `cursor` of a job that has ended, and
/// returns its end; `None` if the job has not ended after all.
async fn finish_from_storage(
    client: &ApiClient,
    job_id: &str,
    cursor: &mut LogCursor,
    sink: &mut LogSink,
) -> Result<Option<SessionEnd>, CliError> {
    let job = client.get_job(job_id).await?;
    if !job.state.is_terminal() {
        return Ok(None);
    }
    let mut after = cursor.last_seq();
    loop {
        let page = client.log_page(job_id, after).await?;
        for chunk in &page.chunks {
            if cursor.admit(chunk.seq) {
                sink.write(chunk.stream, &log_follow::chunk_bytes(chunk)?)?;
            }
        }
        if !page.more || page.next_after <= after {
            break;
        }
        after = page.next_after;
    }
    Ok(Some(SessionEnd::Ended {
        state: job.state,
        exit_code: job.exit_code,
        reason: job.reason,
    }))
}

enum Pumped {
    Done(SessionEnd),
    /// The connection was lost, for this reason.
    Lost(String),
}

/// Runs one connection until the session ends or the connection is lost.
/// The first message it delivers ends the current outage: the API is
/// there, and a later drop starts its own, with a fresh deadline.
async fn pump(
    socket: Box<WebSocket>,
    target: Target<'_>,
    state: &mut State,
    outage: &mut Option<Outage>,
) -> Result<Pumped, CliError> {
    let (mut outgoing, mut incoming) = (*socket).split();
    let State {
        cursor,
        sink,
        notices,
        input,
        keys,
        outbox,
        stdin,
        signals,
    } = state;
    let stdin = &*stdin;
    stdin.borrow_mut().new_connection();
    // The reader wakes the writer when input may go: `attached` came, or
    // an ack made room.
    let input_moved = Notify::new();

    let reader = async {
        loop {
            let next = match tokio::time::timeout(SILENCE_LIMIT, incoming.next()).await {
                Ok(next) => next,
                Err(_) => return Ok(lost("the connection went silent")),
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => return Ok(lost(&crate::error::cause_chain(&err))),
                None => return Ok(lost("the API closed the connection")),
            };
            if let Some(recovered) = outage.take() {
                recovered.recovered(target.job_id, notices);
            }
            match Incoming::from_message(message)? {
                Incoming::Output { stream, seq, data } => {
                    let new = match cursor.as_mut() {
                        Some(last) => last.admit(seq),
                        None => {
                            *cursor = Some(LogCursor::after(seq));
                            true
                        }
                    };
                    if new {
                        notices.started();
                        sink.write(stream, &data)?;
                    }
                }
                Incoming::Server(ServerMessage::Attached {
                    after,
                    input_offset,
                }) => {
                    // Live output only was asked (`jobs attach`): a reconnect
                    // resumes from here even if no output came before it.
                    cursor.get_or_insert_with(|| LogCursor::after(after));
                    stdin.borrow_mut().attached(input_offset);
                    input_moved.notify_one();
                }
                Incoming::Server(ServerMessage::InputAck { offset }) => {
                    stdin.borrow_mut().acked(offset);
                    input_moved.notify_one();
                }
                Incoming::Server(ServerMessage::Waiting { position }) => notices.waiting(position),
                Incoming::Server(ServerMessage::Started { .. }) => notices.started(),
                Incoming::Server(ServerMessage::Ended {
                    state,
                    exit_code,
                    reason,
                }) => {
                    notices.started();
                    return Ok(Pumped::Done(SessionEnd::Ended {
                        state,
                        exit_code,
                        reason,
                    }));
                }
                Incoming::Closed { replaced: true } => {
                    return Ok(Pumped::Done(SessionEnd::Replaced));
                }
                Incoming::Closed { replaced: false } => {
                    return Ok(lost("the API closed the connection"));
                }
                Incoming::Other => {}
            }
        }
    };

    let writer = async {
        if let Some(size) = local_window_size().filter(|_| target.tty) {
            outbox.push_front(control(&ClientMessage::Resize(size)));
        }
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            while let Some(message) = outbox.front() {
                // `feed` takes the message only once the socket has room,
                // so a cancelled send keeps it for the next connection.
                if let Err(err) = outgoing.feed(message.clone()).await {
                    return Ok(lost(&crate::error::cause_chain(&err)));
                }
                outbox.pop_front();
            }
            if let Err(err) = send_input(&mut outgoing, stdin).await {
                return Ok(lost(&crate::error::cause_chain(&err)));
            }
            if let Err(err) = outgoing.flush().await {
                return Ok(lost(&crate::error::cause_chain(&err)));
            }
            let receiving = input.as_mut().filter(|_| stdin.borrow().wants_more());
            tokio::select! {
                chunk = recv_input(receiving) => {
                    match chunk {
                        Some(Input::Bytes(bytes)) => {
                            let detach = queue_input(keys.as_mut(), &mut stdin.borrow_mut(), &bytes);
                            if detach {
                                return detach_now(&mut outgoing, outbox, stdin).await;
                            }
                        }
                        Some(Input::End) | None => {
                            let mut stdin = stdin.borrow_mut();
                            if let Some(byte) = keys.as_mut().and_then(DetachKeys::finish) {
                                stdin.push(&[byte]);
                            }
                            stdin.end();
                        }
                    }
                }
                () = input_moved.notified() => {}
                Some(()) = recv_signal(signals.window_change.as_mut()) => {
                    if let Some(size) = local_window_size() {
                        outbox.push_back(control(&ClientMessage::Resize(size)));
                    }
                }
                Some(()) = recv_signal(signals.interrupt.as_mut()) => {
                    detach_now(&mut outgoing, outbox, stdin).await?;
                    return Ok(Pumped::Done(SessionEnd::Interrupted));
                }
                Some(()) = recv_signal(signals.terminate.as_mut()) => {
                    return Ok(Pumped::Done(SessionEnd::Signaled(libc::SIGTERM)));
                }
                Some(()) = recv_signal(signals.hangup.as_mut()) => {
                    return Ok(Pumped::Done(SessionEnd::Signaled(libc::SIGHUP)));
                }
                _ = ping.tick() => {
                    outbox.push_back(Message::Ping(Bytes::new()));
                }
            }
        }
    };

    tokio::select! {
        pumped = reader => pumped,
        pumped = writer => pumped,
    }
}

fn lost(cause: &str) -> Pumped {
    Pumped::Lost(cause.to_owned())
}

/// Queues typed bytes for the socket, minus a detach sequence; returns
/// whether the user asked to detach.
fn queue_input(keys: Option<&mut DetachKeys>, stdin: &mut SessionInput, bytes: &[u8]) -> bool {
    let (forward, detach) = match keys {
        Some(keys) => {
            let filtered = keys.filter(bytes);
            (filtered.forward, filtered.detach)
        }
        None => (bytes.to_vec(), false),
    };
    stdin.push(&forward);
    detach
}

/// Hands the socket the input this connection may send now.
async fn send_input<S>(outgoing: &mut S, stdin: &RefCell<SessionInput>) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    loop {
        let Some(next) = stdin.borrow().next() else {
            return Ok(());
        };
        // A cancelled or failed send changes nothing: the bytes stay in
        // the window until the worker acknowledges them.
        let progress = next.progress();
        outgoing.feed(input_message(next)).await?;
        stdin.borrow_mut().sent(progress);
    }
}

fn input_message(outgoing: Outgoing) -> Message {
    match outgoing {
        Outgoing::Frame { frame, .. } => Message::Binary(Bytes::from(frame)),
        Outgoing::Raw(bytes) => Message::Binary(Bytes::from(bytes)),
        Outgoing::End(offset) => control(&ClientMessage::InputEnd { offset }),
        Outgoing::RawEof => control(&ClientMessage::Eof),
    }
}

/// Sends what was typed before the detach, then `detach`, and closes.
async fn detach_now<S>(
    outgoing: &mut S,
    outbox: &mut VecDeque<Message>,
    stdin: &RefCell<SessionInput>,
) -> Result<Pumped, CliError>
where
    S: futures::Sink<Message> + Unpin,
{
    let goodbye = async {
        for message in outbox.drain(..) {
            outgoing.feed(message).await.ok()?;
        }
        send_input(outgoing, stdin).await.ok()?;
        outgoing.feed(control(&ClientMessage::Detach)).await.ok()?;
        outgoing.close().await.ok()
    };
    // The job goes on either way; a dead connection must not hold the
    // user here. Without the detach message, the API's grace period
    // applies instead.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    Ok(Pumped::Done(SessionEnd::Detached))
}

fn control(message: &ClientMessage) -> Message {
    Message::Text(serde_json::to_string(message).expect("client messages serialize"))
}

/// The local terminal's size: stdin's, else stdout's.
fn local_window_size() -> Option<WindowSize> {
    terminal::window_size(libc::STDIN_FILENO).or_else(|| terminal::window_size(libc::STDOUT_FILENO))
}

async fn recv_input(receiver: Option<&mut mpsc::Receiver<Input>>) -> Option<Input> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(signal: Option<&mut Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// The signals a session answers. Each is optional: a signal whose handler
/// cannot be installed keeps its default effect.
struct Signals {
    window_change: Option<Signal>,
    /// Ctrl-C when stdin is not in raw mode (in raw mode it is a byte).
    interrupt: Option<Signal>,
    terminate: Option<Signal>,
    hangup: Option<Signal>,
}

impl Signals {
    fn install(tty: bool) -> Result<Self, CliError> {
        Ok(Self {
            window_change: if tty {
                signal(SignalKind::window_change()).ok()
            } else {
                None
            },
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_input_is_queued_minus_the_detach_sequence() {
        let mut stdin = SessionInput::new();
        let mut keys = DetachKeys::new();
        assert!(!queue_input(Some(&mut keys), &mut stdin, b"ls\r"));
        assert!(queue_input(Some(&mut keys), &mut stdin, b"x\x10\x11y"));
        assert_eq!(raw_bytes(stdin), b"ls\rx".to_vec());
        // Without a TTY, stdin is data: the same bytes pass untouched.
        let mut stdin = SessionInput::new();
        assert!(!queue_input(None, &mut stdin, b"x\x10\x11y"));
        assert_eq!(raw_bytes(stdin), b"x\x10\x11y".to_vec());
    }

    /// What an API without offsets would get of the queued input.
    fn raw_bytes(mut stdin: SessionInput) -> Vec<u8> {
        stdin.attached(None);
        let mut bytes = Vec::new();
        while let Some(next) = stdin.next() {
            stdin.sent(next.progress());
            match input_message(next) {
                Message::Binary(chunk) => bytes.extend_from_slice(&chunk),
                other => panic!("not a binary message: {other:?}"),
            }
        }
        bytes
    }

    fn text(message: Message) -> String {
        match message {
            Message::Text(text) => text,
            other => panic!("not a text message: {other:?}"),
        }
    }

    #[test]
    fn control_messages_are_the_protocol_json() {
        assert_eq!(
            text(control(&ClientMessage::Resize(WindowSize {
                rows: 24,
                cols: 80
            }))),
            r#"{"type":"resize","rows":24,"cols":80}"#
        );
        assert_eq!(
            text(control(&ClientMessage::Detach)),
            r#"{"type":"detach"}"#
        );
        assert_eq!(text(control(&ClientMessage::Eof)), r#"{"type":"eof"}"#);
        assert_eq!(
            text(input_message(Outgoing::End(42))),
            r#"{"type":"input_end","offset":42}"#
        );
    }
}
