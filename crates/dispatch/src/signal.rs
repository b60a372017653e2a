//! Signals to workers: a cancel, a drain, an offer of an interactive run.
//!
//! They go through the broker rather than PostgreSQL's NOTIFY: PostgreSQL
//! wakes every listening connection of a database for every notification,
//! so with a listener per worker each of a job's events cost the database
//! one wake-up per worker. Like wake-ups, signals carry ids only and may be
//! lost (a worker reconnecting to the broker misses what was sent
//! meanwhile); each has a fallback in the store, the truth: the lease
//! heartbeat reads a cancel, the registry heartbeat a drain, and the API
//! offers an interactive run again after its offer timeout.

use tokio::sync::broadcast;

/// How many signals a slow subscriber may fall behind before it misses
/// some (and relies on the fallbacks).
const CAPACITY: usize = 1024;

/// One signal, sent to every worker; each keeps what concerns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// A cancel of a running job was asked: its worker stops it.
    Cancel { job_id: String },
    /// An admin drained a worker or undid its drain: it reads its flag again.
    Drain { worker_id: String },
    /// An interactive run is offered to one worker, which claims it as it
    /// would a queued one (the claim is fenced: an offer seen twice runs
    /// the job once).
    Offer { worker_id: String, job_id: String },
}

impl Signal {
    /// The kind (an AMQP routing key) and the body of the message.
    pub(crate) fn encode(&self) -> (&'static str, String) {
        match self {
            Signal::Cancel { job_id } => ("cancel", job_id.clone()),
            Signal::Drain { worker_id } => ("drain", worker_id.clone()),
            // Job ids never hold a space, so the last space splits them.
            Signal::Offer { worker_id, job_id } => ("offer", format!("{worker_id} {job_id}")),
        }
    }

    /// The signal a message carries; `None` for one this version does not know.
    pub(crate) fn decode(kind: &str, body: &str) -> Option<Self> {
        match kind {
            "cancel" => Some(Signal::Cancel {
                job_id: body.to_owned(),
            }),
            "drain" => Some(Signal::Drain {
                worker_id: body.to_owned(),
            }),
            "offer" => {
                let (worker_id, job_id) = body.rsplit_once(' ')?;
                Some(Signal::Offer {
                    worker_id: worker_id.to_owned(),
                    job_id: job_id.to_owned(),
                })
            }
            _ => None,
        }
    }
}

/// The signals a worker receives, fanned out in memory to any number of
/// subscribers. Receiving stops when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Signals {
    sender: broadcast::Sender<Signal>,
    /// Stops the broker subscription, if any, with the last clone.
    _subscription: Option<std::sync::Arc<tokio_util::sync::DropGuard>>,
}

impl Signals {
    pub(crate) fn new(
        sender: broadcast::Sender<Signal>,
        subscription: Option<tokio_util::sync::DropGuard>,
    ) -> Self {
        Self {
            sender,
            _subscription: subscription.map(std::sync::Arc::new),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.sender.subscribe()
    }
}

/// A sender for a new set of subscribers.
pub(crate) fn channel() -> broadcast::Sender<Signal> {
    broadcast::channel(CAPACITY).0
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn signals_survive_their_encoding() {
        let signals = [
            Signal::Cancel {
                job_id: "job_1".into(),
            },
            Signal::Drain {
                worker_id: "host a:1".into(),
            },
            Signal::Offer {
                worker_id: "worker one".into(),
                job_id: "job_2".into(),
            },
        ];
        for signal in signals {
            let (kind, body) = signal.encode();
            assert_eq!(Signal::decode(kind, &body), Some(signal));
        }
        assert_eq!(Signal::decode("offer", "no-space"), None);
        assert_eq!(Signal::decode("reboot", "w1"), None);
    }
}
