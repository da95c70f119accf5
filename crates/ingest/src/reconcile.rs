//! The live camera set: [`CameraChange`]s in, supervised cameras started,
//! restarted and stopped.
//!
//! A [`Reconciler`] owns one [`SupervisedCamera`] per camera id. It does not care
//! where the changes come from (the watched config file of `streetscope run`, the
//! registry's compacted topic): each change touches one camera only.
//!
//! - **Upsert of a new id**: the camera starts.
//! - **Upsert of a known id**: the camera restarts only if what ingest does with
//!   it changed (its [`CameraSource`]: source, sampling rate, encoding, …); a
//!   change of counting lines alone leaves it streaming.
//! - **Remove**: the camera stops; its thread is joined.
//!
//! Invariant: a camera's frame identities rise for the reconciler's whole life
//! and across processes (see `streetscope_contracts::identity`): every start of a
//! live camera (a new id, a restart by an update, a re-adding after a removal, a
//! new ingest pod) begins a new run numbered by the clock, above every run before
//! it, so the aggregator never takes a frame of the new run for a duplicate of
//! the old (nor the other way round). Recordings (`frame_ids = "media"`, the
//! default for files) are numbered by their position in the media instead, so
//! that a replay is recognised downstream.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use streetscope_contracts::cameras::CameraChange;
use streetscope_contracts::config::{redact_url, CameraConfig, FrameIds};
use streetscope_contracts::identity::{RunClock, RunNumbering};
use streetscope_contracts::Frame;

use crate::numbering::MediaNumbering;

use crate::source::{CameraReport, CameraSource, FrameSink, StopHandle};
use crate::supervisor::{is_live, CameraStatusHandle, RestartPolicy, SupervisedCamera};
use crate::IngestError;

/// What every camera shares: the model's input size, the stall watchdog and the
/// restart policy.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Width and height frames are letterboxed to.
    pub width: u32,
    pub height: u32,
    pub stall_timeout: Duration,
    pub policy: RestartPolicy,
    /// JPEG quality of cameras that set none; `None` hands over raw RGB (in one
    /// process, where nothing is gained by compressing). Ingest pods encode
    /// ([`DEFAULT_JPEG_QUALITY`]): their frames cross the network.
    pub default_jpeg_quality: Option<u8>,
}

/// JPEG quality of an ingest pod's frames when the camera sets none.
pub const DEFAULT_JPEG_QUALITY: u8 = 85;

impl IngestSettings {
    /// What ingest runs for the camera `c`.
    pub fn source(&self, c: &CameraConfig) -> CameraSource {
        CameraSource {
            camera_id: c.id.clone(),
            intersection_id: c.intersection.clone(),
            source: c.source.clone(),
            sample_fps: c.sample_fps,
            width: self.width,
            height: self.height,
            stall_timeout: self.stall_timeout,
            keyframes_only: c.keyframes_only,
            jpeg_quality: c.jpeg_quality.or(self.default_jpeg_quality),
            rtsp_transport: c.rtsp_transport,
            template: c.template.clone(),
        }
    }
}

/// What applying one change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new camera was started.
    Started,
    /// A camera was stopped and started again with its new settings.
    Restarted,
    /// The camera's ingest settings are the same: it goes on untouched.
    Unchanged,
    /// The camera was stopped and removed.
    Removed,
    /// A removal of a camera that is not in the set.
    Unknown,
}

/// The cameras' statuses, shared with readers (status endpoint, metrics) while
/// the set changes. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct CameraStatuses(Arc<Mutex<BTreeMap<String, CameraStatusHandle>>>);

impl CameraStatuses {
    /// The status handles of the cameras in the set now, by camera id.
    pub fn handles(&self) -> Vec<CameraStatusHandle> {
        self.lock().values().cloned().collect()
    }

    /// Adds (or replaces) a camera's status, for callers that supervise
    /// cameras themselves (the distributed ingest pod).
    pub fn insert(&self, camera_id: &str, status: CameraStatusHandle) {
        self.lock().insert(camera_id.to_owned(), status);
    }

    /// Removes a camera's status.
    pub fn remove(&self, camera_id: &str) {
        self.lock().remove(camera_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CameraStatusHandle>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A camera that ended, with how it ended.
pub type Finished = (String, Result<CameraReport, IngestError>);

struct Running {
    source: CameraSource,
    media: bool,
    camera: SupervisedCamera,
}

/// Whether camera `c` is numbered by media position (`frame_ids`; the default
/// is `media` for files and `sequence` for live sources).
pub fn media_numbered(c: &CameraConfig) -> bool {
    let default = if is_live(&c.source) { FrameIds::Sequence } else { FrameIds::Media };
    c.frame_ids.unwrap_or(default) == FrameIds::Media
}

/// The current Unix second.
fn unix_now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Starts, restarts and stops supervised cameras as [`CameraChange`]s come.
///
/// `make_sink` gives the sink of a camera each time the camera starts (a new id,
/// or a restart): in `streetscope run`, the camera's own bounded queue.
pub struct Reconciler<M> {
    settings: IngestSettings,
    make_sink: M,
    running: BTreeMap<String, Running>,
    /// Run numbers of this process (see the module's invariant).
    runs: Arc<Mutex<RunClock>>,
    statuses: CameraStatuses,
    /// Outcomes of the cameras stopped by a change (removed or restarted).
    finished: Vec<Finished>,
}

impl<M> std::fmt::Debug for Reconciler<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reconciler").field("cameras", &self.running.keys().collect::<Vec<_>>()).finish()
    }
}

impl<M, S> Reconciler<M>
where
    M: FnMut(&CameraSource) -> S,
    S: FrameSink,
{
    pub fn new(settings: IngestSettings, make_sink: M) -> Self {
        Self {
            settings,
            make_sink,
            running: BTreeMap::new(),
            runs: Arc::default(),
            statuses: CameraStatuses::default(),
            finished: Vec::new(),
        }
    }

    /// The statuses of the cameras in the set, kept current as it changes.
    pub fn statuses(&self) -> CameraStatuses {
        self.statuses.clone()
    }

    /// The ids of the cameras in the set (running, or ended but not removed).
    pub fn camera_ids(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Whether every camera in the set has ended (files played, failed for
    /// good). True for an empty set.
    pub fn all_finished(&self) -> bool {
        self.running.values().all(|r| r.camera.is_finished())
    }

    /// Applies one change; blocks while a stopped camera's pipeline is torn down
    /// (a live source at once, a file within a few seconds). Fails only when a
    /// thread cannot be spawned.
    pub fn apply(&mut self, change: CameraChange) -> std::io::Result<Applied> {
        match change {
            CameraChange::Upsert(cfg) => {
                let source = self.settings.source(&cfg);
                let media = media_numbered(&cfg);
                let restarted = match self.running.get(&cfg.id) {
                    Some(r) if r.source == source && r.media == media => return Ok(Applied::Unchanged),
                    Some(_) => {
                        self.stop(&cfg.id);
                        true
                    }
                    None => false,
                };
                self.start(source, media)?;
                tracing::info!(
                    camera = %cfg.id,
                    source = %redact_url(&cfg.source),
                    "camera {}",
                    if restarted { "restarted with new settings" } else { "added" }
                );
                Ok(if restarted { Applied::Restarted } else { Applied::Started })
            }
            CameraChange::Remove { id } => {
                if self.stop(&id) {
                    tracing::info!(camera = %id, "camera removed");
                    Ok(Applied::Removed)
                } else {
                    Ok(Applied::Unknown)
                }
            }
        }
    }

    fn start(&mut self, source: CameraSource, media: bool) -> std::io::Result<()> {
        let sink = (self.make_sink)(&source);
        let number: Box<dyn FnMut(&Frame) -> u64 + Send> = if media {
            let mut n = MediaNumbering::new(source.sample_fps);
            Box::new(move |f: &Frame| n.number(f.pts_ns))
        } else {
            // The supervisor counts this run's frames from 0 across reconnections.
            let runs = self.runs.clone();
            let run = runs.lock().unwrap_or_else(|e| e.into_inner()).next_run(unix_now_s());
            let mut n = RunNumbering::new(run);
            Box::new(move |f: &Frame| {
                n.number(f.seq, || runs.lock().unwrap_or_else(|e| e.into_inner()).next_run(unix_now_s()))
            })
        };
        let number = Mutex::new(number);
        let numbered = move |mut frame: Frame| {
            frame.seq = (number.lock().unwrap_or_else(|e| e.into_inner()))(&frame);
            sink.push(frame)
        };
        // Recordings play once, whatever their protocol.
        let policy = RestartPolicy {
            restart_after_end: self.settings.policy.restart_after_end && !media,
            ..self.settings.policy.clone()
        };
        let camera = SupervisedCamera::spawn(source.clone(), policy, numbered)?;
        self.statuses.lock().insert(source.camera_id.clone(), camera.status().clone());
        self.running.insert(source.camera_id.clone(), Running { source, media, camera });
        Ok(())
    }

    /// Stops and joins the camera `id`; whether it was in the set.
    fn stop(&mut self, id: &str) -> bool {
        let Some(r) = self.running.remove(id) else {
            return false;
        };
        self.statuses.lock().remove(id);
        let outcome = r.camera.shutdown();
        self.finished.push((id.to_owned(), outcome));
        true
    }

    /// Takes the cameras that ended by themselves (a recording played to its
    /// end, a camera that failed for good) out of the set, joined, with how
    /// each ended; the set no longer holds them, and a later upsert of the same
    /// id starts the camera afresh.
    pub fn reap_ended(&mut self) -> Vec<Finished> {
        let ended: Vec<String> =
            self.running.iter().filter(|(_, r)| r.camera.is_finished()).map(|(id, _)| id.clone()).collect();
        ended
            .into_iter()
            .map(|id| {
                let r = self.running.remove(&id).expect("listed above");
                self.statuses.lock().remove(&id);
                (id, r.camera.join())
            })
            .collect()
    }

    /// Applies changes from `changes` until `stop` is asked or `changes` is
    /// closed, handing each camera that ended by itself to `on_ended` as soon
    /// as it is seen (on this thread, before any later change is applied); then
    /// shuts every camera down and returns how each ended. Blocks the calling
    /// thread: the loop of an ingest pod.
    pub fn drive(
        mut self,
        changes: std::sync::mpsc::Receiver<CameraChange>,
        stop: &StopHandle,
        mut on_ended: impl FnMut(Finished),
    ) -> Vec<Finished> {
        use std::sync::mpsc::RecvTimeoutError;
        while !stop.is_stopped() {
            match self.apply_next(&changes) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            for f in self.reap_ended() {
                on_ended(f);
            }
        }
        self.shutdown()
    }

    /// Waits up to 100 ms for the next change and applies it; a change that
    /// cannot be applied (no thread for the camera) is logged and skipped.
    fn apply_next(
        &mut self,
        changes: &std::sync::mpsc::Receiver<CameraChange>,
    ) -> Result<(), std::sync::mpsc::RecvTimeoutError> {
        let change = changes.recv_timeout(Duration::from_millis(100))?;
        let id = change.camera_id().to_owned();
        if let Err(e) = self.apply(change) {
            tracing::error!(camera = %id, "could not apply a camera change: {e}");
        }
        Ok(())
    }

    /// Stops every camera (all asked at once, then joined) and returns how each
    /// camera ended, those stopped by earlier changes first.
    pub fn shutdown(mut self) -> Vec<Finished> {
        for r in self.running.values() {
            r.camera.stop();
        }
        let running = std::mem::take(&mut self.running);
        let mut out = std::mem::take(&mut self.finished);
        out.extend(running.into_iter().map(|(id, r)| (id, r.camera.join())));
        out
    }

    /// Applies changes from `changes` until `stop` is asked, then shuts every
    /// camera down; returns how each ended. Blocks the calling thread. With
    /// `until_all_finished`, it also returns once every camera in the set has
    /// ended (a run over files), and a closed `changes` only means that no more
    /// changes come (a run without a watched file); without it, a closed
    /// `changes` ends the run (the source of changes is gone).
    pub fn run(
        mut self,
        changes: std::sync::mpsc::Receiver<CameraChange>,
        stop: &StopHandle,
        until_all_finished: bool,
    ) -> Vec<Finished> {
        use std::sync::mpsc::RecvTimeoutError;
        let mut closed = false;
        loop {
            if stop.is_stopped() || (until_all_finished && self.all_finished()) {
                break;
            }
            if closed {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            match self.apply_next(&changes) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) if until_all_finished => closed = true,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.shutdown()
    }
}
