//! The detector on small generated models whose outputs are known constants
//! (tools/python/make_test_models.py): head recognition from output shapes and
//! Ultralytics metadata, decoding of each head, and NMS, against the exact
//! detections of a numpy reference of Ultralytics' post-processing (expected.json).

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use streetscope_contracts::Letterbox;
use streetscope_detect::model::Precision;
use streetscope_detect::{DetectError, Detector, DetectorOptions, HeadKind};

const SIZE: u32 = 64;

struct Models {
    dir: PathBuf,
    expected: serde_json::Value,
}

/// Generates the models once per test process, into a folder of its own in the
/// target's temporary folder (nextest runs each test in its own process, in
/// parallel: a shared folder would be rewritten under another test's feet).
fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("streetscope-detect-heads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the model folder");
        common::run_python("make_test_models.py", &[dir.as_os_str()]);
        let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
        Models { dir, expected: serde_json::from_str(&text).expect("expected.json is JSON") }
    })
}

fn model_path(name: &str) -> PathBuf {
    models().dir.join(format!("{name}.onnx"))
}

fn options(class_agnostic: bool) -> DetectorOptions {
    DetectorOptions { confidence: 0.25, iou: 0.7, class_agnostic, ..DetectorOptions::default() }
}

/// A 64x64 image whose letterbox is the identity, so that source pixels are model-input pixels.
fn identity_input() -> (Vec<u8>, Letterbox) {
    let rgb = (0..SIZE * SIZE * 3).map(|i| (i * 7 % 251) as u8).collect();
    (rgb, Letterbox::fit(SIZE, SIZE, SIZE, SIZE))
}

/// Loads `name` for both NMS modes and checks the model info and the detections
/// against expected.json, within `score_tol` and `box_tol` (pixels).
fn check(name: &str, head: HeadKind, precision: Precision, score_tol: f32, box_tol: f32) {
    let expected = &models().expected["models"][name];
    let (rgb, lb) = identity_input();
    for (key, agnostic) in [("agnostic", true), ("class_aware", false)] {
        let mut det = Detector::load(&model_path(name), options(agnostic)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let info = det.info();
        assert_eq!(info.head, head, "{name}");
        assert_eq!(info.input_precision, precision, "{name}");
        assert_eq!(info.names, ["car", "bus", "person"], "{name}: names from the metadata");
        assert_eq!(info.input_hw, (SIZE, SIZE), "{name}");
        assert_eq!(det.input_size(), (SIZE, SIZE), "{name}");
        let got = det.detect_rgb(&rgb, &lb).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = common::py_detections(&expected[key]);
        assert!(!want.is_empty(), "{name}: expected.json has no {key} detections");
        let (ds, db) = common::compare(&format!("{name} ({key})"), &got, &want);
        assert!(ds <= score_tol, "{name} ({key}): scores differ by {ds}");
        assert!(db <= box_tol, "{name} ({key}): boxes differ by {db} px");
        for (g, w) in got.iter().zip(expected[key].as_array().unwrap()) {
            assert_eq!(&*g.class_name, w["class_name"].as_str().unwrap(), "{name} ({key})");
        }
    }
}

#[test]
fn detect_head_f32() {
    check("detect_f32", HeadKind::Detect, Precision::F32, 1e-6, 1e-3);
}

#[test]
fn detect_head_f16() {
    check("detect_f16", HeadKind::Detect, Precision::F16, 1e-3, 0.1);
}

/// Batch, input size and anchor count symbolic: the input size comes from `imgsz`.
#[test]
fn detect_head_with_dynamic_shapes() {
    check("detect_dynamic", HeadKind::Detect, Precision::F32, 1e-6, 1e-3);
}

/// A uint8 input `[batch, height, width, 3]`: the letterboxed bytes go in as they are.
#[test]
fn detect_head_with_a_uint8_input() {
    check("detect_u8", HeadKind::Detect, Precision::U8, 1e-6, 1e-3);
    check("detect_u8_batch", HeadKind::Detect, Precision::U8, 1e-6, 1e-3);
}

/// The stage's path for a uint8 model: a JPEG frame decoded straight into the
/// tensor, the RGB bytes unchanged (the model itself scales them).
#[test]
fn uint8_models_take_the_decoded_bytes() {
    use streetscope_contracts::{CaptureClock, Frame, FrameEncoding};
    use streetscope_detect::InputBuf;
    let det = Detector::load(&model_path("detect_u8"), options(true)).unwrap();
    let pre = det.preprocessor();
    let (rgb, lb) = identity_input();
    let img = image::RgbImage::from_raw(SIZE, SIZE, rgb.clone()).unwrap();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95).encode_image(&img).unwrap();
    let decoded = image::load_from_memory(&jpeg).unwrap().into_rgb8().into_raw();
    let frame = |encoding, payload: Vec<u8>| Frame {
        camera_id: "cam".into(),
        intersection_id: "x".into(),
        seq: 7,
        pts_ns: 0,
        capture_time_ms: 0,
        clock: CaptureClock::FileStart,
        letterbox: lb,
        encoding,
        payload: payload.into(),
    };
    let mut buf = pre.buffer();
    pre.prepare(&frame(FrameEncoding::Rgb8, rgb.clone()), &mut buf).unwrap();
    assert_eq!(buf, InputBuf::U8(rgb), "RGB frames: the bytes as they are");
    pre.prepare(&frame(FrameEncoding::Jpeg, jpeg), &mut buf).unwrap();
    assert_eq!(buf, InputBuf::U8(decoded), "JPEG frames: the decoder's bytes");
    // A float buffer handed to a uint8 model is refused, naming both layouts.
    let mut det = det;
    let err = det.infer([0f32; (SIZE * SIZE * 3) as usize].as_slice().into(), &[lb]).expect_err("wrong kind");
    assert!(err.to_string().contains("uint8 [batch, height, width, 3]"), "{err}");
}

#[test]
fn segment_head_ignores_mask_coefficients() {
    check("segment_f32", HeadKind::Segment { masks: 32 }, Precision::F32, 1e-6, 1e-3);
}

#[test]
fn end_to_end_head_needs_no_nms() {
    check("end2end_f32", HeadKind::EndToEnd, Precision::F32, 1e-6, 1e-3);
}

#[test]
fn the_generated_cases_exercise_what_they_claim() {
    // Guards the generator: class-aware NMS keeps the overlapping box of another class
    // that class-agnostic NMS suppresses, and the tied anchor goes to the first class.
    let m = &models().expected["models"]["detect_f32"];
    let (agn, aware) = (common::py_detections(&m["agnostic"]), common::py_detections(&m["class_aware"]));
    assert_eq!(aware.len(), agn.len() + 1);
    assert!(aware.iter().any(|d| d.class_id == 1 && d.score == 0.75) && !agn.iter().any(|d| d.score == 0.75));
    assert!(agn.iter().any(|d| d.class_id == 0 && d.score == 0.6));
}

#[test]
fn unsupported_outputs_are_refused_naming_the_shapes() {
    let want = models().expected["models"]["bad_shape"]["error_contains"].as_str().unwrap();
    let err = Detector::load(&model_path("bad_shape"), options(true)).expect_err("a [1, 3] output is not a YOLO head");
    assert!(matches!(err, DetectError::UnsupportedModel { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(want), "the error names the shapes ({want}): {text}");
}

#[test]
fn class_names_from_config_replace_the_metadata() {
    let names: Vec<String> = ["bicycle", "coach", "pedestrian"].map(String::from).into();
    for model in ["detect_f32", "segment_f32", "end2end_f32"] {
        let opts = DetectorOptions { class_names: Some(names.clone()), ..options(true) };
        let mut det = Detector::load(&model_path(model), opts).unwrap();
        assert_eq!(det.info().names, names, "{model}");
        let (rgb, lb) = identity_input();
        let got = det.detect_rgb(&rgb, &lb).unwrap();
        assert!(!got.is_empty(), "{model}");
        for d in got {
            assert_eq!(&*d.class_name, names[d.class_id as usize], "{model}");
        }
    }
}

#[test]
fn class_names_of_the_wrong_count_are_refused() {
    let opts = DetectorOptions { class_names: Some(vec!["car".into(), "bus".into()]), ..options(true) };
    let err = Detector::load(&model_path("detect_f32"), opts).expect_err("3 classes, 2 names");
    assert!(err.to_string().contains("3 classes but 2 class names"), "{err}");
}

#[test]
fn a_frame_of_the_wrong_size_is_refused() {
    let mut det = Detector::load(&model_path("detect_f32"), options(true)).unwrap();
    let lb = Letterbox::fit(32, 32, 32, 32);
    let err = det.detect_rgb(&[0; 32 * 32 * 3], &lb).expect_err("the model takes 64x64");
    assert!(err.to_string().contains("takes 64x64"), "{err}");
}

/// A batch of images: one run on a dynamic-batch model, one run per image otherwise;
/// either way each image gets the detections of the single-image path.
#[test]
fn batches_give_each_image_its_detections() {
    let (rgb, lb) = identity_input();
    let mut chw = vec![0f32; rgb.len()];
    streetscope_detect::preprocess::rgb8_to_chw_f32(&rgb, &mut chw);
    let batch = chw.repeat(3);
    let batch_u8 = rgb.repeat(3);
    for (name, dynamic) in [
        ("detect_dynamic", true),
        ("detect_f32", false),
        ("end2end_f32", false),
        ("detect_u8_batch", true),
        ("detect_u8", false),
    ] {
        let mut det = Detector::load(&model_path(name), options(true)).unwrap();
        assert_eq!(det.dynamic_batch(), dynamic, "{name}");
        let input = if name.contains("u8") { batch_u8.as_slice().into() } else { batch.as_slice().into() };
        let got = det.infer(input, &[lb; 3]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), 3, "{name}");
        let want = common::py_detections(&models().expected["models"][name]["agnostic"]);
        for (i, image) in got.iter().enumerate() {
            let (ds, db) = common::compare(&format!("{name} image {i}"), image, &want);
            assert!(ds <= 1e-6 && db <= 1e-3, "{name} image {i}: {ds} {db}");
        }
    }
}
