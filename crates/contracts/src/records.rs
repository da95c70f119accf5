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
    TurningMovement(TurningMovementEvent),
    Window(WindowRecord),
    Alert(AlertEvent),
    Counts(CountsRecord),
    Summary(RunSummary),
}

impl ResultRecord {
    /// The record's event time, ms since the Unix epoch: the capture time it is
    /// filed under (a window's start, an alert's change, a movement's
    /// completion). Result topics carry it as the message timestamp, so a
    /// reader finds a time range by offsets-for-times; None for a run's summary.
    pub fn event_time_ms(&self) -> Option<i64> {
        match self {
            Self::Crossing(c) => Some(c.capture_time_ms),
            Self::TurningMovement(t) => Some(t.capture_time_ms),
            Self::Window(w) => Some(w.window_start_ms),
            Self::Alert(a) => Some(a.time_ms),
            Self::Counts(c) => Some(c.as_of_capture_time_ms),
            Self::Summary(_) => None,
        }
    }

    /// The topic a distributed aggregator publishes the record to (key: its
    /// intersection id): crossings and movements to `events`; windows, running
    /// counts and summaries to `counts`; alerts to `alerts`.
    pub fn topic<'t>(&self, topics: &'t crate::kafka::TopicsConfig) -> &'t crate::kafka::TopicSpec {
        match self {
            Self::Crossing(_) | Self::TurningMovement(_) => &topics.events,
            Self::Window(_) | Self::Counts(_) | Self::Summary(_) => &topics.counts,
            Self::Alert(_) => &topics.alerts,
        }
    }
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
    /// The vehicle's speed at the crossing, km/h (its positions over
    /// `analytics.speed.smoothing_s` around the frame); only for cameras with a
    /// calibration, when its positions there are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
}

/// Running totals of one intersection since its counting began: published to
/// `streetscope.counts` (key = intersection id) by the distributed aggregator
/// every `aggregate.counts_interval_s` while it changes. The latest record per
/// intersection is the current truth; replays after a fault republish the same
/// totals, never larger ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CountsRecord {
    pub schema_version: u32,
    pub intersection_id: String,
    /// Capture time of the newest frame counted, milliseconds since the Unix epoch.
    pub as_of_capture_time_ms: i64,
    /// Frames aggregated (duplicates excluded).
    pub frames: u64,
    /// Replayed inputs recognised by (camera, sequence number) and dropped.
    pub duplicates: u64,
    /// Crossings per camera, line, direction and class, sorted.
    pub counts: Vec<CountRow>,
    /// The turning-movement matrix per class, sorted.
    pub turning_movements: Vec<TurningCountRow>,
    /// Every camera that sent frames was a recording and has ended: these
    /// counts are final (as at the end of `streetscope run` on files).
    pub complete: bool,
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
    /// The turning-movement matrix per class (cameras with approaches), sorted.
    pub turning_movements: Vec<TurningCountRow>,
    pub stages: Vec<StageThroughput>,
}

/// One vehicle's way through the intersection: it came in by one approach and left
/// by another. Emitted once per track, when both its entry crossing (the entry
/// approach's line in its entering direction) and its exit crossing (another
/// approach's line in its exiting direction) are known, in whichever order they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurningMovementEvent {
    pub schema_version: u32,
    pub intersection_id: String,
    pub camera_id: String,
    /// Track id, unique per camera within a run.
    pub track_id: u64,
    /// The approach the vehicle came in by.
    pub from: String,
    /// The approach the vehicle left by.
    pub to: String,
    /// Class of the vehicle, voted over the track's detections so far.
    pub class_name: String,
    /// Sequence number of the frame of the entry crossing.
    pub entry_frame_seq: u64,
    /// Capture time of the entry crossing, milliseconds since the Unix epoch.
    pub entry_capture_time_ms: i64,
    /// Sequence number of the frame of the exit crossing.
    pub exit_frame_seq: u64,
    /// Capture time of the exit crossing, milliseconds since the Unix epoch.
    pub exit_capture_time_ms: i64,
    /// Capture time of the later of the two crossings: when the movement was
    /// complete. Time windows file the movement under this time.
    pub capture_time_ms: i64,
    /// The vehicle's mean speed from the entry crossing to the exit crossing,
    /// km/h (distance travelled over time taken); only for cameras with a calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
}

/// One cell of the turning-movement matrix: vehicles of one class that came in by
/// one approach and left by another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TurningCountRow {
    pub intersection_id: String,
    pub camera_id: String,
    /// The entry approach.
    pub from: String,
    /// The exit approach.
    pub to: String,
    pub class_name: String,
    pub count: u64,
}

/// The figures of one intersection over one event-time window.
///
/// Windows are tumbling, aligned to the Unix epoch (a 300 s window starts at a
/// multiple of 300 s since 1970-01-01T00:00:00Z), and file everything under the
/// capture time of its frame. A window is closed once every camera of the
/// intersection has seen a frame captured at least the allowed lateness after its
/// end; what arrives for it afterwards is counted in `late` of the next record of
/// the same length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowRecord {
    pub schema_version: u32,
    pub intersection_id: String,
    /// Start of the window, milliseconds since the Unix epoch (inclusive).
    pub window_start_ms: i64,
    /// End of the window, milliseconds since the Unix epoch (exclusive).
    pub window_end_ms: i64,
    /// Length of the window, seconds.
    pub length_s: u32,
    /// Crossings per camera, line, direction and class, sorted; only non-zero counts.
    pub counts: Vec<WindowCount>,
    /// Turning movements completed in the window per camera, entry and exit approach
    /// and class, sorted; only non-zero counts.
    pub turning_movements: Vec<WindowTurningCount>,
    /// Data quality per camera of the intersection, sorted by camera id.
    pub cameras: Vec<WindowCameraQuality>,
    /// Records that arrived after their own window of this length had closed,
    /// since the previous record of this length. They are in the run's totals but
    /// in no window.
    pub late: LateRecords,
    /// Whether the counts can be trusted as whole: the window was closed by the
    /// watermarks (not flushed before its end at the end of the input) and every
    /// camera delivered its frames (no sequence gaps, at least 99 % of the
    /// frames expected, and no camera stale).
    pub complete: bool,
    /// Occupancy and dwell times per camera and zone, sorted (absent: no zones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<WindowZone>,
    /// Queue length per camera and lane (queue zones), sorted (absent: no queue zones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<WindowQueue>,
    /// Speeds per camera and turning movement (calibrated cameras), sorted
    /// (absent: no movement with a speed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub speeds: Vec<WindowMovementSpeed>,
}

/// Occupancy and dwell times of one zone in a window. Occupancy counts the
/// confirmed tracks whose reference point is inside the zone, in each frame of the
/// camera in the window; a dwell is filed under the window in which the track left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowZone {
    pub camera_id: String,
    pub zone: String,
    /// Vehicles inside, averaged over the camera's frames in the window.
    pub mean_occupancy: f64,
    /// Most vehicles inside in one frame.
    pub max_occupancy: u32,
    /// Vehicles that left the zone in the window (their dwell is known).
    pub dwells: u64,
    /// Their mean time inside, seconds (first frame inside to first frame outside);
    /// absent when none left.
    pub mean_dwell_s: Option<f64>,
    /// The longest of them, seconds.
    pub max_dwell_s: Option<f64>,
    /// The same per class of vehicle, sorted by class.
    pub classes: Vec<WindowZoneClass>,
    /// Each stay that ended in the window (the `dwells`), by leaving time then
    /// track (absent: none): what detector on/off events and control delays
    /// (`streetscope report`) are made of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visits: Vec<ZoneVisit>,
}

/// One vehicle's stay in a zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ZoneVisit {
    pub track_id: u64,
    pub class_name: String,
    /// Capture time of its first frame inside, ms since the Unix epoch.
    pub enter_ms: i64,
    /// Capture time of its first frame outside again (or of its last frame
    /// inside, for a track that ended there).
    pub leave_ms: i64,
    /// Of that time, how long it stood still, ms: the time between its frames
    /// inside at whose end its smoothed speed was under the queue threshold
    /// (`analytics.speed.queue_max_kmh`, or `queue_max_image_speed` without a
    /// calibration): stopped time, apart from control delay. 0 in records
    /// written before it was measured.
    #[serde(default)]
    pub stopped_ms: i64,
}

/// Occupancy and dwell times of one class of vehicle in one zone in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowZoneClass {
    pub class_name: String,
    pub mean_occupancy: f64,
    pub max_occupancy: u32,
    pub dwells: u64,
    pub mean_dwell_s: Option<f64>,
}

/// Queue of one lane in a window: the vehicles in its queue zones slower than
/// `analytics.speed.queue_max_kmh` (or `queue_max_image_speed` without a calibration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowQueue {
    pub camera_id: String,
    pub lane: String,
    /// Vehicles queued, averaged over the camera's frames in the window.
    pub mean_queue: f64,
    /// Most vehicles queued in one frame.
    pub max_queue: u32,
    /// The camera's frames in the window by the vehicles queued in them: index
    /// 0 holds the frames with none, 1 with one, … (absent in older records).
    /// Percentiles of the queue over any span of windows come from their sum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames_by_queue: Vec<u64>,
}

/// Speeds of the vehicles that completed one turning movement in a window (each
/// vehicle's mean speed from its entry to its exit crossing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WindowMovementSpeed {
    pub camera_id: String,
    pub from: String,
    pub to: String,
    /// Vehicles with a known speed.
    pub vehicles: u64,
    pub mean_kmh: f64,
    /// Median.
    pub p50_kmh: f64,
    /// 85th percentile: the speed 85 % of the vehicles did not exceed.
    pub p85_kmh: f64,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A camera delivered no frame for `analytics.alerts.camera_stale_s`.
    CameraStale,
    /// A lane's queue stayed at or over `queue_length` for `queue_for_s`.
    Queue,
    /// A window's count was far off the median of the previous windows.
    CountAnomaly,
}

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Raised,
    Cleared,
}

/// An alert raised or cleared (topic `streetscope.alerts`). Each raised alert is
/// cleared by a later record of the same kind, camera and subject, once its cause
/// has gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertEvent {
    pub schema_version: u32,
    pub intersection_id: String,
    pub camera_id: String,
    pub alert: AlertKind,
    pub state: AlertState,
    /// What the alert is about within the camera: the camera id (stale), the lane
    /// (queue), or `line/direction_label` (count anomaly).
    pub subject: String,
    /// Event time of the change, milliseconds since the Unix epoch: when the
    /// camera had been silent for `camera_stale_s`, or its next frame; when the
    /// queue had been long (or short) for long enough; the window's end.
    pub time_ms: i64,
    /// What was measured: seconds without frames; vehicles queued; the window's count.
    pub value: f64,
    /// What it was held against: `camera_stale_s`; `queue_length`; the baseline (median count).
    pub threshold: f64,
    /// For count anomalies, the window judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_ms: Option<i64>,
    /// A sentence for people.
    pub message: String,
}

/// Crossings of one line, in one direction, by one class, in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WindowCount {
    pub camera_id: String,
    pub line: String,
    pub direction: Direction,
    pub direction_label: String,
    pub class_name: String,
    pub count: u64,
}

/// Vehicles of one class that completed one movement in a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WindowTurningCount {
    pub camera_id: String,
    pub from: String,
    pub to: String,
    pub class_name: String,
    pub count: u64,
}

/// How much of one camera's input a window saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WindowCameraQuality {
    pub camera_id: String,
    /// The camera's `sample_fps` times the window's length, rounded.
    pub frames_expected: u64,
    /// Frames whose capture time falls in the window.
    pub frames_received: u64,
    /// Sequence numbers found missing by frames of this window (the sum of the
    /// lengths of `gaps`).
    pub frames_dropped: u64,
    /// Runs of missing sequence numbers, filed under the window of the frame
    /// that revealed them.
    pub gaps: Vec<SeqGap>,
    /// The camera was stale (no frames for `analytics.alerts.camera_stale_s`) at
    /// some time in the window, so its watermark did not hold the window open
    /// (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
}

/// Frames of one camera that never reached the aggregator: a run of missing
/// sequence numbers (both ends included), or the time between two runs of the
/// camera's ingest (a restart; see `streetscope_contracts::identity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SeqGap {
    /// The first sequence number after the last frame received.
    pub first_seq: u64,
    /// The last sequence number before the frame that revealed the gap.
    pub last_seq: u64,
    /// The camera's ingest restarted (a pod killed, stopped or replaced, or the
    /// camera moved to another pod) between the two frames (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// For a restart: the frames the camera would have given meanwhile, from the
    /// capture times of the frames on either side and its sampling rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_estimated: Option<u64>,
}

impl SeqGap {
    /// Missing numbers `first_seq..=last_seq` inside one run of the camera.
    pub fn within_run(first_seq: u64, last_seq: u64) -> Self {
        Self { first_seq, last_seq, restart: false, frames_estimated: None }
    }

    /// How many frames are missing.
    pub fn frames(&self) -> u64 {
        self.frames_estimated.unwrap_or_else(|| self.last_seq.saturating_sub(self.first_seq) + 1)
    }
}

/// Records that came after their window had closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LateRecords {
    /// Line crossings.
    pub crossings: u64,
    /// Turning movements.
    pub turning_movements: u64,
    /// Frames (out of order by more than the allowed lateness).
    pub frames: u64,
    /// Dwell times of vehicles that left a zone (absent: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dwells: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl LateRecords {
    /// Whether nothing came late.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
