//! Turning movements against the simulator's ground truth, with approaches by
//! lines and by zones: the matrix is exact without noise; with the typical
//! noise, the accuracy is printed (`-- --nocapture`) and held to the issue's
//! bounds.

mod common;

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

/// How the approaches are given.
#[derive(Clone, Copy, Debug)]
enum By {
    Lines,
    Zones,
}

fn run(minutes: f64, noise: NoiseSpec, seed: u64, by: By) -> (Aggregator, Turns, Vec<usize>) {
    let spec = IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() };
    let (cam, frames, truth) = simulate(spec.clone(), noise, seed);
    let (cam, analytics) = match by {
        By::Lines => (cam.clone(), approaches(&cam)),
        By::Zones => zone_approaches(&cam, &spec),
    };
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
    let mut events = Vec::new();
    for f in &frames {
        agg.process(f).unwrap();
        events.push(agg.take_turning_events().len());
    }
    agg.finish();
    events.push(agg.take_turning_events().len());
    (agg, truth_turns(&truth), events)
}

fn exact_without_noise(by: By) {
    let (agg, truth, events) = run(30.0, NoiseSpec::none(), 1, by);
    let counted = turns_of(&agg);
    assert!(truth.values().sum::<u64>() > 700, "too little traffic to mean anything");
    assert_eq!(by_movement(&truth).len(), 12, "every movement of a four-way junction");
    assert_eq!(counted, truth, "{by:?}\n{}", turn_report(&counted, &truth));
    assert_eq!(events.iter().sum::<usize>() as u64, truth.values().sum::<u64>(), "one event per vehicle");
}

/// The bound: at least 98 % per movement, none over by more than 2 %;
/// per class too where a class has 20 vehicles or more (2 %, or one vehicle
/// where 2 % is less than one: under 50 vehicles, 98 % would demand exactness),
/// and within one vehicle below; 99 % of all movements. Typical noise includes
/// occlusions, class flips and lost frames since 2026-12-05 (seed 1: every
/// movement within the bound, one class of one movement a vehicle short:
/// north -> east cars 43/44).
fn close_with_typical_noise(by: By) {
    let (agg, truth, _) = run(60.0, NoiseSpec::typical(), 1, by);
    let counted = turns_of(&agg);
    let table = turn_report(&counted, &truth);
    println!("{by:?}\n{table}");
    let (bc, bt) = (by_movement(&counted), by_movement(&truth));
    let (mut c_all, mut t_all) = (0, 0);
    for (k, &t) in &bt {
        let c = bc.get(k).copied().unwrap_or(0);
        println!("| typical, {by:?} | {} -> {} | {c}/{t} = {:.3} |", k.0, k.1, c as f64 / t as f64);
        (c_all, t_all) = (c_all + c, t_all + t);
        assert!(c as f64 <= t as f64 * 1.02, "{by:?} {k:?} over-counted: {c}/{t}\n{table}");
        assert!(c as f64 >= t as f64 * 0.98, "{by:?} {k:?} under-counted: {c}/{t}\n{table}");
    }
    println!("| typical, {by:?} | all | {c_all}/{t_all} = {:.3} |", c_all as f64 / t_all as f64);
    for (k, &t) in &truth {
        let c = counted.get(k).copied().unwrap_or(0);
        if t >= 20 {
            // 2 %, or one vehicle where 2 % is less (under 50 vehicles).
            assert!(c.abs_diff(t) as f64 <= (0.02 * t as f64).max(1.0), "{by:?} {k:?}: {c}/{t}\n{table}");
        } else {
            assert!(c.abs_diff(t) <= 1, "{by:?} {k:?}: {c}/{t}\n{table}");
        }
    }
    assert!(counted.keys().all(|k| truth.contains_key(k)), "{by:?}: a movement or class that never happened\n{table}");
    assert!(c_all as f64 >= 0.99 * t_all as f64, "{by:?}: {c_all}/{t_all}\n{table}");
}

#[test]
fn without_noise_the_turning_movements_equal_the_ground_truth() {
    exact_without_noise(By::Lines);
}

#[test]
fn without_noise_zone_approaches_give_the_ground_truth_too() {
    exact_without_noise(By::Zones);
}

// Seed 1, lines and zones alike: with the detector-only noise every movement
// and class was exact (before the tracker re-found tracks lost in a turn: 99.6 %
// of all, two movements at 97.4 % and 97.8 %).
#[test]
fn with_typical_noise_the_turning_movements_are_close() {
    close_with_typical_noise(By::Lines);
}

#[test]
fn with_typical_noise_zone_approaches_are_as_close() {
    close_with_typical_noise(By::Zones);
}
