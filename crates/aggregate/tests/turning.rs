//! Turning movements against the simulator's ground truth: the matrix is exact
//! without noise; with the typical noise, the accuracy is printed
//! (`-- --nocapture`) and held to the bounds the tracker achieves.

mod common;

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::TrackerConfig;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

fn run(minutes: f64, noise: NoiseSpec, seed: u64) -> (Aggregator, Turns, Vec<usize>) {
    let spec = IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() };
    let (cam, frames, truth) = simulate(spec, noise, seed);
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &approaches(&cam));
    let mut events = Vec::new();
    for f in &frames {
        agg.process(f).unwrap();
        events.push(agg.take_turning_events().len());
    }
    agg.finish();
    events.push(agg.take_turning_events().len());
    (agg, truth_turns(&truth), events)
}

#[test]
fn without_noise_the_turning_movements_equal_the_ground_truth() {
    let (agg, truth, events) = run(30.0, NoiseSpec::none(), 1);
    let counted = turns_of(&agg);
    assert!(truth.values().sum::<u64>() > 700, "too little traffic to mean anything");
    assert_eq!(by_movement(&truth).len(), 12, "every movement of a four-way junction");
    assert_eq!(counted, truth, "\n{}", turn_report(&counted, &truth));
    assert_eq!(events.iter().sum::<usize>() as u64, truth.values().sum::<u64>(), "one event per vehicle");
}

#[test]
fn with_typical_noise_the_turning_movements_are_close() {
    let (agg, truth, _) = run(60.0, NoiseSpec::typical(), 1);
    let counted = turns_of(&agg);
    let table = turn_report(&counted, &truth);
    println!("{table}");
    let (bc, bt) = (by_movement(&counted), by_movement(&truth));
    let (mut c_all, mut t_all) = (0, 0);
    for (k, &t) in &bt {
        let c = bc.get(k).copied().unwrap_or(0);
        println!("| typical | {} -> {} | {c}/{t} = {:.3} |", k.0, k.1, c as f64 / t as f64);
        (c_all, t_all) = (c_all + c, t_all + t);
    }
    println!("| typical | all | {c_all}/{t_all} = {:.3} |", c_all as f64 / t_all as f64);
    // Seed 1: every movement and class exact (before the tracker re-found tracks
    // lost in a turn: 99.6 % of all, two movements at 97.4 % and 97.8 %). The
    // issue's bound: at least 98 % per movement, none over by more than 2 %; per
    // class too where a class has 20 vehicles or more, and within one vehicle below.
    for (k, &t) in &bt {
        let c = bc.get(k).copied().unwrap_or(0);
        assert!(c as f64 <= t as f64 * 1.02, "{k:?} over-counted: {c}/{t}\n{table}");
        assert!(c as f64 >= t as f64 * 0.98, "{k:?} under-counted: {c}/{t}\n{table}");
    }
    for (k, &t) in &truth {
        let c = counted.get(k).copied().unwrap_or(0);
        if t >= 20 {
            assert!((0.98..=1.02).contains(&(c as f64 / t as f64)), "{k:?}: {c}/{t}\n{table}");
        } else {
            assert!(c.abs_diff(t) <= 1, "{k:?}: {c}/{t}\n{table}");
        }
    }
    assert!(counted.keys().all(|k| truth.contains_key(k)), "a movement or class that never happened\n{table}");
    assert!(c_all as f64 >= 0.99 * t_all as f64, "{c_all}/{t_all}\n{table}");
}
