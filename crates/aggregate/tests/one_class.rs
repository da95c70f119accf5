//! One class per vehicle: whatever the detector's class flips, every record of
//! one track (crossings of every line, turning movement, zone dwells, and the
//! windows they feed) carries one class, so per-class counts of consecutive
//! lines reconcile.

mod common;

use std::collections::BTreeMap;

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

/// Runs `minutes` of the default junction (approaches by zones, so that dwells
/// are made too); returns per track the classes of its crossings and movement,
/// the counts and the movements.
fn run(noise: NoiseSpec, seed: u64, minutes: f64) -> (BTreeMap<u64, Vec<String>>, Counts, Turns, Counts, Turns) {
    let spec = IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() };
    let (cam, frames, truth) = simulate(spec.clone(), noise, seed);
    let (cam, analytics) = zone_approaches(&cam, &spec);
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut classes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for f in &frames {
        for c in agg.process(f).unwrap() {
            classes.entry(c.track_id).or_default().push(c.class_name);
        }
        for m in agg.take_turning_events() {
            classes.entry(m.track_id).or_default().push(m.class_name);
        }
    }
    for c in agg.finish() {
        classes.entry(c.track_id).or_default().push(c.class_name);
    }
    for m in agg.take_turning_events() {
        classes.entry(m.track_id).or_default().push(m.class_name);
    }
    let counted = agg.counts().into_iter().map(|r| ((r.line, r.direction, r.class_name), r.count)).collect();
    (classes, counted, turns_of(&agg), truth_counts(&truth), truth_turns(&truth))
}

#[test]
fn class_flips_never_give_one_track_two_classes() {
    let noise = NoiseSpec { class_flip_rate: 0.3, ..NoiseSpec::typical() };
    let (classes, ..) = run(noise, 21, 10.0);
    assert!(classes.len() > 150, "too little traffic: {} tracks", classes.len());
    for (track, cs) in &classes {
        assert!(cs.iter().all(|c| c == &cs[0]), "track {track}: {cs:?}");
    }
}

#[test]
fn with_class_flips_alone_every_class_is_counted_exactly_at_every_line() {
    // A perfect detector but for its class, wrong in one detection of five.
    // Seeds never used for tuning.
    for seed in [22, 23, 24] {
        let noise = NoiseSpec { class_flip_rate: 0.2, ..NoiseSpec::none() };
        let (classes, counted, turns, truth, truth_turns) = run(noise, seed, 10.0);
        for (track, cs) in &classes {
            assert!(cs.iter().all(|c| c == &cs[0]), "seed {seed}, track {track}: {cs:?}");
        }
        assert_eq!(counted, truth, "seed {seed}\n{}", report(&counted, &truth));
        assert_eq!(turns, truth_turns, "seed {seed}\n{}", turn_report(&turns, &truth_turns));
    }
}
