//! Golden files: committed detections in, committed per-window records out.
//!
//! Each case in `tests/golden/<case>/` holds
//! - `input.json`: the camera (its counting lines) and the analytics (approaches,
//!   window lengths, lateness); the tracker runs with its defaults;
//! - `detections.jsonl`: a few hundred frames of detections (the detect stage's
//!   output), made by the simulator with the spec in [`cases`];
//! - `windows.jsonl`: the window records the aggregator must produce, one a line.
//!
//! A change in tracking, counting or windowing that alters any record fails here
//! with the first record that differs and the fields that differ in it. When
//! the change is intended, regenerate the expected records and review their diff:
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --release -p streetscope-aggregate --test golden
//! ```
//!
//! `UPDATE_GOLDEN=inputs` makes the inputs again from the simulator as well (they
//! change only if the simulator does). A field present on one side only and empty
//! (`[]` or `null`) on the other is no difference: records that grow a field with
//! an empty default keep matching older golden files.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use streetscope_aggregate::Aggregator;
use streetscope_contracts::config::{AnalyticsConfig, ApproachConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::{Direction, FrameDetections};
use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec, Simulation};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    camera: CameraConfig,
    analytics: AnalyticsConfig,
}

/// The cases: name, junction, noise, seed, frames.
fn cases() -> Vec<(&'static str, IntersectionSpec, NoiseSpec, u64, u32)> {
    let heavy_with_drops = NoiseSpec {
        miss_rate: 0.2,
        false_positive_rate: 0.05,
        jitter_px: 4.0,
        frame_drop_rate: 0.01,
        class_flip_rate: 0.05,
        ..NoiseSpec::none()
    };
    vec![
        // Traffic through every arm of the default junction: crossings and
        // turning movements in 10 s and 30 s windows.
        // (The inputs were made with the detector-only noise that was "typical"
        // until 2026-12-05; `NoiseSpec::independent` keeps them reproducible.)
        ("four_way_typical", scenario::default_four_way(), NoiseSpec::independent(), 7, 300),
        // A queue standing on the north line.
        ("stop_and_go_typical", scenario::stop_and_go(), NoiseSpec::independent(), 3, 400),
        // Heavy noise, class flips and lost frames (sequence gaps: incomplete windows).
        ("four_way_heavy_drops", scenario::default_four_way(), heavy_with_drops, 11, 200),
    ]
}

fn dir(case: &str) -> PathBuf {
    manifest_dir().join("tests/golden").join(case)
}

/// Makes a case's inputs from the simulator. Boxes are rounded to 1/100 px to keep
/// the files small; the rounded boxes are the input.
fn make_inputs(case: &str, mut spec: IntersectionSpec, noise: NoiseSpec, seed: u64, frames: u32) {
    spec.duration_s = f64::from(frames) / spec.fps;
    // Start with traffic on the road (and queues at the lights), not an empty junction.
    spec.warmup_s = 120.0;
    let sim = Simulation::new(spec, noise, seed).expect("a valid spec");
    // Through serde, so that fields added later take their defaults.
    let camera: CameraConfig = serde_json::from_value(serde_json::json!({
        "id": sim.spec().camera_id,
        "intersection": sim.spec().intersection_id,
        "source": "file:///simulated.mp4",
        "sample_fps": sim.spec().fps,
        "lines": sim.counting_lines(),
    }))
    .expect("a valid camera");
    let approaches = ["north", "east", "south", "west"]
        .iter()
        .filter(|a| camera.lines.iter().any(|l| l.name == **a))
        .map(|a| ApproachConfig::line(&camera.id, a, a, Direction::Forward))
        .collect::<Vec<ApproachConfig>>();
    // Through serde, so that fields added later take their defaults.
    let analytics: AnalyticsConfig = serde_json::from_value(serde_json::json!({
        "approaches": approaches,
        "window_lengths_s": [10, 30],
        "allowed_lateness_s": 2.0,
    }))
    .expect("valid analytics");
    let (mut fds, _) = sim.run_to_end();
    let round = |v: f32| (v * 100.0).round() / 100.0;
    for fd in &mut fds {
        for d in &mut fd.detections {
            let b = &mut d.bbox;
            (b.x1, b.y1, b.x2, b.y2) = (round(b.x1), round(b.y1), round(b.x2), round(b.y2));
            d.score = round(d.score);
        }
    }
    let d = dir(case);
    std::fs::create_dir_all(&d).unwrap();
    let input = Input { camera, analytics };
    std::fs::write(d.join("input.json"), serde_json::to_string_pretty(&input).unwrap() + "\n").unwrap();
    write_lines(&d.join("detections.jsonl"), &fds);
}

fn write_lines<T: Serialize>(path: &Path, items: &[T]) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for it in items {
        serde_json::to_writer(&mut w, it).unwrap();
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

/// The aggregator's window records for a case's inputs, as JSON.
fn run(case: &str) -> Vec<Value> {
    let d = dir(case);
    let input: Input = serde_json::from_str(&std::fs::read_to_string(d.join("input.json")).unwrap()).unwrap();
    let frames: Vec<FrameDetections> = read_lines(&d.join("detections.jsonl"));
    let mut agg =
        Aggregator::with_analytics(std::slice::from_ref(&input.camera), &TrackerConfig::default(), &input.analytics);
    let mut records = Vec::new();
    for f in &frames {
        agg.process(f).unwrap();
        records.extend(agg.take_windows());
    }
    agg.finish();
    records.extend(agg.take_windows());
    records.iter().map(|r| serde_json::to_value(r).unwrap()).collect()
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Where `a` and `b` differ, as JSON paths with both values (empty fields on one
/// side only do not count).
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => differences(&p, va, vb, out),
                    (Some(v), None) | (None, Some(v)) if is_empty(v) => {}
                    (va, vb) => out.push(format!("{p}: expected {va:?}, got {vb:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: expected {a}, got {b}")),
    }
}

/// `None` if equal, else a report naming the first differing record.
fn compare(expected: &[Value], actual: &[Value]) -> Option<String> {
    for (i, pair) in expected.iter().zip(actual).enumerate() {
        let mut diffs = Vec::new();
        differences("", pair.0, pair.1, &mut diffs);
        if !diffs.is_empty() {
            let what = |v: &Value| format!("{}s window from {}", v["length_s"], v["window_start_ms"]);
            return Some(format!(
                "record {} ({}) differs:\n  {}\nexpected: {}\nactual:   {}",
                i + 1,
                what(pair.0),
                diffs.join("\n  "),
                pair.0,
                pair.1
            ));
        }
    }
    (expected.len() != actual.len()).then(|| {
        let n = expected.len().min(actual.len());
        let extra = expected.get(n).or(actual.get(n)).unwrap();
        format!("{} records expected, {} produced; record {} is {extra}", expected.len(), actual.len(), n + 1)
    })
}

#[test]
fn detections_in_window_records_out() {
    let update = std::env::var("UPDATE_GOLDEN").unwrap_or_default();
    let mut failures = Vec::new();
    for (case, spec, noise, seed, frames) in cases() {
        let d = dir(case);
        if update == "inputs" || !d.join("detections.jsonl").exists() {
            make_inputs(case, spec, noise, seed, frames);
        }
        let actual = run(case);
        assert!(actual.len() >= 3, "{case}: too few windows to mean anything");
        let expected_path = d.join("windows.jsonl");
        if !update.is_empty() {
            write_lines(&expected_path, &actual);
            eprintln!("{case}: wrote {} records to {}", actual.len(), expected_path.display());
            continue;
        }
        let expected: Vec<Value> = read_lines(&expected_path);
        if let Some(report) = compare(&expected, &actual) {
            failures.push(format!("{case}: {report}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n\nIf the change is intended: UPDATE_GOLDEN=1 cargo test -p streetscope-aggregate --test golden, and review the diff.",
        failures.join("\n\n")
    );
}

#[test]
fn the_comparison_names_the_first_differing_record_and_field() {
    let rec = |start: i64, n: u64| serde_json::json!({"length_s": 10, "window_start_ms": start, "counts": [{"line": "north", "count": n}], "zones": []});
    let expected = vec![rec(0, 1), rec(10_000, 2), rec(20_000, 3)];
    assert_eq!(compare(&expected, &expected), None);
    let mut actual = expected.clone();
    actual[1]["counts"][0]["count"] = 5.into();
    actual[2]["counts"][0]["count"] = 7.into();
    let report = compare(&expected, &actual).unwrap();
    assert!(report.starts_with("record 2 (10s window from 10000) differs"), "{report}");
    assert!(report.contains(".counts[0].count: expected 2, got 5"), "{report}");
    assert!(!report.contains("got 7"), "only the first differing record: {report}");
    // An empty field on one side only is no difference; a missing record is.
    let mut grown = expected.clone();
    grown[0]["speeds"] = serde_json::json!([]);
    grown[0].as_object_mut().unwrap().remove("zones");
    assert_eq!(compare(&expected, &grown), None);
    let report = compare(&expected, &expected[..2]).unwrap();
    assert!(report.starts_with("3 records expected, 2 produced"), "{report}");
}

/// This package's folder as the test runner gives it at run time: a test binary built from another checkout (the build cache is shared) reads this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).into()
}
