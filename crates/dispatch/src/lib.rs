//! The dispatcher: how the API wakes workers up.
//!
//! Messages are wake-ups that carry a job id and nothing else. They may be
//! duplicated, delayed or lost without harm: the store holds the truth, the
//! worker's fenced claim drops duplicates, and the API's relay republishes
//! jobs whose publish was never confirmed.
//!
//! - [`amqp`]: RabbitMQ, for production; the only home of AMQP.
//! - [`in_process`]: a queue in memory, for `jobs dev`.
//!
//! Callers use [`Publisher`] and [`Consumers`], which dispatch to either.
//! Both also carry the workers' [`Signal`]s: cancels, drains and offers.

pub mod amqp;
pub mod in_process;
mod signal;

pub use amqp::{AmqpConfig, AmqpConsumers, QueueType};
pub use in_process::InProcessQueue;
pub use signal::{Signal, Signals};

use amqp::{AmqpPublisher, AmqpSession, AmqpWakeUp};
use in_process::InProcessWakeUp;

/// How long a signal waits for the broker's confirm.
pub const SIGNAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Publishes job wake-ups.
pub enum Publisher {
    Amqp(Box<AmqpPublisher>),
    InProcess(InProcessQueue),
}

impl Publisher {
    /// A RabbitMQ publisher; it connects on first use.
    pub fn amqp(config: AmqpConfig) -> Self {
        Publisher::Amqp(Box::new(AmqpPublisher::new(config)))
    }

    /// Publishes one wake-up; returns once it is durable (confirmed by the
    /// broker, or queued in memory).
    pub async fn publish(&self, job_id: &str) -> anyhow::Result<()> {
        match self {
            Publisher::Amqp(publisher) => publisher.publish(job_id).await,
            Publisher::InProcess(queue) => {
                queue.publish(job_id);
                Ok(())
            }
        }
    }

    /// Sends a signal to every worker, best effort: a failure is logged,
    /// and the worker finds the same in the store at its next heartbeat.
    /// It waits for the broker's confirm at most [`SIGNAL_TIMEOUT`], since
    /// a blocked broker (a memory alarm) takes publishes and confirms none.
    pub async fn signal(&self, signal: Signal) {
        match self {
            Publisher::Amqp(publisher) => {
                let sent = tokio::time::timeout(SIGNAL_TIMEOUT, publisher.signal(&signal)).await;
                let error = match sent {
                    Ok(Ok(())) => return,
                    Ok(Err(error)) => format!("{error:#}"),
                    Err(_) => format!("no confirm within {SIGNAL_TIMEOUT:?}"),
                };
                tracing::warn!(?signal, "{error}; the worker finds it in the store instead");
            }
            Publisher::InProcess(queue) => queue.signal(&signal),
        }
    }
}

/// Where a worker takes wake-ups from.
#[derive(Clone, Debug)]
pub enum Consumers {
    Amqp(AmqpConsumers),
    InProcess(InProcessQueue),
}

impl Consumers {
    /// Consumers of a RabbitMQ queue; they connect on first use.
    pub fn amqp(config: AmqpConfig) -> Self {
        Consumers::Amqp(AmqpConsumers::new(config))
    }

    /// Opens a session that holds at most `prefetch` unacked wake-ups.
    pub async fn open(&self, consumer_tag: &str, prefetch: u16) -> anyhow::Result<ConsumerSession> {
        Ok(match self {
            Consumers::Amqp(consumers) => ConsumerSession::Amqp(Box::new(
                consumers.open_session(consumer_tag, prefetch).await?,
            )),
            // Wake-ups are taken one at a time, so there is nothing to prefetch.
            Consumers::InProcess(queue) => ConsumerSession::InProcess(queue.clone()),
        })
    }

    /// Starts the next session from a new broker connection: the last one
    /// broke, and its connection may be dead without knowing it.
    pub async fn reset(&self) {
        if let Consumers::Amqp(consumers) = self {
            consumers.forget_connection().await;
        }
    }

    /// The signals to this process's workers, from now on (see
    /// [`amqp::subscribe_signals`]).
    pub async fn signals(&self) -> Signals {
        match self {
            Consumers::Amqp(consumers) => amqp::subscribe_signals(consumers.config()).await,
            Consumers::InProcess(queue) => queue.signals(),
        }
    }
}

/// An open consumer. Closing it hands every unacked wake-up back.
pub enum ConsumerSession {
    Amqp(Box<AmqpSession>),
    InProcess(InProcessQueue),
}

impl ConsumerSession {
    /// The next wake-up; `None` or an error when the session is broken.
    pub async fn next(&mut self) -> Option<anyhow::Result<WakeUp>> {
        match self {
            ConsumerSession::Amqp(session) => {
                Some(session.next().await?.map(|w| WakeUp::Amqp(Box::new(w))))
            }
            ConsumerSession::InProcess(queue) => Some(Ok(WakeUp::InProcess(queue.next().await))),
        }
    }

    pub async fn close(self) {
        if let ConsumerSession::Amqp(session) = self {
            session.close().await;
        }
    }
}

/// One wake-up received.
pub enum WakeUp {
    Amqp(Box<AmqpWakeUp>),
    InProcess(InProcessWakeUp),
}

impl WakeUp {
    pub fn job_id(&self) -> &str {
        match self {
            WakeUp::Amqp(wake_up) => &wake_up.job_id,
            WakeUp::InProcess(wake_up) => &wake_up.job_id,
        }
    }

    /// Acknowledges it: the job was claimed, or was a duplicate.
    pub async fn ack(self) -> anyhow::Result<()> {
        match self {
            WakeUp::Amqp(wake_up) => wake_up.ack().await,
            WakeUp::InProcess(wake_up) => {
                wake_up.ack();
                Ok(())
            }
        }
    }

    /// Hands it back to the queue, for another consumer.
    pub async fn requeue(self) -> anyhow::Result<()> {
        match self {
            WakeUp::Amqp(wake_up) => wake_up.requeue().await,
            WakeUp::InProcess(wake_up) => {
                wake_up.requeue();
                Ok(())
            }
        }
    }
}
