//! Hostile snapshots at restore: an aggregator's snapshot is read back from a
//! topic that anyone with produce rights could write. Mutations of a real
//! mid-stream snapshot (tracks alive, zones, a calibration, open windows) and
//! random bytes are decoded and restored; what restores must go on counting
//! without a panic, and nothing may allocate beyond a small multiple of its input.
//!
//! Seeded: `STREETSCOPE_FUZZ_SEED` and `STREETSCOPE_FUZZ_CASES` (scripts/fuzz.sh).

mod common;

use std::time::{Duration, Instant};

use common::*;
use proptest::prelude::*;
use streetscope_aggregate::{Aggregator, AggregatorSnapshot};
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::FrameDetections;
use streetscope_hostile::{check_bounded, hostile_json, measure, Fuzz, Verdict};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

/// The camera, tracker and analytics of the fuzzed aggregator, its frames, and
/// the snapshot taken half-way through them.
fn fixture() -> (CameraConfig, TrackerConfig, AnalyticsConfig, Vec<FrameDetections>, Vec<u8>) {
    let spec = IntersectionSpec { duration_s: 30.0, ..scenario::default_four_way() };
    let (mut cam, frames, _) = simulate(spec.clone(), NoiseSpec::typical(), 9);
    cam.zones = spec.queue_zones();
    cam.calibration = Some(Box::new(spec.calibration()));
    let tracker = TrackerConfig::default();
    // Approaches by lines (north, south) and by zones (east, west), as in tests/snapshot.rs.
    let mut analytics = approaches(&cam);
    let (cam, by_zones) = zone_approaches(&cam, &spec);
    analytics.approaches.retain(|a| ["north", "south"].contains(&a.name.as_str()));
    analytics
        .approaches
        .extend(by_zones.approaches.into_iter().filter(|a| ["east", "west"].contains(&a.name.as_str())));
    analytics.alerts.queue_length = 2;
    let cams = std::slice::from_ref(&cam);
    let half = frames.len() / 2;
    let mut agg = Aggregator::with_analytics(cams, &tracker, &analytics);
    for f in &frames[..half] {
        agg.process(f).unwrap();
    }
    let seed = serde_json::to_vec(&agg.snapshot()).unwrap();
    (cam, tracker, analytics, frames, seed)
}

/// Inputs the property test found, kept as they were found.
#[test]
fn regressions() {
    let (cam, tracker, analytics, _, seed) = fixture();
    // An open 300 s window a digit short (1970 instead of 2026): closing
    // windows never skips an open one, so the first close emitted every window
    // since 1970 (29 million records, 11 s). Such a state is refused; the
    // aggregator starts afresh.
    let mut doc: serde_json::Value = serde_json::from_slice(&seed).unwrap();
    let open = doc.pointer_mut("/intersections/0/series/1/open/0/0").expect("an open 300 s window");
    *open = serde_json::json!(17_672_200_000i64);
    let snap: AggregatorSnapshot = serde_json::from_value(doc).unwrap();
    let start = Instant::now();
    let e = Aggregator::restore(std::slice::from_ref(&cam), &tracker, &analytics, snap).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1), "{:?}", start.elapsed());
    assert!(!e.to_string().is_empty());
    // The closed windows of one series ending at i64::MIN: the distance to
    // the open windows wrapped negative, so the first close skipped nothing
    // and emitted windows from i64::MIN on, until memory ran out (20 GB when
    // the run was stopped; seed 0x5747524545545343, input 700-850).
    let mut doc: serde_json::Value = serde_json::from_slice(&seed).unwrap();
    *doc.pointer_mut("/intersections/0/series/0/closed_until").expect("a series") = serde_json::json!(i64::MIN);
    let snap: AggregatorSnapshot = serde_json::from_value(doc).unwrap();
    let e = Aggregator::restore(std::slice::from_ref(&cam), &tracker, &analytics, snap).unwrap_err();
    assert!(!e.to_string().is_empty());
    // A track's zone visit naming approach 65536 of 4: the next frames
    // panicked (index out of bounds) in turning movements.
    let (_, _, _, frames, _) = fixture();
    let mut doc: serde_json::Value = serde_json::from_slice(&seed).unwrap();
    let visit = doc.pointer_mut("/cameras/0/turning/tracks/0/1/visits/0/approach").expect("a zone visit");
    *visit = serde_json::json!(65536);
    let snap: AggregatorSnapshot = serde_json::from_value(doc).unwrap();
    match Aggregator::restore(std::slice::from_ref(&cam), &tracker, &analytics, snap) {
        Ok(mut agg) => {
            let half = frames.len() / 2;
            for f in &frames[half..half + 3] {
                agg.process(f).unwrap();
            }
            agg.finish();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn snapshots_at_restore() {
    let (cam, tracker, analytics, frames, seed) = fixture();
    let cams = std::slice::from_ref(&cam);
    let half = frames.len() / 2;
    let next = &frames[half..half + 3];
    let restore = |bytes: &[u8]| -> Result<Aggregator, String> {
        let snap: AggregatorSnapshot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        Aggregator::restore(cams, &tracker, &analytics, snap).map_err(|e| e.to_string())
    };
    restore(&seed).unwrap();
    println!("seed snapshot: {} bytes", seed.len());
    Fuzz::new("aggregate_snapshot_json", 3_000).run(hostile_json(vec![seed], 256), |bytes| {
        let start = Instant::now();
        let (restored, usage) = measure(|| restore(&bytes));
        check_bounded(bytes.len(), usage)?;
        let verdict = match restored {
            Ok(mut agg) => {
                // Restored state, however odd its numbers, goes on counting.
                for f in next {
                    agg.process(f).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                agg.finish();
                let _ = agg.snapshot();
                Verdict::Accepted
            }
            Err(e) => {
                prop_assert!(!e.is_empty());
                Verdict::Refused
            }
        };
        prop_assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
        Ok(verdict)
    });
}
