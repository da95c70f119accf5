//! The simulator through its public API: determinism, the exact and the noisy
//! detector, the ground truth's consistency, the specs' serde and validation.

use std::collections::{BTreeMap, HashMap};

use streetscope_contracts::{Direction, NormPoint};
use streetscope_simulator::{
    scenario, Approach, DetectionSource, DrivingSide, GroundTruth, IntersectionSpec, NoiseSpec, SignalPlan, SimFrame,
    Simulation,
};

fn short(duration_s: f64) -> IntersectionSpec {
    IntersectionSpec { duration_s, ..IntersectionSpec::default() }
}

fn run(spec: IntersectionSpec, noise: NoiseSpec, seed: u64) -> (Vec<SimFrame>, GroundTruth) {
    let mut sim = Simulation::new(spec, noise, seed).unwrap();
    let frames: Vec<SimFrame> = sim.by_ref().collect();
    (frames, sim.ground_truth())
}

#[test]
fn same_seed_same_output_and_different_seed_different_output() {
    let (fa, ta) = run(short(120.0), NoiseSpec::typical(), 7);
    let (fb, tb) = run(short(120.0), NoiseSpec::typical(), 7);
    assert_eq!(fa, fb);
    assert_eq!(serde_json::to_string(&ta).unwrap(), serde_json::to_string(&tb).unwrap());
    let (fc, tc) = run(short(120.0), NoiseSpec::typical(), 8);
    assert_ne!(fa, fc);
    assert_ne!(ta.vehicles, tc.vehicles);
}

#[test]
fn the_noise_never_changes_the_traffic() {
    let (_, exact) = run(short(300.0), NoiseSpec::none(), 11);
    let noisy =
        NoiseSpec { frame_drop_rate: 0.05, occlusion_rate_per_s: 0.2, class_flip_rate: 0.1, ..NoiseSpec::typical() };
    let (_, with_noise) = run(short(300.0), noisy, 11);
    assert_eq!(exact, with_noise);
}

#[test]
fn a_perfect_detector_reports_exactly_the_true_boxes() {
    let (frames, _) = run(short(300.0), NoiseSpec::none(), 5);
    let mut boxes = 0;
    for f in &frames {
        let d = f.detections.as_ref().expect("no frame is dropped");
        assert_eq!((d.seq, d.width, d.height, &*d.camera_id), (f.seq, 1280, 720, "sim-0001-cam"));
        assert_eq!(d.pts_ns, f.seq * 100_000_000);
        assert_eq!(d.capture_time_ms, 1_767_225_600_000 + f.seq as i64 * 100);
        assert_eq!(d.detections.len(), f.objects.len());
        let by_id: HashMap<u64, _> = f.objects.iter().map(|o| (o.vehicle_id, o)).collect();
        for (det, src) in d.detections.iter().zip(&f.sources) {
            let DetectionSource::Vehicle(id) = src else { panic!("a false positive without noise") };
            let truth = by_id[id];
            assert_eq!((det.bbox, det.class_id, &det.class_name), (truth.bbox, truth.class_id, &truth.class_name));
            assert!((0.5..0.95).contains(&det.score));
            boxes += 1;
        }
    }
    assert!(boxes > 20_000, "{boxes}");
}

#[test]
fn noise_rates_come_out_as_specified() {
    let noise = NoiseSpec {
        miss_rate: 0.1,
        false_positive_rate: 0.02,
        false_positives_per_frame: 0.1,
        jitter_px: 2.0,
        frame_drop_rate: 0.05,
        class_flip_rate: 0.03,
        ..NoiseSpec::none()
    };
    let (frames, _) = run(short(600.0), noise, 21);
    let (mut visible, mut found, mut fps, mut flips, mut dropped, mut kept) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut errors: Vec<f64> = Vec::new();
    for f in &frames {
        let Some(d) = &f.detections else {
            dropped += 1;
            continue;
        };
        kept += 1;
        visible += f.objects.len() as u64;
        let by_id: HashMap<u64, _> = f.objects.iter().map(|o| (o.vehicle_id, o)).collect();
        for (det, src) in d.detections.iter().zip(&f.sources) {
            match src {
                DetectionSource::FalsePositive => {
                    fps += 1;
                    assert!((0.25..0.5).contains(&det.score));
                }
                DetectionSource::Vehicle(id) => {
                    found += 1;
                    let t = by_id[id];
                    flips += u64::from(det.class_id != t.class_id);
                    // Edges away from the image border, where clipping would bias them.
                    let (a, b) = (det.bbox, t.bbox);
                    if b.x1 > 20.0 && b.y1 > 20.0 && b.x2 < 1260.0 && b.y2 < 700.0 {
                        errors.extend([a.x1 - b.x1, a.y1 - b.y1, a.x2 - b.x2, a.y2 - b.y2].map(f64::from));
                    }
                }
            }
        }
    }
    let frames_n = frames.len() as f64;
    assert!(visible >= 20_000, "{visible}");
    let miss = 1.0 - found as f64 / visible as f64;
    assert!((miss - 0.1).abs() < 0.01, "miss rate {miss}");
    let fp_expected = 0.02 * visible as f64 + 0.1 * kept as f64;
    assert!((fps as f64 / fp_expected - 1.0).abs() < 0.1, "false positives {fps}, expected {fp_expected}");
    let flip = flips as f64 / found as f64;
    assert!((flip - 0.03).abs() < 0.005, "class flips {flip}");
    let drop = dropped as f64 / frames_n;
    assert!((drop - 0.05).abs() < 0.01, "frame drops {drop}");
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    let sd = (errors.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / errors.len() as f64).sqrt();
    assert!(mean.abs() < 0.05 && (sd - 2.0).abs() < 0.05, "jitter mean {mean}, sd {sd}");
}

#[test]
fn occlusions_hide_a_vehicle_for_the_set_number_of_frames() {
    let noise = NoiseSpec { occlusion_rate_per_s: 0.1, occlusion_frames: 12, ..NoiseSpec::none() };
    let (frames, _) = run(short(600.0), noise, 4);
    // Per vehicle: the frames it was visible in, and whether it was detected.
    let mut seen: BTreeMap<u64, Vec<(u64, bool)>> = BTreeMap::new();
    for f in &frames {
        let detected: Vec<u64> = f
            .sources
            .iter()
            .filter_map(|s| match s {
                DetectionSource::Vehicle(id) => Some(*id),
                DetectionSource::FalsePositive => None,
            })
            .collect();
        for o in &f.objects {
            seen.entry(o.vehicle_id).or_default().push((f.seq, detected.contains(&o.vehicle_id)));
        }
    }
    let (mut gaps, mut vehicle_seconds) = (0u64, 0.0);
    for frames in seen.values() {
        vehicle_seconds += frames.len() as f64 / 10.0;
        let mut run_len = 0;
        for (i, &(_, detected)) in frames.iter().enumerate() {
            if detected {
                if run_len > 0 {
                    assert_eq!(run_len % 12, 0, "an occlusion lasted {run_len} frames");
                    gaps += 1;
                }
                run_len = 0;
            } else {
                run_len += 1;
                let _ = i;
            }
        }
    }
    let rate = gaps as f64 / vehicle_seconds;
    assert!(gaps > 300 && (rate - 0.1).abs() < 0.02, "{gaps} occlusions in {vehicle_seconds} s: {rate}/s");
}

/// Every vehicle crosses its entry line in, then its exit line out, once each, and nothing else.
fn check_truth_consistency(t: &GroundTruth) {
    let mut per_vehicle: HashMap<u64, Vec<(&str, Direction, u64)>> = HashMap::new();
    for c in &t.crossings {
        per_vehicle.entry(c.vehicle_id).or_default().push((&c.line, c.direction, c.seq));
    }
    let mut exited = 0;
    for v in &t.vehicles {
        let arm_crossings: Vec<(&str, Direction, u64)> = per_vehicle
            .get(&v.id)
            .map(|cs| cs.iter().copied().filter(|c| Approach::ALL.iter().any(|a| a.name() == c.0)).collect())
            .unwrap_or_default();
        let (from, to) = (v.movement.from.name(), v.movement.to.name());
        let expected: Vec<(&str, Direction)> = match (v.entry, v.exit) {
            (Some(_), Some(_)) => vec![(from, Direction::Forward), (to, Direction::Backward)],
            (Some(_), None) => vec![(from, Direction::Forward)],
            (None, Some(_)) => vec![(to, Direction::Backward)],
            (None, None) => vec![],
        };
        // Sorted: the reference point of a vehicle from the south is its rear
        // bumper, so on a tight right turn its exit crossing can come first.
        let mut got: Vec<(&str, Direction)> = arm_crossings.iter().map(|c| (c.0, c.1)).collect();
        got.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(got, expected, "vehicle {} ({})", v.id, v.movement);
        if let (Some(entry), Some(exit)) = (v.entry, v.exit) {
            assert!(entry.seq <= exit.seq || v.movement.from == Approach::South, "{}: {entry:?} {exit:?}", v.movement);
            exited += 1;
        }
        if v.spawn_s >= 0.0 && v.exit.is_some() {
            assert!(v.entry.is_some(), "vehicle {} exited without entering", v.id);
        }
        if v.despawn_s.is_some() && v.spawn_s >= 0.0 {
            assert!(v.exit.is_some(), "vehicle {} left the road unseen: {v:?} {:?}", v.id, per_vehicle.get(&v.id));
        }
    }
    assert!(exited > 20, "{exited}");
    let tm_total: u64 = t.turning_movements.iter().map(|c| c.count).sum();
    assert_eq!(tm_total, exited);
    assert_eq!(t.counts.iter().map(|c| c.count).sum::<u64>(), t.crossings.len() as u64);
    for a in Approach::ALL {
        let entered = t.vehicles.iter().filter(|v| v.movement.from == a && v.entry.is_some()).count() as u64;
        assert_eq!(t.line_total(a.name(), Direction::Forward), entered);
        let left = t.vehicles.iter().filter(|v| v.movement.to == a && v.exit.is_some()).count() as u64;
        assert_eq!(t.line_total(a.name(), Direction::Backward), left);
    }
}

#[test]
fn ground_truth_is_consistent_in_every_layout() {
    let mut two_phase = short(900.0);
    two_phase.signal = SignalPlan::two_phase(25.0, 20.0);
    two_phase.approaches.west.lanes_in = 3;
    two_phase.approaches.north.lanes_out = 1;
    let left = IntersectionSpec { driving_side: DrivingSide::Left, ..short(900.0) };
    let off_centre = IntersectionSpec { center: [0.4, 0.55], lane_width_px: 36.0, ..short(900.0) };
    for spec in [short(900.0), two_phase, left, off_centre, scenario::stop_and_go()] {
        let (_, truth) = run(spec, NoiseSpec::none(), 2);
        check_truth_consistency(&truth);
    }
}

#[test]
fn turning_movements_follow_the_turning_ratios() {
    let (_, t) = run(short(3600.0), NoiseSpec::none(), 9);
    for a in Approach::ALL {
        let total: u64 = Approach::ALL.iter().map(|&b| t.turning(a, b, None)).sum();
        let straight = t.turning(a, a.exit_for(streetscope_simulator::Movement::Straight), None);
        let share = straight as f64 / total as f64;
        assert!(total > 300 && (share - 0.6).abs() < 0.06, "{a}: {straight} of {total}");
    }
}

#[test]
fn warm_up_fills_the_road_and_counts_nothing_before_frame_0() {
    let spec = IntersectionSpec { warmup_s: 120.0, ..short(120.0) };
    let (frames, t) = run(spec, NoiseSpec::none(), 6);
    assert!(frames[0].objects.len() > 5, "{}", frames[0].objects.len());
    assert!(t.vehicles.iter().any(|v| v.spawn_s < 0.0));
    assert!(t.crossings.iter().all(|c| c.time_s >= 0.0));
    // Vehicles already past their entry line at frame 0 are not in the turning movements.
    let early: Vec<_> = t.vehicles.iter().filter(|v| v.entry.is_none() && v.exit.is_some()).collect();
    assert!(!early.is_empty());
    check_truth_consistency(&t);
}

#[test]
fn queues_are_sampled_every_second_per_approach() {
    let (_, t) = run(short(300.0), NoiseSpec::none(), 8);
    assert_eq!(t.queues.len(), 300 * 4);
    for (i, q) in t.queues.iter().enumerate() {
        assert_eq!(q.time_s, (i / 4) as f64);
        assert_eq!(q.approach, Approach::ALL[i % 4]);
        assert!(q.queued_in_view <= q.queued);
    }
    for a in Approach::ALL {
        let max = t.queues.iter().filter(|q| q.approach == a).map(|q| q.queued).max().unwrap();
        assert!((3..40).contains(&max), "{a}: {max}");
    }
}

#[test]
fn stop_and_go_traffic_stands_on_the_lines_and_counts_once() {
    let spec = IntersectionSpec { duration_s: 900.0, ..scenario::stop_and_go() };
    let lines = spec.counting_lines();
    let north = lines.iter().find(|l| l.name == "north").unwrap().clone();
    let queue = lines.iter().find(|l| l.name == scenario::QUEUE_LINE).unwrap().clone();
    let (frames, t) = run(spec, NoiseSpec::none(), 12);
    let (mut standing_on_stop_line, mut near_queue_line) = (0, 0);
    let mut stops: HashMap<u64, (bool, u32)> = HashMap::new();
    for f in &frames {
        for o in &f.objects {
            let anchor: NormPoint = o.bbox.bottom_center_norm(1280, 720);
            if o.speed_px_s == 0.0 {
                standing_on_stop_line += u32::from(north.side(anchor) == 0.0);
                near_queue_line += u32::from(queue.side(anchor).abs() * 720.0 < 3.0);
            }
            let e = stops.entry(o.vehicle_id).or_insert((false, 0));
            let stopped = o.speed_px_s < 1.0;
            if stopped && !e.0 {
                e.1 += 1;
            }
            e.0 = stopped;
        }
    }
    assert!(standing_on_stop_line > 500, "{standing_on_stop_line}");
    assert!(near_queue_line > 100, "{near_queue_line}");
    let stop_and_go = stops.values().filter(|s| s.1 >= 2).count();
    assert!(stop_and_go * 2 > stops.len(), "vehicles should stop and go: {stop_and_go} of {}", stops.len());
    check_truth_consistency(&t);
    // The queue line: at most one crossing per vehicle, always inwards.
    let mut per_vehicle: HashMap<u64, u32> = HashMap::new();
    for c in t.crossings.iter().filter(|c| c.line == scenario::QUEUE_LINE) {
        assert_eq!(c.direction, Direction::Forward);
        *per_vehicle.entry(c.vehicle_id).or_default() += 1;
    }
    assert!(per_vehicle.len() > 100 && per_vehicle.values().all(|&n| n == 1));
    // The queue stands all the time but does not grow without bound.
    let north: Vec<u32> = t.queues.iter().filter(|q| q.approach == Approach::North).map(|q| q.queued).collect();
    assert!(north.iter().filter(|&&q| q >= 4).count() * 2 > north.len());
    assert!(t.queues.iter().all(|q| q.backlog < 10));
}

#[test]
fn specs_round_trip_through_json_and_toml() {
    let spec = scenario::stop_and_go();
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<IntersectionSpec>(&json).unwrap(), spec);
    let toml_text = toml::to_string(&spec).unwrap();
    assert_eq!(toml::from_str::<IntersectionSpec>(&toml_text).unwrap(), spec);
    let noise = NoiseSpec { occlusion_rate_per_s: 0.3, ..NoiseSpec::typical() };
    assert_eq!(toml::from_str::<NoiseSpec>(&toml::to_string(&noise).unwrap()).unwrap(), noise);

    // Only what differs from the default needs writing; unknown fields are refused.
    let partial: IntersectionSpec =
        toml::from_str("fps = 25.0\n[approaches.north]\nrate_veh_h = 100.0\n[approaches.north.turning]\nleft = 0.5")
            .unwrap();
    assert_eq!(partial.fps, 25.0);
    assert_eq!(partial.approaches.north.rate_veh_h, 100.0);
    assert_eq!(partial.approaches.north.turning.left, 0.5);
    assert_eq!(partial.approaches.north.turning.straight, 0.6);
    assert_eq!(partial.approaches.east, IntersectionSpec::default().approaches.east);
    let err = toml::from_str::<IntersectionSpec>("fsp = 25.0").unwrap_err().to_string();
    assert!(err.contains("fsp"), "{err}");
    assert!(toml::from_str::<NoiseSpec>("miss = 0.1").is_err());

    let (_, truth) = run(short(60.0), NoiseSpec::none(), 1);
    let back: GroundTruth = serde_json::from_str(&serde_json::to_string(&truth).unwrap()).unwrap();
    // serde_json may parse a float one ulp off (without its `float_roundtrip`
    // feature), so the times are compared with a tolerance.
    assert_eq!(
        (&back.counts, &back.turning_movements, &back.lines),
        (&truth.counts, &truth.turning_movements, &truth.lines)
    );
    assert_eq!(back.vehicles.len(), truth.vehicles.len());
    for (a, b) in back.vehicles.iter().zip(&truth.vehicles) {
        assert_eq!(
            (a.id, &a.class_name, a.movement, a.entry.map(|e| e.seq)),
            (b.id, &b.class_name, b.movement, b.entry.map(|e| e.seq))
        );
        assert!((a.spawn_s - b.spawn_s).abs() < 1e-9);
    }
    assert_eq!(back.crossings.len(), truth.crossings.len());
    assert_eq!(back.queues.len(), truth.queues.len());
}

#[test]
fn validation_names_the_field_and_the_value() {
    let mut spec = IntersectionSpec { fps: 0.0, ..IntersectionSpec::default() };
    spec.approaches.east.turning.left = -1.0;
    spec.approaches.south.lanes_in = 0;
    spec.classes[2].width_px = 55.0;
    spec.signal.phases[1].green_s = f64::NAN;
    let errs = spec.validate().unwrap_err();
    let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    let has = |field: &str, value: &str| errs.iter().any(|e| e.field == field && e.value == value);
    assert!(has("fps", "0"), "{shown:#?}");
    assert!(has("approaches.east.turning.left", "-1"), "{shown:#?}");
    assert!(has("approaches.south.rate_veh_h", "400"), "{shown:#?}");
    assert!(has("classes[2].width_px", "55"), "{shown:#?}");
    assert!(has("signal.phases[1].green_s", "NaN"), "{shown:#?}");

    let crowded = IntersectionSpec { lane_width_px: 200.0, ..IntersectionSpec::default() };
    let errs = crowded.validate().unwrap_err();
    assert!(errs.iter().any(|e| e.field == "lane_width_px" && e.value == "200"), "{errs:?}");

    let mut orphan = IntersectionSpec { signal: SignalPlan::two_phase(10.0, 10.0), ..IntersectionSpec::default() };
    orphan.signal.phases.pop();
    let errs = orphan.validate().unwrap_err();
    assert!(errs.iter().any(|e| e.field == "approaches.east.rate_veh_h" && e.reason.contains("no green")), "{errs:?}");

    let noise = NoiseSpec { miss_rate: 1.5, jitter_px: -1.0, ..NoiseSpec::none() };
    let errs = noise.validate().unwrap_err();
    assert!(errs.iter().any(|e| e.field == "noise.miss_rate" && e.value == "1.5"));
    assert!(errs.iter().any(|e| e.field == "noise.jitter_px" && e.value == "-1"));
    let err = Simulation::new(IntersectionSpec::default(), noise, 0).unwrap_err().to_string();
    assert!(err.contains("noise.miss_rate = 1.5"), "{err}");
    assert!(IntersectionSpec::default().validate().is_ok());
    assert!(scenario::stop_and_go().validate().is_ok());
}

#[test]
fn counting_lines_count_inbound_traffic_forward() {
    let spec = IntersectionSpec::default();
    let lines = spec.counting_lines();
    assert_eq!(lines.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["north", "east", "south", "west"]);
    let c = NormPoint::new(0.5, 0.5);
    for (line, a) in lines.iter().zip(Approach::ALL) {
        let o = a.outward();
        let outside = NormPoint::new(0.5 + o[0] * 0.3, 0.5 + o[1] * 0.4);
        assert_eq!(line.crossing(outside, c), Some(Direction::Forward), "{}", line.name);
        assert_eq!((line.forward.as_str(), line.backward.as_str()), ("in", "out"));
    }
}

#[test]
fn approach_zones_hold_each_vehicle_first_in_its_arm_and_last_in_its_exit() {
    for spec in [short(600.0), IntersectionSpec { driving_side: DrivingSide::Left, ..short(300.0) }] {
        let zones = spec.approach_zones();
        assert_eq!(
            zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
            ["north_arm", "east_arm", "south_arm", "west_arm"]
        );
        let (w, h) = (spec.width, spec.height);
        let (frames, truth) = run(spec, NoiseSpec::none(), 3);
        // Per vehicle, the arms of its positions inside a zone, in order.
        let mut seen: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
        for f in &frames {
            for o in &f.objects {
                let anchor = o.bbox.bottom_center_norm(w, h);
                let inside: Vec<&str> = zones.iter().filter(|z| z.contains(anchor)).map(|z| z.name.as_str()).collect();
                assert!(inside.len() <= 1, "vehicle {} at frame {} in {inside:?}", o.vehicle_id, f.seq);
                seen.entry(o.vehicle_id).or_default().extend(inside);
            }
        }
        let mut checked = 0;
        for v in truth.vehicles.iter().filter(|v| v.entry.is_some() && v.exit.is_some()) {
            let arms = &seen[&v.id];
            let (from, to) = (format!("{}_arm", v.movement.from.name()), format!("{}_arm", v.movement.to.name()));
            assert_eq!(
                (arms.first().copied(), arms.last().copied()),
                (Some(from.as_str()), Some(to.as_str())),
                "vehicle {}",
                v.id
            );
            checked += 1;
        }
        assert!(checked > 50, "{checked}");
    }
}

#[test]
fn queue_zones_hold_each_queued_vehicle_in_its_own_lane() {
    for spec in [scenario::stop_and_go(), IntersectionSpec { driving_side: DrivingSide::Left, ..short(300.0) }] {
        let zones = spec.queue_zones();
        let lanes: u32 = Approach::ALL.iter().map(|&a| spec.approaches.get(a).lanes_in).sum();
        assert_eq!(zones.len(), lanes as usize);
        let (w, h) = (spec.width, spec.height);
        let (frames, truth) = run(spec, NoiseSpec::none(), 5);
        let mut checked = 0;
        for f in &frames {
            for o in f.objects.iter().filter(|o| o.queued) {
                let anchor = o.bbox.bottom_center_norm(w, h);
                let inside: Vec<&str> = zones.iter().filter(|z| z.contains(anchor)).map(|z| z.name.as_str()).collect();
                let own = format!("{}_q{}", o.movement.from.name(), o.lane_in);
                assert_eq!(inside, vec![own.as_str()], "vehicle {} at frame {}", o.vehicle_id, f.seq);
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
        // Per lane, the queue samples add up to the approach's.
        for q in &truth.queues {
            assert_eq!(q.queued_in_view_by_lane.iter().sum::<u32>(), q.queued_in_view, "{q:?}");
        }
        assert!(truth.queues.iter().any(|q| q.queued_in_view_by_lane.iter().filter(|&&n| n > 0).count() > 1));
    }
}
