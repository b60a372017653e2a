//! LISTEN/NOTIFY wake-ups: one connection per process, fanned out in memory.

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;

use super::PgStore;

/// Starts listening on every one of `channels` on one connection, in a
/// background task that sends the payload (a job id) of every notification
/// to the sender of its channel (in the order of `channels`). The listener
/// reconnects by itself; a missed wake-up only delays a follower until its
/// periodic re-check.
///
/// One connection for several channels matters at scale: PostgreSQL wakes
/// every listening connection of a database for every NOTIFY, whatever its
/// channels, so each extra listener costs the database work on every job.
pub(crate) async fn listen(
    store: &PgStore,
    channels: &[&'static str],
) -> Result<Vec<broadcast::Sender<String>>, sqlx::Error> {
    let mut listener = PgListener::connect_with(store.pool()).await?;
    listener.listen_all(channels.iter().copied()).await?;
    let senders: Vec<broadcast::Sender<String>> = channels
        .iter()
        .map(|_| broadcast::channel(1024).0)
        .collect();
    let routes: Vec<(&'static str, broadcast::Sender<String>)> = channels
        .iter()
        .copied()
        .zip(senders.iter().cloned())
        .collect();
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some((_, tx)) = routes
                        .iter()
                        .find(|(channel, _)| *channel == notification.channel())
                    {
                        let _ = tx.send(notification.payload().to_owned());
                    }
                }
                // The connection dropped; PgListener reconnects on the next call.
                Ok(None) => {
                    tracing::warn!(channels = ?routes.iter().map(|(channel, _)| *channel).collect::<Vec<_>>(), "notification connection lost; reconnecting");
                }
                Err(error) => {
                    tracing::warn!(channels = ?routes.iter().map(|(channel, _)| *channel).collect::<Vec<_>>(), %error, "notification listener failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(senders)
}
