//! Ingest: camera sources decoded by GStreamer, sampled to a target frame rate
//! by timestamp, letterboxed to the model's input size, and emitted as
//! [`Frame`](streetscope_contracts::Frame)s.
//!
//! - [`source`]: one camera's pipeline, from source to frames.
//! - [`supervisor`]: keeps a camera running: restarts live sources with
//!   backoff after errors, stalls and end of stream; publishes its state.
//! - [`reconcile`]: the live camera set: changes in, cameras started, restarted, stopped.
//! - [`stage`]: the ingest stage, every camera supervised on its own thread.
//! - [`letterbox`]: the `streetscopeletterbox` element: scaling, borders and RGB in Rust.
//! - [`template`]: the GStreamer pipeline templates kept as text in `pipelines/`.
//! - [`sampler`]: timestamp-based sampling (pure).
//! - [`clipwriter`]: writes RGB frames to an H.264 MP4 (test clips).
//!
//! Invariant: this is the only crate that links GStreamer.

pub mod bench;
pub mod clipwriter;
pub mod letterbox;
pub mod numbering;
pub mod probe;
pub mod reconcile;
pub mod sampler;
pub mod source;
pub mod stage;
pub mod supervisor;
pub mod template;

pub use source::{run_camera, run_camera_from, CameraReport, CameraSource, FrameSink, StopHandle};
pub use supervisor::{supervise, CameraState, CameraStatus, CameraStatusHandle, RestartPolicy, SupervisedCamera};

/// Why ingest failed for one camera. Messages name the camera and never contain
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("camera {camera}: source {source_url}: {reason}")]
    Source { camera: String, source_url: String, reason: String },
    #[error("camera {camera}: could not build the pipeline: {reason}")]
    Pipeline { camera: String, reason: String },
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Initialises GStreamer once per process
/// and registers Streetscope's own elements with it.
pub fn init() -> Result<(), IngestError> {
    gstreamer::init().map_err(|e| IngestError::Init(e.to_string()))?;
    letterbox::register().map_err(IngestError::Init)
}
