//! Detect: YOLO models exported by Ultralytics, run on ONNX Runtime.
//!
//! - [`runtime`]: loading the ONNX Runtime library (dynamically) once per process.
//! - [`model`]: a loaded model: its head, class names and input size from metadata.
//! - [`preprocess`]: letterboxed RGB8 frames to the model's input tensor.
//! - [`decode`]: the heads' outputs to candidate boxes.
//! - [`nms`]: non-maximum suppression.
//! - [`detector`]: all of it together, one frame in, detections out.
//!
//! Invariant: this is the only crate that links ONNX Runtime.

pub mod cores;
pub mod decode;
pub mod detector;
pub mod metadata;
pub mod model;
pub mod nms;
pub mod preprocess;
pub mod runtime;
pub mod stage;

pub use detector::{Detector, DetectorOptions, Input, InputBuf, Preprocessor};
pub use model::{HeadKind, ModelInfo, Precision};

/// Why detection failed. Per-frame errors are cheap and name what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "cannot load the ONNX Runtime library from {path}: {reason}. Set ORT_DYLIB_PATH to the path of \
         libonnxruntime.so (scripts/setup.sh puts its builds in ~/.cache/streetscope/onnxruntime/ and, on x86-64, \
         onnxruntime-openvino/)"
    )]
    Runtime { path: String, reason: String },
    #[error("cannot load the model {path}: {reason}")]
    Model { path: String, reason: String },
    #[error("model {path}: unsupported outputs {shapes}: {reason}")]
    UnsupportedModel { path: String, shapes: String, reason: String },
    #[error("frame {seq} of camera {camera}: {reason}")]
    Frame { camera: String, seq: u64, reason: String },
    #[error("inference failed: {0}")]
    Inference(String),
}
