//! Runs the simulator through the aggregator and compares counts with the truth.

#![allow(dead_code)]

use std::collections::BTreeMap;

use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, ApproachConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::{Direction, FrameDetections};
use streetscope_simulator::{GroundTruth, IntersectionSpec, NoiseSpec, Simulation};

/// (line, direction, class) -> count.
pub type Counts = BTreeMap<(String, Direction, String), u64>;

/// The aggregator's camera for a simulation.
pub fn camera(sim: &Simulation) -> CameraConfig {
    sim.camera(Vec::new())
}

/// The simulation's frames of detections and its ground truth.
pub fn simulate(
    spec: IntersectionSpec,
    noise: NoiseSpec,
    seed: u64,
) -> (CameraConfig, Vec<FrameDetections>, GroundTruth) {
    let sim = Simulation::new(spec, noise, seed).expect("valid spec");
    let cam = camera(&sim);
    let (frames, truth) = sim.run_to_end();
    (cam, frames, truth)
}

/// Feeds `frames` to a fresh aggregator; returns its counts.
pub fn count(cam: &CameraConfig, frames: &[FrameDetections], tracker: &TrackerConfig) -> Counts {
    let mut agg = Aggregator::new(std::slice::from_ref(cam), tracker);
    for f in frames {
        agg.process(f).expect("known camera");
    }
    agg.finish();
    agg.counts().into_iter().map(|r| ((r.line, r.direction, r.class_name), r.count)).collect()
}

pub fn truth_counts(truth: &GroundTruth) -> Counts {
    truth.counts.iter().map(|c| ((c.line.clone(), c.direction, c.class_name.clone()), c.count)).collect()
}

/// Every (line, direction, class) key of either side.
pub fn keys(a: &Counts, b: &Counts) -> Vec<(String, Direction, String)> {
    let mut k: Vec<_> = a.keys().chain(b.keys()).cloned().collect();
    k.sort();
    k.dedup();
    k
}

/// Sums counts over classes: (line, direction) -> count.
pub fn by_line(c: &Counts) -> BTreeMap<(String, Direction), u64> {
    let mut out = BTreeMap::new();
    for ((l, d, _), n) in c {
        *out.entry((l.clone(), *d)).or_insert(0) += n;
    }
    out
}

/// A table of counted / true per line, direction and class.
pub fn report(counted: &Counts, truth: &Counts) -> String {
    let mut s = String::new();
    for k in keys(counted, truth) {
        let (c, t) = (counted.get(&k).copied().unwrap_or(0), truth.get(&k).copied().unwrap_or(0));
        let mark = if c == t { "" } else { "  <-" };
        s += &format!("{:>12} {:>8?} {:>7}: {c:>4} / {t:>4}{mark}\n", k.0, k.1, k.2);
    }
    s
}

/// The junction's approaches: one per arm line (`north`...), entering forward.
pub fn approaches(cam: &CameraConfig) -> AnalyticsConfig {
    let approaches = cam
        .lines
        .iter()
        .filter(|l| ["north", "east", "south", "west"].contains(&l.name.as_str()))
        .map(|l| ApproachConfig::line(&cam.id, &l.name, &l.name, Direction::Forward))
        .collect();
    AnalyticsConfig { approaches, ..AnalyticsConfig::default() }
}

/// The junction's approaches by zones instead: the camera with the simulator's
/// arm zones ([`IntersectionSpec::approach_zones`]) added, and one approach per
/// arm over its zone, named for the arm as with lines.
pub fn zone_approaches(cam: &CameraConfig, spec: &IntersectionSpec) -> (CameraConfig, AnalyticsConfig) {
    let zones = spec.approach_zones();
    let approaches =
        zones.iter().map(|z| ApproachConfig::zone(&cam.id, z.name.trim_end_matches("_arm"), &z.name)).collect();
    let mut cam = cam.clone();
    cam.zones.extend(zones);
    (cam, AnalyticsConfig { approaches, ..AnalyticsConfig::default() })
}

/// (from, to, class) -> vehicles.
pub type Turns = BTreeMap<(String, String, String), u64>;

pub fn truth_turns(truth: &GroundTruth) -> Turns {
    truth
        .turning_movements
        .iter()
        .map(|t| ((t.movement.from.name().to_owned(), t.movement.to.name().to_owned(), t.class_name.clone()), t.count))
        .collect()
}

pub fn turns_of(agg: &Aggregator) -> Turns {
    agg.turning_movements().into_iter().map(|r| ((r.from, r.to, r.class_name), r.count)).collect()
}

/// A table of counted / true per movement and class, with the totals per movement.
pub fn turn_report(counted: &Turns, truth: &Turns) -> String {
    let mut keys: Vec<_> = counted.keys().chain(truth.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut s = String::new();
    for k in keys {
        let (c, t) = (counted.get(&k).copied().unwrap_or(0), truth.get(&k).copied().unwrap_or(0));
        let mark = if c == t { "" } else { "  <-" };
        s += &format!("{:>6} -> {:>6} {:>7}: {c:>4} / {t:>4}{mark}\n", k.0, k.1, k.2);
    }
    s
}

/// Sums turns over classes: (from, to) -> vehicles.
pub fn by_movement(t: &Turns) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for ((f, to, _), n) in t {
        *out.entry((f.clone(), to.clone())).or_insert(0) += n;
    }
    out
}

/// Frames from each true crossing to its count: `(emitted, stamped)` per count
/// paired with a true crossing, where `emitted` is the frame whose processing
/// returned the count and `stamped` the frame the count carries. Each count is
/// paired with the nearest true crossing of its line and direction (within 5 s)
/// not yet paired; counts with none are left out.
pub fn latencies(
    cam: &CameraConfig,
    frames: &[FrameDetections],
    tracker: &TrackerConfig,
    truth: &GroundTruth,
) -> Vec<(i64, i64)> {
    let mut agg = Aggregator::new(std::slice::from_ref(cam), tracker);
    let mut events = Vec::new();
    for f in frames {
        for e in agg.process(f).expect("known camera") {
            events.push((e, f.seq));
        }
    }
    let last = frames.last().map_or(0, |f| f.seq);
    events.extend(agg.finish().into_iter().map(|e| (e, last)));
    let mut taken = vec![false; truth.crossings.len()];
    let mut out = Vec::new();
    for (e, at) in events {
        let best = truth
            .crossings
            .iter()
            .enumerate()
            .filter(|(i, c)| !taken[*i] && c.line == e.line && c.direction == e.direction)
            .map(|(i, c)| (i, at as i64 - c.seq as i64))
            .filter(|(_, lag)| lag.abs() <= 50)
            .min_by_key(|(i, lag)| (lag.abs(), *i));
        if let Some((i, lag)) = best {
            taken[i] = true;
            out.push((lag, e.frame_seq as i64 - truth.crossings[i].seq as i64));
        }
    }
    out
}

/// Median, 90th percentile and the share within ±2 frames of `v`.
pub fn lag_summary(mut v: Vec<i64>) -> (i64, i64, f64) {
    if v.is_empty() {
        return (0, 0, 0.0);
    }
    v.sort_unstable();
    let within = v.iter().filter(|x| x.abs() <= 2).count() as f64 / v.len() as f64;
    (v[v.len() / 2], v[(v.len() - 1) * 9 / 10], within)
}
