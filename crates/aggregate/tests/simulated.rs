//! The aggregator against the traffic simulator's ground truth: exact without
//! noise, within bounds with a noisy detector, no over-counting of queues that
//! stand on a line, and replayed frames that change nothing.
//!
//! The accuracy table for the docs: `cargo test --release -p streetscope-aggregate
//! --test accuracy -- --ignored --nocapture`.

mod common;

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

fn default_junction(minutes: f64) -> IntersectionSpec {
    IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() }
}

#[test]
fn without_noise_the_counts_equal_the_ground_truth() {
    let (cam, frames, truth) = simulate(default_junction(30.0), NoiseSpec::none(), 1);
    let counted = count(&cam, &frames, &TrackerConfig::default());
    let truth = truth_counts(&truth);
    assert!(truth.values().sum::<u64>() > 1500, "too little traffic to mean anything");
    assert_eq!(counted, truth, "\n{}", report(&counted, &truth));
}

#[test]
fn with_typical_noise_the_counts_are_within_bounds() {
    let (cam, frames, truth) = simulate(default_junction(60.0), NoiseSpec::typical(), 1);
    let counted = count(&cam, &frames, &TrackerConfig::default());
    let truth = truth_counts(&truth);
    let table = report(&counted, &truth);
    // Every line and direction, all classes together: within 2 %.
    let (bc, bt) = (by_line(&counted), by_line(&truth));
    for (k, &t) in &bt {
        let c = bc.get(k).copied().unwrap_or(0);
        let r = c as f64 / t as f64;
        assert!((0.98..=1.02).contains(&r), "{k:?}: {c}/{t}\n{table}");
    }
    // Per class with at least 20 true crossings: within 2 % too (the issue's
    // target). Classes with fewer are a few vehicles, where one is several percent.
    for key in keys(&counted, &truth) {
        let (c, t) = (counted.get(&key).copied().unwrap_or(0), truth.get(&key).copied().unwrap_or(0));
        if t < 20 {
            assert!(c.abs_diff(t) <= 1, "{key:?}: {c}/{t}\n{table}");
            continue;
        }
        let r = c as f64 / t as f64;
        assert!((0.98..=1.02).contains(&r), "{key:?}: {c}/{t}\n{table}");
    }
}

#[test]
fn queues_standing_on_a_line_are_not_over_counted() {
    let spec = IntersectionSpec { duration_s: 1800.0, ..scenario::stop_and_go() };
    let (cam, frames, truth) = simulate(spec, NoiseSpec::typical(), 2);
    let counted = count(&cam, &frames, &TrackerConfig::default());
    let truth = truth_counts(&truth);
    let table = report(&counted, &truth);
    let (bc, bt) = (by_line(&counted), by_line(&truth));
    assert!(bt.contains_key(&(scenario::QUEUE_LINE.to_owned(), streetscope_contracts::Direction::Forward)));
    for k in bc.keys().chain(bt.keys()) {
        let (c, t) = (bc.get(k).copied().unwrap_or(0), bt.get(k).copied().unwrap_or(0));
        assert!(c as f64 <= t as f64 * 1.02, "{k:?} over-counted: {c}/{t}\n{table}");
    }
}

#[test]
fn a_replayed_frame_never_changes_a_count() {
    let (cam, frames, _) = simulate(default_junction(5.0), NoiseSpec::typical(), 3);
    let tracker = TrackerConfig::default();
    let mut agg = Aggregator::new(std::slice::from_ref(&cam), &tracker);
    for (i, f) in frames.iter().enumerate() {
        agg.process(f).unwrap();
        let before = agg.counts();
        // The same frame again (at-least-once delivery), and an older one.
        assert!(agg.process(f).unwrap().is_empty());
        assert!(agg.process(&frames[i / 2]).unwrap().is_empty());
        assert_eq!(agg.counts(), before, "frame {}", f.seq);
    }
    assert_eq!(agg.duplicates(), 2 * frames.len() as u64);
    agg.finish();
    let replayed: Counts = agg.counts().into_iter().map(|r| ((r.line, r.direction, r.class_name), r.count)).collect();
    assert_eq!(replayed, count(&cam, &frames, &tracker));
    assert!(replayed.values().sum::<u64>() > 200);
}
