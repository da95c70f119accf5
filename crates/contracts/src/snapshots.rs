//! Camera snapshots: the latest frame of a camera with what the pipeline saw
//! in it, for the dashboard's camera page.
//!
//! Snapshots are rare on purpose: one frame per camera every
//! [`SnapshotPolicy::interval_s`] (default 5 s), picked by a rule on the
//! frame's sequence number alone ([`SnapshotPolicy::due`]), so that every
//! stage that sees the frame's stream picks the same frames without talking
//! to the others, and the frames topic carries nothing more.
//!
//! On Kafka they travel on `streetscope.camera-snapshots` (key = camera id; short
//! retention, compacted: only the latest per camera matters), in two parts
//! joined by (camera id, frame sequence number) in the dashboard:
//! - the image: the frame's JPEG as ingest already encoded it for
//!   `streetscope.frames` (no second encoding), value = the JPEG bytes, header
//!   [`headers::PART`] = `image` and header [`headers::META`] = a
//!   [`SnapshotMeta`] in JSON with `objects` empty;
//! - the overlay: what the aggregator's tracker made of that frame, value = a
//!   [`SnapshotMeta`] in JSON with its `objects`, header [`headers::PART`] =
//!   `overlay`.
//!
//! Counting lines and zones are not in the record: the dashboard draws them from
//! the camera's spec (the registry), as they are at the time of drawing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, Letterbox};

/// Kafka headers of `streetscope.camera-snapshots`.
pub mod headers {
    /// `image` or `overlay`.
    pub const PART: &str = "streetscope.snapshot-part";
    /// On an image: its [`SnapshotMeta`](super::SnapshotMeta) in JSON.
    pub const META: &str = "streetscope.snapshot-meta";
}

/// Which frames become snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPolicy {
    /// Seconds between two snapshots of a camera (at its `sample_fps`).
    pub interval_s: f64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self { interval_s: 5.0 }
    }
}

impl SnapshotPolicy {
    /// Every how many frames of a camera sampled at `sample_fps` a snapshot is
    /// taken (at least 1).
    pub fn every(&self, sample_fps: f64) -> u64 {
        let n = (self.interval_s * sample_fps).round();
        if n.is_finite() && n >= 1.0 {
            n as u64
        } else {
            1
        }
    }

    /// Whether the frame numbered `seq` of a camera sampled at `sample_fps` is a
    /// snapshot. A rule on the sequence number alone: ingest, which has the
    /// image, and the aggregator, which has the tracks, pick the same frames.
    /// A frame dropped on the way costs one snapshot; the next comes
    /// `interval_s` later.
    pub fn due(&self, seq: u64, sample_fps: f64) -> bool {
        seq.is_multiple_of(self.every(sample_fps))
    }
}

/// What a snapshot shows besides the picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotMeta {
    pub schema_version: u32,
    pub camera_id: String,
    pub intersection_id: String,
    /// The frame's per-camera sequence number.
    pub frame_seq: u64,
    /// Capture time of the frame, milliseconds since the Unix epoch.
    pub capture_time_ms: i64,
    /// Source image size in pixels (boxes are in these pixels).
    pub width: u32,
    pub height: u32,
    /// How the picture was fitted into the frame it came from (frames are
    /// letterboxed to the model's input); absent: the picture is the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letterbox: Option<Letterbox>,
    /// What was seen in the frame.
    #[serde(default)]
    pub objects: Vec<SnapshotObject>,
}

/// One object in a snapshot: a detection, and its track when the tracker
/// linked it to one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotObject {
    /// Box in source pixels.
    pub bbox: BBox,
    pub class_name: String,
    /// Detection score (0-1).
    pub score: f32,
    /// The track's id, when known (the aggregator's overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_in_every_interval_by_sequence_number() {
        let p = SnapshotPolicy::default();
        assert_eq!(p.every(10.0), 50);
        let due: Vec<u64> = (0..160).filter(|&s| p.due(s, 10.0)).collect();
        assert_eq!(due, [0, 50, 100, 150]);
        // Slow cameras and silly settings still give a snapshot now and then.
        assert_eq!(p.every(0.1), 1);
        assert_eq!(SnapshotPolicy { interval_s: f64::NAN }.every(10.0), 1);
        assert_eq!(SnapshotPolicy { interval_s: 2.0 }.every(2.5), 5);
    }
}
