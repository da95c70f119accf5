//! The aggregate stage: detections in, result records (crossings, turning movements, windows) out.

use streetscope_contracts::cameras::CameraChange;
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

    /// Runs until the input ends, publishing every result record: after each input
    /// its crossings, then the turning movements they completed, then the windows
    /// that closed; at the end, the crossings that tracks still held and the
    /// windows still open. Returns the aggregator with its totals. Detections of a
    /// camera it does not know are logged and skipped.
    pub async fn run(
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

/// An input of [`AggregateStage::run_with_changes`]: detections, or a change
/// to the camera set, applied in the order they come.
#[derive(Debug, Clone)]
pub enum StageInput {
    Detections(FrameDetections),
    Camera(CameraChange),
    /// The time has reached this event time (ms since the Unix epoch) without a
    /// frame: a timer's tick ([`Aggregator::tick`]), so that silent cameras turn
    /// stale and windows close when no camera sends anything. Send the latest
    /// capture time seen plus the wall-clock time since it arrived, so that a
    /// backlog of frames never looks like silence.
    Tick(i64),
}

impl AggregateStage {
    /// [`run`](Self::run) over a stream that also carries changes to the camera
    /// set: an upsert adds the camera or updates its lines
    /// ([`Aggregator::upsert_camera`]); a removal ends its tracks, publishing the
    /// crossings they held ([`Aggregator::remove_camera`]). Send a camera's upsert
    /// before its first detections.
    pub async fn run_with_changes(
        mut self,
        mut input: impl Subscribe<StageInput>,
        output: impl Publish<ResultRecord>,
    ) -> Result<Aggregator, TransportError> {
        while let Some(item) = input.next().await {
            let fd = match item {
                StageInput::Detections(fd) => fd,
                StageInput::Camera(CameraChange::Upsert(c)) => {
                    self.aggregator.upsert_camera(&c);
                    continue;
                }
                StageInput::Camera(CameraChange::Remove { id }) => {
                    let events = self.aggregator.remove_camera(&id);
                    publish_all(&mut self.aggregator, events, &output).await?;
                    continue;
                }
                StageInput::Tick(now_ms) => {
                    self.aggregator.tick(now_ms);
                    publish_all(&mut self.aggregator, Vec::new(), &output).await?;
                    continue;
                }
            };
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
    for a in agg.take_alerts() {
        output.publish(ResultRecord::Alert(a)).await?;
    }
    Ok(())
}
