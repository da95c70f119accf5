//! Execution providers: a list with GPU providers falls back to the CPU on a
//! machine (or an ONNX Runtime build) without them, and says which one runs.

use std::path::PathBuf;

use streetscope_contracts::config::Provider;
use streetscope_detect::{Detector, DetectorOptions};

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
