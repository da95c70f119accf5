//! Snapshot → JSON → restore mid-stream gives the same records as an
//! uninterrupted run, and inputs replayed after the restore change nothing.

mod common;

use common::*;
use streetscope_aggregate::{Aggregator, AggregatorSnapshot, RestoreError};
use streetscope_contracts::config::{AnalyticsConfig, TrackerConfig};
use streetscope_contracts::records::{AlertEvent, CrossingEvent, TurningMovementEvent, WindowRecord};
use streetscope_contracts::FrameDetections;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

/// Everything an aggregator emitted.
#[derive(Debug, Default, PartialEq)]
struct Out {
    crossings: Vec<CrossingEvent>,
    turns: Vec<TurningMovementEvent>,
    windows: Vec<WindowRecord>,
    alerts: Vec<AlertEvent>,
}

impl Out {
    fn feed(&mut self, agg: &mut Aggregator, frames: &[FrameDetections]) {
        for f in frames {
            self.crossings.extend(agg.process(f).unwrap());
            self.turns.extend(agg.take_turning_events());
            self.windows.extend(agg.take_windows());
            self.alerts.extend(agg.take_alerts());
        }
    }

    fn finish(&mut self, agg: &mut Aggregator) {
        self.crossings.extend(agg.finish());
        self.turns.extend(agg.take_turning_events());
        self.windows.extend(agg.take_windows());
        self.alerts.extend(agg.take_alerts());
    }
}

#[test]
fn snapshot_and_restore_mid_stream_gives_the_same_records() {
    let spec = IntersectionSpec { duration_s: 600.0, ..scenario::default_four_way() };
    let noise = NoiseSpec { frame_drop_rate: 0.01, occlusion_rate_per_s: 0.02, ..NoiseSpec::typical() };
    let (mut cam, frames, _) = simulate(spec.clone(), noise, 4);
    // Zones, a calibration and alerts: their state goes through the snapshot
    // too; approaches by lines (north, south) and by zones (east, west).
    cam.zones = spec.queue_zones();
    cam.calibration = Some(Box::new(spec.calibration()));
    let tracker = TrackerConfig::default();
    let mut analytics = approaches(&cam);
    let (zoned, by_zones) = zone_approaches(&cam, &spec);
    cam = zoned;
    analytics.approaches.retain(|a| ["north", "south"].contains(&a.name.as_str()));
    analytics
        .approaches
        .extend(by_zones.approaches.into_iter().filter(|a| ["east", "west"].contains(&a.name.as_str())));
    analytics.alerts.queue_length = 2;
    analytics.alerts.queue_for_s = 5.0;
    analytics.alerts.queue_clear_s = 5.0;
    analytics.alerts.anomaly_min_baseline = 1;
    analytics.alerts.anomaly_baseline_windows = 2;
    let cams = std::slice::from_ref(&cam);

    let mut whole = Aggregator::with_analytics(cams, &tracker, &analytics);
    let mut expected = Out::default();
    expected.feed(&mut whole, &frames);
    expected.finish(&mut whole);

    // Mid-way through a window, with tracks alive and crossings held.
    let half = frames.len() / 2 + 7;
    let mut first = Aggregator::with_analytics(cams, &tracker, &analytics);
    let mut got = Out::default();
    got.feed(&mut first, &frames[..half]);
    let json = serde_json::to_string(&first.snapshot()).unwrap();
    drop(first);
    let snapshot: AggregatorSnapshot = serde_json::from_str(&json).unwrap();
    let mut second = Aggregator::restore(cams, &tracker, &analytics, snapshot).unwrap();
    // The last 50 inputs again (the transport replays what it had not committed).
    let (counts, turns) = (second.counts(), second.turning_movements());
    let mut replay = Out::default();
    replay.feed(&mut second, &frames[half - 50..half]);
    assert_eq!(replay, Out::default(), "a replayed input emitted something");
    assert_eq!((second.counts(), second.turning_movements()), (counts, turns));
    assert_eq!(second.duplicates(), 50);
    got.feed(&mut second, &frames[half..]);
    got.finish(&mut second);

    assert!(expected.crossings.len() > 300 && expected.turns.len() > 100 && expected.windows.len() > 10);
    assert!(expected.alerts.len() > 10, "{}", expected.alerts.len());
    assert!(expected.turns.iter().filter(|t| t.speed_kmh.is_some()).count() > 100);
    assert!(expected.windows.iter().any(|w| !w.zones.is_empty() && !w.queues.is_empty() && !w.speeds.is_empty()));
    assert_eq!(got.alerts, expected.alerts);
    assert_eq!(got.crossings, expected.crossings);
    assert_eq!(got.turns, expected.turns);
    assert_eq!(got.windows, expected.windows);
    assert_eq!(second.counts(), whole.counts());
    assert_eq!(second.turning_movements(), whole.turning_movements());
    // A snapshot of the restored aggregator is the original's, but for the replayed duplicates.
    let (mut a, mut b) =
        (serde_json::to_value(second.snapshot()).unwrap(), serde_json::to_value(whole.snapshot()).unwrap());
    assert_eq!((a["duplicates"].take(), b["duplicates"].take()), (50.into(), 0.into()));
    assert!(a == b, "the snapshots differ");
}

#[test]
fn a_snapshot_that_does_not_fit_the_configuration_is_refused() {
    let spec = IntersectionSpec { duration_s: 20.0, ..scenario::default_four_way() };
    let (cam, frames, _) = simulate(spec, NoiseSpec::none(), 1);
    let (tracker, analytics) = (TrackerConfig::default(), approaches(&cam));
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &tracker, &analytics);
    Out::default().feed(&mut agg, &frames);
    let snap = agg.snapshot();

    let mut json = serde_json::to_value(&snap).unwrap();
    json["version"] = 99.into();
    let old: AggregatorSnapshot = serde_json::from_value(json).unwrap();
    let err = Aggregator::restore(std::slice::from_ref(&cam), &tracker, &analytics, old).unwrap_err();
    assert_eq!(err, RestoreError::Version { found: 99 });

    let mut other = cam.clone();
    other.id = "another".into();
    let err = Aggregator::restore(&[other], &tracker, &analytics, snap.clone()).unwrap_err();
    assert_eq!(err, RestoreError::UnknownCamera(cam.id.clone()));

    let mut fewer = cam.clone();
    fewer.lines.pop();
    let err = Aggregator::restore(&[fewer], &tracker, &AnalyticsConfig::default(), snap.clone()).unwrap_err();
    assert_eq!(err, RestoreError::CameraMismatch(cam.id.clone()));

    let mut zoned = cam.clone();
    zoned.zones = scenario::default_four_way().queue_zones();
    let err = Aggregator::restore(&[zoned], &tracker, &analytics, snap.clone()).unwrap_err();
    assert_eq!(err, RestoreError::CameraMismatch(cam.id.clone()));
    let mut calibrated = cam.clone();
    calibrated.calibration = Some(Box::new(scenario::default_four_way().calibration()));
    let err = Aggregator::restore(&[calibrated], &tracker, &analytics, snap.clone()).unwrap_err();
    assert_eq!(err, RestoreError::CameraMismatch(cam.id.clone()));

    let shorter = AnalyticsConfig { window_lengths_s: vec![60], ..analytics.clone() };
    let err = Aggregator::restore(std::slice::from_ref(&cam), &tracker, &shorter, snap).unwrap_err();
    assert_eq!(err, RestoreError::IntersectionMismatch(cam.intersection.clone()));
}
