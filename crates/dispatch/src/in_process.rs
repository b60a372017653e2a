//! The in-process dispatcher of `jobs dev`: a queue in memory.
//!
//! It keeps the broker's contract where it matters: a wake-up handed back
//! goes to the front, and one that is never acked is handed back when its
//! holder drops it. A restart loses the queue; `jobs dev` then marks every
//! queued job unpublished, and the relay publishes them again.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, broadcast};

use crate::signal::{self, Signal, Signals};

/// A queue of job ids shared by the publisher and the consumers of one
/// process, and the workers' signals; cheap to clone.
#[derive(Clone, Debug)]
pub struct InProcessQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ids: Mutex<VecDeque<String>>,
    added: Notify,
    signals: broadcast::Sender<Signal>,
}

impl Default for InProcessQueue {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                ids: Mutex::default(),
                added: Notify::new(),
                signals: signal::channel(),
            }),
        }
    }
}

impl InProcessQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends a signal to the workers of this process; having none is fine.
    pub fn signal(&self, signal: &Signal) {
        let _ = self.inner.signals.send(signal.clone());
    }

    /// The signals sent from now on.
    pub fn signals(&self) -> Signals {
        Signals::new(self.inner.signals.clone(), None)
    }

    pub fn publish(&self, job_id: &str) {
        self.lock().push_back(job_id.to_owned());
        self.inner.added.notify_one();
    }

    /// Waits for the next job id.
    pub async fn next(&self) -> InProcessWakeUp {
        loop {
            // Register interest before looking, so that a publish between
            // the look and the wait is not missed.
            let added = self.inner.added.notified();
            if let Some(job_id) = self.lock().pop_front() {
                return InProcessWakeUp {
                    job_id,
                    queue: Some(self.clone()),
                };
            }
            added.await;
        }
    }

    /// How many wake-ups wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hand_back(&self, job_id: String) {
        self.lock().push_front(job_id);
        self.inner.added.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        // A poisoned queue is still a valid queue of ids.
        self.inner
            .ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One wake-up taken from the queue. Dropping it without an ack hands it
/// back, as a broker does with an unacked message of a closed channel.
#[derive(Debug)]
pub struct InProcessWakeUp {
    pub job_id: String,
    queue: Option<InProcessQueue>,
}

impl InProcessWakeUp {
    pub fn ack(mut self) {
        self.queue = None;
    }

    pub fn requeue(mut self) {
        if let Some(queue) = self.queue.take() {
            queue.hand_back(std::mem::take(&mut self.job_id));
        }
    }
}

impl Drop for InProcessWakeUp {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            queue.hand_back(std::mem::take(&mut self.job_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_in_order_and_hands_back_to_the_front() {
        let queue = InProcessQueue::new();
        queue.publish("a");
        queue.publish("b");
        let a = queue.next().await;
        assert_eq!(a.job_id, "a");
        a.requeue();
        let again = queue.next().await;
        assert_eq!(again.job_id, "a");
        again.ack();
        let b = queue.next().await;
        drop(b);
        assert_eq!(queue.next().await.job_id, "b");
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_a_publish() {
        let queue = InProcessQueue::new();
        let consumer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await.job_id.clone() }
        });
        tokio::task::yield_now().await;
        queue.publish("x");
        assert_eq!(consumer.await.unwrap(), "x");
    }

    #[tokio::test]
    async fn every_subscriber_hears_each_signal() {
        let queue = InProcessQueue::new();
        let signals = queue.signals();
        let (mut first, mut second) = (signals.subscribe(), signals.subscribe());
        let cancel = Signal::Cancel {
            job_id: "job_1".into(),
        };
        queue.signal(&cancel);
        assert_eq!(first.recv().await.unwrap(), cancel);
        assert_eq!(second.recv().await.unwrap(), cancel);
    }
}
