//! The latest snapshot of each camera, and its drawing: the frame with its
//! boxes (track ids where known), counting lines and zones.
//!
//! Track ids come in a second message, the aggregator's [`SnapshotOverlay`],
//! joined to its picture by (camera, frame sequence number) in whichever order
//! the two come ([`SnapshotStore::overlay`]).
//!
//! A picture is kept as it came (the frame's RGB buffer or JPEG, shared, not
//! copied) and drawn only when a browser asks for it, once per snapshot: a
//! dashboard nobody looks at costs nothing but the kept buffers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use streetscope_contracts::config::CameraConfig;
use streetscope_contracts::records::SCHEMA_VERSION;
use streetscope_contracts::snapshots::{SnapshotMeta, SnapshotObject, SnapshotOverlay, SnapshotPolicy};
use streetscope_contracts::{Frame, FrameDetections, FrameEncoding, Letterbox};

use crate::draw;

/// A snapshot's picture, as it came.
#[derive(Debug, Clone)]
pub enum Picture {
    /// Packed RGB, `width` x `height`.
    Rgb {
        data: Arc<[u8]>,
        width: u32,
        height: u32,
    },
    Jpeg(Arc<[u8]>),
}

/// A snapshot: the picture and what was seen in it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub picture: Picture,
}

/// Why a snapshot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("decoding the snapshot's JPEG: {0}")]
    Decode(#[from] image::ImageError),
    #[error("the snapshot's picture is {got} bytes, {want} expected for {width}x{height} RGB")]
    Size { got: usize, want: usize, width: u32, height: u32 },
}

/// The latest snapshot per camera, with the pictures of `streetscope run`
/// waiting for their detections (joined by camera and frame sequence number).
#[derive(Debug, Default)]
pub struct SnapshotStore {
    pub policy: SnapshotPolicy,
    /// Pictures of due frames, waiting for what was seen in them.
    pending: HashMap<String, Snapshot>,
    latest: HashMap<String, Snapshot>,
    /// The latest drawing per camera: (frame seq, JPEG).
    drawn: HashMap<String, (u64, Arc<Vec<u8>>)>,
    /// Overlays that came before their picture, the newest few per camera.
    early: HashMap<String, VecDeque<SnapshotOverlay>>,
}

/// Overlays kept per camera waiting for their picture: pictures come every 5 s,
/// so a handful covers any order the two messages arrive in.
const EARLY_OVERLAYS: usize = 4;

impl SnapshotStore {
    pub fn new(policy: SnapshotPolicy) -> Self {
        Self { policy, ..Self::default() }
    }

    /// A frame of `streetscope run`: kept if it is due (by the policy, for a
    /// camera sampled at `sample_fps`), until its detections come. Returns
    /// whether it was kept. Cheap: the buffer is shared, not copied.
    pub fn offer_frame(&mut self, f: &Frame, sample_fps: f64) -> bool {
        if !self.policy.due(f.seq, sample_fps) {
            return false;
        }
        let picture = match f.encoding {
            FrameEncoding::Rgb8 => {
                Picture::Rgb { data: f.payload.clone(), width: f.letterbox.dst_w, height: f.letterbox.dst_h }
            }
            FrameEncoding::Jpeg => Picture::Jpeg(f.payload.clone()),
        };
        let meta = SnapshotMeta::of_frame(f, Vec::new());
        self.pending.insert(meta.camera_id.clone(), Snapshot { meta, picture });
        true
    }

    /// The detections of a frame of `streetscope run`: completes the pending
    /// snapshot of the same frame (boxes without track ids). Returns whether a
    /// snapshot became the camera's latest.
    pub fn offer_detections(&mut self, fd: &FrameDetections) -> bool {
        // Most frames are not due: nothing to build for them.
        if self.pending.get(fd.camera_id.as_ref()).is_none_or(|p| p.meta.frame_seq != fd.seq) {
            return false;
        }
        let objects = fd.detections.iter().map(SnapshotObject::detected).collect();
        self.complete_pending(SnapshotMeta {
            schema_version: SCHEMA_VERSION,
            camera_id: fd.camera_id.to_string(),
            intersection_id: fd.intersection_id.to_string(),
            frame_seq: fd.seq,
            capture_time_ms: fd.capture_time_ms,
            width: fd.width,
            height: fd.height,
            letterbox: None,
            objects,
        })
    }

    /// A whole snapshot from `streetscope.camera-snapshots` (picture and
    /// objects in one message): the camera's latest unless it is older than
    /// the one shown (by capture time; a replayed message changes nothing).
    /// Returns whether it became the latest.
    pub fn snapshot(&mut self, meta: SnapshotMeta, jpeg: Arc<[u8]>) -> bool {
        if self.latest.get(&meta.camera_id).is_some_and(|l| l.meta.capture_time_ms > meta.capture_time_ms) {
            return false;
        }
        let camera = meta.camera_id.clone();
        let mut snap = Snapshot { meta, picture: Picture::Jpeg(jpeg) };
        if let Some(early) = self.early.get_mut(&camera) {
            if let Some(i) = early.iter().position(|o| o.frame_seq == snap.meta.frame_seq) {
                let o = early.remove(i).expect("found above");
                label(&mut snap.meta, o);
            }
        }
        self.latest.insert(camera, snap);
        true
    }

    /// The aggregator's overlay of a snapshot's frame: the track id of each
    /// box. Labels the camera's latest snapshot if it is that frame (returns
    /// true: the drawing changes); otherwise kept a while for a picture still
    /// on its way (a few per camera), or dropped if older than the one shown.
    pub fn overlay(&mut self, o: SnapshotOverlay) -> bool {
        if let Some(latest) = self.latest.get_mut(&o.camera_id) {
            if latest.meta.frame_seq == o.frame_seq {
                let camera = o.camera_id.clone();
                label(&mut latest.meta, o);
                self.drawn.remove(&camera);
                return true;
            }
            if latest.meta.capture_time_ms > o.capture_time_ms {
                return false;
            }
        }
        let early = self.early.entry(o.camera_id.clone()).or_default();
        if early.len() == EARLY_OVERLAYS {
            early.pop_front();
        }
        early.push_back(o);
        false
    }

    /// What was seen in a due frame of `streetscope run`: completes the
    /// pending picture of the same frame.
    fn complete_pending(&mut self, meta: SnapshotMeta) -> bool {
        let camera = meta.camera_id.clone();
        match self.pending.get(&camera) {
            Some(p) if p.meta.frame_seq == meta.frame_seq => {
                let mut snap = self.pending.remove(&camera).expect("looked up above");
                snap.meta.objects = meta.objects;
                self.latest.insert(camera, snap);
                true
            }
            _ => false,
        }
    }

    /// The latest complete snapshot of a camera.
    pub fn latest(&self, camera: &str) -> Option<&Snapshot> {
        self.latest.get(camera)
    }

    /// The latest snapshot of `camera` drawn as JPEG, with `spec`'s lines and
    /// zones (drawn once per snapshot; later calls return the same bytes).
    pub fn drawn(&mut self, camera: &str, spec: Option<&CameraConfig>) -> Option<Result<Drawn, SnapshotError>> {
        let snap = self.latest.get(camera)?;
        if let Some((seq, jpeg)) = self.drawn.get(camera) {
            if *seq == snap.meta.frame_seq {
                return Some(Ok((*seq, jpeg.clone())));
            }
        }
        let seq = snap.meta.frame_seq;
        Some(annotate(snap, spec).and_then(|img| encode(&img)).map(|jpeg| {
            let jpeg = Arc::new(jpeg);
            self.drawn.insert(camera.to_owned(), (seq, jpeg.clone()));
            (seq, jpeg)
        }))
    }
}

/// Gives `meta`'s boxes the track ids of `o` (the same frame): box by box when
/// both list the same boxes (as the detector and the aggregator see the same
/// detections), else the overlay's boxes replace them.
fn label(meta: &mut SnapshotMeta, o: SnapshotOverlay) {
    let close = |a: &SnapshotObject, b: &SnapshotObject| {
        let (a, b) = (a.bbox, b.bbox);
        [(a.x1, b.x1), (a.y1, b.y1), (a.x2, b.x2), (a.y2, b.y2)].iter().all(|(p, q)| (p - q).abs() < 0.5)
    };
    if meta.objects.len() == o.objects.len() && meta.objects.iter().zip(&o.objects).all(|(a, b)| close(a, b)) {
        for (m, v) in meta.objects.iter_mut().zip(o.objects) {
            m.track_id = v.track_id;
        }
    } else {
        meta.objects = o.objects;
    }
}

/// A drawn snapshot: its frame's sequence number and the JPEG.
pub type Drawn = (u64, Arc<Vec<u8>>);

/// Colour of counting lines.
pub const LINE_COLOUR: Rgb<u8> = Rgb([255, 214, 0]);
/// Colour of zones.
pub const ZONE_COLOUR: Rgb<u8> = Rgb([0, 200, 255]);

/// Draws `snap`: the picture (cut out of its letterbox, if it has one), boxes
/// with their class and track id, and the camera's counting lines and zones.
pub fn annotate(snap: &Snapshot, spec: Option<&CameraConfig>) -> Result<RgbImage, SnapshotError> {
    let full = match &snap.picture {
        Picture::Rgb { data, width, height } => {
            let want = *width as usize * *height as usize * 3;
            if data.len() != want {
                return Err(SnapshotError::Size { got: data.len(), want, width: *width, height: *height });
            }
            RgbImage::from_raw(*width, *height, data.to_vec()).expect("size checked")
        }
        Picture::Jpeg(bytes) => image::load_from_memory_with_format(bytes, image::ImageFormat::Jpeg)?.to_rgb8(),
    };
    // No letterbox said, or a JPEG of the picture alone (ingest's built-in
    // templates): nothing to cut.
    let lb = snap.meta.letterbox.filter(|lb| (full.width(), full.height()) != (lb.scaled_w, lb.scaled_h)).unwrap_or(
        Letterbox {
            src_w: snap.meta.width,
            src_h: snap.meta.height,
            dst_w: full.width(),
            dst_h: full.height(),
            scaled_w: full.width(),
            scaled_h: full.height(),
            pad_x: 0,
            pad_y: 0,
        },
    );
    let (cw, ch) = (
        lb.scaled_w.min(full.width().saturating_sub(lb.pad_x)),
        lb.scaled_h.min(full.height().saturating_sub(lb.pad_y)),
    );
    let mut img = image::imageops::crop_imm(&full, lb.pad_x, lb.pad_y, cw.max(1), ch.max(1)).to_image();
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let thick = (img.width() / 320).max(2) as i64;
    let scale = (img.width() / 400).max(1) as i64;
    if let Some(spec) = spec {
        for z in &spec.zones {
            let pts: Vec<(f64, f64)> = z.polygon.iter().map(|p| (p[0] * w, p[1] * h)).collect();
            draw::polygon(&mut img, &pts, thick, ZONE_COLOUR);
            if let Some(&(x, y)) = pts.first() {
                draw::label(&mut img, x as i64, y as i64 + 10 * scale + 2, &z.name, scale, ZONE_COLOUR, Rgb([0, 0, 0]));
            }
        }
        for l in &spec.lines {
            let (a, b) = ((l.start[0] * w, l.start[1] * h), (l.end[0] * w, l.end[1] * h));
            draw::line(&mut img, a, b, thick + 1, LINE_COLOUR);
            let top = if a.1 < b.1 { a } else { b };
            draw::label(
                &mut img,
                top.0 as i64 + 4,
                top.1 as i64 + 10 * scale + 2,
                &l.name,
                scale,
                LINE_COLOUR,
                Rgb([0, 0, 0]),
            );
        }
    }
    let (sx, sy) = (w / f64::from(lb.src_w.max(1)), h / f64::from(lb.src_h.max(1)));
    for o in &snap.meta.objects {
        let c = draw::class_colour(&o.class_name);
        let (x1, y1, x2, y2) = (
            f64::from(o.bbox.x1) * sx,
            f64::from(o.bbox.y1) * sy,
            f64::from(o.bbox.x2) * sx,
            f64::from(o.bbox.y2) * sy,
        );
        draw::rect(&mut img, x1 as i64, y1 as i64, x2 as i64, y2 as i64, thick, c);
        let text = match o.track_id {
            Some(id) => format!("#{id} {} {:.2}", o.class_name, o.score),
            None => format!("{} {:.2}", o.class_name, o.score),
        };
        draw::label(&mut img, x1 as i64, y1 as i64, &text, scale, c, Rgb([255, 255, 255]));
    }
    Ok(img)
}

/// JPEG at quality 80.
pub fn encode(img: &RgbImage) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::with_capacity(64 * 1024);
    JpegEncoder::new_with_quality(&mut out, 80).encode_image(img)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use streetscope_contracts::{BBox, CaptureClock, CountingLine, Detection};

    fn frame(seq: u64) -> Frame {
        // A 1280x720 source letterboxed into 64x64: 64x36 picture, 14 rows of padding on top.
        let lb = Letterbox::fit(1280, 720, 64, 64);
        let mut rgb = vec![0u8; 64 * 64 * 3];
        for px in rgb.chunks_mut(3).skip(64 * lb.pad_y as usize).take(64 * lb.scaled_h as usize) {
            px.copy_from_slice(&[40, 40, 40]);
        }
        Frame {
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            seq,
            pts_ns: seq * 100_000_000,
            capture_time_ms: 1_000 + seq as i64 * 100,
            clock: CaptureClock::FileStart,
            letterbox: lb,
            encoding: FrameEncoding::Rgb8,
            payload: rgb.into(),
        }
    }

    fn dets(seq: u64) -> FrameDetections {
        FrameDetections {
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            seq,
            pts_ns: 0,
            capture_time_ms: 0,
            width: 1280,
            height: 720,
            detections: vec![Detection {
                class_id: 1,
                class_name: "bus".into(),
                score: 0.9,
                bbox: BBox::new(100.0, 100.0, 600.0, 500.0),
            }],
        }
    }

    fn spec() -> CameraConfig {
        let mut c: CameraConfig =
            toml::from_str("id = \"cam\"\nintersection = \"x\"\nsource = \"a.mp4\"\nsample_fps = 10\n").unwrap();
        c.lines = vec![CountingLine::new("stop", [0.5, 0.95], [0.5, 0.05])];
        c
    }

    #[test]
    fn due_frames_wait_for_their_detections() {
        let mut s = SnapshotStore::new(SnapshotPolicy { interval_s: 1.0 });
        assert!(!s.offer_frame(&frame(3), 10.0), "not due");
        assert!(s.offer_frame(&frame(10), 10.0));
        assert!(!s.offer_detections(&dets(9)), "another frame's detections");
        assert!(s.latest("cam").is_none());
        assert!(s.offer_detections(&dets(10)));
        let snap = s.latest("cam").unwrap();
        assert_eq!((snap.meta.frame_seq, snap.meta.objects.len()), (10, 1));
    }

    #[test]
    fn the_drawing_is_cut_from_the_letterbox_and_shows_lines_and_boxes() {
        let mut s = SnapshotStore::new(SnapshotPolicy { interval_s: 1.0 });
        s.offer_frame(&frame(0), 10.0);
        s.offer_detections(&dets(0));
        let img = annotate(s.latest("cam").unwrap(), Some(&spec())).unwrap();
        assert_eq!((img.width(), img.height()), (64, 36));
        // The line at x = 0.5 in the line's colour; the grey picture elsewhere.
        assert_eq!(*img.get_pixel(32, 18), LINE_COLOUR);
        assert_eq!(*img.get_pixel(60, 30), Rgb([40, 40, 40]));
        // The bus's box (x from 100/1280*64 = 5): its left edge in the class colour.
        assert_eq!(*img.get_pixel(5, 15), draw::class_colour("bus"));
        let (seq, jpeg) = s.drawn("cam", Some(&spec())).unwrap().unwrap();
        assert_eq!(seq, 0);
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        // Drawn once per snapshot.
        let (_, again) = s.drawn("cam", Some(&spec())).unwrap().unwrap();
        assert!(Arc::ptr_eq(&jpeg, &again));
    }

    #[test]
    fn jpeg_frames_of_the_letterbox_or_of_its_picture_alone_draw_the_same() {
        let f = frame(0);
        let lb = f.letterbox;
        let whole = RgbImage::from_raw(64, 64, f.payload.to_vec()).unwrap();
        let picture = image::imageops::crop_imm(&whole, 0, lb.pad_y, lb.scaled_w, lb.scaled_h).to_image();
        let mut drawn = Vec::new();
        for img in [whole, picture] {
            let mut s = SnapshotStore::new(SnapshotPolicy { interval_s: 1.0 });
            let jpeg = Frame { encoding: FrameEncoding::Jpeg, payload: encode(&img).unwrap().into(), ..frame(0) };
            s.offer_frame(&jpeg, 10.0);
            s.offer_detections(&dets(0));
            let img = annotate(s.latest("cam").unwrap(), Some(&spec())).unwrap();
            assert_eq!((img.width(), img.height()), (64, 36));
            assert_eq!(*img.get_pixel(32, 18), LINE_COLOUR);
            drawn.push(img);
        }
        let diff = drawn[0].iter().zip(drawn[1].iter()).map(|(a, b)| u32::from(a.abs_diff(*b))).max().unwrap();
        assert!(diff <= 24, "the two drawings differ by up to {diff} (JPEG's edges only)");
    }

    fn overlay(seq: u64, ids: &[Option<u64>]) -> SnapshotOverlay {
        SnapshotOverlay::of_detections(
            &FrameDetections { seq, capture_time_ms: 1_000 + seq as i64 * 100, ..dets(seq) },
            ids,
        )
    }

    #[test]
    fn the_aggregators_overlay_labels_the_boxes_in_either_order() {
        // run --ui: picture, detections, then the aggregate stage's overlay.
        let mut s = SnapshotStore::new(SnapshotPolicy { interval_s: 1.0 });
        s.offer_frame(&frame(10), 10.0);
        s.offer_detections(&dets(10));
        let (_, unlabelled) = s.drawn("cam", None).unwrap().unwrap();
        assert!(!s.overlay(overlay(9, &[Some(3)])), "another frame's");
        assert_eq!(s.latest("cam").unwrap().meta.objects[0].track_id, None);
        assert!(s.overlay(overlay(10, &[Some(3)])));
        assert_eq!(s.latest("cam").unwrap().meta.objects[0].track_id, Some(3));
        // Drawn again, with the label: the picture differs.
        let (seq, labelled) = s.drawn("cam", None).unwrap().unwrap();
        assert_eq!(seq, 10);
        assert_ne!(unlabelled, labelled);

        // Kafka: the overlay may come first; it waits for its picture.
        let mut s = SnapshotStore::new(SnapshotPolicy::default());
        assert!(!s.overlay(overlay(50, &[Some(8)])));
        let jpeg: Arc<[u8]> = encode(&RgbImage::new(64, 36)).unwrap().into();
        let mut meta =
            SnapshotMeta::of_frame(&frame(50), dets(50).detections.iter().map(SnapshotObject::detected).collect());
        meta.capture_time_ms = 1_000 + 50 * 100;
        assert!(s.snapshot(meta.clone(), jpeg.clone()));
        assert_eq!(s.latest("cam").unwrap().meta.objects[0].track_id, Some(8));
        // An overlay of an older frame than the one shown is dropped.
        assert!(!s.overlay(overlay(40, &[Some(1)])));
        assert!(s.early.get("cam").is_none_or(|e| e.is_empty()));
        // Boxes that differ: the overlay's are drawn.
        let mut other = overlay(50, &[Some(9)]);
        other.objects[0].bbox = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert!(s.overlay(other.clone()));
        assert_eq!(s.latest("cam").unwrap().meta.objects, other.objects);
    }

    #[test]
    fn a_kafka_snapshot_is_whole_and_the_newest_wins() {
        let mut s = SnapshotStore::new(SnapshotPolicy::default());
        let meta = |seq: u64, objects: Vec<SnapshotObject>| SnapshotMeta {
            schema_version: 1,
            camera_id: "cam".into(),
            intersection_id: "x".into(),
            frame_seq: seq,
            capture_time_ms: seq as i64 * 100,
            width: 64,
            height: 36,
            letterbox: None,
            objects,
        };
        let obj = SnapshotObject {
            bbox: BBox::new(1.0, 1.0, 9.0, 9.0),
            class_name: "car".into(),
            score: 0.8,
            track_id: Some(7),
        };
        let jpeg: Arc<[u8]> = encode(&RgbImage::new(64, 36)).unwrap().into();
        assert!(s.snapshot(meta(100, vec![obj.clone()]), jpeg.clone()));
        assert_eq!(s.latest("cam").unwrap().meta.objects[0].track_id, Some(7));
        // An older one (a replay, another pod's late write) does not replace it.
        assert!(!s.snapshot(meta(50, vec![]), jpeg.clone()));
        assert_eq!(s.latest("cam").unwrap().meta.frame_seq, 100);
        assert!(s.snapshot(meta(150, vec![obj]), jpeg));
        assert_eq!(s.latest("cam").unwrap().meta.frame_seq, 150);
        let img = annotate(s.latest("cam").unwrap(), None).unwrap();
        assert_eq!((img.width(), img.height()), (64, 36));
    }
}
