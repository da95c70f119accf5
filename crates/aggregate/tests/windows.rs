//! Event-time windows: synthetic detections in, window records out (golden-style),
//! and the simulator's runs cut into windows that add up to the run's totals.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::records::WindowRecord;
use streetscope_contracts::{BBox, CountingLine, Detection, FrameDetections};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

/// 2026-01-01T00:00:00Z, a whole minute.
const EPOCH_MS: i64 = 1_767_225_600_000;

fn synthetic_camera() -> CameraConfig {
    CameraConfig {
        id: "cam".into(),
        intersection: "x".into(),
        source: "file:///x.mp4".into(),
        sample_fps: 10.0,
        // Drawn bottom to top: rightward motion is forward.
        lines: vec![CountingLine::new("v", [0.5, 1.0], [0.5, 0.0])],
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
        zones: Vec::new(),
        calibration: None,
        frame_ids: None,
    }
}

/// A car first seen at frame `f0` moving right 30 px a frame on a 1000x500
/// image: its reference point is at x 0.47, 0.50, 0.53... so it crosses the
/// line (beyond the dead band) at `f0 + 2`, and the crossing is released at
/// `f0 + 4`, when the track's class has settled (five whole views).
fn car(f0: u64, f: u64) -> Option<Detection> {
    let x = 420.0 + 30.0 * (f.checked_sub(f0)? as f32);
    (f <= f0 + 8).then(|| Detection {
        class_id: 0,
        class_name: Arc::from("car"),
        score: 0.9,
        bbox: BBox::new(x, 200.0, x + 100.0, 300.0),
    })
}

fn frame(seq: u64) -> FrameDetections {
    FrameDetections {
        camera_id: Arc::from("cam"),
        intersection_id: Arc::from("x"),
        seq,
        pts_ns: seq * 100_000_000,
        capture_time_ms: EPOCH_MS + seq as i64 * 100,
        width: 1000,
        height: 500,
        detections: [car(290, seq), car(597, seq)].into_iter().flatten().collect(),
    }
}

#[test]
fn golden_windows_with_a_gap_a_late_crossing_and_an_early_end() {
    let analytics = AnalyticsConfig { window_lengths_s: vec![60], allowed_lateness_s: 0.0, ..Default::default() };
    let mut agg = Aggregator::with_analytics(&[synthetic_camera()], &TrackerConfig::default(), &analytics);
    let mut windows: Vec<(u64, WindowRecord)> = Vec::new();
    // 70 s of frames; 100-104 are lost.
    for seq in (0..700).filter(|s| !(100..=104).contains(s)) {
        agg.process(&frame(seq)).unwrap();
        windows.extend(agg.take_windows().into_iter().map(|w| (seq, w)));
    }
    agg.finish();
    windows.extend(agg.take_windows().into_iter().map(|w| (u64::MAX, w)));
    let got: Vec<_> = windows.iter().map(|(seq, w)| json!({ "closed_at": seq, "record": w })).collect();
    let quality = |received: u64, dropped: u64, gaps: serde_json::Value| {
        json!([{ "camera_id": "cam", "frames_expected": 600, "frames_received": received,
                 "frames_dropped": dropped, "gaps": gaps }])
    };
    let want = json!([
        {
            // Closed by the first frame at or past its end (no lateness allowed).
            "closed_at": 600,
            "record": {
                "schema_version": 1, "intersection_id": "x",
                "window_start_ms": EPOCH_MS, "window_end_ms": EPOCH_MS + 60_000, "length_s": 60,
                // The first car; the second crossed at frame 599 but was released at 601.
                "counts": [{ "camera_id": "cam", "line": "v", "direction": "forward",
                             "direction_label": "in", "class_name": "car", "count": 1 }],
                "turning_movements": [],
                "cameras": quality(595, 5, json!([{ "first_seq": 100, "last_seq": 104 }])),
                "late": { "crossings": 0, "turning_movements": 0, "frames": 0 },
                "complete": false
            }
        },
        {
            // Flushed at the end of input, 10 s into it: ended early.
            "closed_at": u64::MAX,
            "record": {
                "schema_version": 1, "intersection_id": "x",
                "window_start_ms": EPOCH_MS + 60_000, "window_end_ms": EPOCH_MS + 120_000, "length_s": 60,
                "counts": [],
                "turning_movements": [],
                "cameras": quality(100, 0, json!([])),
                // The second car's crossing, whose window had closed.
                "late": { "crossings": 1, "turning_movements": 0, "frames": 0 },
                "complete": false
            }
        }
    ]);
    assert_eq!(json!(got), want, "{}", serde_json::to_string_pretty(&got).unwrap());
    // Late, but not lost.
    assert_eq!(agg.counts().iter().map(|r| r.count).sum::<u64>(), 2);
}

#[test]
fn with_enough_lateness_the_late_crossing_lands_in_its_window() {
    let analytics = AnalyticsConfig { window_lengths_s: vec![60], allowed_lateness_s: 1.0, ..Default::default() };
    let mut agg = Aggregator::with_analytics(&[synthetic_camera()], &TrackerConfig::default(), &analytics);
    for seq in 0..700 {
        agg.process(&frame(seq)).unwrap();
    }
    let closed = agg.take_windows();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].counts[0].count, 2);
    assert!(closed[0].late.is_empty());
    assert!(closed[0].complete, "{:?}", closed[0]);
}

/// Sums of window counts per window length: length -> (line, direction, class) -> count.
fn window_sums(windows: &[WindowRecord]) -> std::collections::BTreeMap<u32, Counts> {
    let mut out: std::collections::BTreeMap<u32, Counts> = Default::default();
    for w in windows {
        let per = out.entry(w.length_s).or_default();
        for c in &w.counts {
            *per.entry((c.line.clone(), c.direction, c.class_name.clone())).or_insert(0) += c.count;
        }
    }
    out
}

fn run_windows(noise: NoiseSpec, seed: u64) -> (Aggregator, Vec<WindowRecord>, usize) {
    let spec = IntersectionSpec { duration_s: 1800.0, ..scenario::default_four_way() };
    let (cam, frames, _) = simulate(spec, noise, seed);
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &approaches(&cam));
    let mut windows = Vec::new();
    for f in &frames {
        agg.process(f).unwrap();
        windows.extend(agg.take_windows());
    }
    agg.finish();
    windows.extend(agg.take_windows());
    (agg, windows, frames.len())
}

#[test]
fn without_noise_the_windows_add_up_to_the_totals_and_are_complete() {
    let (agg, windows, frames) = run_windows(NoiseSpec::none(), 1);
    let totals: Counts = agg.counts().into_iter().map(|r| ((r.line, r.direction, r.class_name), r.count)).collect();
    let sums = window_sums(&windows);
    assert_eq!(sums.keys().copied().collect::<Vec<_>>(), vec![60, 300, 900]);
    for (len, sum) in &sums {
        assert_eq!(sum, &totals, "windows of {len} s");
    }
    // 30 minutes: 30 + 6 + 2 windows, each whole.
    assert_eq!(windows.len(), 38);
    for w in &windows {
        assert!(w.complete && w.late.is_empty(), "{w:?}");
        assert_eq!(w.cameras[0].frames_received, w.cameras[0].frames_expected);
        assert_eq!(w.window_start_ms % (i64::from(w.length_s) * 1000), 0, "aligned to the epoch");
    }
    // Turning movements too.
    let turns: u64 = agg.turning_movements().iter().map(|r| r.count).sum();
    for len in [60, 300, 900] {
        let in_windows: u64 =
            windows.iter().filter(|w| w.length_s == len).flat_map(|w| &w.turning_movements).map(|t| t.count).sum();
        assert_eq!(in_windows, turns, "windows of {len} s");
    }
    assert_eq!(frames as u64 * 3, windows.iter().map(|w| w.cameras[0].frames_received).sum::<u64>());
}

#[test]
fn with_noise_and_lost_frames_windows_plus_late_records_add_up_and_flag_the_gaps() {
    let noise = NoiseSpec { frame_drop_rate: 0.01, ..NoiseSpec::typical() };
    let (agg, windows, frames) = run_windows(noise, 2);
    let totals: Counts = agg.counts().into_iter().map(|r| ((r.line, r.direction, r.class_name), r.count)).collect();
    let total: u64 = totals.values().sum();
    for len in [60, 300, 900] {
        let ws: Vec<_> = windows.iter().filter(|w| w.length_s == len).collect();
        let counted: u64 = ws.iter().flat_map(|w| &w.counts).map(|c| c.count).sum();
        let late: u64 = ws.iter().map(|w| w.late.crossings).sum();
        println!("windows of {len} s: {counted} crossings in windows, {late} late, {total} in all");
        assert_eq!(counted + late, total, "windows of {len} s");
        let received: u64 = ws.iter().map(|w| w.cameras[0].frames_received).sum();
        let dropped: u64 = ws.iter().map(|w| w.cameras[0].frames_dropped).sum();
        assert_eq!(received, frames as u64);
        assert_eq!(received + dropped, 18_000, "every frame received or flagged as lost");
        for w in &ws {
            let q = &w.cameras[0];
            assert_eq!(q.frames_dropped, q.gaps.iter().map(|g| g.last_seq - g.first_seq + 1).sum::<u64>());
            assert_eq!(w.complete, q.frames_dropped == 0, "{w:?}");
        }
    }
}
