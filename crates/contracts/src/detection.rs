//! What the detector emits for each frame, and what the aggregator consumes.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geometry::BBox;

/// One detected object, its box in source-image pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Detection {
    pub class_id: u32,
    pub class_name: Arc<str>,
    pub score: f32,
    pub bbox: BBox,
}

/// The detections of one frame (message of `streetscope.detections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FrameDetections {
    pub camera_id: Arc<str>,
    pub intersection_id: Arc<str>,
    /// The frame's per-camera sequence number.
    pub seq: u64,
    /// The frame's position in its stream, nanoseconds.
    pub pts_ns: u64,
    /// Capture time, milliseconds since the Unix epoch.
    pub capture_time_ms: i64,
    /// Source image width in pixels.
    pub width: u32,
    /// Source image height in pixels.
    pub height: u32,
    pub detections: Vec<Detection>,
}
