//! The frame envelope: what ingest emits for every sampled frame.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geometry::Letterbox;

/// Where a frame's capture time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureClock {
    /// The camera's own clock, from RTCP sender reports (NTP).
    CameraNtp,
    /// The time the frame arrived at ingest.
    Arrival,
    /// A file: the time the run started plus the frame's position in the file.
    FileStart,
}

/// How the payload of a frame is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FrameEncoding {
    /// Packed 8-bit RGB, `width * height * 3` bytes, rows without padding.
    Rgb8,
    /// A JPEG image (JFIF: full range, BT.601): the whole letterbox, or its
    /// picture alone (`letterbox.scaled_w` x `scaled_h`, which goes at
    /// `pad_x`, `pad_y` between black bars).
    Jpeg,
}

/// One sampled, letterboxed frame of one camera.
#[derive(Debug, Clone)]
pub struct Frame {
    pub camera_id: Arc<str>,
    pub intersection_id: Arc<str>,
    /// Per-camera sequence number, starting at 0, monotonic across reconnects.
    pub seq: u64,
    /// Position of the frame in its stream, in nanoseconds.
    pub pts_ns: u64,
    /// Capture time, milliseconds since the Unix epoch.
    pub capture_time_ms: i64,
    pub clock: CaptureClock,
    /// Geometry of the letterbox from the source image to the payload.
    pub letterbox: Letterbox,
    pub encoding: FrameEncoding,
    /// The image: `letterbox.dst_w` x `letterbox.dst_h`, or for a JPEG perhaps
    /// the picture alone (see [`FrameEncoding::Jpeg`]; ingest's built-in
    /// templates send that, a third less to carry and to decode for a 16:9
    /// camera).
    pub payload: Arc<[u8]>,
}

impl Frame {
    /// Stream position in seconds.
    pub fn pts_seconds(&self) -> f64 {
        self.pts_ns as f64 / 1e9
    }
}
