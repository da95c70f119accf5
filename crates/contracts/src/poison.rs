//! Records that decode but cannot be true: the semantic checks a stage runs on
//! what it reads from a topic before it acts on it. A record that fails goes to
//! the dead-letter topic with the [`PoisonReason`] (its [`PoisonReason::label`]
//! for the metric, its text for the record), and the stage goes on.
//!
//! These checks need nothing but the record (and, for
//! [`FrameDetections::check_clock`], the time now). Checks that need the
//! stage's state (a camera that is not registered) belong to the stage.

use crate::config::valid_id;
use crate::detection::FrameDetections;
use crate::frame::{Frame, FrameEncoding};

/// The largest image side a record may claim, in pixels (16K video is 15360).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// The most detections one frame may carry (the detector keeps at most 300 by
/// default; a model could be configured for more, not for ten times more).
pub const MAX_DETECTIONS_PER_FRAME: usize = 3_000;
/// The longest class name, in bytes.
pub const MAX_CLASS_NAME_BYTES: usize = 64;

/// Why a decoded record cannot be true.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoisonReason {
    #[error("{field}: {value:?} is not an id (1-64 letters, digits, '-', '_', '.')")]
    BadId { field: &'static str, value: String },
    #[error("image size {width}x{height}: each side must be in [1, {MAX_IMAGE_SIDE}]")]
    BadImageSize { width: u32, height: u32 },
    #[error("{count} detections in one frame (at most {MAX_DETECTIONS_PER_FRAME})")]
    TooManyDetections { count: usize },
    #[error("detection {index}: box {bbox:?} is not inside the {width}x{height} frame with x1 <= x2, y1 <= y2")]
    BoxOutsideFrame { index: usize, bbox: [f32; 4], width: u32, height: u32 },
    #[error("detection {index}: score {score} is not in [0, 1]")]
    BadScore { index: usize, score: f32 },
    #[error("detection {index}: class name {name:?} is empty or longer than {MAX_CLASS_NAME_BYTES} bytes")]
    BadClassName { index: usize, name: String },
    #[error("capture time {capture_time_ms} ms is before the Unix epoch")]
    CaptureTimeBeforeEpoch { capture_time_ms: i64 },
    #[error("a JPEG payload that does not start with the JPEG start-of-image marker")]
    NotJpeg,
    #[error("{0}")]
    SequenceFromTheFuture(String),
    #[error("{0}")]
    CaptureTimeOffClock(String),
}

impl PoisonReason {
    /// A short, fixed label: the `reason` of the dead-letter metric.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadId { .. } => "bad_id",
            Self::BadImageSize { .. } => "bad_image_size",
            Self::TooManyDetections { .. } => "too_many_detections",
            Self::BoxOutsideFrame { .. } => "box_outside_frame",
            Self::BadScore { .. } => "bad_score",
            Self::BadClassName { .. } => "bad_class_name",
            Self::CaptureTimeBeforeEpoch { .. } => "capture_time_before_epoch",
            Self::NotJpeg => "not_jpeg",
            Self::SequenceFromTheFuture(_) => "sequence_from_the_future",
            Self::CaptureTimeOffClock(_) => "capture_time_off_clock",
        }
    }
}

fn check_ids(camera_id: &str, intersection_id: &str) -> Result<(), PoisonReason> {
    for (field, value) in [("camera_id", camera_id), ("intersection_id", intersection_id)] {
        if !valid_id(value) {
            // Bounded: the value goes into a log line and a dead-letter record.
            let value: String = value.chars().take(80).collect();
            return Err(PoisonReason::BadId { field, value });
        }
    }
    Ok(())
}

fn check_size(width: u32, height: u32) -> Result<(), PoisonReason> {
    if !(1..=MAX_IMAGE_SIDE).contains(&width) || !(1..=MAX_IMAGE_SIDE).contains(&height) {
        return Err(PoisonReason::BadImageSize { width, height });
    }
    Ok(())
}

impl FrameDetections {
    /// Whether these detections can be true: valid ids, a plausible image
    /// size, every box finite and inside the frame (the detector clips boxes to
    /// the source image), scores in [0, 1], class names present.
    pub fn check(&self) -> Result<(), PoisonReason> {
        check_ids(&self.camera_id, &self.intersection_id)?;
        check_size(self.width, self.height)?;
        if self.capture_time_ms < 0 {
            return Err(PoisonReason::CaptureTimeBeforeEpoch { capture_time_ms: self.capture_time_ms });
        }
        if self.detections.len() > MAX_DETECTIONS_PER_FRAME {
            return Err(PoisonReason::TooManyDetections { count: self.detections.len() });
        }
        let (w, h) = (self.width as f32, self.height as f32);
        for (index, d) in self.detections.iter().enumerate() {
            let b = &d.bbox;
            // Written so that NaN fails every comparison and so the check.
            let inside = 0.0 <= b.x1 && b.x1 <= b.x2 && b.x2 <= w && 0.0 <= b.y1 && b.y1 <= b.y2 && b.y2 <= h;
            if !inside {
                return Err(PoisonReason::BoxOutsideFrame {
                    index,
                    bbox: [b.x1, b.y1, b.x2, b.y2],
                    width: self.width,
                    height: self.height,
                });
            }
            if !(0.0..=1.0).contains(&d.score) {
                return Err(PoisonReason::BadScore { index, score: d.score });
            }
            if d.class_name.is_empty() || d.class_name.len() > MAX_CLASS_NAME_BYTES {
                let name: String = d.class_name.chars().take(80).collect();
                return Err(PoisonReason::BadClassName { index, name });
            }
        }
        Ok(())
    }
}

impl FrameDetections {
    /// Whether the frame's number can have been given by now
    /// ([`identity::from_the_future`](crate::identity::from_the_future)): one
    /// number from the future would make the aggregator drop the camera's
    /// frames as duplicates until its numbers caught up. And whether its
    /// capture time can be true
    /// ([`identity::capture_time_off_clock`](crate::identity::capture_time_off_clock)):
    /// one dated decades back or far ahead would flood or close windows.
    pub fn check_clock(&self, now_unix_ms: i64) -> Result<(), PoisonReason> {
        if let Some(why) = crate::identity::from_the_future(self.seq, (now_unix_ms.max(0) / 1000) as u64) {
            return Err(PoisonReason::SequenceFromTheFuture(why));
        }
        match crate::identity::capture_time_off_clock(self.seq, self.capture_time_ms, now_unix_ms) {
            None => Ok(()),
            Some(why) => Err(PoisonReason::CaptureTimeOffClock(why)),
        }
    }
}

impl Frame {
    /// Whether a decoded frame envelope can be true, beyond its layout (which
    /// [`Frame::from_envelope`] checks): valid ids, plausible sizes, a capture
    /// time after the epoch, a JPEG payload that starts like a JPEG.
    pub fn check(&self) -> Result<(), PoisonReason> {
        check_ids(&self.camera_id, &self.intersection_id)?;
        let l = &self.letterbox;
        check_size(l.src_w, l.src_h)?;
        check_size(l.dst_w, l.dst_h)?;
        if self.capture_time_ms < 0 {
            return Err(PoisonReason::CaptureTimeBeforeEpoch { capture_time_ms: self.capture_time_ms });
        }
        if self.encoding == FrameEncoding::Jpeg && !self.payload.starts_with(&[0xff, 0xd8]) {
            return Err(PoisonReason::NotJpeg);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::detection::Detection;
    use crate::frame::CaptureClock;
    use crate::geometry::{BBox, Letterbox};

    fn detections(bbox: BBox, score: f32) -> FrameDetections {
        FrameDetections {
            camera_id: Arc::from("cam-1"),
            intersection_id: Arc::from("x-1"),
            seq: 7,
            pts_ns: 0,
            capture_time_ms: 1_767_225_600_000,
            width: 1280,
            height: 720,
            detections: vec![Detection { class_id: 2, class_name: Arc::from("car"), score, bbox }],
        }
    }

    #[test]
    fn plausible_detections_pass_and_impossible_ones_are_named() {
        assert_eq!(detections(BBox::new(0.0, 0.0, 1280.0, 720.0), 1.0).check(), Ok(()));
        let cases = [
            (detections(BBox::new(10.0, 10.0, 1281.0, 20.0), 0.5), "box_outside_frame"),
            (detections(BBox::new(-1.0, 10.0, 20.0, 20.0), 0.5), "box_outside_frame"),
            (detections(BBox::new(30.0, 10.0, 20.0, 20.0), 0.5), "box_outside_frame"),
            (detections(BBox::new(f32::NAN, 10.0, 20.0, 20.0), 0.5), "box_outside_frame"),
            (detections(BBox::new(10.0, 10.0, f32::INFINITY, 20.0), 0.5), "box_outside_frame"),
            (detections(BBox::new(10.0, 10.0, 20.0, 20.0), f32::NAN), "bad_score"),
            (detections(BBox::new(10.0, 10.0, 20.0, 20.0), 1.5), "bad_score"),
        ];
        for (d, label) in cases {
            let e = d.check().unwrap_err();
            assert_eq!(e.label(), label, "{e}");
        }
        let mut d = detections(BBox::new(10.0, 10.0, 20.0, 20.0), 0.5);
        d.camera_id = Arc::from("cam 1; DROP");
        assert_eq!(
            d.check().unwrap_err().to_string(),
            "camera_id: \"cam 1; DROP\" is not an id (1-64 letters, digits, '-', '_', '.')"
        );
        d.camera_id = Arc::from("cam-1");
        d.width = 0;
        assert_eq!(d.check().unwrap_err().label(), "bad_image_size");
        d.width = 1280;
        d.detections[0].class_name = Arc::from("");
        assert_eq!(d.check().unwrap_err().label(), "bad_class_name");
        d.detections = vec![d.detections[0].clone(); MAX_DETECTIONS_PER_FRAME + 1];
        assert_eq!(d.check().unwrap_err().label(), "too_many_detections");
    }

    #[test]
    fn impossible_frames_are_named() {
        let mut f = Frame {
            camera_id: Arc::from("cam-1"),
            intersection_id: Arc::from("x-1"),
            seq: 0,
            pts_ns: 0,
            capture_time_ms: 1_767_225_600_000,
            clock: CaptureClock::Arrival,
            letterbox: Letterbox::fit(1920, 1080, 640, 640),
            encoding: FrameEncoding::Jpeg,
            payload: Arc::from(&[0xff, 0xd8, 0xff, 0xe0][..]),
        };
        assert_eq!(f.check(), Ok(()));
        f.payload = Arc::from(&b"GIF89a"[..]);
        assert_eq!(f.check().unwrap_err().label(), "not_jpeg");
        f.payload = Arc::from(&[0xff, 0xd8][..]);
        f.capture_time_ms = -5;
        assert_eq!(f.check().unwrap_err().label(), "capture_time_before_epoch");
        f.capture_time_ms = 0;
        f.letterbox.src_w = 100_000;
        assert_eq!(f.check().unwrap_err().label(), "bad_image_size");
    }
}
