//! Cameras added, updated and removed while the aggregator runs: the other
//! cameras' tracks, counts and windows are not disturbed.

use std::sync::Arc;

use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::{BBox, CountingLine, Detection, FrameDetections};

const W: u32 = 1000;
const H: u32 = 500;

fn camera(id: &str, intersection: &str, line_x: f64) -> CameraConfig {
    let json = serde_json::json!({"id": id, "intersection": intersection, "source": format!("rtsp://h/{id}"), "sample_fps": 10});
    let mut c: CameraConfig = serde_json::from_value(json).unwrap();
    c.lines = vec![CountingLine::new("gate", [line_x, 1.0], [line_x, 0.0])];
    c
}

/// Frame `seq` of a camera on which one bus drives from left to right across the
/// whole picture in 40 frames, starting at frame `start`.
fn frame(cam: &str, intersection: &str, seq: u64, start: u64) -> FrameDetections {
    let t = seq.saturating_sub(start) as f32;
    let x = 20.0 + t * 24.0;
    let detections = if seq >= start && x < 900.0 {
        vec![Detection {
            class_id: 1,
            class_name: Arc::from("bus"),
            score: 0.9,
            bbox: BBox::new(x, 200.0, x + 80.0, 300.0),
        }]
    } else {
        Vec::new()
    };
    FrameDetections {
        camera_id: Arc::from(cam),
        intersection_id: Arc::from(intersection),
        seq,
        pts_ns: seq * 100_000_000,
        capture_time_ms: 1_700_000_000_000 + seq as i64 * 100,
        width: W,
        height: H,
        detections,
    }
}

fn count_of(agg: &Aggregator, cam: &str) -> u64 {
    agg.counts().iter().filter(|r| r.camera_id == cam).map(|r| r.count).sum()
}

#[test]
fn cameras_join_change_lines_and_leave_without_disturbing_the_others() {
    let analytics = AnalyticsConfig { window_lengths_s: vec![1], allowed_lateness_s: 0.0, ..Default::default() };
    let mut agg = Aggregator::with_analytics(&[camera("a", "x-1", 0.5)], &TrackerConfig::default(), &analytics);
    let mut windows = Vec::new();
    // Camera a alone for 20 frames; then b joins the same intersection and c a new one.
    for seq in 0..20 {
        agg.process(&frame("a", "x-1", seq, 0)).unwrap();
    }
    assert!(agg.process(&frame("b", "x-1", 0, 0)).is_err(), "b is unknown until added");
    agg.upsert_camera(&camera("b", "x-1", 0.5));
    agg.upsert_camera(&camera("c", "x-2", 0.5));
    assert_eq!(agg.camera_ids(), ["a", "b", "c"]);
    for seq in 20..60 {
        agg.process(&frame("a", "x-1", seq, 0)).unwrap();
        agg.process(&frame("b", "x-1", seq - 20, 0)).unwrap();
        agg.process(&frame("c", "x-2", seq - 20, 0)).unwrap();
        windows.extend(agg.take_windows());
    }
    assert_eq!(count_of(&agg, "a"), 1, "{:?}", agg.counts());
    assert_eq!(count_of(&agg, "b"), 1, "{:?}", agg.counts());
    assert_eq!(count_of(&agg, "c"), 1, "{:?}", agg.counts());
    // Windows of x-1 closed while b was in it, and list both cameras.
    let x1: Vec<_> = windows.iter().filter(|w| w.intersection_id == "x-1").collect();
    assert!(!x1.is_empty());
    assert!(x1.last().unwrap().cameras.iter().any(|q| q.camera_id == "b"));

    // b's line moves to the right edge: its next bus is counted on the new line only;
    // a is untouched.
    agg.upsert_camera(&camera("b", "x-1", 0.9));
    for seq in 60..110 {
        agg.process(&frame("a", "x-1", seq, 60)).unwrap();
        agg.process(&frame("b", "x-1", seq - 20, 60)).unwrap();
    }
    assert_eq!(count_of(&agg, "a"), 2);
    assert_eq!(count_of(&agg, "b"), 1, "x of the second bus stays below 0.9 W: {:?}", agg.counts());

    // b leaves: a's windows close without it, a goes on, b's counts stay.
    agg.remove_camera("b");
    assert_eq!(agg.camera_ids(), ["a", "c"]);
    assert!(agg.process(&frame("b", "x-1", 100, 0)).is_err());
    windows.clear();
    for seq in 110..160 {
        agg.process(&frame("a", "x-1", seq, 110)).unwrap();
        windows.extend(agg.take_windows());
    }
    let x1: Vec<_> = windows.iter().filter(|w| w.intersection_id == "x-1").collect();
    assert!(x1.len() >= 3, "x-1's windows close on a's watermark alone: {}", x1.len());
    assert!(x1.last().unwrap().cameras.iter().all(|q| q.camera_id == "a"));
    assert_eq!(count_of(&agg, "a"), 3);
    assert_eq!(count_of(&agg, "b"), 1);
    assert_eq!(agg.remove_camera("nobody"), []);
}
