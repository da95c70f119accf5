//! Frame identity through restarts of a camera's ingest (runs, see
//! `streetscope_contracts::identity`): a new run is taken, its missing time is
//! named in the window, and stragglers of the old run are dropped as duplicates.

use std::sync::Arc;

use streetscope_aggregate::{Aggregator, DeliveryStats};
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::identity::compose;
use streetscope_contracts::records::{ResultRecord, SeqGap, WindowRecord};
use streetscope_contracts::{BBox, Detection, FrameDetections};

/// 2026-01-01T00:00:00Z, a whole minute.
const EPOCH_MS: i64 = 1_767_225_600_000;
const RUN_A: u64 = 1_767_225_590;
const RUN_B: u64 = 1_767_225_641;

fn camera() -> CameraConfig {
    serde_json::from_value(serde_json::json!({
        "id": "cam", "intersection": "x", "source": "rtsp://127.0.0.1:8554/cam", "sample_fps": 5.0,
        "lines": [{"name": "v", "start": [0.5, 1.0], "end": [0.5, 0.0]}],
    }))
    .unwrap()
}

/// A car moving right 30 px a frame on a 1000x500 image from `t0_ms`, for 9 frames.
fn frame(seq: u64, capture_ms: i64, car_from_ms: i64) -> FrameDetections {
    let k = (capture_ms - car_from_ms) / 200;
    let detections = (0..=8)
        .contains(&k)
        .then(|| {
            let x = 420.0 + 30.0 * k as f32;
            Detection {
                class_id: 0,
                class_name: Arc::from("car"),
                score: 0.9,
                bbox: BBox::new(x, 200.0, x + 100.0, 300.0),
            }
        })
        .into_iter()
        .collect();
    FrameDetections {
        camera_id: Arc::from("cam"),
        intersection_id: Arc::from("x"),
        seq,
        pts_ns: 0,
        capture_time_ms: capture_ms,
        width: 1000,
        height: 500,
        detections,
    }
}

#[test]
fn a_restarted_ingest_is_a_new_run_and_its_gap_is_named() {
    let analytics = AnalyticsConfig { window_lengths_s: vec![60], allowed_lateness_s: 0.0, ..Default::default() };
    let mut agg = Aggregator::with_analytics(&[camera()], &TrackerConfig::default(), &analytics);
    let mut records: Vec<ResultRecord> = Vec::new();
    // Run A: 20 s at 5 frames/s (a car crosses at 5 s), index 7 lost on the way.
    for i in (0..100u64).filter(|&i| i != 7) {
        let ev = agg.process(&frame(compose(RUN_A, i), EPOCH_MS + i as i64 * 200, EPOCH_MS + 4_000)).unwrap();
        records.extend(agg.drain(ev));
    }
    // The pod dies; a new one starts the camera 8 s later with run B, from index 0.
    let b0 = EPOCH_MS + 20_000 + 8_000;
    for i in 0..100u64 {
        let ev = agg.process(&frame(compose(RUN_B, i), b0 + i as i64 * 200, b0 + 6_000)).unwrap();
        records.extend(agg.drain(ev));
        if i == 50 {
            // A straggler of run A delivered again (at-least-once): a duplicate.
            assert!(agg.process(&frame(compose(RUN_A, 99), EPOCH_MS + 99 * 200, 0)).unwrap().is_empty());
        }
    }
    let ev = agg.finish();
    records.extend(agg.drain(ev));

    let crossings = records.iter().filter(|r| matches!(r, ResultRecord::Crossing(_))).count();
    assert_eq!(crossings, 2, "one car in each run, none lost to the restart: {records:?}");
    let stats = agg.delivery();
    assert_eq!(stats, [("cam".to_owned(), DeliveryStats { frames: 199, duplicates: 1, missing: 1 + 40, restarts: 1 })]);

    let windows: Vec<&WindowRecord> =
        records.iter().filter_map(|r| if let ResultRecord::Window(w) = r { Some(w) } else { None }).collect();
    let gaps: Vec<SeqGap> = windows.iter().flat_map(|w| w.cameras.iter().flat_map(|f| f.gaps.clone())).collect();
    assert_eq!(
        gaps,
        [
            SeqGap::within_run(compose(RUN_A, 7), compose(RUN_A, 7)),
            SeqGap {
                first_seq: compose(RUN_A, 100),
                last_seq: compose(RUN_B, 0) - 1,
                restart: true,
                frames_estimated: Some(40),
            },
        ]
    );
    let restart_window = windows.iter().find(|w| w.cameras[0].gaps.iter().any(|g| g.restart)).unwrap();
    assert!(!restart_window.complete, "a window with a restart in it is not complete");
    assert_eq!(restart_window.cameras[0].frames_dropped, 41, "index 7 and the 40 frames of the restart");
}
