//! Zones, queues and speeds against the simulator's ground truth.
//!
//! Queues: the simulator's queue per inbound lane (vehicles in view, before the
//! stop line, slower than its queue speed) against the aggregator's queue zones
//! ([`IntersectionSpec::queue_zones`]) with the same speed threshold, every whole
//! second. Dwell: the time each vehicle's exact reference point spends in a zone,
//! by the aggregator's own rule, against the window records. Speed: each
//! crossing's and each turning movement's speed against the vehicle's true speed,
//! on a calibrated camera.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::*;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig, ZoneConfig, ZoneKind};
use streetscope_contracts::records::{CrossingEvent, TurningMovementEvent, WindowRecord};
use streetscope_contracts::{Direction, NormPoint};
use streetscope_simulator::{scenario, GroundTruth, IntersectionSpec, NoiseSpec, SimFrame, Simulation, PX_PER_M};

/// Everything a run gives: records, and the queues per lane at every whole second.
#[derive(Debug, Default)]
struct Run {
    crossings: Vec<CrossingEvent>,
    turns: Vec<TurningMovementEvent>,
    windows: Vec<WindowRecord>,
    /// (second, lane) -> queued.
    queues: BTreeMap<(i64, String), u32>,
}

struct Sim {
    cam: CameraConfig,
    frames: Vec<SimFrame>,
    truth: GroundTruth,
}

fn simulate_frames(
    spec: IntersectionSpec,
    noise: NoiseSpec,
    seed: u64,
    zones: Vec<ZoneConfig>,
    calibrated: bool,
) -> Sim {
    let mut sim = Simulation::new(spec, noise, seed).expect("valid spec");
    let mut cam = camera(&sim);
    cam.zones = zones;
    if calibrated {
        cam.calibration = Some(Box::new(sim.spec().calibration()));
    }
    let frames: Vec<SimFrame> = sim.by_ref().collect();
    Sim { cam, frames, truth: sim.ground_truth() }
}

/// Analytics whose queue speed is the simulator's (10 px/s: 3 km/h at 12 px/m,
/// or 10/720 image heights per second).
fn analytics(sim: &Sim) -> AnalyticsConfig {
    let mut a = approaches(&sim.cam);
    let spec_speed = IntersectionSpec::default().queue_speed_px_s;
    a.speed.queue_max_kmh = spec_speed / PX_PER_M * 3.6;
    a.speed.queue_max_image_speed = spec_speed / 720.0;
    a.window_lengths_s = vec![60];
    a
}

fn run(sim: &Sim, analytics: &AnalyticsConfig) -> Run {
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(&sim.cam), &TrackerConfig::default(), analytics);
    let mut out = Run::default();
    let epoch = sim.truth_epoch();
    for f in sim.frames.iter().filter_map(|f| f.detections.as_ref()) {
        out.crossings.extend(agg.process(f).unwrap());
        out.turns.extend(agg.take_turning_events());
        out.windows.extend(agg.take_windows());
        if (f.capture_time_ms - epoch) % 1000 == 0 {
            for (lane, n) in agg.queue_lengths(&sim.cam.id) {
                out.queues.insert(((f.capture_time_ms - epoch) / 1000, lane), n);
            }
        }
    }
    out.crossings.extend(agg.finish());
    out.turns.extend(agg.take_turning_events());
    out.windows.extend(agg.take_windows());
    out
}

impl Sim {
    fn truth_epoch(&self) -> i64 {
        IntersectionSpec::default().epoch_ms
    }

    /// (second, lane) -> queued in view, from the truth.
    fn true_queues(&self) -> BTreeMap<(i64, String), u32> {
        let mut out = BTreeMap::new();
        for q in &self.truth.queues {
            for (k, n) in q.queued_in_view_by_lane.iter().enumerate() {
                out.insert((q.time_s.round() as i64, format!("{}_{k}", q.approach.name())), *n);
            }
        }
        out
    }
}

/// Per lane: (samples, mean |error|, share within ±1, mean true, mean measured).
fn compare_queues(
    measured: &BTreeMap<(i64, String), u32>,
    truth: &BTreeMap<(i64, String), u32>,
    lanes: &[&str],
) -> BTreeMap<String, (usize, f64, f64, f64, f64)> {
    let mut out = BTreeMap::new();
    for lane in lanes {
        let pairs: Vec<(f64, f64)> = truth
            .iter()
            .filter(|((_, l), _)| l == lane)
            .map(|(k, &t)| (f64::from(t), f64::from(measured.get(k).copied().unwrap_or(0))))
            .collect();
        let n = pairs.len() as f64;
        let mae = pairs.iter().map(|(t, m)| (t - m).abs()).sum::<f64>() / n;
        let within1 = pairs.iter().filter(|(t, m)| (t - m).abs() <= 1.0).count() as f64 / n;
        let mt = pairs.iter().map(|p| p.0).sum::<f64>() / n;
        let mm = pairs.iter().map(|p| p.1).sum::<f64>() / n;
        out.insert(lane.to_string(), (pairs.len(), mae, within1, mt, mm));
    }
    out
}

#[test]
fn queue_lengths_per_lane_follow_the_truth_in_stop_and_go_traffic() {
    let spec = IntersectionSpec { duration_s: 600.0, ..scenario::stop_and_go() };
    let zones = spec.queue_zones();
    for (noise, calibrated, max_mae, min_within1) in [
        (NoiseSpec::none(), false, 0.35, 0.97),
        (NoiseSpec::none(), true, 0.35, 0.97),
        (NoiseSpec::typical(), true, 0.6, 0.9),
    ] {
        let sim = simulate_frames(spec.clone(), noise.clone(), 3, zones.clone(), calibrated);
        let out = run(&sim, &analytics(&sim));
        let stats = compare_queues(&out.queues, &sim.true_queues(), &["north_0", "north_1"]);
        eprintln!(
            "noise {noise:?} calibrated {calibrated}: (samples, MAE, within 1, mean true, mean measured) {stats:?}"
        );
        for (lane, (n, mae, within1, mean_true, mean_measured)) in &stats {
            assert!(*n >= 590, "{lane}: {n} samples");
            assert!(*mean_true > 2.0, "{lane}: the scenario should queue ({mean_true})");
            assert!(*mae <= max_mae, "{lane}: mean absolute error {mae:.2} > {max_mae}");
            assert!(*within1 >= min_within1, "{lane}: {within1:.3} of samples within one vehicle");
            assert!((mean_true - mean_measured).abs() <= 0.3, "{lane}: mean {mean_measured:.2} vs true {mean_true:.2}");
        }
        // The windows carry the same: max and mean queue per lane.
        let truth = sim.true_queues();
        for w in out.windows.iter().filter(|w| w.complete || noise.frame_drop_rate == 0.0) {
            let (start_s, end_s) =
                ((w.window_start_ms - sim.truth_epoch()) / 1000, (w.window_end_ms - sim.truth_epoch()) / 1000);
            for q in &w.queues {
                let samples: Vec<u32> = truth
                    .range((start_s, q.lane.clone())..(end_s, q.lane.clone()))
                    .filter(|(k, _)| k.1 == q.lane)
                    .map(|(_, &n)| n)
                    .collect();
                if samples.len() < 50 {
                    continue; // the partial window at the end
                }
                let true_max = *samples.iter().max().unwrap();
                let true_mean = samples.iter().sum::<u32>() as f64 / samples.len() as f64;
                assert!(
                    q.max_queue.abs_diff(true_max) <= 1,
                    "{} {}: max {} vs {true_max}",
                    start_s,
                    q.lane,
                    q.max_queue
                );
                assert!(
                    (q.mean_queue - true_mean).abs() <= 0.5,
                    "{} {}: mean {:.2} vs {true_mean:.2}",
                    start_s,
                    q.lane,
                    q.mean_queue
                );
            }
        }
    }
}

/// The junction box less `inset` px on every side, as a zone.
fn junction_zone(spec: &IntersectionSpec, inset: f64) -> ZoneConfig {
    let [hx, hy] = spec.junction_half_size();
    let [cx, cy] = spec.center_px();
    let (w, h) = (f64::from(spec.width), f64::from(spec.height));
    let (x0, x1, y0, y1) = ((cx - hx + inset) / w, (cx + hx - inset) / w, (cy - hy + inset) / h, (cy + hy - inset) / h);
    ZoneConfig::new("junction", vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]], ZoneKind::Zone)
}

/// Per window start (ms) and zone: (dwells, mean dwell s, mean occupancy), from
/// the exact reference points by the aggregator's rule.
fn true_dwells(sim: &Sim, zones: &[ZoneConfig], length_ms: i64) -> BTreeMap<(i64, String), (u64, f64, f64)> {
    let (w, h) = (sim.truth_spec_size().0, sim.truth_spec_size().1);
    let epoch = sim.truth_epoch();
    let ms = |f: &SimFrame| epoch + (f.time_s * 1000.0).round() as i64;
    // (vehicle, zone) -> (enter, last seen inside)
    let mut inside: HashMap<(u64, usize), (i64, i64)> = HashMap::new();
    let mut sums: BTreeMap<(i64, String), (u64, i64)> = BTreeMap::new();
    // (window, zone) -> (vehicles inside summed over frames, frames)
    let mut occ: BTreeMap<(i64, String), (u64, u64)> = BTreeMap::new();
    let mut file = |leave: i64, zone: &str, dwell: i64| {
        let e = sums.entry((leave.div_euclid(length_ms) * length_ms, zone.to_owned())).or_insert((0, 0));
        e.0 += 1;
        e.1 += dwell;
    };
    for f in &sim.frames {
        let seen: HashMap<u64, NormPoint> =
            f.objects.iter().map(|o| (o.vehicle_id, o.bbox.bottom_center_norm(w, h))).collect();
        for (zi, z) in zones.iter().enumerate() {
            let o = occ.entry((ms(f).div_euclid(length_ms) * length_ms, z.name.clone())).or_insert((0, 0));
            o.0 += seen.values().filter(|&&p| z.contains(p)).count() as u64;
            o.1 += 1;
            for (&v, &p) in &seen {
                let key = (v, zi);
                match (inside.get(&key).copied(), z.contains(p)) {
                    (None, true) => {
                        inside.insert(key, (ms(f), ms(f)));
                    }
                    (Some((enter, _)), true) => {
                        inside.insert(key, (enter, ms(f)));
                    }
                    (Some((enter, _)), false) => {
                        inside.remove(&key);
                        file(ms(f), &z.name, ms(f) - enter);
                    }
                    (None, false) => {}
                }
            }
        }
        // Vehicles gone from view end their stay where they were last seen.
        let gone: Vec<(u64, usize)> = inside.keys().filter(|k| !seen.contains_key(&k.0)).copied().collect();
        for key in gone {
            let (enter, last) = inside.remove(&key).expect("listed");
            file(last, &zones[key.1].name, last - enter);
        }
    }
    occ.into_iter()
        .map(|(k, (inside, frames))| {
            let (n, sum) = sums.get(&k).copied().unwrap_or((0, 0));
            let mean_dwell = if n == 0 { 0.0 } else { sum as f64 / 1000.0 / n as f64 };
            (k, (n, mean_dwell, inside as f64 / frames as f64))
        })
        .collect()
}

impl Sim {
    fn truth_spec_size(&self) -> (u32, u32) {
        let f = self.frames.iter().find_map(|f| f.detections.as_ref()).expect("a frame");
        (f.width, f.height)
    }
}

#[test]
fn dwell_times_and_occupancy_follow_the_truth() {
    let spec = IntersectionSpec { duration_s: 600.0, ..scenario::default_four_way() };
    let mut zones = vec![junction_zone(&spec, 5.0)];
    zones.extend(spec.queue_zones().into_iter().filter(|z| z.name.starts_with("north")));
    for (noise, max_count_err, max_mean_err_s, max_occ_err) in
        [(NoiseSpec::none(), 0.05, 0.3f64, 0.1f64), (NoiseSpec::typical(), 0.1, 1.0, 0.2)]
    {
        let sim = simulate_frames(spec.clone(), noise.clone(), 9, zones.clone(), false);
        let out = run(&sim, &analytics(&sim));
        let truth = true_dwells(&sim, &zones, 60_000);
        let (mut n_true, mut n_measured, mut worst_occ) = (0u64, 0u64, 0.0f64);
        let mut report = String::new();
        for w in out.windows.iter().filter(|w| w.window_end_ms <= sim.truth_epoch() + 600_000) {
            for z in &w.zones {
                let &(tn, tmean, tocc) = truth.get(&(w.window_start_ms, z.zone.clone())).expect("a window of frames");
                let occ_err = (z.mean_occupancy - tocc).abs();
                assert!(
                    occ_err <= max_occ_err.max(0.05 * tocc),
                    "{}: mean occupancy {:.2} vs {tocc:.2}",
                    z.zone,
                    z.mean_occupancy
                );
                worst_occ = worst_occ.max(occ_err);
                n_true += tn;
                n_measured += z.dwells;
                if tn >= 3 && z.dwells > 0 {
                    let err = (z.mean_dwell_s.unwrap() - tmean).abs();
                    report += &format!(
                        "{} {:>10}: {:>3}/{:>3} dwells, mean {:>6.2}/{:>6.2} s\n",
                        (w.window_start_ms - sim.truth_epoch()) / 1000,
                        z.zone,
                        z.dwells,
                        tn,
                        z.mean_dwell_s.unwrap(),
                        tmean
                    );
                    assert!(
                        err <= max_mean_err_s.max(0.05 * tmean),
                        "{}: mean dwell {:?} vs {tmean:.2}\n{report}",
                        z.zone,
                        z.mean_dwell_s
                    );
                }
                assert!(f64::from(z.max_occupancy) >= z.mean_occupancy);
            }
        }
        eprintln!("noise {noise:?}: dwells {n_measured} measured, {n_true} true; worst mean occupancy error {worst_occ:.3}\n{report}");
        assert!(n_true > 250, "{n_true}");
        let err = (n_measured as f64 - n_true as f64).abs() / n_true as f64;
        assert!(err <= max_count_err, "dwells {n_measured} vs {n_true}");
    }
}

/// The true speed of each vehicle at each frame, km/h.
fn true_speeds(sim: &Sim) -> HashMap<(u64, u64), f64> {
    sim.frames
        .iter()
        .flat_map(|f| f.objects.iter().map(move |o| ((o.vehicle_id, f.seq), o.speed_px_s / PX_PER_M * 3.6)))
        .collect()
}

/// Pairs each crossing with the truth's crossing of the same line and direction
/// nearest in frames (within 3); returns (measured, true) speeds.
fn crossing_speeds(sim: &Sim, crossings: &[CrossingEvent]) -> Vec<(f64, f64)> {
    let speeds = true_speeds(sim);
    let mut taken = vec![false; sim.truth.crossings.len()];
    let mut out = Vec::new();
    for c in crossings {
        let Some(kmh) = c.speed_kmh else { continue };
        let best = sim
            .truth
            .crossings
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                !taken[*i] && t.line == c.line && t.direction == c.direction && t.seq.abs_diff(c.frame_seq) <= 3
            })
            .min_by_key(|(i, t)| (t.seq.abs_diff(c.frame_seq), *i));
        if let Some((i, t)) = best {
            taken[i] = true;
            if let Some(&v) = speeds.get(&(t.vehicle_id, t.seq)) {
                out.push((kmh, v));
            }
        }
    }
    out
}

fn quantile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn speeds_on_a_calibrated_camera_follow_the_truth() {
    let spec = IntersectionSpec { duration_s: 600.0, ..scenario::default_four_way() };
    for (noise, max_median, max_p90) in [(NoiseSpec::none(), 1.0, 3.0), (NoiseSpec::typical(), 1.5, 4.5)] {
        let sim = simulate_frames(spec.clone(), noise.clone(), 21, Vec::new(), true);
        let out = run(&sim, &analytics(&sim));
        // Spot speeds at the arm lines, entering (straight approach lanes).
        let pairs = crossing_speeds(&sim, &out.crossings);
        let entering: Vec<f64> = pairs.iter().map(|(m, t)| (m - t).abs()).collect();
        let (median, p90) = (quantile(entering.clone(), 0.5), quantile(entering.clone(), 0.9));
        let mean_true = pairs.iter().map(|p| p.1).sum::<f64>() / pairs.len() as f64;
        eprintln!("noise {noise:?}: {} crossings, |error| median {median:.2} km/h, p90 {p90:.2} (mean true speed {mean_true:.1} km/h)", pairs.len());
        assert!(entering.len() > 300, "{}", entering.len());
        assert!(median <= max_median && p90 <= max_p90, "median {median:.2}, p90 {p90:.2}");
        let bias = pairs.iter().map(|(m, t)| m - t).sum::<f64>() / pairs.len() as f64;
        assert!(bias.abs() <= 1.0, "bias {bias:.2} km/h");

        // Movement speeds: each vehicle's mean speed from entry to exit.
        let speeds = true_speeds(&sim);
        let vehicles: HashMap<(u64, u64), u64> =
            sim.truth.vehicles.iter().filter_map(|v| Some(((v.entry?.seq, v.exit?.seq), v.id))).collect();
        let mut errs = Vec::new();
        for t in &out.turns {
            let Some(kmh) = t.speed_kmh else { continue };
            // The vehicle whose entry and exit frames are nearest.
            let Some((_, &id)) = vehicles
                .iter()
                .filter(|((e, x), _)| e.abs_diff(t.entry_frame_seq) <= 3 && x.abs_diff(t.exit_frame_seq) <= 3)
                .min_by_key(|((e, x), id)| (e.abs_diff(t.entry_frame_seq) + x.abs_diff(t.exit_frame_seq), **id))
            else {
                continue;
            };
            let (a, b) = (t.entry_frame_seq.min(t.exit_frame_seq), t.entry_frame_seq.max(t.exit_frame_seq));
            let along: Vec<f64> = (a..b).filter_map(|s| speeds.get(&(id, s)).copied()).collect();
            if along.is_empty() {
                continue;
            }
            let truth = along.iter().sum::<f64>() / along.len() as f64;
            errs.push((kmh - truth) / truth);
        }
        let rel: Vec<f64> = errs.iter().map(|e| e.abs()).collect();
        let (median, p90) = (quantile(rel.clone(), 0.5), quantile(rel, 0.9));
        eprintln!("noise {noise:?}: {} movements, relative |error| median {median:.3}, p90 {p90:.3}", errs.len());
        assert!(errs.len() > 150, "{}", errs.len());
        assert!(median <= 0.05 && p90 <= 0.15, "movement speed error median {median:.3}, p90 {p90:.3}");
        // Each window has its movements' speeds.
        let with_speeds = out.windows.iter().filter(|w| !w.speeds.is_empty()).count();
        assert!(with_speeds >= 9, "{with_speeds}");
        for w in &out.windows {
            for s in &w.speeds {
                assert!(s.vehicles > 0 && s.p50_kmh <= s.p85_kmh && s.mean_kmh > 5.0 && s.mean_kmh < 80.0, "{s:?}");
            }
        }
    }
    // Without a calibration there are no km/h.
    let sim = simulate_frames(
        IntersectionSpec { duration_s: 60.0, ..scenario::default_four_way() },
        NoiseSpec::none(),
        21,
        Vec::new(),
        false,
    );
    let out = run(&sim, &analytics(&sim));
    assert!(!out.crossings.is_empty() && out.crossings.iter().all(|c| c.speed_kmh.is_none()));
    let _ = Direction::Forward;
}
