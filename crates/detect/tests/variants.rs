//! The detector's default model, det_u8 (set-up's det_fp16 taking the decoded
//! letterboxed bytes, its scaling and transpose inside the graph), against the
//! det_fp16 it is made from: on JPEG frames as ingest sends them, through the
//! stage's own preprocessing, every frame of both test clips at 5 frames/s gives
//! the same detections — identical on the CPU provider (the same arithmetic on
//! the same values), within rounding on OpenVINO (which fuses the scaling into
//! the first convolution).

mod common;

use std::path::PathBuf;

use streetscope_contracts::config::Provider;
use streetscope_contracts::{CaptureClock, Detection, Frame, FrameEncoding};
use streetscope_detect::model::Precision;
use streetscope_detect::preprocess::letterbox_image;
use streetscope_detect::{runtime, Detector, DetectorOptions};
use streetscope_testclips::{builtin_clip, default_bus_image_path, ClipRenderer, Sprite};

fn model(name: &str) -> PathBuf {
    let p = runtime::cache_dir().join("models").join(format!("yolo11n_{name}.onnx"));
    assert!(p.is_file(), "{} is missing: run scripts/setup.sh", p.display());
    p
}

/// JPEG frames (quality 85, as ingest encodes) of both clips, every fifth frame.
fn frames() -> Vec<Frame> {
    let sprite = Sprite::load_bus(&default_bus_image_path()).expect("bus.jpg (run scripts/setup.sh)");
    let mut out = Vec::new();
    for clip in ["one_bus", "two_way"] {
        let spec = builtin_clip(clip).expect("built-in clip");
        let renderer = ClipRenderer::new(&spec, &sprite);
        for i in (0..spec.frame_count()).step_by(5) {
            let (rgb, lb) = letterbox_image(&renderer.frame(i), 640, 640);
            let img = image::RgbImage::from_raw(640, 640, rgb).expect("sized");
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&img).expect("encodes");
            out.push(Frame {
                camera_id: clip.into(),
                intersection_id: "x".into(),
                seq: i as u64,
                pts_ns: 0,
                capture_time_ms: 0,
                clock: CaptureClock::FileStart,
                letterbox: lb,
                encoding: FrameEncoding::Jpeg,
                payload: jpeg.into(),
            });
        }
    }
    out
}

/// Detections of both models on every frame, through `detect_frame` (the
/// stage's preprocessing: the JPEG decoded into each model's layout).
fn both(providers: &[Provider]) -> Option<Vec<(Vec<Detection>, Vec<Detection>)>> {
    let load = |name| {
        let opts = DetectorOptions { providers: providers.to_vec(), ..Default::default() };
        Detector::load(&model(name), opts).unwrap_or_else(|e| panic!("{e}"))
    };
    let (mut f16, mut u8) = (load("det_fp16"), load("det_u8"));
    assert_eq!(u8.info().input_precision, Precision::U8);
    assert_eq!(u8.info().input_name, f16.info().input_name, "the input keeps its name");
    if u8.provider() != providers[0] || f16.provider() != providers[0] {
        eprintln!("{} is not available here ({}); skipped", providers[0].name(), runtime::library_path().display());
        return None;
    }
    let frames = frames();
    Some(
        frames
            .iter()
            .map(|f| (f16.detect_frame(f).unwrap().detections, u8.detect_frame(f).unwrap().detections))
            .collect(),
    )
}

#[test]
fn the_default_model_gives_det_fp16s_detections_on_the_cpu_provider() {
    let pairs = both(&[Provider::Cpu]).expect("the CPU provider is always there");
    let n: usize = pairs.iter().map(|(a, _)| a.len()).sum();
    for (i, (a, b)) in pairs.iter().enumerate() {
        assert_eq!(a, b, "frame {i}: the same arithmetic on the same values");
    }
    eprintln!("{} frames, {n} detections: identical", pairs.len());
    assert!(n >= 50, "the frames hold vehicles: {n} detections");
}

/// On OpenVINO (where set-up installed its build: x86-64) the two agree within
/// the rounding of a fused graph, as OpenVINO agrees with the CPU provider
/// (providers.rs).
#[test]
fn the_default_model_gives_det_fp16s_detections_on_openvino() {
    if runtime::library_for(&[Provider::Openvino, Provider::Cpu]) != runtime::library_path() {
        eprintln!("this process loaded another ONNX Runtime build first; skipped");
        return;
    }
    let Some(pairs) = both(&[Provider::Openvino, Provider::Cpu]) else {
        // Under `cargo test` the other test may have loaded the plain build in between.
        if runtime::library_for(&[Provider::Openvino, Provider::Cpu]) != runtime::library_path() {
            eprintln!("another test of this process loaded another ONNX Runtime build first; skipped");
            return;
        }
        assert!(!common::openvino_expected(), "set-up installs the OpenVINO build on x86-64");
        return;
    };
    common::assert_within_rounding("frames", &pairs, 50);
}
