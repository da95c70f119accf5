//! The report of simulated studies against the simulator's ground truth: the
//! results come from the real aggregator (records as `streetscope run` writes
//! them, through JSON Lines), the truth from the simulator's vehicles.
//!
//! - Zero noise, two hours (06:00–08:00 in New York): every bin, movement and
//!   class group of `tmc.csv` equals the truth; the UTDF files and the peak
//!   hour parse back to the same numbers; validated against the truth as a
//!   manual count, every row has GEH 0.
//! - Realistic noise (frames lost too), one hour: every bin counted and flagged
//!   `dropped_frames`, within the tolerance documented in docs/report.md.
//! - A minute of lost frames: its bin is empty and flagged `gap`, never zero.

use std::collections::BTreeMap;

use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, CompassLeg, TrackerConfig, ZoneConfig};
use streetscope_contracts::records::ResultRecord;
use streetscope_contracts::FrameDetections;
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
    let zones: Vec<ZoneConfig> = sim.spec().queue_zones();
    let cam = sim.camera(zones);
    let analytics = sim.study_analytics(&cam.id);
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

    // Queues per lane and bin: p95 between the mean and the maximum, metres at 7.6 m.
    let queues = parse_csv(file(&files, "queues.csv"));
    assert_eq!(queues.len(), 8 * 8, "eight lanes, eight bins");
    for q in &queues {
        let (mean, max, p95): (f64, f64, f64) = (
            q["mean_vehicles"].parse().unwrap(),
            q["max_vehicles"].parse().unwrap(),
            q["p95_vehicles"].parse().unwrap(),
        );
        assert!(p95 <= max && p95 + 1.0 >= mean.floor(), "{q:?}");
        assert_eq!(q["max_m"], format!("{:.1}", max * 7.6), "{q:?}");
    }

    // The HTML page: self-contained, and its figures are the CSVs'.
    let html = std::str::from_utf8(file(&files, "report.html")).unwrap();
    for outside in ["http://", "https://", "src=", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(outside), "report.html refers outside itself: {outside}");
    }
    assert!(html.contains(&format!("<td class=\"phf\">{}</td>", am["phf"])), "the AM PHF is on the page");
    for mrow in peaks.iter().filter(|r| r["level"] == "approach" && r["period"] == "AM") {
        assert!(html.contains(&format!("{} {}", mrow["direction"], mrow["phf"])), "{mrow:?}");
    }
    let nbt: u64 =
        (0..8).map(|b| ic.total(b, ic.movements.iter().position(|m| m.utdf() == "NBT").unwrap()).unwrap()).sum();
    assert!(html.contains(&format!("data-movement=\"NBT\" x=\"20\" y=\"322\">T {nbt}</text>")), "NBT in the diagram");
    if let Ok(path) = std::env::var("STREETSCOPE_REPORT_HTML") {
        std::fs::write(path, html).unwrap();
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

#[test]
fn a_minute_of_lost_frames_empties_its_bin_and_flags_it() {
    let (sim, _) = simulate(45.0, NoiseSpec::none(), 8);
    let (cam, analytics) = setup(&sim);
    let (frames, _) = sim.run_to_end();
    // Frames of 06:20:00–06:21:00 never arrive (seq 12000..12600 at 10 frames/s).
    let kept: Vec<FrameDetections> = frames.into_iter().filter(|f| !(12_000..12_600).contains(&f.seq)).collect();
    let jsonl = results(&cam, &analytics, &kept);
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 2_700_000), ..Scope::default() };
    let study =
        build(&read_results("gap.jsonl", &jsonl).unwrap(), &analytics.approaches, &StudyConfig::new(TZ), &scope)
            .unwrap();
    let ic = &study.intersections[0];
    let flags: Vec<String> = ic.bins.iter().map(|b| b.flag_text()).collect();
    assert_eq!(flags, ["", "gap;low_coverage", ""], "{:?}", ic.bins);
    let files = render(&study, None).unwrap();
    let rows = parse_csv(file(&files, "tmc.csv"));
    for r in &rows {
        let gap = r["bin_start"] == "2026-01-01T06:15:00-05:00";
        assert_eq!(r["count"].is_empty(), gap, "{r:?}");
        assert_eq!(r["flags"].is_empty(), !gap, "{r:?}");
        assert_eq!(r["observed"].is_empty(), !gap, "what was seen is kept apart: {r:?}");
    }
    let observed: u64 = rows.iter().filter_map(|r| r["observed"].parse::<u64>().ok()).sum();
    assert!(observed > 0);
    // The UTDF row of the bin is empty too, and its bin is in no peak hour.
    let utdf = std::str::from_utf8(file(&files, "utdf-volume.csv")).unwrap();
    let row = utdf.lines().find(|l| l.starts_with("01/01/2026,0615,")).unwrap();
    assert_eq!(row, format!("01/01/2026,0615,1{}", ",".repeat(16)));
    let notes = std::str::from_utf8(file(&files, "notes.txt")).unwrap();
    assert!(notes.contains("no AM peak hour on 2026-01-01"), "{notes}");
    // On the page, the bin is a grey "no count" mark in both charts and listed as not given.
    let html = std::str::from_utf8(file(&files, "report.html")).unwrap();
    assert_eq!(html.matches("class=\"nodata\"").count(), 2, "one per chart");
    assert!(html.contains("<td class=\"l\">2026-01-01T06:15:00-05:00</td><td>"), "flagged bin listed");
    assert!(html.contains("gap;low_coverage</td><td class=\"l\">not given</td>"));
}

/// Typical noise (10 % missed detections, 2 % false boxes, 2 px jitter, with
/// occlusions, 5 % class flips and 0.5 % of frames lost), one
/// hour: every bin counted and flagged `dropped_frames`; per movement over the hour within 3 % of the truth (and 2 vehicles),
/// per bin and movement within 4 vehicles, and the truth as a manual count
/// passes the GEH validation with every movement under 5 — the tolerance in
/// docs/report.md.
#[test]
fn a_study_under_typical_noise_is_within_the_documented_tolerance() {
    let (sim, spec) = simulate(60.0, NoiseSpec::typical(), 9);
    let (cam, analytics) = setup(&sim);
    let (frames, truth) = sim.run_to_end();
    let jsonl = results(&cam, &analytics, &frames);
    let study_cfg = StudyConfig::new(TZ);
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 3_600_000), ..Scope::default() };
    let study = build(&read_results("typ.jsonl", &jsonl).unwrap(), &analytics.approaches, &study_cfg, &scope).unwrap();
    let want = truth_bins(&truth, &spec, &study_cfg);
    let ic = &study.intersections[0];
    assert!(ic.bins.iter().all(|b| b.ok() && b.flag_text() == "dropped_frames"), "{:?}", ic.bins);
    let mut manual = String::from("bin_start,direction,movement,count\n");
    let (mut worst_bin, mut worst_hour) = (0i64, 0f64);
    for (m, mov) in ic.movements.iter().enumerate() {
        let (mut c_hour, mut t_hour) = (0i64, 0i64);
        for (b, bin) in ic.bins.iter().enumerate() {
            let c = ic.total(b, m).unwrap() as i64;
            let t: u64 =
                ic.groups.iter().map(|g| want.get(&(bin.start_ms, *mov, g.clone())).copied().unwrap_or(0)).sum();
            let t = t as i64;
            println!("{} {mov}: {c} / {t}", streetscope_report::time::iso(bin.start_ms, &study.tz));
            assert!((c - t).abs() <= 4, "bin {b} {mov}: {c} counted, {t} true");
            worst_bin = worst_bin.max((c - t).abs());
            (c_hour, t_hour) = (c_hour + c, t_hour + t);
            manual += &format!(
                "{},{},{},{t}\n",
                streetscope_report::time::iso(bin.start_ms, &study.tz),
                mov.bound(),
                mov.turn.letter()
            );
        }
        let err = (c_hour - t_hour).abs();
        assert!(err <= 2 || err as f64 <= 0.03 * t_hour as f64, "{mov}: {c_hour} counted in the hour, {t_hour} true");
        if t_hour > 0 {
            worst_hour = worst_hour.max(err as f64 / t_hour as f64);
        }
    }
    println!("worst bin x movement: {worst_bin} vehicles; worst movement over the hour: {:.1} %", 100.0 * worst_hour);
    let files = render(&study, Some(("manual.csv", &manual))).unwrap();
    // The flag of bins counted with short losses is in every output.
    assert!(parse_csv(file(&files, "tmc.csv"))
        .iter()
        .all(|r| r["flags"] == "dropped_frames" && !r["count"].is_empty()));
    assert!(parse_csv(file(&files, "queues.csv")).iter().all(|r| r["flags"] == "dropped_frames"));
    let notes = std::str::from_utf8(file(&files, "notes.txt")).unwrap();
    assert!(
        notes.contains("4 bins counted with frames lost in short runs (each at most max_gap_s = 0.5 s)"),
        "{notes}"
    );
    let html = std::str::from_utf8(file(&files, "report.html")).unwrap();
    assert_eq!(html.matches("<title>counted, flagged: dropped_frames</title>").count(), 2 * 4, "a mark per bar");
    let v = parse_csv(file(&files, "validation.csv"));
    let summary = v.last().unwrap();
    assert_eq!((summary["geh_ok"].as_str(), summary["verdict"].as_str()), ("1.000", "pass"), "{v:?}");
}

#[test]
fn bad_input_names_the_line_and_field_and_writes_nothing() {
    let (sim, _) = simulate(15.0, NoiseSpec::none(), 10);
    let (cam, analytics) = setup(&sim);
    let (frames, _) = sim.run_to_end();
    let jsonl = results(&cam, &analytics, &frames);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 900_000), ..Scope::default() };
    let cfg = StudyConfig::new(TZ);
    let run = |jsonl: &str, manual: Option<&str>, cfg: &StudyConfig| {
        let results = read_results("r.jsonl", jsonl)?;
        streetscope_report::report_to_dir(
            &results,
            &analytics.approaches,
            cfg,
            &scope,
            manual.map(|m| ("m.csv", m)),
            &out,
        )
    };

    // A results line with a field missing, and one with a field unknown.
    let mut lines: Vec<String> = jsonl.lines().map(str::to_owned).collect();
    let k = lines.iter().position(|l| l.contains("\"turning_movement\"")).unwrap();
    let good = lines[k].clone();
    lines[k] = good.replace("\"to\":", "\"towards\":");
    let e = run(&lines.join("\n"), None, &cfg).unwrap_err().to_string();
    assert!(e.starts_with(&format!("r.jsonl:{}: to: missing field `to`", k + 1)), "{e}");
    lines[k] = good.replace("\"class_name\":", "\"lane\":\"x\",\"class_name\":");
    let e = run(&lines.join("\n"), None, &cfg).unwrap_err().to_string();
    assert!(e.starts_with(&format!("r.jsonl:{}: lane: unknown field", k + 1)), "{e}");

    // A manual count with a movement the junction does not have, a bin outside the
    // study, a class group the study does not have, and an unknown column.
    let head = "bin_start,direction,movement,count\n";
    let cases = [
        (
            format!("{head}2026-01-01T06:00:00-05:00,NB,T,4\n2026-01-01T06:00:00-05:00,NB,X,4\n"),
            "m.csv:3: movement: \"NBX\"",
        ),
        (
            format!("{head}2026-01-01T06:15:00-05:00,NB,T,4\n"),
            "m.csv:2: bin_start: \"2026-01-01T06:15:00-05:00\" is not",
        ),
        (format!("{head}2026-01-01T06:07:00-05:00,NB,T,4\n"), "m.csv:2: bin_start"),
        (
            "bin_start,direction,movement,class_group,count\n2026-01-01T06:00,NB,T,trams,4\n".into(),
            "m.csv:2: class_group: \"trams\"",
        ),
        ("bin_start,direction,movement,count,weather\n".into(), "m.csv:1: weather: unknown column"),
        ("bin_start,direction,count\n".into(), "m.csv:1: movement: missing column"),
    ];
    for (manual, want) in cases {
        let e = run(&jsonl, Some(&manual), &cfg).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e}\nwanted {want}");
    }

    // A time zone that does not exist.
    let e = run(&jsonl, None, &StudyConfig::new("Europe/Atlantis")).unwrap_err().to_string();
    assert!(e.contains("time_zone = \"Europe/Atlantis\": not a time zone"), "{e}");
    let e = StudyConfig::from_toml_str("time_zone = \"UTC\"\nmin_coverage = 2\n", "s.toml").unwrap_err().to_string();
    assert!(e.contains("min_coverage = 2: a share in [0, 1]"), "{e}");
    let e = StudyConfig::from_toml_str("time_zone = \"UTC\"\ncolour = 2\n", "s.toml").unwrap_err().to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");

    // Nothing was written by any of them; a good run writes every file, and a
    // later bad one leaves them as they were.
    assert!(!out.exists());
    let names = run(&jsonl, None, &cfg).unwrap();
    assert!(names.contains(&"tmc.csv".to_owned()) && names.contains(&"utdf-volume.csv".to_owned()), "{names:?}");
    let before = std::fs::read(out.join("tmc.csv")).unwrap();
    assert!(run(&lines.join("\n"), None, &cfg).is_err());
    assert_eq!(std::fs::read(out.join("tmc.csv")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), names.len(), "no temporary file left: {leftovers:?}");
}

/// The queue zones (one per inbound lane, up to half a lane past the stop line)
/// as ATSPM detectors and delay zones, half an hour without noise: events
/// alternate on/off per channel and their on-time is what the stays cover; each
/// vehicle of `tmc.csv` has its control delay in `delay.csv` (one per counted
/// vehicle, per movement), with a level of service, and its stopped time: per
/// movement, the mean within 0.6 s of the truth's (the time each vehicle stood
/// in its queue in view, the queue speed the simulator's; measured: within
/// 0.1 s but for the northbound movements, 0.53 s the furthest).
#[test]
fn detector_events_and_control_delay_from_the_zones() {
    let (sim, spec) = simulate(30.0, NoiseSpec::none(), 11);
    let (cam, mut analytics) = setup(&sim);
    analytics.speed.queue_max_image_speed = spec.queue_speed_px_s / f64::from(spec.height);
    let (frames, truth) = sim.run_to_end();
    let jsonl = results(&cam, &analytics, &frames);
    let mut cfg = StudyConfig::new(TZ);
    cfg.delay_zones = cam
        .zones
        .iter()
        .map(|z| streetscope_report::config::DelayZone {
            camera: cam.id.clone(),
            zone: z.name.clone(),
            free_flow_s: None,
        })
        .collect();
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 1_800_000), ..Scope::default() };
    let study = build(&read_results("z.jsonl", &jsonl).unwrap(), &analytics.approaches, &cfg, &scope).unwrap();
    let files = render(&study, None).unwrap();

    let events = parse_csv(file(&files, "atspm-events.csv"));
    let mut state: BTreeMap<String, (String, String)> = BTreeMap::new();
    for e in &events {
        assert_eq!(e["SignalID"], "1");
        let (last_code, last_time) = state.entry(e["EventParam"].clone()).or_insert(("81".into(), String::new()));
        assert_ne!(&e["EventCode"], last_code, "on and off alternate: {e:?}");
        assert!(e["Timestamp"] >= *last_time, "{e:?}");
        assert!(e["Timestamp"].starts_with("2026-01-01 06:"), "{e:?}");
        (*last_code, *last_time) = (e["EventCode"].clone(), e["Timestamp"].clone());
    }
    assert_eq!(state.len(), cam.zones.len(), "every lane's zone is a detector");
    assert!(state.values().all(|(c, _)| c == "81"), "every channel ends off");

    let tmc = parse_csv(file(&files, "tmc-totals.csv"));
    let delay = parse_csv(file(&files, "delay.csv"));
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for r in &tmc {
        *counted.entry(format!("{}{}", r["direction"], r["movement"])).or_default() +=
            r["total"].parse::<u64>().unwrap();
    }
    // The truth's stopped time per movement: (vehicles, seconds), of the
    // vehicles filed in the study (by the later of their crossings).
    let mut stood: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for v in &truth.vehicles {
        let (Some(a), Some(b)) = (v.entry, v.exit) else { continue };
        if a.seq.max(b.seq) as f64 / spec.fps >= 1800.0 {
            continue;
        }
        let (from, to) = (leg(v.movement.from), leg(v.movement.to));
        let e = stood.entry(Movement::new(from, turn(from, to)).utdf()).or_default();
        (e.0, e.1) = (e.0 + 1, e.1 + v.queued_in_view_s);
    }
    let whole: Vec<_> = delay.iter().filter(|r| r["bin_start"].is_empty()).collect();
    assert_eq!(whole.len(), 16);
    let mut worst: f64 = 0.0;
    for r in whole {
        let key = format!("{}{}", r["direction"], r["movement"]);
        assert_eq!(r["vehicles"].parse::<u64>().unwrap(), counted[&key], "{key}: {r:?}");
        if counted[&key] > 0 {
            let d: f64 = r["mean_delay_s"].parse().unwrap();
            let s: f64 = r["mean_stopped_s"].parse().unwrap();
            assert!(d >= 0.0 && !r["los"].is_empty(), "{r:?}");
            let (n, t) = stood[&key];
            assert_eq!(n, counted[&key], "{key}");
            let t = t / n as f64;
            println!(
                "{key}: {} vehicles, mean delay {d} s, LOS {}, stopped {s} s (truth {t:.2} s)",
                r["vehicles"], r["los"]
            );
            worst = worst.max((s - t).abs());
        }
    }
    println!("stopped time: worst movement's mean off the truth by {worst:.2} s");
    assert!(worst <= 0.6, "stopped time per movement off the truth by up to {worst:.2} s");
}

/// The ATSPM event log against the long TMC CSV, half an hour without noise,
/// with the simulator's stop-bar zones (one per inbound lane, just past the
/// stop line) as lane-by-lane count detectors: each vehicle is one actuation,
/// so an ATSPM tool's count of detector-on events (82) is the vehicles of the
/// lane. Per approach over the study the 82 events equal `tmc.csv`'s vehicles
/// from that leg, up to the vehicles in the junction at the study's end (an
/// actuation at the stop line is filed when it happens; a turning movement when
/// the vehicle leaves); and, every 82 event re-filed by its vehicle's movement
/// (through the results: the zone's stay that began at that time, its track's
/// movement), per bin and approach exactly.
#[test]
fn atspm_detector_events_reconcile_with_the_long_tmc_csv() {
    let (sim, spec) = simulate(30.0, NoiseSpec::none(), 12);
    let (mut cam, analytics) = setup(&sim);
    cam.zones = spec.stop_bar_zones();
    let (frames, _) = sim.run_to_end();
    let jsonl = results(&cam, &analytics, &frames);
    let mut cfg = StudyConfig::new(TZ);
    cfg.detectors = cam
        .zones
        .iter()
        .zip(1..)
        .map(|(z, channel)| streetscope_report::config::DetectorZone {
            camera: cam.id.clone(),
            zone: z.name.clone(),
            channel,
        })
        .collect();
    let scope = Scope { from_ms: Some(SIX_AM_NEW_YORK), to_ms: Some(SIX_AM_NEW_YORK + 1_800_000), ..Scope::default() };
    let results = read_results("bar.jsonl", &jsonl).unwrap();
    let study = build(&results, &analytics.approaches, &cfg, &scope).unwrap();
    let files = render(&study, None).unwrap();
    let ic = &study.intersections[0];
    assert!(ic.bins.iter().all(|b| b.ok()), "{:?}", ic.bins);

    // The approach leg of each channel: its zone's arm.
    let arm_leg = |zone: &str| {
        let arm = zone.split('_').next().unwrap();
        leg(*Approach::ALL.iter().find(|a| a.name() == arm).unwrap()).letter().to_owned()
    };
    let channel_leg: BTreeMap<String, String> =
        cfg.detectors.iter().map(|d| (d.channel.to_string(), arm_leg(&d.zone))).collect();
    let tz = jiff::tz::TimeZone::get(TZ).unwrap();
    let ms_of = |stamp: &str| {
        let t: jiff::civil::DateTime = stamp.replace(' ', "T").parse().unwrap();
        t.to_zoned(tz.clone()).unwrap().timestamp().as_millisecond()
    };
    let bin_of = |ms: i64| streetscope_report::time::iso(ms.div_euclid(900_000) * 900_000, &study.tz);

    // tmc.csv: (bin, approach leg) -> vehicles, and per leg over the study.
    let mut tmc: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in parse_csv(file(&files, "tmc.csv")) {
        *tmc.entry((r["bin_start"].clone(), r["approach_leg"].clone())).or_default() +=
            r["count"].parse::<u64>().unwrap();
    }
    let mut tmc_leg: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, l), n) in &tmc {
        *tmc_leg.entry(l.clone()).or_default() += n;
    }

    // The results: each stay's start in a zone -> its track; each track's movement bin.
    let mut stay_track: BTreeMap<(String, i64), u64> = BTreeMap::new();
    for w in results.windows.iter() {
        for z in &w.zones {
            for v in &z.visits {
                let before = stay_track.insert((z.zone.clone(), v.enter_ms), v.track_id);
                assert_eq!(before, None, "one vehicle at a time in a stop-bar zone");
            }
        }
    }
    let track_bin: BTreeMap<u64, i64> = results.turning.iter().map(|m| (m.track_id, m.capture_time_ms)).collect();
    let zone_of: BTreeMap<String, String> =
        cfg.detectors.iter().map(|d| (d.channel.to_string(), d.zone.clone())).collect();

    let events = parse_csv(file(&files, "atspm-events.csv"));
    let (mut on_leg, mut refiled): (BTreeMap<String, u64>, BTreeMap<(String, String), u64>) = Default::default();
    let mut unmatched = 0;
    for e in events.iter().filter(|e| e["EventCode"] == "82") {
        let (ch, ms) = (&e["EventParam"], ms_of(&e["Timestamp"]));
        *on_leg.entry(channel_leg[ch].clone()).or_default() += 1;
        let track = stay_track[&(zone_of[ch].clone(), ms)];
        match track_bin.get(&track) {
            Some(&done) if done < SIX_AM_NEW_YORK + 1_800_000 => {
                *refiled.entry((bin_of(done), channel_leg[ch].clone())).or_default() += 1
            }
            _ => unmatched += 1,
        }
    }
    for (l, &n) in &tmc_leg {
        let on = on_leg.get(l).copied().unwrap_or(0);
        println!("leg {l}: {on} detector-on events, {n} vehicles in tmc.csv");
        assert!(on >= n && on - n <= 5, "leg {l}: {on} actuations, {n} vehicles");
    }
    assert!(unmatched <= 10, "{unmatched} actuations of vehicles filed after the study");
    let tmc: BTreeMap<_, _> = tmc.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(refiled, tmc, "re-filed by their vehicles' movements, the actuations are tmc.csv's vehicles");
    assert!(tmc.values().sum::<u64>() > 500);
}
