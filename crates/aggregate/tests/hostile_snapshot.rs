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
use streetscope_contracts::config::TrackerConfig;
use streetscope_hostile::{check_bounded, hostile_json, measure, Fuzz, Verdict};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

#[global_allocator]
static ALLOC: streetscope_hostile::Meter = streetscope_hostile::Meter;

#[test]
fn snapshots_at_restore() {
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
