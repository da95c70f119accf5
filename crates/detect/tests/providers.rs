//! Execution providers: a list with GPU providers falls back to the CPU on a
//! machine (or an ONNX Runtime build) without them, and says which one runs.

mod common;

use std::path::PathBuf;

use streetscope_contracts::config::Provider;
use streetscope_detect::{Detector, DetectorOptions};
use streetscope_testclips::{builtin_clip, default_bus_image_path, ClipRenderer, Sprite};

fn model() -> PathBuf {
    let p = std::env::var_os("STREETSCOPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| streetscope_detect::runtime::cache_dir().join("models").join("yolo11n_seg_fp16.onnx"));
    assert!(p.is_file(), "{} is missing: run scripts/setup.sh", p.display());
    p
}

#[test]
fn gpu_providers_fall_back_to_the_cpu_and_the_detector_still_works() {
    let cpu_only_build = !ort_has_cuda();
    let opts =
        DetectorOptions { providers: vec![Provider::Tensorrt, Provider::Cuda, Provider::Cpu], ..Default::default() };
    let mut det = Detector::load(&model(), opts).unwrap();
    if cpu_only_build {
        assert_eq!(det.provider(), Provider::Cpu);
    }
    let warm = det.warm_up().unwrap();
    assert!(warm > 0.0);
}

#[test]
fn cpu_only_runs_on_the_cpu() {
    let opts = DetectorOptions { providers: vec![Provider::Cpu], ..Default::default() };
    let det = Detector::load(&model(), opts).unwrap();
    assert_eq!(det.provider(), Provider::Cpu);
    assert_eq!(det.info().names.len(), 6);
}

/// Where set-up installed ONNX Runtime's OpenVINO build (x86-64 unless
/// STREETSCOPE_OPENVINO=0) and nothing else was asked for, a detector naming
/// `openvino` loads it and runs the vehicle model on OpenVINO, with the
/// detections of the CPU provider (within float rounding) on bus.jpg and frames
/// of both test clips. (Loaded first, so the CPU detector beside it shares the
/// build: its CPU provider.)
#[test]
fn openvino_runs_the_model_with_the_cpu_providers_detections() {
    use streetscope_detect::runtime;
    let lib = runtime::library_for(&[Provider::Openvino, Provider::Cpu]);
    let expect_openvino = common::openvino_expected();
    if expect_openvino {
        assert_eq!(lib, runtime::openvino_library(), "set-up installs the OpenVINO build here");
    }
    let model = model();
    let load = |providers| {
        let opts = DetectorOptions { providers, ..Default::default() };
        Detector::load(&model, opts).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut ov = load(vec![Provider::Openvino, Provider::Cpu]);
    if runtime::library_path() != lib {
        // One library per process: `cargo test` ran a CPU-only detector first in this
        // process (nextest, as CI runs, gives each test a process of its own).
        eprintln!("this process loaded {} first; skipped", runtime::library_path().display());
        return;
    }
    if !expect_openvino && ov.provider() == Provider::Cpu {
        eprintln!("{}: no OpenVINO provider; the detector fell back to the CPU", lib.display());
        return;
    }
    assert_eq!(ov.provider(), Provider::Openvino);
    let mut cpu = load(vec![Provider::Cpu]);
    assert_eq!(cpu.provider(), Provider::Cpu);
    let bus = default_bus_image_path();
    let mut images = vec![image::open(&bus).unwrap_or_else(|e| panic!("{}: {e}", bus.display())).to_rgb8()];
    let sprite = Sprite::load_bus(&bus).expect("bus.jpg (run scripts/setup.sh)");
    for clip in ["one_bus", "two_way"] {
        let spec = builtin_clip(clip).expect("built-in clip");
        let renderer = ClipRenderer::new(&spec, &sprite);
        images.extend((0..spec.frame_count()).step_by(15).map(|i| renderer.frame(i)));
    }
    let (w, h) = cpu.input_size();
    let pairs: Vec<_> = images
        .iter()
        .map(|img| {
            let (rgb, lb) = streetscope_detect::preprocess::letterbox_image(img, w, h);
            (cpu.detect_rgb(&rgb, &lb).unwrap(), ov.detect_rgb(&rgb, &lb).unwrap())
        })
        .collect();
    common::assert_within_rounding("images", &pairs, 20);
}

/// An OpenVINO device that this machine lacks (a configuration written for
/// another node) is skipped like a missing provider: the next one runs.
#[test]
fn an_openvino_device_that_is_not_there_falls_back_to_the_next_provider() {
    let mut opts = DetectorOptions { providers: vec![Provider::Openvino, Provider::Cpu], ..Default::default() };
    opts.openvino.device = "NPU".into();
    let mut det = Detector::load(&model(), opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(det.provider(), Provider::Cpu);
    assert!(det.warm_up().unwrap() > 0.0);
}

/// Whether the loaded ONNX Runtime has the CUDA provider (the GPU build).
fn ort_has_cuda() -> bool {
    let lib = streetscope_detect::runtime::library_path();
    std::fs::read(&lib).map(|b| b.windows(22).any(|w| w == b"CUDAExecutionProvider\0")).unwrap_or(false)
        && lib.parent().is_some_and(|d| d.join("libonnxruntime_providers_cuda.so").exists())
}

#[test]
fn an_input_size_that_contradicts_a_fixed_model_is_refused() {
    let opts = DetectorOptions { input_size: Some([320, 320]), providers: vec![Provider::Cpu], ..Default::default() };
    let err = Detector::load(&model(), opts).unwrap_err().to_string();
    assert!(err.contains("detector.input_size [320, 320] does not match the model's fixed input 640x640"), "{err}");
    let opts = DetectorOptions { input_size: Some([640, 640]), providers: vec![Provider::Cpu], ..Default::default() };
    assert_eq!(Detector::load(&model(), opts).unwrap().input_size(), (640, 640));
}
