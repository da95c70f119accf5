//! A stage between two topics, behind the same [`Subscribe`]/[`Publish`]
//! contract as the in-process channels.
//!
//! `streetscope run` hands a stage an in-process subscriber and publisher; a
//! pod hands the same stage a [`RelayInput`] and a [`RelayOutput`] made by
//! [`relay`]. The stage cannot tell them apart. What Kafka adds lives here, once:
//!
//! - **Decoding** with the stage's [`Codec`]: a message that does not decode, or
//!   decodes to something impossible, goes to the dead-letter topic with the
//!   codec's reason, and the stage never sees it.
//! - **In-order commits**: every message consumed is an entry of an
//!   [`InFlight`] (a pure type with its own tests). An output settles its own
//!   input and every input before it that produced nothing (shed or failed);
//!   their offsets are marked done only once the output is durable, in
//!   consumption order. A crash replays; it never skips. An input the stage
//!   drops is settled when the stage says so ([`Publish::nothing_for`]), so
//!   the last frame of a recording failing holds no end-of-stream marker back.
//! - **Markers** (end of stream) pass on downstream in their place in the
//!   stream: after the outputs of the inputs before them, before the next.
//! - **Trace context**: each input's tag (its `traceparent`, say) travels in
//!   its entry and goes out as a header of its output; an input that never
//!   comes out leaves nothing behind.
//! - **Stopping**: [`RelayControl::stop`] ends the input stream; the stage then
//!   finishes what it holds, its outputs are published and committed, and
//!   [`RelayControl::finish`] waits for that within a deadline.
//!
//! A stage that maps each input to at most one output, in input order (the
//! detector), fits this shape. The aggregator, whose outputs come from state
//! and whose commits wait for snapshots, uses the delivery types directly
//! ([`crate::delivery::Processed`]).

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::delivery::{Entry, InFlight, Slot};
use crate::kafka::{Assignment, DeadLetters, GroupConsumer, Incoming, Origin, OwnedMessage, Pending, Producer};
use crate::{Publish, Published, Subscribe, TransportError};

/// What a consumed message is to the stage.
#[derive(Debug)]
pub enum Decoded<I, K, M> {
    /// An input for the stage, known by `key` (its output carries the same
    /// key), with the tag its output carries out (a trace context).
    Item { item: I, key: K, tag: String },
    /// A marker to pass on downstream in order.
    Marker(M),
    /// Poison: to the dead-letter topic with `reason`, counted under `label`
    /// (a short fixed name, e.g. `frame_envelope`).
    Poison { label: &'static str, reason: String },
}

/// A message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The message key (decides the partition).
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

/// How a relayed stage's inputs and outputs look on the topics.
pub trait Codec: Send + Sync + 'static {
    /// What the stage reads.
    type In: Send + 'static;
    /// What the stage writes.
    type Out: Send + 'static;
    /// What ties an output to its input.
    type Key: PartialEq + Debug + Send + 'static;
    /// A marker passed on in order.
    type Marker: Send + 'static;

    /// What a consumed message is.
    fn decode(&self, msg: &OwnedMessage) -> Decoded<Self::In, Self::Key, Self::Marker>;
    /// The key of an output: the key its input was decoded with.
    fn key_of(&self, out: &Self::Out) -> Self::Key;
    /// The message for an output; `tag` is its input's tag.
    fn encode(&self, out: &Self::Out, tag: &str) -> Result<Encoded, String>;
    /// The message for a marker.
    fn encode_marker(&self, marker: &Self::Marker) -> Result<Encoded, String>;
    /// An output was handed to the producer (for spans and logs).
    fn published(&self, _out: &Self::Out) {}
}

type Flight<C> = InFlight<Origin, <C as Codec>::Key, <C as Codec>::Marker, String>;
/// Entries leaving the flight, in consumption order.
type Settled<C> = Vec<Entry<Origin, <C as Codec>::Key, <C as Codec>::Marker, String>>;

/// What the committer awaits, in order: deliveries, then the offsets they release.
enum Done {
    Delivered(Pending, Vec<Origin>),
    Settled(Vec<Origin>),
}

/// State shared by the halves.
struct Shared<C: Codec> {
    codec: C,
    flight: Mutex<Flight<C>>,
    /// Held while entries leave the flight and their messages are queued, so
    /// deliveries reach the committer in consumption order.
    order: tokio::sync::Mutex<()>,
    producer: Producer,
    topic: String,
    done: tokio::sync::mpsc::Sender<Done>,
    /// The first failure (a delivery, a dead letter, the committer): the relay stops.
    failed: Mutex<Option<String>>,
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
}

impl<C: Codec> Shared<C> {
    fn fail(&self, why: String) -> TransportError {
        tracing::error!(topic = %self.topic, "relay failed: {why}");
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        f.get_or_insert(why.clone());
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
        TransportError::Failed(why)
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues the markers among `entries` and hands every entry's offset to
    /// the committer after the delivery it follows. The caller holds `order`.
    async fn release(&self, entries: Settled<C>) -> Result<(), TransportError> {
        let mut origins = Vec::new();
        for e in entries {
            if let Slot::Marker(marker) = &e.slot {
                let msg = self.codec.encode_marker(marker).map_err(|e| self.fail(format!("encoding a marker: {e}")))?;
                let pending = self.send(&msg).await?;
                self.hand(Done::Delivered(pending, std::mem::take(&mut origins))).await?;
            }
            origins.push(e.origin);
        }
        if !origins.is_empty() {
            self.hand(Done::Settled(origins)).await?;
        }
        Ok(())
    }

    async fn send(&self, msg: &Encoded) -> Result<Pending, TransportError> {
        let headers: Vec<(&str, &[u8])> = msg.headers.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        self.producer
            .send(&self.topic, &msg.key, Some(&msg.value), &headers)
            .await
            .map_err(|e| self.fail(format!("producing to {}: {e}", self.topic)))
    }

    async fn hand(&self, done: Done) -> Result<(), TransportError> {
        self.done.send(done).await.map_err(|_| {
            TransportError::Failed(self.failure().unwrap_or_else(|| "the committer has stopped".to_owned()))
        })
    }

    /// The relay's turn to take entries from the flight and queue their
    /// messages (hold the guard until they are queued); its failure if it has failed.
    async fn ordered(&self) -> Result<tokio::sync::MutexGuard<'_, ()>, TransportError> {
        if let Some(why) = self.failure() {
            return Err(TransportError::Failed(why));
        }
        Ok(self.order.lock().await)
    }

    /// The entries `key`'s input settles ([`InFlight::complete`]; None when it
    /// is not in flight). Call it holding [`Shared::ordered`]'s guard.
    fn complete(&self, key: &C::Key) -> Option<Settled<C>> {
        self.flight.lock().unwrap_or_else(|p| p.into_inner()).complete(key)
    }

    /// The entries at the front that wait for no output, released.
    async fn release_front(&self) -> Result<(), TransportError> {
        let _order = self.order.lock().await;
        let front = self.flight.lock().unwrap_or_else(|p| p.into_inner()).take_settled_front();
        self.release(front).await
    }
}

/// The stage's input: the consumed messages, decoded.
pub struct RelayInput<C: Codec> {
    shared: Arc<Shared<C>>,
    consumer: Arc<GroupConsumer>,
    dlq: DeadLetters,
    on_rebalance: Box<dyn Fn(&Assignment) + Send + Sync>,
}

/// The stage's output: produced in order, committing their inputs once durable.
pub struct RelayOutput<C: Codec> {
    shared: Arc<Shared<C>>,
    /// Told when the stage drops its output, so the last markers are released.
    closed: Arc<tokio::sync::Notify>,
}

/// Stops a relay and waits for it.
pub struct RelayControl<C: Codec> {
    shared: Arc<Shared<C>>,
    consumer: Arc<GroupConsumer>,
    committer: tokio::task::JoinHandle<Result<(), String>>,
    sweeper: tokio::task::JoinHandle<()>,
}

/// Connects a stage to Kafka: messages of `consumer`'s partitions in, outputs
/// to `topic` through `producer`, poison to `dlq`. `on_rebalance` hears of
/// every partition change (readiness, logs). Must be called inside a tokio
/// runtime: it spawns the committer and the task that releases markers and
/// dead letters that no output follows.
pub fn relay<C: Codec>(
    consumer: Arc<GroupConsumer>,
    producer: Producer,
    dlq: DeadLetters,
    topic: &str,
    codec: C,
    on_rebalance: impl Fn(&Assignment) + Send + Sync + 'static,
) -> (RelayInput<C>, RelayOutput<C>, RelayControl<C>) {
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<Done>(1024);
    let shared = Arc::new(Shared {
        codec,
        flight: Mutex::default(),
        order: tokio::sync::Mutex::new(()),
        producer,
        topic: topic.to_owned(),
        done: done_tx,
        failed: Mutex::new(None),
        stopping: AtomicBool::new(false),
        stop: tokio::sync::Notify::new(),
    });
    let committer = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            while let Some(done) = done_rx.recv().await {
                let origins = match done {
                    Done::Delivered(pending, origins) => {
                        pending.durable().await.map_err(|e| e.to_string())?;
                        origins
                    }
                    Done::Settled(origins) => origins,
                };
                for o in origins {
                    consumer.mark_done(&o.topic, o.partition, o.offset);
                }
            }
            Ok(())
        })
    };
    let closed = Arc::new(tokio::sync::Notify::new());
    let sweeper = {
        // Holds no sender of its own between sweeps: the committer ends once
        // the output is dropped and the last sweep is done.
        let (shared, closed) = (Arc::downgrade(&shared), closed.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = closed.notified() => true,
                };
                let Some(s) = shared.upgrade() else { return };
                if s.release_front().await.is_err() || last {
                    return;
                }
            }
        })
    };
    let input =
        RelayInput { shared: shared.clone(), consumer: consumer.clone(), dlq, on_rebalance: Box::new(on_rebalance) };
    let output = RelayOutput { shared: shared.clone(), closed };
    (input, output, RelayControl { shared, consumer, committer, sweeper })
}

impl<C: Codec> Subscribe<C::In> for RelayInput<C> {
    async fn next(&mut self) -> Option<C::In> {
        loop {
            // Registered before the flag is read, so a stop in between is not missed.
            let stop = self.shared.stop.notified();
            tokio::pin!(stop);
            stop.as_mut().enable();
            if self.shared.stopping.load(Ordering::SeqCst) {
                return None;
            }
            let incoming = tokio::select! {
                biased;
                _ = stop => return None,
                incoming = self.consumer.next() => incoming,
            };
            let m = match incoming {
                Incoming::Message(m) => m,
                Incoming::Rebalance(a) => {
                    (self.on_rebalance)(&a);
                    continue;
                }
            };
            let origin = Origin::of(&m);
            let (slot, tag, item) = match self.shared.codec.decode(&m) {
                Decoded::Item { item, key, tag } => (Slot::Item(key), tag, Some(item)),
                Decoded::Marker(marker) => (Slot::Marker(marker), String::new(), None),
                Decoded::Poison { label, reason } => {
                    if let Err(e) = self.dlq.send(&m, label, &reason).await {
                        self.shared.fail(format!("sending a dead letter from {origin}: {e}"));
                        return None;
                    }
                    (Slot::Settled, String::new(), None)
                }
            };
            self.shared.flight.lock().unwrap_or_else(|p| p.into_inner()).push(origin, slot, tag);
            if item.is_some() {
                return item;
            }
        }
    }
}

impl<C: Codec> Publish<C::Out> for RelayOutput<C> {
    async fn publish(&self, out: C::Out) -> Result<Published, TransportError> {
        let s = &self.shared;
        let key = s.codec.key_of(&out);
        let _order = s.ordered().await?;
        let Some(mut settled) = s.complete(&key) else {
            // Its input is not in flight (its partition was revoked and
            // is replayed by the next owner): publish (at least once;
            // downstream drops the duplicate) and release nothing.
            tracing::warn!(?key, topic = %s.topic, "an output whose input is not in flight (revoked partition?)");
            let msg = s.codec.encode(&out, "").map_err(|e| s.fail(format!("encoding {key:?}: {e}")))?;
            s.send(&msg).await?;
            s.codec.published(&out);
            return Ok(Published::Queued);
        };
        let own = settled.pop().expect("complete ends with the output's own entry");
        s.release(settled).await?;
        let msg = s.codec.encode(&out, &own.tag).map_err(|e| s.fail(format!("encoding {key:?}: {e}")))?;
        let pending = s.send(&msg).await?;
        s.codec.published(&out);
        s.hand(Done::Delivered(pending, vec![own.origin])).await?;
        Ok(Published::Queued)
    }

    async fn nothing_for(&self, placeholder: C::Out) -> Result<(), TransportError> {
        let s = &self.shared;
        let key = s.codec.key_of(&placeholder);
        let _order = s.ordered().await?;
        match s.complete(&key) {
            // Its input and those before it are settled; markers behind them go on.
            Some(settled) => s.release(settled).await,
            None => Ok(()),
        }
    }
}

impl<C: Codec> Debug for RelayInput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayInput").field("consumer", &self.consumer).finish()
    }
}

impl<C: Codec> Debug for RelayOutput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayOutput").field("topic", &self.shared.topic).finish()
    }
}

impl<C: Codec> Debug for RelayControl<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayControl").field("topic", &self.shared.topic).finish()
    }
}

impl<C: Codec> Drop for RelayOutput<C> {
    fn drop(&mut self) {
        self.closed.notify_one();
    }
}

impl<C: Codec> RelayControl<C> {
    /// Ends the input stream: the stage sees its end and finishes what it holds.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_waiters();
    }

    /// The relay's failure, if it has failed (the stage then stops too).
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Inputs taken and not yet settled.
    pub fn in_flight(&self) -> usize {
        self.shared.flight.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Waits, up to `limit`, until every output the stage published is durable
    /// and its offsets are marked done (call it after the stage has ended and
    /// dropped its output), then commits and leaves the group. Inputs still in
    /// flight at the deadline are not committed: their next owner replays them.
    pub async fn finish(self, limit: Duration) -> Result<(), String> {
        let RelayControl { shared, consumer, committer, sweeper } = self;
        let waited = tokio::time::timeout(limit, async {
            let _ = sweeper.await;
            // The halves are gone; the last sender goes with `shared`.
            drop(shared);
            committer.await.map_err(|e| format!("the committer panicked: {e}"))?
        })
        .await;
        let outcome = match waited {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!("outputs still in flight after {limit:?}: their inputs are replayed by the next owner");
                Ok(())
            }
        };
        if let Err(e) = consumer.commit_now() {
            tracing::warn!("last commit: {e}");
        }
        if let Ok(c) = Arc::try_unwrap(consumer) {
            c.close();
        }
        outcome
    }
}
