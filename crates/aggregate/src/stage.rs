//! The aggregate stage: detections in, crossing events (or every result record) out.

use streetscope_contracts::records::{CrossingEvent, ResultRecord};
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
    /// Only crossings are published: turning movements and windows are left in
    /// the aggregator's totals ([`Aggregator::turning_movements`]) and their
    /// records discarded as they come, so that nothing piles up; use
    /// [`AggregateStage::run_records`] to publish them.
    pub async fn run(
        mut self,
        mut input: impl Subscribe<FrameDetections>,
        output: impl Publish<CrossingEvent>,
    ) -> Result<Aggregator, TransportError> {
        while let Some(fd) = input.next().await {
            match self.meter.time(|| self.aggregator.process(&fd)) {
                Ok(events) => {
                    self.meter.item();
                    self.aggregator.take_turning_events();
                    self.aggregator.take_windows();
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
        self.aggregator.take_turning_events();
        self.aggregator.take_windows();
        Ok(self.aggregator)
    }

    /// Like [`AggregateStage::run`], but publishes every result record: after each
    /// input its crossings, then the turning movements they completed, then the
    /// windows that closed.
    pub async fn run_records(
        mut self,
        mut input: impl Subscribe<FrameDetections>,
        output: impl Publish<ResultRecord>,
    ) -> Result<Aggregator, TransportError> {
        while let Some(fd) = input.next().await {
            match self.meter.time(|| self.aggregator.process(&fd)) {
                Ok(events) => {
                    self.meter.item();
                    publish_all(&mut self.aggregator, events, &output).await?;
                }
                Err(e) => {
                    self.meter.error();
                    tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "skipping detections: {e}");
                }
            }
        }
        let events = self.aggregator.finish();
        publish_all(&mut self.aggregator, events, &output).await?;
        Ok(self.aggregator)
    }
}

async fn publish_all(
    agg: &mut Aggregator,
    crossings: Vec<CrossingEvent>,
    output: &impl Publish<ResultRecord>,
) -> Result<(), TransportError> {
    for ev in crossings {
        output.publish(ResultRecord::Crossing(ev)).await?;
    }
    for ev in agg.take_turning_events() {
        output.publish(ResultRecord::TurningMovement(ev)).await?;
    }
    for w in agg.take_windows() {
        output.publish(ResultRecord::Window(w)).await?;
    }
    Ok(())
}
