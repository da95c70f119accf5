//! The ingest stage: every camera on its own pipeline, frames into one sink.

use std::time::{Duration, Instant};

use streetscope_contracts::Frame;
use streetscope_telemetry::StageMeter;

use crate::source::{run_camera, CameraReport, CameraSource, StopHandle};
use crate::IngestError;

/// Runs every camera until its stream ends (files) or `stop` is asked, each on
/// its own thread, so a failing camera never holds up the others. `push` gets
/// every frame and returns `false` when downstream is gone. Returns each camera's
/// outcome in the order given.
pub fn run_cameras<P>(
    cameras: &[CameraSource],
    push: P,
    stop: &StopHandle,
    meter: &StageMeter,
) -> Vec<Result<CameraReport, IngestError>>
where
    P: Fn(Frame) -> bool + Clone + Send + Sync + 'static,
{
    std::thread::scope(|scope| {
        let handles: Vec<_> = cameras
            .iter()
            .map(|cam| {
                let push = push.clone();
                let meter = meter.clone();
                std::thread::Builder::new()
                    .name(format!("ingest-{}", cam.camera_id))
                    .spawn_scoped(scope, move || {
                        let started = Instant::now();
                        let waited = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                        let sink = {
                            let waited = waited.clone();
                            let meter = meter.clone();
                            move |frame: Frame| {
                                let t = Instant::now();
                                let ok = push(frame);
                                waited.fetch_add(t.elapsed().as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
                                meter.item();
                                ok
                            }
                        };
                        let result = run_camera(cam, sink, stop);
                        // Busy time: the camera's run less the time it waited for room downstream.
                        let waited = Duration::from_nanos(waited.load(std::sync::atomic::Ordering::Relaxed));
                        meter.add_busy(started.elapsed().saturating_sub(waited).as_nanos() as u64);
                        if let Err(e) = &result {
                            meter.error();
                            tracing::error!("{e}");
                        }
                        result
                    })
                    .expect("spawning a thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an ingest thread panicked")).collect()
    })
}
