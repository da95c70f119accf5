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
    on_frame: Option<FrameHook>,
}

/// Called after each frame the stage took, with the frame's detections and
/// their confirmed tracks ([`Aggregator::frame_tracks`]).
pub type FrameHookFn = Box<dyn FnMut(&FrameDetections, &[Option<u64>]) + Send>;

struct FrameHook(FrameHookFn);

impl std::fmt::Debug for FrameHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameHook")
    }
}

impl AggregateStage {
    pub fn new(aggregator: Aggregator, meter: StageMeter) -> Self {
        Self { aggregator, meter, on_frame: None }
    }

    /// Calls `hook` after each frame taken (not a duplicate) with its
    /// detections and, per detection, its confirmed track's id: how
    /// `streetscope run --ui` labels the boxes of its snapshots. Keep it cheap:
    /// it runs on the stage's task, once per frame.
    pub fn on_frame(mut self, hook: FrameHookFn) -> Self {
        self.on_frame = Some(FrameHook(hook));
        self
    }

    /// The frame's tracks to the hook, if any and if the frame was taken.
    fn frame_taken(&mut self, fd: &FrameDetections) {
        let Some(FrameHook(hook)) = &mut self.on_frame else { return };
        if let Some((seq, tracks)) = self.aggregator.frame_tracks(&fd.camera_id) {
            if seq == fd.seq {
                hook(fd, tracks);
            }
        }
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
                    self.frame_taken(&fd);
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
                    self.frame_taken(&fd);
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
    for r in agg.drain(crossings) {
        output.publish(r).await?;
    }
    Ok(())
}

/// The event time a stage has reached, for [`StageInput::Tick`] and
/// [`Aggregator::tick`]: the latest capture time seen, plus the time that has
/// passed since it arrived. A backlog of frames never looks like silence (the
/// clock follows the frames' own times); a silent camera does (the clock goes
/// on without it). The one rule of both `streetscope run` and the aggregator
/// pods. Pure: the caller passes the instants.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventClock {
    latest: Option<(i64, std::time::Instant)>,
}

impl EventClock {
    /// A frame captured at `capture_ms` arrived at `at`.
    pub fn observe(&mut self, capture_ms: i64, at: std::time::Instant) {
        if self.latest.is_none_or(|(t, _)| capture_ms >= t) {
            self.latest = Some((capture_ms, at));
        }
    }

    /// The event time at `at`; None before the first frame.
    pub fn now(&self, at: std::time::Instant) -> Option<i64> {
        self.latest.map(|(t, seen)| t + at.saturating_duration_since(seen).as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::EventClock;

    #[test]
    fn the_clock_follows_the_frames_then_the_silence() {
        let t0 = Instant::now();
        let mut c = EventClock::default();
        assert_eq!(c.now(t0), None);
        c.observe(1_000_000, t0);
        assert_eq!(c.now(t0 + Duration::from_millis(1500)), Some(1_001_500));
        // A backlog: frames captured a minute ago arrive now; the clock is the frames'.
        c.observe(1_000_200, t0 + Duration::from_millis(10));
        assert_eq!(c.now(t0 + Duration::from_millis(10)), Some(1_000_200));
        // An older frame (another camera behind) does not take the clock back.
        c.observe(999_000, t0 + Duration::from_millis(20));
        assert_eq!(c.now(t0 + Duration::from_millis(20)), Some(1_000_210));
    }
}
