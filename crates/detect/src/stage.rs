//! The detect stage: frames in, detections out, one frame at a time.

use streetscope_contracts::{Frame, FrameDetections};
use streetscope_telemetry::StageMeter;
use streetscope_transport::{Publish, Subscribe, TransportError};

use crate::Detector;

/// Runs a [`Detector`] over a stream of frames.
#[derive(Debug)]
pub struct DetectStage {
    detector: Detector,
    meter: StageMeter,
}

impl DetectStage {
    pub fn new(detector: Detector, meter: StageMeter) -> Self {
        Self { detector, meter }
    }

    /// Runs until the input ends. A frame that fails is logged with its camera and
    /// sequence number, counted as an error, and skipped: one bad frame never
    /// stops the stage. Fails only when the output is closed.
    ///
    /// Inference blocks its thread; it runs through `block_in_place`, so this must
    /// be driven by a multi-threaded tokio runtime.
    pub async fn run(
        mut self,
        mut input: impl Subscribe<Frame>,
        output: impl Publish<FrameDetections>,
    ) -> Result<Detector, TransportError> {
        while let Some(frame) = input.next().await {
            let result = tokio::task::block_in_place(|| self.meter.time(|| self.detector.detect_frame(&frame)));
            match result {
                Ok(dets) => {
                    self.meter.item();
                    output.publish(dets).await?;
                }
                Err(e) => {
                    self.meter.error();
                    tracing::warn!(camera = %frame.camera_id, seq = frame.seq, "skipping frame: {e}");
                }
            }
        }
        Ok(self.detector)
    }
}
