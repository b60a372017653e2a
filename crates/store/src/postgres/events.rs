//! LISTEN/NOTIFY wake-ups: one connection per process, fanned out in memory.

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use super::PgStore;

/// Starts listening on `channel` in a background task that sends the payload
/// (a job id) of every notification to the returned sender's subscribers.
/// The listener reconnects by itself; a missed wake-up only delays a
/// follower until its periodic re-check.
pub(crate) async fn listen(
    store: &PgStore,
    channel: &'static str,
) -> Result<broadcast::Sender<String>, sqlx::Error> {
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
    Ok(sender)
}
