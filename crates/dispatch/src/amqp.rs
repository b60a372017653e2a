//! RabbitMQ: the confirming publisher and consumer sessions.

use anyhow::Context;
use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
        BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable},
};
use tokio::sync::Mutex;

/// Where the broker is and which queue carries the wake-ups.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    pub url: String,
    pub queue: String,
}

async fn connect(config: &AmqpConfig) -> anyhow::Result<(Connection, Channel)> {
    let connection = Connection::connect(&config.url, ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to the broker at {}", redact(&config.url)))?;
    let channel = connection
        .create_channel()
        .await
        .context("opening an AMQP channel")?;
    let mut arguments = FieldTable::default();
    // Quorum queues replicate across a cluster and survive a node's loss.
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            config.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            arguments,
        )
        .await
        .with_context(|| format!("declaring queue {:?}", config.queue))?;
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
    session: Mutex<Option<(Connection, Channel)>>,
}

impl AmqpPublisher {
    /// Creates a publisher; it connects on first use, so an API can start
    /// while the broker is down (jobs then wait for the relay).
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            session: Mutex::new(None),
        }
    }

    /// Publishes one wake-up and returns once the broker confirmed it.
    pub async fn publish(&self, job_id: &str) -> anyhow::Result<()> {
        let mut session = self.session.lock().await;
        if session
            .as_ref()
            .is_none_or(|(conn, _)| !conn.status().connected())
        {
            let (connection, channel) = connect(&self.config).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .context("enabling publisher confirms")?;
            *session = Some((connection, channel));
        }
        let (_, channel) = session.as_ref().expect("session was just set");
        let result = publish_confirmed(channel, &self.config.queue, job_id).await;
        if result.is_err() {
            // Drop the session so that the next publish reconnects.
            *session = None;
        }
        result
    }
}

async fn publish_confirmed(channel: &Channel, queue: &str, job_id: &str) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            job_id.as_bytes(),
            // Delivery mode 2: persistent.
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .context("publishing a wake-up")?
        .await
        .context("waiting for the broker's confirm")?;
    anyhow::ensure!(
        confirm.is_ack(),
        "the broker refused the wake-up for job {job_id}"
    );
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

/// A consumer with a fixed prefetch. Closing it returns every unacked
/// wake-up to the queue.
pub struct AmqpSession {
    connection: Connection,
    consumer: Consumer,
}

/// Opens a consumer that the broker feeds at most `prefetch` unacked
/// wake-ups at a time.
pub async fn open_session(
    config: &AmqpConfig,
    consumer_tag: &str,
    prefetch: u16,
) -> anyhow::Result<AmqpSession> {
    let (connection, channel) = connect(config).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .context("setting the prefetch")?;
    let consumer = channel
        .basic_consume(
            config.queue.as_str().into(),
            consumer_tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("starting to consume")?;
    Ok(AmqpSession {
        connection,
        consumer,
    })
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

    /// Closes the connection; the broker requeues what was not acked.
    pub async fn close(self) {
        if let Err(error) = self.connection.close(200, "consumer closed".into()).await {
            tracing::debug!(%error, "closing the consumer connection");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://localhost"), "amqp://localhost");
    }
}
