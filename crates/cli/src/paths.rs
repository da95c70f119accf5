//! Default locations of what the set-up script fetches.

use std::path::PathBuf;

pub use streetscope_detect::runtime::cache_dir;

/// The default model: `$STREETSCOPE_MODEL`, else the one the set-up script fetched.
pub fn default_model() -> PathBuf {
    std::env::var_os("STREETSCOPE_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models").join("yolo11n_seg_fp16.onnx"))
}
