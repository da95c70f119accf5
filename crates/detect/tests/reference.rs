//! The detector against the Python reference (tools/python/reference.py: ONNX
//! Runtime's Python API and a numpy reference of Ultralytics' post-processing) on
//! the real vehicle model, fed the very same letterboxed RGB bytes: bus.jpg and
//! frames of the built-in `two_way` test clip.

mod common;

use std::path::{Path, PathBuf};

use image::RgbImage;
use streetscope_contracts::config::Provider;
use streetscope_contracts::Letterbox;
use streetscope_detect::preprocess::letterbox_image;
use streetscope_detect::{Detector, DetectorOptions, HeadKind};
use streetscope_testclips::{builtin_clip, default_bus_image_path, ClipRenderer, Sprite};

/// Largest allowed differences between Rust and Python.
const BOX_TOL_PX: f32 = 1.0;
const SCORE_TOL: f32 = 1e-3;

fn model_path() -> PathBuf {
    std::env::var_os("STREETSCOPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| streetscope_detect::runtime::cache_dir().join("models").join("yolo11n_seg_fp16.onnx"))
}

fn bus_image() -> RgbImage {
    let path = default_bus_image_path();
    image::open(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display())).to_rgb8()
}

/// Runs `reference.py` on `rgb` with geometry `lb`, written to `dir`; its detections.
fn reference(dir: &Path, tag: &str, rgb: &[u8], lb: &Letterbox, class_aware: bool) -> Vec<common::PyDetection> {
    let (rgb_path, geom_path) = (dir.join(format!("{tag}.rgb")), dir.join(format!("{tag}.json")));
    std::fs::write(&rgb_path, rgb).unwrap();
    std::fs::write(&geom_path, serde_json::to_vec(lb).unwrap()).unwrap();
    let model = model_path();
    let mut args = vec![
        "--model".as_ref(),
        model.as_os_str(),
        "--rgb".as_ref(),
        rgb_path.as_os_str(),
        "--geometry".as_ref(),
        geom_path.as_os_str(),
    ];
    if class_aware {
        args.push("--class-aware".as_ref());
    }
    let out = common::run_python("reference.py", &args);
    let json: serde_json::Value = serde_json::from_str(&out).expect("reference.py prints JSON");
    common::py_detections(&json["detections"])
}

/// Compares Rust and Python on each image, both NMS modes; returns the largest
/// differences seen and the number of detections compared.
fn agree(images: &[(String, RgbImage)]) -> (f32, f32, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (mut ds, mut db, mut n) = (0f32, 0f32, 0);
    for class_aware in [false, true] {
        // The CPU provider, as the Python reference runs: this compares the detector's
        // pre- and post-processing (providers.rs compares OpenVINO with the CPU).
        let opts = DetectorOptions {
            confidence: 0.25,
            iou: 0.7,
            class_agnostic: !class_aware,
            providers: vec![Provider::Cpu],
            ..Default::default()
        };
        let mut det = Detector::load(&model_path(), opts).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(det.info().head, HeadKind::Segment { masks: 32 });
        let (w, h) = det.input_size();
        for (tag, img) in images {
            let (rgb, lb) = letterbox_image(img, w, h);
            let rust = det.detect_rgb(&rgb, &lb).unwrap();
            let py = reference(dir.path(), tag, &rgb, &lb, class_aware);
            let what = format!("{tag} (class-aware: {class_aware})");
            let (s, b) = common::compare(&what, &rust, &py);
            eprintln!("{what}: {} detections, max |score diff| {s:.2e}, max |box diff| {b:.2e} px", rust.len());
            assert!(s <= SCORE_TOL, "{what}: scores differ by {s}");
            assert!(b <= BOX_TOL_PX, "{what}: boxes differ by {b} px");
            (ds, db, n) = (ds.max(s), db.max(b), n + rust.len());
        }
    }
    (ds, db, n)
}

#[test]
fn bus_jpg_matches_the_python_reference() {
    let (ds, db, n) = agree(&[("bus".to_owned(), bus_image())]);
    eprintln!("bus.jpg: {n} detections compared; max |score diff| {ds:.2e}, max |box diff| {db:.2e} px");
    assert!(n > 0, "the model finds the bus on bus.jpg");
}

#[test]
fn clip_frames_match_the_python_reference() {
    let spec = builtin_clip("two_way").expect("built-in clip");
    let sprite = Sprite::load_bus(&default_bus_image_path()).expect("bus.jpg (run scripts/setup.sh)");
    let renderer = ClipRenderer::new(&spec, &sprite);
    // Frames with one bus near the middle, on either lane, two buses, and none.
    let frames = [25, 50, 150, 312, 450, 0];
    let images: Vec<_> = frames.iter().map(|&i| (format!("two_way_{i}"), renderer.frame(i))).collect();
    let (ds, db, n) = agree(&images);
    eprintln!("two_way: {n} detections compared; max |score diff| {ds:.2e}, max |box diff| {db:.2e} px");
    assert!(n > 0, "the model finds buses in the clip");
}
