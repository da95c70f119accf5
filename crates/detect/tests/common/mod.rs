//! Running the Python reference tools (tools/python) from the tests, in the venv
//! that scripts/python-env.sh makes (scripts/setup.sh runs it).

#![allow(dead_code)] // Each test binary uses part of this module.

use std::path::PathBuf;
use std::process::Command;

use streetscope_contracts::Detection;

/// The venv's python: `$STREETSCOPE_CACHE/venv/bin/python`. Panics, saying what
/// to run, when it is missing: these tests are never skipped silently.
pub fn venv_python() -> PathBuf {
    let py = streetscope_detect::runtime::cache_dir().join("venv").join("bin").join("python");
    assert!(
        py.is_file(),
        "{} is missing: run scripts/setup.sh (or scripts/python-env.sh) to create the Python environment",
        py.display()
    );
    py
}

/// A script in tools/python.
pub fn tool(name: &str) -> PathBuf {
    manifest_dir().join("../../tools/python").join(name)
}

/// Runs a script of tools/python with the venv's python; its stdout.
pub fn run_python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(venv_python()).arg(tool(script)).args(args).output().expect("cannot start python");
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A detection as the Python tools write it: `{class_id, score, box: [x1, y1, x2, y2]}`.
#[derive(Debug, Clone)]
pub struct PyDetection {
    pub class_id: u32,
    pub score: f32,
    pub bbox: [f32; 4],
}

pub fn py_detections(list: &serde_json::Value) -> Vec<PyDetection> {
    list.as_array()
        .expect("a list of detections")
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["box"].as_array().expect("box").iter().map(|v| v.as_f64().unwrap() as f32).collect();
            PyDetection {
                class_id: d["class_id"].as_u64().expect("class_id") as u32,
                score: d["score"].as_f64().expect("score") as f32,
                bbox: b.try_into().expect("four coordinates"),
            }
        })
        .collect()
}

/// Largest differences between two lists of detections that must match one to
/// one: `(max |score difference|, max |box coordinate difference|)`. Panics with
/// both lists if the counts or the classes differ.
pub fn compare(what: &str, rust: &[Detection], py: &[PyDetection]) -> (f32, f32) {
    let show = || {
        let r: Vec<_> = rust.iter().map(|d| (d.class_id, d.score, d.bbox)).collect();
        format!("{what}\n  rust:   {r:?}\n  python: {py:?}")
    };
    assert_eq!(rust.len(), py.len(), "different numbers of detections: {}", show());
    let (mut ds, mut db) = (0f32, 0f32);
    for (r, p) in rust.iter().zip(py) {
        assert_eq!(r.class_id, p.class_id, "different classes: {}", show());
        ds = ds.max((r.score - p.score).abs());
        let rb = [r.bbox.x1, r.bbox.y1, r.bbox.x2, r.bbox.y2];
        for (a, b) in rb.iter().zip(&p.bbox) {
            db = db.max((a - b).abs());
        }
    }
    (ds, db)
}

/// Two detectors' detections of the same images (`what`: "images", "frames")
/// agree within the rounding allowed between OpenVINO and the CPU provider: the
/// same count and classes in order, boxes at IoU >= 0.97, scores within 0.01, and
/// at least `min` detections compared. Prints the worst of each.
pub fn assert_within_rounding(what: &str, pairs: &[(Vec<Detection>, Vec<Detection>)], min: usize) {
    let (mut n, mut worst_iou, mut worst_score) = (0, 1f32, 0f32);
    for (i, (a, b)) in pairs.iter().enumerate() {
        assert_eq!(a.len(), b.len(), "{what} {i}: {a:?} against {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.class_id, y.class_id, "{what} {i}");
            worst_iou = worst_iou.min(x.bbox.iou(&y.bbox));
            worst_score = worst_score.max((x.score - y.score).abs());
        }
        n += a.len();
    }
    eprintln!(
        "{} {what}, {n} detections: lowest IoU {worst_iou:.4}, largest score difference {worst_score:.4}",
        pairs.len()
    );
    assert!(n >= min, "the {what} hold vehicles: {n} detections");
    assert!(worst_iou >= 0.97, "boxes moved: IoU {worst_iou}");
    assert!(worst_score <= 0.01, "scores moved by {worst_score}");
}

/// Whether set-up installed ONNX Runtime's OpenVINO build here and nothing else
/// was asked for (x86-64, no `ORT_DYLIB_PATH`, `STREETSCOPE_OPENVINO` not 0).
pub fn openvino_expected() -> bool {
    std::env::var_os("ORT_DYLIB_PATH").is_none()
        && std::env::consts::ARCH == "x86_64"
        && std::env::var("STREETSCOPE_OPENVINO").map_or(true, |v| v != "0")
}

/// This package's folder as the test runner gives it at run time: a test binary built from another checkout (the build cache is shared) reads this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()).into()
}
