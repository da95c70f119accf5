//! How the stages are put together — the same code whether `streetscope run`
//! connects them with in-process channels or the distributed stages connect
//! them through Kafka. A mode chooses what is on the other side of a
//! [`Publish`](streetscope_transport::Publish) or
//! [`Subscribe`](streetscope_transport::Subscribe); what a stage does with its
//! inputs is here (or in the stage's own crate), once.
//!
//! - [`aggregate`]: the aggregator pods' intersections and the registry they
//!   follow, input by input, without Kafka.
//! - [`cameras`]: each camera's bounded queue and its forwarder into the
//!   frames publisher, and the drop counters of those queues.
//! - [`ingest`]: drives a [`Reconciler`](streetscope_ingest::reconcile::Reconciler)
//!   from a stream of camera changes, reporting cameras whose recording ended.

pub mod aggregate;
pub mod cameras;
pub mod ingest;
