//! The camera registry: where a city registers its cameras and intersections.
//!
//! The registry keeps no database. Cameras live in the compacted topic
//! `streetscope.cameras` (key: camera id, value: a [`CameraSpec`] as JSON, a
//! tombstone deletes), intersections in `streetscope.intersections`; ingest
//! pods read the same topic. Both are [`TableLog`]s, so the registry runs over
//! Kafka in a deployment and over [`MemoryTable`]s in tests and on a laptop.
//!
//! - [`store`]: [`Registry`] — the view of both tables, and every change
//!   checked against it before anything is written.
//! - [`api`]: the REST API (axum): routes, bearer-token checks, errors as JSON,
//!   metrics; [`RegistryServer`] runs it.
//! - [`auth`]: tokens with roles (`read`, `write`) from a file or the environment.
//! - [`redact`]: passwords in source URLs are stored, never shown.
//! - [`openapi`]: the OpenAPI document, from the same types.
//! - [`client`]: the blocking client behind `streetscope cameras|intersections`.
//!
//! Wiring the registry over any table:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use streetscope_registry::{auth::{Role, Tokens}, Registry, RegistryServer};
//! use streetscope_transport::MemoryTable;
//! let registry = Registry::open(
//!     MemoryTable::new("streetscope.cameras"),
//!     MemoryTable::new("streetscope.intersections"),
//! ).await?;
//! let tokens = Tokens::default().with("a-long-random-write-token", Role::Write);
//! let server = RegistryServer::start("127.0.0.1:8080".parse()?, Arc::new(registry), tokens).await?;
//! server.wait().await?;
//! # Ok(()) }
//! ```
//!
//! [`CameraSpec`]: streetscope_contracts::registry::CameraSpec
//! [`TableLog`]: streetscope_transport::TableLog
//! [`MemoryTable`]: streetscope_transport::MemoryTable

// The OpenAPI document is one large `json!`.
#![recursion_limit = "512"]

pub mod api;
pub mod auth;
pub mod client;
pub mod openapi;
pub mod redact;
pub mod store;

pub use api::{router, RegistryServer};
pub use store::{Registry, RegistryError};
