//! The aggregate stage: detections in, crossing events out.

use streetscope_contracts::records::CrossingEvent;
use streetscope_contracts::FrameDetections;
use streetscope_telemetry::StageMeter;
use streetscope_transport::{Publish, Subscribe, TransportError};

use crate::Aggregator;

/// Runs an [`Aggregator`] over a stream of detections.
#[derive(Debug)]
pub struct AggregateStage {
    aggregator: Aggregator,
    meter: StageMeter,
}

impl AggregateStage {
    pub fn new(aggregator: Aggregator, meter: StageMeter) -> Self {
        Self { aggregator, meter }
    }

    /// Runs until the input ends, then releases the crossings that tracks still
    /// hold, and returns the aggregator with its counts.
    /// Detections of a camera it does not know are logged and skipped.
    pub async fn run(
        mut self,
        mut input: impl Subscribe<FrameDetections>,
        output: impl Publish<CrossingEvent>,
    ) -> Result<Aggregator, TransportError> {
        while let Some(fd) = input.next().await {
            match self.meter.time(|| self.aggregator.process(&fd)) {
                Ok(events) => {
                    self.meter.item();
                    for ev in events {
                        output.publish(ev).await?;
                    }
                }
                Err(e) => {
                    self.meter.error();
                    tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "skipping detections: {e}");
                }
            }
        }
        for ev in self.aggregator.finish() {
            output.publish(ev).await?;
        }
        Ok(self.aggregator)
    }
}
