//! How stages are connected.
//!
//! A stage reads its input from something that implements [`Subscribe`] and
//! writes its output to something that implements [`Publish`]; it does not know
//! what is on the other side. This crate holds the in-process implementation —
//! bounded channels, used by `streetscope run` — and is the one place where a
//! Kafka transport will live.
//!
//! Invariant: every queue is bounded and names what it does when full
//! ([`FullPolicy`]).

pub mod delivery;
mod inproc;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod relay;
pub mod table;

pub use inproc::{channel, DropCounter, InProcPublisher, InProcSubscriber};
pub use table::{MemoryTable, TableError, TableLog};

use std::future::Future;

/// What a publisher does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullPolicy {
    /// Wait until the consumer makes room: back-pressure up the pipeline.
    /// For files, where nothing is lost by waiting.
    Block,
    /// Drop the oldest queued item to make room, and count the drop. For live
    /// cameras, where a late frame is worth less than the next one.
    DropOldest,
}

/// Why an item could not be published.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// Every subscriber is gone; the stage downstream has stopped.
    #[error("the {0} queue is closed: the stage downstream has stopped")]
    Closed(String),
    /// The transport failed for good (a broker refused a delivery, say); the
    /// stage stops and its inputs are replayed by whoever takes them next.
    #[error("{0}")]
    Failed(String),
}

/// What happened to a published item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Queued; nothing was lost.
    Queued,
    /// Queued after dropping the oldest item (policy [`FullPolicy::DropOldest`]).
    DroppedOldest,
}

/// The sending side of a connection between stages.
pub trait Publish<T>: Send + Sync {
    /// Publishes one item, waiting for room when the policy says so.
    fn publish(&self, item: T) -> impl Future<Output = Result<Published, TransportError>> + Send;

    /// Says that the input `item` stands for produced nothing (a frame that
    /// failed or was shed): `item` is a placeholder carrying that input's
    /// identity and is never delivered. In-process channels have nothing to
    /// do; a Kafka relay settles the input, so its offset is committed and an
    /// end-of-stream marker behind it goes on without waiting for a later output.
    fn nothing_for(&self, item: T) -> impl Future<Output = Result<(), TransportError>> + Send {
        drop(item);
        async { Ok(()) }
    }
}

/// The receiving side of a connection between stages.
pub trait Subscribe<T>: Send {
    /// The next item, or `None` once every publisher has finished and the queue is drained.
    fn next(&mut self) -> impl Future<Output = Option<T>> + Send;
}
