//! RabbitMQ: the confirming publisher and consumer sessions.

use anyhow::Context;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::CancellationToken;

use crate::signal::{self, Signal, Signals};

/// Where the brokers are and which queue carries the wake-ups.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// The nodes of one cluster (or one broker), tried in turn.
    pub urls: Vec<String>,
    pub queue: String,
    pub queue_type: QueueType,
    /// The fanout exchange of the workers' signals: see [`Self::for_deployment`].
    signal_exchange: String,
    /// The node that answered last; connections start there, so that a
    /// dead node costs one refused connect at most once.
    preferred: Arc<AtomicUsize>,
}

/// The kind of queue declared for the wake-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated by Raft across the cluster: it survives a node's loss.
    Quorum,
    /// A single node's queue, for brokers without quorum queues (< 3.8).
    Classic,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            other => Err(format!(
                "queue type {other:?} is not one of: quorum, classic"
            )),
        }
    }
}

/// How long one node may take to accept a connection before the next is
/// tried: a host that is down drops packets rather than refusing them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long closing a channel or connection may wait for the broker.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

impl AmqpConfig {
    /// Parses `urls`, one AMQP URL or several separated by commas (the
    /// nodes of one cluster; a comma inside a password is written `%2C`).
    pub fn new(urls: &str, queue: String, queue_type: QueueType) -> Result<Self, String> {
        let urls: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err("no broker URL is given".into());
        }
        if let Some(bad) = urls
            .iter()
            .find(|url| !url.starts_with("amqp://") && !url.starts_with("amqps://"))
        {
            return Err(format!("{} is not an amqp:// or amqps:// URL", redact(bad)));
        }
        Ok(Self {
            urls,
            signal_exchange: format!("{queue}.signals"),
            queue,
            queue_type,
            preferred: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How long connecting and opening a consumer may take in all: a
    /// connection timeout per node, and one more for the rest.
    fn open_timeout(&self) -> Duration {
        CONNECT_TIMEOUT * (self.urls.len() as u32 + 1)
    }

    /// Names the signal exchange after the deployment (the store's
    /// `deployment_id`), so that every API and worker sharing a database
    /// meet there whatever their queue, and deployments sharing a broker
    /// stay apart. Without it, the exchange is named after the queue.
    pub fn for_deployment(mut self, deployment_id: &str) -> Self {
        self.signal_exchange = format!("jobs.signals.{deployment_id}");
        self
    }
}

/// Checks a value of `--amqp-url` (a clap value parser).
pub fn parse_broker_urls(text: &str) -> Result<String, String> {
    AmqpConfig::new(text, String::new(), QueueType::Quorum).map(|_| text.to_owned())
}

/// Connects to the first node that answers, starting with the one that
/// answered last.
async fn connect_any(config: &AmqpConfig) -> anyhow::Result<Connection> {
    let count = config.urls.len();
    let first = config.preferred.load(Ordering::Relaxed) % count;
    let mut errors = Vec::new();
    for index in (first..count).chain(0..first) {
        let url = &config.urls[index];
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(url, ConnectionProperties::default()),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                if index != first {
                    tracing::info!(node = %redact(url), "connected to another broker node");
                }
                config.preferred.store(index, Ordering::Relaxed);
                return Ok(connection);
            }
            Ok(Err(error)) => errors.push(format!("{}: {error}", redact(url))),
            Err(_) => errors.push(format!(
                "{}: no answer within {CONNECT_TIMEOUT:?}",
                redact(url)
            )),
        }
    }
    anyhow::bail!("connecting to the broker: {}", errors.join("; "))
}

async fn connect(config: &AmqpConfig) -> anyhow::Result<(Connection, Channel)> {
    let connection = connect_any(config).await?;
    let channel = connection
        .create_channel()
        .await
        .context("opening an AMQP channel")?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(config.queue_type.as_str().into()),
    );
    channel
        .queue_declare(
            config.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await
        .with_context(|| {
            format!(
                "declaring queue {:?} as a {} queue (JOBS_AMQP_QUEUE_TYPE; an existing queue \
                 of another type must be deleted first)",
                config.queue,
                config.queue_type.as_str()
            )
        })?;
    // Declared by every side, so that a publish never meets a missing
    // exchange (which would close the channel the wake-ups share).
    channel
        .exchange_declare(
            config.signal_exchange.as_str().into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring the workers' signal exchange")?;
    Ok((connection, channel))
}

/// Hides the password of an AMQP URL for log lines and errors.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Publishes job wake-ups, waiting for the broker's confirm of each.
pub struct AmqpPublisher {
    config: AmqpConfig,
    /// The connection and confirming channel, and which of the sessions
    /// opened so far it is.
    session: Mutex<Option<(Connection, Channel, u64)>>,
    opened: std::sync::atomic::AtomicU64,
}

impl AmqpPublisher {
    /// Creates a publisher; it connects on first use, so an API can start
    /// while the broker is down (jobs then wait for the relay).
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            session: Mutex::new(None),
            opened: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Publishes one wake-up and returns once the broker confirmed it.
    /// The lock covers only finding (or opening) the channel: publishes of
    /// concurrent requests wait for their confirms side by side, so the
    /// API's submit rate is not one broker round trip (a quorum queue's
    /// fsync) at a time.
    pub async fn publish(&self, job_id: &str) -> anyhow::Result<()> {
        let queue = &self.config.queue;
        self.send(Message {
            exchange: "",
            routing_key: queue,
            body: job_id.as_bytes(),
            persistent: true,
        })
        .await
        .with_context(|| format!("publishing the wake-up of job {job_id}"))
    }

    /// Sends a signal to every worker connected to the broker, and returns
    /// once the broker confirmed it.
    pub async fn signal(&self, signal: &Signal) -> anyhow::Result<()> {
        let (kind, body) = signal.encode();
        self.send(Message {
            exchange: &self.config.signal_exchange,
            routing_key: kind,
            body: body.as_bytes(),
            // Only connected workers hear it; a restarted one reads the store.
            persistent: false,
        })
        .await
        .with_context(|| format!("sending the {kind} signal {body:?}"))
    }

    async fn send(&self, message: Message<'_>) -> anyhow::Result<()> {
        let (channel, generation) = {
            let mut session = self.session.lock().await;
            if session
                .as_ref()
                .is_none_or(|(conn, ..)| !conn.status().connected())
            {
                let (connection, channel) = connect(&self.config).await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .context("enabling publisher confirms")?;
                let generation = self
                    .opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *session = Some((connection, channel, generation));
            }
            let (_, channel, generation) = session.as_ref().expect("session was just set");
            (channel.clone(), *generation)
        };
        let result = publish_confirmed(&channel, message).await;
        if result.is_err() {
            // Any failure drops the session it happened on, so that the
            // next publish opens a new one: after a node's loss, a channel
            // may go on refusing every publish to a queue whose leader
            // moved. A session another publish opened meanwhile stays.
            let mut session = self.session.lock().await;
            if session
                .as_ref()
                .is_some_and(|(.., current)| *current == generation)
            {
                *session = None;
            }
        }
        result
    }
}

/// One message to publish.
struct Message<'a> {
    exchange: &'a str,
    routing_key: &'a str,
    body: &'a [u8],
    /// Written to disk by the broker (delivery mode 2), or kept in memory.
    persistent: bool,
}

async fn publish_confirmed(channel: &Channel, message: Message<'_>) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            message.exchange.into(),
            message.routing_key.into(),
            BasicPublishOptions::default(),
            message.body,
            BasicProperties::default().with_delivery_mode(if message.persistent { 2 } else { 1 }),
        )
        .await
        .context("publishing")?
        .await
        .context("waiting for the broker's confirm")?;
    anyhow::ensure!(confirm.is_ack(), "the broker refused the message");
    Ok(())
}

/// One wake-up received from the queue.
pub struct AmqpWakeUp {
    pub job_id: String,
    delivery: Delivery,
}

impl AmqpWakeUp {
    /// Acknowledges the wake-up: the job was claimed, or was a duplicate.
    pub async fn ack(&self) -> anyhow::Result<()> {
        self.delivery
            .ack(BasicAckOptions::default())
            .await
            .context("acking a wake-up")?;
        Ok(())
    }

    /// Hands the wake-up back to the queue for another consumer.
    pub async fn requeue(&self) -> anyhow::Result<()> {
        self.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .context("requeueing a wake-up")?;
        Ok(())
    }
}

/// Where a worker's consumer sessions come from: one connection, kept
/// while it lives, and a channel per session. A worker whose slots fill up
/// closes its session (which hands the unacked wake-ups back) and opens
/// another once a slot frees; under a backlog that is once per job, so it
/// costs a channel, not a connection with its handshake and declarations.
#[derive(Clone)]
pub struct AmqpConsumers {
    config: AmqpConfig,
    connection: Arc<Mutex<Option<Connection>>>,
}

impl std::fmt::Debug for AmqpConsumers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AmqpConsumers")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AmqpConsumers {
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            connection: Arc::new(Mutex::new(None)),
        }
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Opens a consumer that the broker feeds at most `prefetch` unacked
    /// wake-ups at a time.
    pub async fn open_session(
        &self,
        consumer_tag: &str,
        prefetch: u16,
    ) -> anyhow::Result<AmqpSession> {
        let mut kept = self.connection.lock().await;
        // Bounded: on a connection that died without saying so, opening a
        // channel may wait for an answer that never comes.
        let limit = self.config.open_timeout();
        let opened = tokio::time::timeout(limit, self.open_on(&mut kept, consumer_tag, prefetch))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("opening a consumer took over {limit:?}")));
        if opened.is_err() {
            // The next session starts from a new connection.
            if let Some(connection) = kept.take() {
                let _ = tokio::time::timeout(
                    CLOSE_TIMEOUT,
                    connection.close(200, "consumer failed".into()),
                )
                .await;
            }
        }
        opened
    }

    /// Forgets the kept connection, after a session that ended with an
    /// error: the next session starts from a new one.
    pub async fn forget_connection(&self) {
        if let Some(connection) = self.connection.lock().await.take() {
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                connection.close(200, "consumer failed".into()),
            )
            .await;
        }
    }

    async fn open_on(
        &self,
        kept: &mut Option<Connection>,
        consumer_tag: &str,
        prefetch: u16,
    ) -> anyhow::Result<AmqpSession> {
        let connection = match kept.take() {
            Some(connection) if connection.status().connected() => connection,
            _ => {
                let (connection, declared_on) = connect(&self.config).await?;
                let _ = declared_on.close(200, "declared".into()).await;
                connection
            }
        };
        let channel = kept
            .insert(connection)
            .create_channel()
            .await
            .context("opening a consumer channel")?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .context("setting the prefetch")?;
        let consumer = channel
            .basic_consume(
                self.config.queue.as_str().into(),
                consumer_tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("starting to consume")?;
        Ok(AmqpSession { channel, consumer })
    }
}

/// A consumer with a fixed prefetch, on a channel of its own. Closing it
/// returns every unacked wake-up to the queue.
pub struct AmqpSession {
    channel: Channel,
    consumer: Consumer,
}

impl AmqpSession {
    /// The next wake-up; `None` or an error when the connection is gone.
    pub async fn next(&mut self) -> Option<anyhow::Result<AmqpWakeUp>> {
        let delivery = self.consumer.next().await?;
        Some(
            delivery
                .context("receiving a wake-up")
                .map(|delivery| AmqpWakeUp {
                    job_id: String::from_utf8_lossy(&delivery.data).into_owned(),
                    delivery,
                }),
        )
    }

    /// Closes the channel; the broker requeues what was not acked. Bounded,
    /// as on a dead connection the broker's answer never comes.
    pub async fn close(self) {
        match tokio::time::timeout(
            CLOSE_TIMEOUT,
            self.channel.close(200, "consumer closed".into()),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::debug!(%error, "closing the consumer channel"),
            Err(_) => tracing::debug!("closing the consumer channel took over {CLOSE_TIMEOUT:?}"),
        }
    }
}

/// Receives the workers' signals, through a queue of this process's own
/// (exclusive: it goes with its connection) bound to the signal exchange,
/// subscribed again after a lost connection. Waits for the first
/// subscription, so that a worker that says it is ready hears a cancel sent
/// right after; with the broker down it goes on trying in the background.
pub async fn subscribe_signals(config: &AmqpConfig) -> Signals {
    let sender = signal::channel();
    let stop = CancellationToken::new();
    let (subscribed, first) = tokio::sync::oneshot::channel();
    tokio::spawn(follow_signals(
        config.clone(),
        sender.clone(),
        stop.clone(),
        subscribed,
    ));
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, first).await;
    Signals::new(sender, Some(stop.drop_guard()))
}

async fn follow_signals(
    config: AmqpConfig,
    sender: broadcast::Sender<Signal>,
    stop: CancellationToken,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = Duration::from_millis(100);
    loop {
        // Bounded, as opening a consumer is in `AmqpConsumers::open_session`:
        // a broker that dies half-way may leave an answer pending forever.
        let opened = tokio::select! {
            () = stop.cancelled() => return,
            opened = tokio::time::timeout(config.open_timeout(), open_signal_consumer(&config)) => {
                opened.unwrap_or_else(|_| Err(anyhow::anyhow!(
                    "subscribing took over {:?}", config.open_timeout()
                )))
            }
        };
        // Told after a failure too: the worker starts without signals.
        if let Some(subscribed) = subscribed.take() {
            let _ = subscribed.send(());
        }
        match opened {
            Ok((connection, mut consumer)) => {
                backoff = Duration::from_millis(100);
                loop {
                    let delivery = tokio::select! {
                        () = stop.cancelled() => {
                            let _ = connection.close(200, "signals no longer needed".into()).await;
                            return;
                        }
                        delivery = consumer.next() => delivery,
                    };
                    match delivery {
                        Some(Ok(delivery)) => {
                            let body = String::from_utf8_lossy(&delivery.data);
                            if let Some(signal) =
                                Signal::decode(delivery.routing_key.as_str(), &body)
                            {
                                let _ = sender.send(signal);
                            }
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, "lost the signal connection; subscribing again");
                            break;
                        }
                        None => {
                            tracing::warn!(
                                "the broker ended the signal consumer; subscribing again"
                            );
                            break;
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(
                "cannot subscribe to the workers' signals, retrying in {backoff:?}: {error:#}"
            ),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn open_signal_consumer(config: &AmqpConfig) -> anyhow::Result<(Connection, Consumer)> {
    let (connection, channel) = connect(config).await?;
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("declaring the signal queue")?;
    channel
        .queue_bind(
            queue.name().clone(),
            config.signal_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("binding the signal queue")?;
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .context("consuming signals")?;
    Ok((connection, consumer))
}

#[cfg(test)]
mod tests {
    use super::{AmqpConfig, QueueType, redact};

    #[test]
    fn parses_the_nodes_of_a_cluster() {
        let config = AmqpConfig::new(
            "amqp://a:5672/%2f, amqps://b:5671/%2f,",
            "q".into(),
            QueueType::Quorum,
        )
        .unwrap();
        assert_eq!(config.urls, ["amqp://a:5672/%2f", "amqps://b:5671/%2f"]);
        assert_eq!(
            AmqpConfig::new(" , ", "q".into(), QueueType::Quorum).unwrap_err(),
            "no broker URL is given"
        );
        assert_eq!(
            AmqpConfig::new("amqp://a, http://u:pw@b", "q".into(), QueueType::Quorum).unwrap_err(),
            "http://***@b is not an amqp:// or amqps:// URL"
        );
    }

    #[test]
    fn parses_queue_types() {
        assert_eq!("quorum".parse(), Ok(QueueType::Quorum));
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert_eq!(
            "stream".parse::<QueueType>().unwrap_err(),
            "queue type \"stream\" is not one of: quorum, classic"
        );
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://localhost"), "amqp://localhost");
    }
}
