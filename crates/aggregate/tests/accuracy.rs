//! The accuracy table for the docs (not a test): counted / true per noise level,
//! line and direction, and the worst class. Run with
//! `cargo test --release -p streetscope-aggregate --test accuracy -- --ignored --nocapture`
//! (`MINUTES`, `SEEDS`, `BAND` change the run).

mod common;
use common::*;
use streetscope_contracts::config::TrackerConfig;
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec};

#[test]
#[ignore]
fn table() {
    let minutes: f64 = std::env::var("MINUTES").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let seeds: u64 = std::env::var("SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let band: f64 = std::env::var("BAND").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01);
    let tracker = TrackerConfig { line_hysteresis: band, ..TrackerConfig::default() };
    for (name, noise) in [
        ("none", NoiseSpec::none()),
        ("typical", NoiseSpec::typical()),
        ("heavy", NoiseSpec { miss_rate: 0.2, false_positive_rate: 0.05, jitter_px: 4.0, ..NoiseSpec::none() }),
    ] {
        for seed in 1..=seeds {
            let spec = IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() };
            let (cam, frames, ground) = simulate(spec, noise.clone(), seed);
            let counted = count(&cam, &frames, &tracker);
            let truth = truth_counts(&ground);
            println!("== {name} seed {seed}");
            let (emitted, stamped): (Vec<i64>, Vec<i64>) =
                latencies(&cam, &frames, &tracker, &ground).into_iter().unzip();
            for (what, lags) in [("emitted", emitted), ("stamped", stamped)] {
                let n = lags.len();
                let (median, p90, within) = lag_summary(lags);
                println!(
                    "| {name} | latency, {what} | median {median} frames, 90th percentile {p90}, {:.1} % within 2 frames ({n} counts) |",
                    within * 100.0
                );
            }
            let (bc, bt) = (by_line(&counted), by_line(&truth));
            for (k, t) in &bt {
                let c = bc.get(k).copied().unwrap_or(0);
                let worst = keys(&counted, &truth)
                    .into_iter()
                    .filter(|(l, d, _)| (l, d) == (&k.0, &k.1))
                    .map(|key| {
                        let (c, t) = (counted.get(&key).copied().unwrap_or(0), truth.get(&key).copied().unwrap_or(0));
                        (key.2, c, t)
                    })
                    .max_by(|a, b| {
                        let e = |x: &(String, u64, u64)| (x.1 as f64 - x.2 as f64).abs() / (x.2.max(1) as f64);
                        e(a).total_cmp(&e(b))
                    })
                    .unwrap();
                println!(
                    "| {name} | {} {:?} | {c}/{t} = {:.3} | worst class {} {}/{} |",
                    k.0,
                    k.1,
                    c as f64 / *t as f64,
                    worst.0,
                    worst.1,
                    worst.2
                );
            }
            for key in keys(&counted, &truth) {
                let (c, t) = (counted.get(&key).copied().unwrap_or(0), truth.get(&key).copied().unwrap_or(0));
                if t >= 20 && (c as f64) < 0.98 * t as f64 || (c as f64) > 1.02 * t as f64 {
                    println!("   OUT OF 2%: {key:?} {c}/{t}");
                }
            }
        }
    }
}

#[test]
#[ignore]
fn stop_and_go() {
    let spec = IntersectionSpec { duration_s: 1800.0, ..scenario::stop_and_go() };
    let (cam, frames, truth) = simulate(spec, NoiseSpec::typical(), 2);
    let counted = count(&cam, &frames, &TrackerConfig::default());
    let truth = truth_counts(&truth);
    for (k, t) in by_line(&truth) {
        println!(
            "| stop_and_go typical | {} {:?} | {}/{t} |",
            k.0,
            k.1,
            by_line(&counted).get(&k).copied().unwrap_or(0)
        );
    }
}

/// The turning-movement accuracy table: counted / true per noise level and
/// movement, all classes together, and the worst class of each movement, with
/// approaches by lines and by zones (`SEED` changes the run).
#[test]
#[ignore]
fn turning_table() {
    let minutes: f64 = std::env::var("MINUTES").ok().and_then(|s| s.parse().ok()).unwrap_or(60.0);
    let seed: u64 = std::env::var("SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    for (name, noise) in [
        ("none", NoiseSpec::none()),
        ("typical", NoiseSpec::typical()),
        ("heavy", NoiseSpec { miss_rate: 0.2, false_positive_rate: 0.05, jitter_px: 4.0, ..NoiseSpec::none() }),
    ] {
        let spec = IntersectionSpec { duration_s: minutes * 60.0, ..scenario::default_four_way() };
        let (cam, frames, truth) = simulate(spec.clone(), noise, seed);
        let truth = truth_turns(&truth);
        for by in ["lines", "zones"] {
            let (cam, analytics) = match by {
                "lines" => (cam.clone(), approaches(&cam)),
                _ => zone_approaches(&cam, &spec),
            };
            let mut agg = streetscope_aggregate::Aggregator::with_analytics(
                std::slice::from_ref(&cam),
                &TrackerConfig::default(),
                &analytics,
            );
            for f in &frames {
                agg.process(f).unwrap();
            }
            agg.finish();
            let counted = turns_of(&agg);
            let (bc, bt) = (by_movement(&counted), by_movement(&truth));
            let (mut c_all, mut t_all) = (0, 0);
            for (k, &t) in &bt {
                let c = bc.get(k).copied().unwrap_or(0);
                (c_all, t_all) = (c_all + c, t_all + t);
                let worst = truth
                    .iter()
                    .filter(|((f, to, _), _)| (f, to) == (&k.0, &k.1))
                    .map(|(key, &t)| (key.2.clone(), counted.get(key).copied().unwrap_or(0), t))
                    .max_by(|a, b| {
                        let e = |x: &(String, u64, u64)| (x.1 as f64 - x.2 as f64).abs() / x.2 as f64;
                        e(a).total_cmp(&e(b))
                    })
                    .unwrap();
                println!(
                    "| {name} | {by} | {} -> {} | {c}/{t} = {:.3} | worst class {} {}/{} |",
                    k.0,
                    k.1,
                    c as f64 / t as f64,
                    worst.0,
                    worst.1,
                    worst.2
                );
            }
            let extra: u64 = counted.iter().filter(|(k, _)| !truth.contains_key(*k)).map(|(_, c)| c).sum();
            println!(
                "| {name} | {by} | all | {c_all}/{t_all} = {:.3} | movements or classes that never happened: {extra} |",
                c_all as f64 / t_all as f64
            );
        }
    }
}
