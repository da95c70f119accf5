//! The ingest stage: every camera on its own pipeline under its own
//! [supervisor](crate::supervisor), frames into one sink.

use std::time::{Duration, Instant};

use streetscope_contracts::Frame;
use streetscope_telemetry::StageMeter;

use crate::source::{CameraReport, CameraSource, StopHandle};
use crate::supervisor::{supervise, CameraStatusHandle, RestartPolicy};
use crate::IngestError;

/// Runs every camera until its stream ends (files) or `stop` is asked, each on
/// its own thread, so a failing camera never holds up the others. Live cameras
/// are restarted with the default [`RestartPolicy`] after errors, stalls and end
/// of stream. `push` gets every frame and returns `false` when downstream is gone.
/// Returns each camera's outcome in the order given.
pub fn run_cameras<P>(
    cameras: &[CameraSource],
    push: P,
    stop: &StopHandle,
    meter: &StageMeter,
) -> Vec<Result<CameraReport, IngestError>>
where
    P: Fn(Frame) -> bool + Clone + Send + Sync + 'static,
{
    let statuses: Vec<_> = cameras.iter().map(CameraStatusHandle::new).collect();
    run_cameras_with(cameras, &RestartPolicy::default(), &statuses, push, stop, meter)
}

/// [`run_cameras`] with a restart policy, publishing each camera's state in
/// `statuses` (one per camera, in the same order).
///
/// # Panics
/// When `statuses` and `cameras` differ in length.
pub fn run_cameras_with<P>(
    cameras: &[CameraSource],
    policy: &RestartPolicy,
    statuses: &[CameraStatusHandle],
    push: P,
    stop: &StopHandle,
    meter: &StageMeter,
) -> Vec<Result<CameraReport, IngestError>>
where
    P: Fn(Frame) -> bool + Clone + Send + Sync + 'static,
{
    assert_eq!(cameras.len(), statuses.len(), "one status per camera");
    std::thread::scope(|scope| {
        let handles: Vec<_> = cameras
            .iter()
            .zip(statuses)
            .map(|(cam, status)| {
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
                        let result = supervise(cam, policy, sink, stop, status);
                        // Busy time: the camera's run less the time it waited for room downstream.
                        let waited = Duration::from_nanos(waited.load(std::sync::atomic::Ordering::Relaxed));
                        meter.add_busy(started.elapsed().saturating_sub(waited).as_nanos() as u64);
                        // The supervisor logged the error.
                        if result.is_err() {
                            meter.error();
                        }
                        result
                    })
                    .expect("spawning a thread")
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an ingest thread panicked")).collect()
    })
}
