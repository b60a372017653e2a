//! LISTEN/NOTIFY wake-ups: one connection per process, fanned out in memory.

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use crate::Store;

/// A running listener that broadcasts the payload (a job id) of every
/// notification on its channel.
pub struct JobNotifications {
    sender: broadcast::Sender<String>,
}

impl JobNotifications {
    /// Starts listening on `channel` in a background task. The listener
    /// reconnects by itself; a missed wake-up only delays a follower until
    /// its periodic re-check.
    pub async fn start(store: &Store, channel: &'static str) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(store.pool()).await?;
        listener.listen(channel).await?;
        let (sender, _) = broadcast::channel(1024);
        let tx = sender.clone();
        tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let _ = tx.send(notification.payload().to_owned());
                    }
                    // The connection dropped; PgListener reconnects on the next call.
                    Ok(None) => {
                        tracing::warn!(channel, "notification connection lost; reconnecting");
                    }
                    Err(error) => {
                        tracing::warn!(channel, %error, "notification listener failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self { sender })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.sender.subscribe()
    }
}
