//! Aggregate: tracking and line-crossing counts per camera, results per intersection.
//!
//! The analytics are pure: they take time from their input (frame sequence
//! numbers and stream positions), do no IO, and are tested with data —
//! detections in, events and counts out.
//!
//! - [`tracker`]: links detections of consecutive frames into tracks (IoU with
//!   constant-velocity prediction, then centre distance in units of the box's size
//!   for what is left), votes each track's class.
//! - [`counter`]: turns track movements into directional line crossings, with a
//!   dead band around each line against jitter; each track counted at most once per
//!   line and direction.
//! - [`Aggregator`]: per-camera state, duplicate suppression, counts.

pub mod counter;
pub mod stage;
pub mod tracker;

use std::collections::{BTreeMap, HashMap};

use streetscope_contracts::config::{CameraConfig, TrackerConfig};
use streetscope_contracts::records::{CountRow, CrossingEvent};
use streetscope_contracts::{Direction, FrameDetections};

use counter::{Crossing, FrameStamp, LineCounter};
use tracker::Tracker;

/// Why the aggregator refused an input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AggregateError {
    #[error("detections for camera {0:?}, which is not configured")]
    UnknownCamera(String),
}

/// State of one camera: its tracker and its line counter.
#[derive(Debug)]
struct CameraState {
    intersection_id: String,
    tracker: Tracker,
    counter: LineCounter,
    last_seq: Option<u64>,
    last_stamp: Option<FrameStamp>,
}

/// Key of a count: intersection, camera, line, direction, class.
type CountKey = (String, String, String, Direction, String);

/// Per-camera tracking and counting for a set of cameras.
#[derive(Debug)]
pub struct Aggregator {
    cameras: HashMap<String, CameraState>,
    /// Per key: the direction's label and the count.
    counts: BTreeMap<CountKey, (String, u64)>,
    duplicates: u64,
}

impl Aggregator {
    pub fn new(cameras: &[CameraConfig], tracker: &TrackerConfig) -> Self {
        let cameras = cameras
            .iter()
            .map(|c| {
                let state = CameraState {
                    intersection_id: c.intersection.clone(),
                    tracker: Tracker::new(tracker.clone()),
                    counter: LineCounter::new(c.lines.clone(), tracker.line_hysteresis),
                    last_seq: None,
                    last_stamp: None,
                };
                (c.id.clone(), state)
            })
            .collect();
        Self { cameras, counts: BTreeMap::new(), duplicates: 0 }
    }

    /// Takes one frame's detections; returns the crossings they complete.
    /// A frame whose sequence number is not above the last one seen for its camera
    /// is a duplicate (at-least-once delivery) and changes nothing.
    pub fn process(&mut self, fd: &FrameDetections) -> Result<Vec<CrossingEvent>, AggregateError> {
        let cam = self
            .cameras
            .get_mut(fd.camera_id.as_ref())
            .ok_or_else(|| AggregateError::UnknownCamera(fd.camera_id.to_string()))?;
        if cam.last_seq.is_some_and(|last| fd.seq <= last) {
            self.duplicates += 1;
            return Ok(Vec::new());
        }
        cam.last_seq = Some(fd.seq);
        let stamp = FrameStamp { seq: fd.seq, pts_ns: fd.pts_ns, capture_time_ms: fd.capture_time_ms };
        cam.last_stamp = Some(stamp);
        let updates = cam.tracker.update(&fd.detections, fd.width, fd.height);
        let crossings = cam.counter.observe(&updates, cam.tracker.retired(), stamp);
        Ok(self.record(fd.camera_id.as_ref(), crossings))
    }

    /// End of input: ends every track, releasing the crossings they still hold.
    pub fn finish(&mut self) -> Vec<CrossingEvent> {
        let mut ids: Vec<String> = self.cameras.keys().cloned().collect();
        ids.sort();
        let mut events = Vec::new();
        for id in ids {
            let cam = self.cameras.get_mut(&id).expect("listed above");
            let Some(stamp) = cam.last_stamp else {
                continue;
            };
            cam.tracker.finish();
            let crossings = cam.counter.observe(&[], cam.tracker.retired(), stamp);
            events.extend(self.record(&id, crossings));
        }
        events
    }

    /// Turns crossings into events and adds them to the counts.
    fn record(&mut self, camera_id: &str, crossings: Vec<Crossing>) -> Vec<CrossingEvent> {
        let cam = &self.cameras[camera_id];
        let mut events = Vec::with_capacity(crossings.len());
        for c in crossings {
            let line = cam.counter.line(c.line);
            let ev = CrossingEvent {
                schema_version: streetscope_contracts::records::SCHEMA_VERSION,
                intersection_id: cam.intersection_id.clone(),
                camera_id: camera_id.to_owned(),
                line: line.name.clone(),
                direction: c.direction,
                direction_label: line.label(c.direction).to_owned(),
                class_name: c.class_name.to_string(),
                track_id: c.track_id,
                frame_seq: c.at.seq,
                stream_time_s: c.at.pts_ns as f64 / 1e9,
                capture_time_ms: c.at.capture_time_ms,
            };
            let key = (
                ev.intersection_id.clone(),
                ev.camera_id.clone(),
                ev.line.clone(),
                ev.direction,
                ev.class_name.clone(),
            );
            self.counts.entry(key).or_insert_with(|| (ev.direction_label.clone(), 0)).1 += 1;
            events.push(ev);
        }
        events
    }

    /// Counts so far per intersection, camera, line, direction and class, sorted.
    pub fn counts(&self) -> Vec<CountRow> {
        self.counts
            .iter()
            .map(|((intersection_id, camera_id, line, direction, class_name), (label, count))| CountRow {
                intersection_id: intersection_id.clone(),
                camera_id: camera_id.clone(),
                line: line.clone(),
                direction: *direction,
                direction_label: label.clone(),
                class_name: class_name.clone(),
                count: *count,
            })
            .collect()
    }

    /// Inputs ignored as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }
}
