//! Streetscope's domain types and the contracts between stages.
//!
//! Every other crate speaks in these types; this crate does no IO (reading a
//! config file is the caller's job — [`config::PipelineConfig::from_toml_str`]
//! takes the text).
//!
//! - [`geometry`]: boxes, normalised points and letterbox geometry.
//! - [`lines`]: counting lines and the side/crossing tests.
//! - [`frame`]: the frame that ingest emits and detect consumes.
//! - [`envelope`]: the frame's versioned binary layout on the wire (`streetscope.frames`).
//! - [`detection`]: what detect emits and aggregate consumes.
//! - [`identity`]: a frame's identity — the run and index inside its sequence number.
//! - [`records`]: the result records (crossings, run summary) that leave the pipeline.
//! - [`config`]: the pipeline configuration with validation.
//! - [`paths`]: the one rule for relative paths in a configuration file (from the file's folder).
//! - [`cameras`]: changes to the camera set while running (from a watched file or the registry).
//! - [`redact`]: the one rule for what of a URL never reaches logs, metrics or responses.
//! - [`registry`]: the camera registry's records (cameras and intersections tables, API errors).
//! - [`poison`]: records that decode but cannot be true (what goes to the dead-letter topic).
//! - [`http`]: the limits and TLS of the HTTP servers.
//! - [`truth_geometry`]: the ground truth's own line-crossing geometry (independent of [`lines`]).
//! - [`zones`]: zones and ground-plane calibrations, their geometric tests and checks.
//! - [`snapshots`]: camera snapshots for the dashboard (which frames, what travels with them).

pub mod cameras;
pub mod cluster;
pub mod config;
pub mod detection;
pub mod envelope;
pub mod frame;
pub mod geometry;
pub mod http;
pub mod identity;
pub mod kafka;
pub mod lines;
pub mod paths;
pub mod poison;
pub mod records;
pub mod redact;
pub mod registry;
pub mod snapshots;
pub mod trace;
pub mod truth_geometry;
pub mod zones;

pub use config::{ConfigError, PipelineConfig};
pub use detection::{Detection, FrameDetections};
pub use frame::{CaptureClock, Frame, FrameEncoding};
pub use geometry::{BBox, Letterbox, NormPoint};
pub use lines::{CountingLine, Direction};
