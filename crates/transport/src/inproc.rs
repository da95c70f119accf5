//! In-process bounded channels (`streetscope run`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::{FullPolicy, Publish, Published, Subscribe, TransportError};

/// Creates a bounded in-process channel named `name` (used in errors and metrics).
pub fn channel<T: Send>(name: &str, capacity: usize, policy: FullPolicy) -> (InProcPublisher<T>, InProcSubscriber<T>) {
    let (tx, rx) = async_channel::bounded(capacity.max(1));
    let name: Arc<str> = Arc::from(name);
    let dropped = Arc::new(AtomicU64::new(0));
    (InProcPublisher { tx, policy, name: name.clone(), dropped }, InProcSubscriber { rx, name })
}

/// Sending side of an in-process channel; cheap to clone.
#[derive(Debug)]
pub struct InProcPublisher<T> {
    tx: async_channel::Sender<T>,
    policy: FullPolicy,
    name: Arc<str>,
    dropped: Arc<AtomicU64>,
}

impl<T> Clone for InProcPublisher<T> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), policy: self.policy, name: self.name.clone(), dropped: self.dropped.clone() }
    }
}

impl<T: Send> InProcPublisher<T> {
    /// Publishes from a thread that is not an async task (a GStreamer streaming
    /// thread, say). Blocks that thread when the policy is [`FullPolicy::Block`].
    pub fn publish_blocking(&self, item: T) -> Result<Published, TransportError> {
        match self.policy {
            FullPolicy::Block => self.tx.send_blocking(item).map(|()| Published::Queued).map_err(|_| self.closed()),
            FullPolicy::DropOldest => self.force(item),
        }
    }

    /// Items dropped so far under [`FullPolicy::DropOldest`].
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A handle on the drop count that does not keep the channel open.
    pub fn drop_counter(&self) -> DropCounter {
        DropCounter(self.dropped.clone())
    }

    /// The policy this channel applies when full.
    pub fn policy(&self) -> FullPolicy {
        self.policy
    }

    /// Closes the channel for every publisher: the subscriber drains what is queued, then ends.
    pub fn close(&self) {
        self.tx.close();
    }

    fn force(&self, item: T) -> Result<Published, TransportError> {
        match self.tx.force_send(item) {
            Ok(None) => Ok(Published::Queued),
            Ok(Some(_oldest)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(Published::DroppedOldest)
            }
            Err(_) => Err(self.closed()),
        }
    }

    fn closed(&self) -> TransportError {
        TransportError::Closed(self.name.to_string())
    }
}

impl<T: Send> Publish<T> for InProcPublisher<T> {
    async fn publish(&self, item: T) -> Result<Published, TransportError> {
        match self.policy {
            FullPolicy::Block => self.tx.send(item).await.map(|()| Published::Queued).map_err(|_| self.closed()),
            FullPolicy::DropOldest => self.force(item),
        }
    }
}

/// Reads how many items a channel dropped, without keeping it open.
#[derive(Debug, Clone)]
pub struct DropCounter(Arc<AtomicU64>);

impl DropCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Receiving side of an in-process channel.
#[derive(Debug)]
pub struct InProcSubscriber<T> {
    rx: async_channel::Receiver<T>,
    name: Arc<str>,
}

impl<T: Send> InProcSubscriber<T> {
    /// The next item from a thread that is not an async task.
    pub fn next_blocking(&mut self) -> Option<T> {
        self.rx.recv_blocking().ok()
    }

    /// Name of the channel.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Items waiting in the queue.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether nothing waits in the queue.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<T: Send> Subscribe<T> for InProcSubscriber<T> {
    async fn next(&mut self) -> Option<T> {
        self.rx.recv().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // A minimal executor keeps this crate free of a runtime dependency.
        use std::task::{Context, Poll, Wake, Waker};
        struct ThreadWaker(std::thread::Thread);
        impl Wake for ThreadWaker {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts_drops() {
        let (tx, mut rx) = channel("frames", 2, FullPolicy::DropOldest);
        for i in 0..5 {
            tx.publish_blocking(i).unwrap();
        }
        assert_eq!(tx.dropped(), 3);
        drop(tx);
        assert_eq!(rx.next_blocking(), Some(3));
        assert_eq!(rx.next_blocking(), Some(4));
        assert_eq!(rx.next_blocking(), None);
    }

    #[test]
    fn block_waits_for_room_and_loses_nothing() {
        let (tx, mut rx) = channel("frames", 1, FullPolicy::Block);
        let producer = std::thread::spawn(move || {
            for i in 0..100 {
                tx.publish_blocking(i).unwrap();
            }
        });
        let got: Vec<i32> = std::iter::from_fn(|| rx.next_blocking()).collect();
        producer.join().unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn async_publish_and_subscribe() {
        let (tx, mut rx) = channel("d", 4, FullPolicy::Block);
        block_on(async move {
            tx.publish(1).await.unwrap();
            tx.publish(2).await.unwrap();
            drop(tx);
            assert_eq!(rx.next().await, Some(1));
            assert_eq!(rx.next().await, Some(2));
            assert_eq!(rx.next().await, None);
        });
    }

    #[test]
    fn publishing_to_a_stopped_stage_is_an_error_naming_the_queue() {
        let (tx, rx) = channel::<u8>("detections", 1, FullPolicy::Block);
        drop(rx);
        assert_eq!(
            tx.publish_blocking(1).unwrap_err().to_string(),
            "the detections queue is closed: the stage downstream has stopped"
        );
    }
}
