//! Simulates the default junction and prints a summary and the time it took.
//!
//! `cargo run --release -p streetscope-simulator --example simulate -- [seconds] [seed] [typical|none]`

use std::time::Instant;

use streetscope_contracts::Direction;
use streetscope_simulator::{scenario, Approach, NoiseSpec, Simulation};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3600.0);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let noise = match args.get(3).map(String::as_str) {
        Some("none") => NoiseSpec::none(),
        _ => NoiseSpec::typical(),
    };
    let mut spec = scenario::default_four_way();
    spec.duration_s = seconds;
    let started = Instant::now();
    let mut sim = Simulation::new(spec, noise, seed).expect("valid spec");
    let (mut frames, mut detections, mut max_on_road) = (0u64, 0u64, 0usize);
    while let Some(frame) = sim.step() {
        frames += 1;
        detections += frame.detections.map_or(0, |d| d.detections.len() as u64);
        max_on_road = max_on_road.max(sim.vehicles_on_road());
    }
    let elapsed = started.elapsed();
    let truth = sim.ground_truth();
    println!("simulated {seconds} s ({frames} frames) in {:.3} s", elapsed.as_secs_f64());
    println!("vehicles: {}, most on the road at once: {max_on_road}, detections: {detections}", truth.vehicles.len());
    for a in Approach::ALL {
        let queue_max = truth.queues.iter().filter(|q| q.approach == a).map(|q| q.queued).max().unwrap_or(0);
        let backlog_max = truth.queues.iter().filter(|q| q.approach == a).map(|q| q.backlog).max().unwrap_or(0);
        println!(
            "{:>5}: in {:4}  out {:4}  turning to N/E/S/W {:?}  max queue {queue_max} (+{backlog_max} waiting)",
            a.name(),
            truth.line_total(a.name(), Direction::Forward),
            truth.line_total(a.name(), Direction::Backward),
            Approach::ALL.map(|b| truth.turning(a, b, None)),
        );
    }
    let mut by_class = std::collections::BTreeMap::new();
    for c in truth.counts.iter().filter(|c| c.direction == Direction::Forward) {
        *by_class.entry(c.class_name.as_str()).or_insert(0) += c.count;
    }
    println!("entries by class: {by_class:?}");
    println!("noise: {:?}", sim.noise_stats());
}
