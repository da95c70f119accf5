//! A camera's frames on their way to the detector: each camera has its own
//! bounded queue, so a slow detector costs each live camera its own oldest
//! frames and never another camera's; a file waits instead (nothing is lost by
//! waiting). A forwarder task moves the queue into the frames publisher — the
//! detector's in-process queue in `streetscope run`, the frames topic in an
//! ingest pod.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streetscope_contracts::Frame;
use streetscope_ingest::supervisor::is_live;
use streetscope_ingest::CameraSource;
use streetscope_telemetry::StageMeter;
use streetscope_transport::{channel, DropCounter, FullPolicy, Publish, Subscribe};

/// Frames a camera's queue holds: enough to ride out a short hiccup downstream,
/// few enough that a live camera's frames stay fresh.
pub const CAMERA_QUEUE_FRAMES: usize = 2;

/// A started camera's queue.
#[derive(Debug)]
pub struct CameraQueue<S> {
    /// Where the camera pushes its frames (blocks for files, drops the oldest
    /// for live cameras when full).
    pub sink: S,
    /// Frames dropped from this queue.
    pub drops: DropCounter,
    /// The forwarder: ends once the sink is dropped (the camera stopped) and
    /// the queue is drained; returns the last sequence number it forwarded.
    pub forwarder: tokio::task::JoinHandle<Option<u64>>,
}

/// The queue of camera `cam`: bounded (`capacity` frames), `DropOldest` for
/// live cameras and `Block` for files, forwarded into `out` by a task on `rt`.
/// The sink also meters the ingest stage: frames, and busy time (the camera's
/// run less the time it waited for room downstream).
pub fn camera_queue<P>(
    cam: &CameraSource,
    capacity: usize,
    out: P,
    meter: &StageMeter,
    rt: &tokio::runtime::Handle,
) -> CameraQueue<impl Fn(Frame) -> bool + Send + Sync + 'static>
where
    P: Publish<Frame> + 'static,
{
    let policy = if is_live(&cam.source) { FullPolicy::DropOldest } else { FullPolicy::Block };
    let (tx, mut rx) = channel::<Frame>(&format!("frames of {}", cam.camera_id), capacity, policy);
    let drops = tx.drop_counter();
    let forwarder = rt.spawn(async move {
        let mut last = None;
        while let Some(f) = rx.next().await {
            let seq = f.seq;
            if out.publish(f).await.is_err() {
                break;
            }
            last = Some(seq);
        }
        last
    });
    let busy = BusyMeter { meter: meter.clone(), started: Instant::now(), waited: AtomicU64::new(0) };
    let sink = move |f: Frame| {
        let t = Instant::now();
        let ok = tx.publish_blocking(f).is_ok();
        busy.waited.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        busy.meter.item();
        ok
    };
    CameraQueue { sink, drops, forwarder }
}

/// Adds a camera's busy time to the ingest meter when its sink is dropped (the
/// camera stopped).
struct BusyMeter {
    meter: StageMeter,
    started: Instant,
    waited: AtomicU64,
}

impl Drop for BusyMeter {
    fn drop(&mut self) {
        let waited = Duration::from_nanos(self.waited.load(Ordering::Relaxed));
        self.meter.add_busy(self.started.elapsed().saturating_sub(waited).as_nanos() as u64);
    }
}

/// The drop counters of the cameras' queues, shared while cameras come and go.
/// A camera restarted with new settings gets a new queue: its drops are the sum
/// over its queues.
#[derive(Debug, Clone, Default)]
pub struct DropCounters(Arc<Mutex<Vec<(String, DropCounter)>>>);

impl DropCounters {
    pub fn add(&self, camera: &str, counter: DropCounter) {
        self.lock().push((camera.to_owned(), counter));
    }

    /// Frames dropped from `camera`'s queues.
    pub fn of(&self, camera: &str) -> u64 {
        self.lock().iter().filter(|(c, _)| c == camera).map(|(_, d)| d.get()).sum()
    }

    /// Frames dropped from every queue.
    pub fn total(&self) -> u64 {
        self.lock().iter().map(|(_, d)| d.get()).sum()
    }

    /// Per camera that ever ran, in order of first start: frames dropped.
    pub fn per_camera(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for (c, d) in self.lock().iter() {
            match out.iter_mut().find(|(id, _)| id == c) {
                Some(e) => e.1 += d.get(),
                None => out.push((c.clone(), d.get())),
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, DropCounter)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
