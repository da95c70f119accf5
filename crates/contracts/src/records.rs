//! Result records: what leaves the pipeline (one JSON object per line).
//!
//! Every record carries `record` (its kind) and `schema_version`; the JSON
//! Schemas under `docs/schemas/` are generated from these types
//! (`streetscope schema`), and a test fails when they drift.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::lines::Direction;

/// Version of the record formats in this module.
pub const SCHEMA_VERSION: u32 = 1;

/// A record of the results stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ResultRecord {
    Crossing(CrossingEvent),
    Summary(RunSummary),
}

/// One vehicle crossing one counting line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CrossingEvent {
    pub schema_version: u32,
    pub intersection_id: String,
    pub camera_id: String,
    /// Name of the counting line.
    pub line: String,
    pub direction: Direction,
    /// The line's label for this direction (e.g. `"eastbound"`).
    pub direction_label: String,
    /// Class of the vehicle, voted over the track's detections so far.
    pub class_name: String,
    /// Track id, unique per camera within a run.
    pub track_id: u64,
    /// Sequence number of the frame at which the crossing was seen.
    pub frame_seq: u64,
    /// Position of that frame in its stream, seconds.
    pub stream_time_s: f64,
    /// Capture time of that frame, milliseconds since the Unix epoch.
    pub capture_time_ms: i64,
}

/// One row of the run's counts: crossings of one line, in one direction, by one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CountRow {
    pub intersection_id: String,
    pub camera_id: String,
    pub line: String,
    pub direction: Direction,
    pub direction_label: String,
    pub class_name: String,
    pub count: u64,
}

/// Throughput of one stage over the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageThroughput {
    pub stage: String,
    /// Items the stage turned into outputs.
    pub items: u64,
    /// Seconds the stage spent working on them (not waiting for input).
    pub busy_s: f64,
    /// `items / busy_s`: what the stage alone could sustain.
    pub items_per_s: f64,
}

/// The last record of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    pub schema_version: u32,
    /// Wall-clock seconds of the run.
    pub wall_s: f64,
    /// Frames that went through the whole pipeline.
    pub frames: u64,
    /// Frames dropped under back-pressure, all cameras.
    pub frames_dropped: u64,
    /// Frames the detector skipped because they failed to decode or to run.
    pub frames_failed: u64,
    /// Frames the detector skipped as stale under overload (`detector.shed_stale_ms`).
    pub frames_shed: u64,
    /// Counts per line, direction and class, sorted.
    pub counts: Vec<CountRow>,
    pub stages: Vec<StageThroughput>,
}
