//! Camera snapshots: the latest frame of a camera with what the pipeline saw
//! in it, for the dashboard's camera page.
//!
//! Snapshots are rare on purpose: one frame per camera every
//! [`SnapshotPolicy::interval_s`] (default 5 s), picked by a rule on the
//! frame's sequence number alone ([`SnapshotPolicy::due`]), so that every
//! stage that sees the frame's stream picks the same frames without talking
//! to the others, and the frames topic carries nothing more.
//!
//! On Kafka they travel on `streetscope.camera-snapshots` (key = camera id;
//! short retention), one message per snapshot, written by the detector pod
//! that ran the frame: it holds the frame's JPEG (as ingest encoded it for
//! `streetscope.frames`: no second encoding) and its detections, so the
//! message is whole when written and nothing needs joining. The value is
//! [`encode_message`]'s: a magic, the [`SnapshotMeta`] in JSON (with its
//! `objects`), then the JPEG. The frames topic carries nothing more.
//!
//! Track ids come apart, from the aggregator, which holds the tracks: the
//! detector marks the detections of the frames it snapshots (the
//! [`headers::SNAPSHOT`](crate::kafka::headers::SNAPSHOT) header on their
//! `streetscope.detections` message), and the aggregator answers each such
//! frame with a [`SnapshotOverlay`] on the same topic under the same key (the
//! frame's boxes, each with its confirmed track's id). The dashboard joins the
//! two by (camera, frame sequence number), in whichever order they come. In
//! `streetscope run --ui` the aggregate stage hands the same overlay to the
//! dashboard in-process.
//!
//! Counting lines and zones are not in the record: the dashboard draws them from
//! the camera's spec (the registry), as they are at the time of drawing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geometry::{BBox, Letterbox};

/// The first bytes of a message of `streetscope.camera-snapshots` (and its
/// layout's version).
pub const MESSAGE_MAGIC: &[u8; 4] = b"SSN1";
/// The largest [`SnapshotMeta`] a message may carry, in bytes of JSON (3,000
/// detections of about 120 bytes fit; a length beyond it is refused unread).
pub const MAX_META_BYTES: usize = 1 << 20;

/// A snapshot as one message value: [`MESSAGE_MAGIC`], the length of the
/// meta's JSON (4 bytes, big-endian), the JSON, then the JPEG.
pub fn encode_message(meta: &SnapshotMeta, jpeg: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).expect("a SnapshotMeta serialises");
    let mut out = Vec::with_capacity(8 + json.len() + jpeg.len());
    out.extend_from_slice(MESSAGE_MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(jpeg);
    out
}

/// Reads [`encode_message`]'s layout back: the meta and the JPEG's bytes
/// (checked to start like a JPEG). Err says what is wrong.
pub fn decode_message(value: &[u8]) -> Result<(SnapshotMeta, &[u8]), String> {
    let rest = value.strip_prefix(MESSAGE_MAGIC).ok_or("not a camera snapshot (no SSN1 magic)")?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or("camera snapshot: truncated before its length")?;
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_META_BYTES || len > rest.len() {
        return Err(format!("camera snapshot: a meta of {len} bytes in a message of {} bytes", value.len()));
    }
    let (json, jpeg) = rest.split_at(len);
    let meta: SnapshotMeta = serde_json::from_slice(json).map_err(|e| format!("camera snapshot meta: {e}"))?;
    if !jpeg.starts_with(&[0xFF, 0xD8]) {
        return Err("camera snapshot: the picture is not a JPEG".into());
    }
    Ok((meta, jpeg))
}

/// The first bytes of an overlay message ([`SnapshotOverlay`]) of
/// `streetscope.camera-snapshots`: the magic, then the overlay in JSON.
pub const OVERLAY_MAGIC: &[u8; 4] = b"SSO1";

/// What the aggregator saw in a snapshot's frame: the frame's detections in
/// their order, each with the id of the confirmed track it belongs to (None:
/// no track yet, or one not yet confirmed). Small: no picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotOverlay {
    pub schema_version: u32,
    pub camera_id: String,
    /// The frame's per-camera sequence number (the join key, with the camera).
    pub frame_seq: u64,
    /// Capture time of the frame, milliseconds since the Unix epoch.
    pub capture_time_ms: i64,
    pub objects: Vec<SnapshotObject>,
}

impl SnapshotOverlay {
    /// The overlay of `fd`: `tracks[i]` is the track of `fd.detections[i]`
    /// (a shorter `tracks` leaves the rest without one).
    pub fn of_detections(fd: &crate::FrameDetections, tracks: &[Option<u64>]) -> Self {
        let objects = fd
            .detections
            .iter()
            .enumerate()
            .map(|(i, d)| SnapshotObject { track_id: tracks.get(i).copied().flatten(), ..SnapshotObject::detected(d) })
            .collect();
        Self {
            schema_version: crate::records::SCHEMA_VERSION,
            camera_id: fd.camera_id.to_string(),
            frame_seq: fd.seq,
            capture_time_ms: fd.capture_time_ms,
            objects,
        }
    }

    /// The track ids it shows, in box order.
    pub fn track_ids(&self) -> Vec<u64> {
        self.objects.iter().filter_map(|o| o.track_id).collect()
    }
}

/// [`OVERLAY_MAGIC`] then the overlay's JSON.
pub fn encode_overlay(overlay: &SnapshotOverlay) -> Vec<u8> {
    let mut out = OVERLAY_MAGIC.to_vec();
    serde_json::to_writer(&mut out, overlay).expect("a SnapshotOverlay serialises");
    out
}

/// A message of `streetscope.camera-snapshots`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotMessage<'a> {
    /// A detector's: the picture and its detections.
    Picture(SnapshotMeta, &'a [u8]),
    /// The aggregator's: the track ids of a picture's boxes.
    Overlay(SnapshotOverlay),
}

/// Reads either kind of message of `streetscope.camera-snapshots` (by its
/// magic). Err says what is wrong.
pub fn decode_any(value: &[u8]) -> Result<SnapshotMessage<'_>, String> {
    match value.strip_prefix(OVERLAY_MAGIC) {
        Some(json) => {
            if json.len() > MAX_META_BYTES {
                return Err(format!("snapshot overlay: {} bytes, at most {MAX_META_BYTES}", json.len()));
            }
            serde_json::from_slice(json).map(SnapshotMessage::Overlay).map_err(|e| format!("snapshot overlay: {e}"))
        }
        None => decode_message(value).map(|(m, jpeg)| SnapshotMessage::Picture(m, jpeg)),
    }
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
    /// snapshot: `run --ui` picks its snapshot frames by this rule on the
    /// sequence number. (Detector pods pick theirs by capture time and mark
    /// them; the aggregator's track-id overlay follows the mark, so neither
    /// side relies on the other's rule.) A frame dropped on the way costs one
    /// snapshot; the next comes `interval_s` later.
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
    /// The confirmed track's id, when known (the aggregator's overlay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

impl SnapshotMeta {
    /// The snapshot of `frame`, showing `objects`.
    pub fn of_frame(frame: &crate::Frame, objects: Vec<SnapshotObject>) -> Self {
        Self {
            schema_version: crate::records::SCHEMA_VERSION,
            camera_id: frame.camera_id.to_string(),
            intersection_id: frame.intersection_id.to_string(),
            frame_seq: frame.seq,
            capture_time_ms: frame.capture_time_ms,
            width: frame.letterbox.src_w,
            height: frame.letterbox.src_h,
            letterbox: Some(frame.letterbox),
            objects,
        }
    }
}

impl SnapshotObject {
    /// A detection as a snapshot shows it: no track id (the detector knows none).
    pub fn detected(d: &crate::Detection) -> Self {
        Self { bbox: d.bbox, class_name: d.class_name.to_string(), score: d.score, track_id: None }
    }
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

    #[test]
    fn a_message_holds_the_meta_and_the_jpeg() {
        let meta = SnapshotMeta {
            schema_version: 1,
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            frame_seq: 50,
            capture_time_ms: 1_000,
            width: 1280,
            height: 720,
            letterbox: Some(Letterbox::fit(1280, 720, 640, 640)),
            objects: vec![SnapshotObject {
                bbox: BBox::new(1.0, 2.0, 30.0, 40.0),
                class_name: "bus".into(),
                score: 0.5,
                track_id: None,
            }],
        };
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3];
        let v = encode_message(&meta, &jpeg);
        let (back, pic) = decode_message(&v).unwrap();
        assert_eq!((back, pic), (meta, &jpeg[..]));
        // Anything else is refused with a reason, without reading past the value.
        assert!(decode_message(b"garbage").unwrap_err().contains("magic"));
        assert!(decode_message(b"SSN1\xff\xff\xff\xff{}").unwrap_err().contains("bytes"));
        assert!(decode_message(&v[..v.len() - jpeg.len()]).unwrap_err().contains("not a JPEG"));
        let mut bad = v.clone();
        bad[8] = b'[';
        assert!(decode_message(&bad).unwrap_err().contains("meta"));
    }

    #[test]
    fn an_overlay_gives_each_box_its_track() {
        let d = |x: f32| crate::Detection {
            class_id: 2,
            class_name: "car".into(),
            score: 0.9,
            bbox: BBox::new(x, 10.0, x + 50.0, 60.0),
        };
        let fd = crate::FrameDetections {
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            seq: 50,
            pts_ns: 0,
            capture_time_ms: 5_000,
            width: 640,
            height: 360,
            detections: vec![d(0.0), d(100.0), d(200.0)],
        };
        let o = SnapshotOverlay::of_detections(&fd, &[Some(4), None]);
        assert_eq!(o.objects.iter().map(|o| o.track_id).collect::<Vec<_>>(), [Some(4), None, None]);
        assert_eq!((o.frame_seq, o.track_ids()), (50, vec![4]));
        assert_eq!(o.objects[1].bbox, fd.detections[1].bbox);
        let v = encode_overlay(&o);
        assert_eq!(decode_any(&v).unwrap(), SnapshotMessage::Overlay(o));
        // The picture messages still decode through it; garbage does not.
        let jpeg = [0xFF, 0xD8, 0xFF, 0xD9];
        let meta = SnapshotMeta::of_frame(
            &crate::Frame {
                camera_id: "cam".into(),
                intersection_id: "x".into(),
                seq: 50,
                pts_ns: 0,
                capture_time_ms: 5_000,
                clock: crate::CaptureClock::FileStart,
                letterbox: Letterbox::fit(640, 360, 64, 64),
                encoding: crate::FrameEncoding::Jpeg,
                payload: jpeg.to_vec().into(),
            },
            vec![],
        );
        let m = encode_message(&meta, &jpeg);
        assert_eq!(decode_any(&m).unwrap(), SnapshotMessage::Picture(meta, &jpeg[..]));
        assert!(decode_any(b"SSO1{").unwrap_err().contains("overlay"));
        assert!(decode_any(b"SSO2{}").unwrap_err().contains("magic"));
    }
}
