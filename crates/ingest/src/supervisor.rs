//! The camera supervisor: keeps one camera's pipeline running.
//!
//! A live source (`rtsp://`, `http://`, …) is restarted after every error, stall
//! or end of stream, with exponential backoff and jitter, until it is stopped:
//! cameras drop, reboot and stall, and a stream that never comes back is the
//! failure operators hate most. A file is run once: its end is the end of the
//! camera, and an error fails it.
//!
//! Each camera runs on the caller's thread (or one spawned by
//! [`SupervisedCamera::spawn`]), so a camera that hangs, fails or backs off never
//! holds up another. Its state and counters are published in a
//! [`CameraStatusHandle`] that any thread can read at any time.
//!
//! Invariants:
//! - Sequence numbers are monotonic across reconnects: a new run continues from
//!   the last frame of the previous one.
//! - Nothing published here (state, last error, source) contains a password:
//!   URLs go through [`redact_url`], and [`IngestError`]s are redacted at the source.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use streetscope_contracts::config::redact_url;
use streetscope_contracts::Frame;

use crate::source::{run_camera_from, CameraReport, CameraSource, FrameSink, StopHandle};
use crate::IngestError;

/// URL schemes whose sources are live: restarted after errors and end of stream.
pub const LIVE_SCHEMES: &[&str] = &["rtsp", "rtsps", "rtspt", "rtspu", "http", "https", "v4l2"];

/// The reason recorded when a live stream ends (the camera or server closed it).
pub const STREAM_ENDED: &str = "the stream ended";

/// Whether `source` is a live camera (restarted) rather than a file (run once).
pub fn is_live(source: &str) -> bool {
    source.split_once("://").is_some_and(|(scheme, _)| LIVE_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// How a live camera is restarted. Delays grow from `initial_backoff` by
/// `multiplier` per failed attempt up to `max_backoff`; each is shortened by a
/// random fraction of up to `jitter` so that cameras that failed together (a
/// switch reboots) do not all come back in the same instant.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Longest delay between two attempts.
    pub max_backoff: Duration,
    /// Growth of the delay per failed attempt; at least 1.
    pub multiplier: f64,
    /// Fraction of each delay, in [0, 1], that is randomly taken off it.
    pub jitter: f64,
    /// A run that streamed for this long was healthy: the next failure starts
    /// over from `initial_backoff`. So was a run whose stream ended normally
    /// (end of stream, not an error) after giving frames.
    pub healthy_after: Duration,
    /// Give up (state `Failed`) after this many consecutive failed attempts;
    /// `None` retries forever, which is what a city's cameras need.
    pub max_attempts: Option<u32>,
    /// Whether a live stream that ends (end of stream, not an error) is
    /// connected again. True for cameras; false for recordings served over a
    /// live protocol (`frame_ids = "media"`), which, like files, play once.
    pub restart_after_end: bool,
}

impl RestartPolicy {
    /// The policy an `[ingest]` section asks for (recordings restart after their end).
    pub fn from_config(i: &streetscope_contracts::config::IngestConfig) -> Self {
        Self {
            initial_backoff: Duration::from_millis(i.initial_backoff_ms),
            max_backoff: Duration::from_secs_f64(i.max_backoff_s),
            multiplier: i.backoff_multiplier,
            jitter: i.backoff_jitter,
            healthy_after: Duration::from_secs_f64(i.healthy_after_s),
            max_attempts: None,
            restart_after_end: true,
        }
    }
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.2,
            healthy_after: Duration::from_secs(30),
            max_attempts: None,
            restart_after_end: true,
        }
    }
}

impl RestartPolicy {
    /// Checks the settings; the error names the field and the bad value.
    pub fn validate(&self) -> Result<(), String> {
        if self.initial_backoff.is_zero() {
            return Err("initial_backoff = 0: must be positive".into());
        }
        if self.max_backoff < self.initial_backoff {
            return Err(format!(
                "max_backoff = {:?}: must be at least initial_backoff ({:?})",
                self.max_backoff, self.initial_backoff
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(format!("multiplier = {}: must be at least 1", self.multiplier));
        }
        if !(self.jitter.is_finite() && (0.0..=1.0).contains(&self.jitter)) {
            return Err(format!("jitter = {}: must be in [0, 1]", self.jitter));
        }
        if self.max_attempts == Some(0) {
            return Err("max_attempts = 0: must be at least 1 (or none, to retry forever)".into());
        }
        Ok(())
    }

    /// The delay before retry number `attempt` (1 for the first retry), given a
    /// random `r` in [0, 1). Pure, so the schedule can be tested. Settings that
    /// fail [`validate`](Self::validate) never panic here: the delay stays
    /// within [0, `max_backoff`].
    pub fn delay(&self, attempt: u32, r: f64) -> Duration {
        let exp = self.multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
        let full = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        let secs = full * (1.0 - self.jitter.clamp(0.0, 1.0) * r.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(secs).unwrap_or(self.initial_backoff).min(self.max_backoff)
    }
}

/// Where a camera stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraState {
    /// A pipeline is starting; no frame from it yet.
    Connecting,
    /// Frames are flowing.
    Streaming,
    /// The last run failed, stalled or ended; retry number `attempt` starts
    /// `retry_in` after [`CameraStatus::since`].
    BackingOff { attempt: u32, retry_in: Duration },
    /// Stopped on request (or downstream went away), or a file that ended.
    Stopped,
    /// Given up: a file that failed, a source that cannot work (unsupported
    /// scheme), or a live source past `max_attempts`. The reason is credential-free.
    Failed { reason: String },
}

impl CameraState {
    /// A short name for status output and metrics labels.
    pub fn name(&self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Streaming => "streaming",
            CameraState::BackingOff { .. } => "backing_off",
            CameraState::Stopped => "stopped",
            CameraState::Failed { .. } => "failed",
        }
    }
}

/// A snapshot of one camera's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraStatus {
    pub camera_id: String,
    /// The source URL with any password masked.
    pub source: String,
    pub state: CameraState,
    /// When the camera entered `state`.
    pub since: SystemTime,
    /// Frames handed downstream, over all runs.
    pub frames: u64,
    /// Runs started after the first one.
    pub reconnects: u64,
    /// The last error (credential-free), kept after the camera recovers.
    pub last_error: Option<String>,
    /// When the last frame was handed downstream.
    pub last_frame_at: Option<SystemTime>,
}

/// A camera's live status, shared between its supervisor and any reader
/// (status endpoint, metrics, tests). Cheap to clone.
#[derive(Debug, Clone)]
pub struct CameraStatusHandle(Arc<Mutex<CameraStatus>>);

impl CameraStatusHandle {
    /// A status for `cam`, in state `Connecting`.
    pub fn new(cam: &CameraSource) -> Self {
        Self(Arc::new(Mutex::new(CameraStatus {
            camera_id: cam.camera_id.clone(),
            source: redact_url(&cam.source),
            state: CameraState::Connecting,
            since: SystemTime::now(),
            frames: 0,
            reconnects: 0,
            last_error: None,
            last_frame_at: None,
        })))
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> CameraStatus {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CameraStatus> {
        // A panic while holding the lock leaves plain data behind: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: CameraState) {
        let mut s = self.lock();
        if s.state != state {
            s.state = state;
            s.since = SystemTime::now();
        }
    }

    fn on_frame(&self) {
        let mut s = self.lock();
        s.frames += 1;
        s.last_frame_at = Some(SystemTime::now());
        if s.state != CameraState::Streaming {
            s.state = CameraState::Streaming;
            s.since = SystemTime::now();
        }
    }
}

/// Runs `cam` under `policy` until it is stopped (live sources), or until its
/// stream ends or fails (files). Blocks the calling thread; `status` is kept
/// current throughout. Returns the totals over all runs: `Ok` when stopped or a
/// file ended, `Err` with the last error when the camera failed for good.
/// (`decoded` counts only the runs that ended without an error.)
pub fn supervise(
    cam: &CameraSource,
    policy: &RestartPolicy,
    sink: impl FrameSink,
    stop: &StopHandle,
    status: &CameraStatusHandle,
) -> Result<CameraReport, IngestError> {
    let sink = Arc::new(sink);
    let live = is_live(&cam.source);
    let mut rng = Jitter::seeded(&cam.camera_id);
    let mut total = CameraReport { camera_id: cam.camera_id.clone(), decoded: 0, frames: 0, stopped: false };
    let mut attempt = 0u32;
    let mut runs = 0u64;
    // Frames handed to the sink over all runs: the next run's first sequence number.
    let handed = Arc::new(AtomicU64::new(0));
    let fail = |e: IngestError, total: &CameraReport| {
        let reason = e.to_string();
        let mut s = status.lock();
        s.last_error = Some(reason.clone());
        drop(s);
        status.set_state(CameraState::Failed { reason });
        tracing::error!(camera = %total.camera_id, "{e}");
        Err(e)
    };
    loop {
        if stop.is_stopped() {
            total.stopped = true;
            status.set_state(CameraState::Stopped);
            return Ok(total);
        }
        if runs > 0 {
            status.lock().reconnects += 1;
        }
        runs += 1;
        status.set_state(CameraState::Connecting);
        // Milliseconds since `run_start` of this run's first frame (0: none yet).
        let run_start = Instant::now();
        let first_frame_ms = Arc::new(AtomicU64::new(0));
        let run_sink = {
            let (sink, status, first_frame_ms, handed) =
                (sink.clone(), status.clone(), first_frame_ms.clone(), handed.clone());
            move |frame: Frame| {
                if first_frame_ms.load(Ordering::Relaxed) == 0 {
                    first_frame_ms.store(run_start.elapsed().as_millis().max(1) as u64, Ordering::Relaxed);
                }
                handed.fetch_add(1, Ordering::Relaxed);
                let ok = sink.push(frame);
                if ok {
                    status.on_frame();
                }
                ok
            }
        };
        let result = run_camera_from(cam, handed.load(Ordering::Relaxed), run_sink, stop);
        // The run's pipeline is gone: give its memory back before the next.
        crate::source::release_freed_memory();
        total.frames = handed.load(Ordering::Relaxed);
        let streamed = match first_frame_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            ms => run_start.elapsed().saturating_sub(Duration::from_millis(ms)),
        };
        // A stream that ended normally (not an error) after giving frames was a
        // whole session, however short: a camera or server that ends its
        // sessions every 20 s is reconnected at once each time, where backing
        // off (to 30 s) would have lost more than half its video.
        let ended_after_frames = result.is_ok() && first_frame_ms.load(Ordering::Relaxed) != 0;
        let error = match result {
            Ok(report) => {
                total.decoded += report.decoded;
                if report.stopped || !live || !policy.restart_after_end {
                    // Asked to stop, downstream gone, or a file that ended.
                    total.stopped = report.stopped;
                    status.set_state(CameraState::Stopped);
                    return Ok(total);
                }
                let e = IngestError::Source {
                    camera: cam.camera_id.clone(),
                    source_url: redact_url(&cam.source),
                    reason: STREAM_ENDED.into(),
                };
                tracing::warn!(camera = %cam.camera_id, "{e}; reconnecting");
                e.to_string()
            }
            Err(e) if !live || permanent(&e) => return fail(e, &total),
            Err(e) => {
                tracing::warn!(camera = %cam.camera_id, "{e}");
                e.to_string()
            }
        };
        status.lock().last_error = Some(error.clone());
        if streamed >= policy.healthy_after || ended_after_frames {
            attempt = 0;
        }
        attempt += 1;
        if policy.max_attempts.is_some_and(|max| attempt > max) {
            let e = IngestError::Source {
                camera: cam.camera_id.clone(),
                source_url: redact_url(&cam.source),
                reason: format!("gave up after {} attempts; last error: {error}", attempt - 1),
            };
            return fail(e, &total);
        }
        let retry_in = policy.delay(attempt, rng.next());
        status.set_state(CameraState::BackingOff { attempt, retry_in });
        sleep_unless_stopped(retry_in, stop);
    }
}

/// Errors that no retry can fix: the pipeline cannot be built, or GStreamer
/// has no source for the URL's scheme. (A live camera's file-like errors, such as
/// a 404, are retried: a camera that reboots can answer 404 for a while.)
fn permanent(e: &IngestError) -> bool {
    match e {
        IngestError::Init(_) | IngestError::Pipeline { .. } => true,
        IngestError::Source { reason, .. } => reason.starts_with(crate::source::UNSUPPORTED_SCHEME),
        IngestError::Write { .. } => false,
    }
}

/// Sleeps for `d`, waking early when a stop is asked.
fn sleep_unless_stopped(d: Duration, stop: &StopHandle) {
    let until = Instant::now() + d;
    while !stop.is_stopped() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A small xorshift generator for jitter: no need for a crypto RNG, only for
/// cameras not to retry in lockstep.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn seeded(camera_id: &str) -> Self {
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        let mut seed = nanos ^ 0x9e37_79b9_7f4a_7c15;
        for b in camera_id.bytes() {
            seed = (seed ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Self(seed | 1)
    }

    /// A number in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A camera supervised on its own thread, with its own stop handle, so that it
/// can be added and removed without touching the others.
#[derive(Debug)]
pub struct SupervisedCamera {
    camera_id: String,
    status: CameraStatusHandle,
    stop: StopHandle,
    thread: std::thread::JoinHandle<Result<CameraReport, IngestError>>,
}

impl SupervisedCamera {
    /// Starts supervising `cam` on a new thread named `ingest-<camera id>`.
    pub fn spawn(cam: CameraSource, policy: RestartPolicy, sink: impl FrameSink) -> std::io::Result<Self> {
        let status = CameraStatusHandle::new(&cam);
        let stop = StopHandle::default();
        let thread = {
            let (status, stop) = (status.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("ingest-{}", cam.camera_id))
                .spawn(move || supervise(&cam, &policy, sink, &stop, &status))?
        };
        Ok(Self { camera_id: status.snapshot().camera_id, status, stop, thread })
    }

    pub fn camera_id(&self) -> &str {
        &self.camera_id
    }

    /// The camera's live status.
    pub fn status(&self) -> &CameraStatusHandle {
        &self.status
    }

    /// Asks the camera to stop; [`join`](Self::join) waits for it.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Whether the supervisor has returned (stopped, file done, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the supervisor to return.
    pub fn join(self) -> Result<CameraReport, IngestError> {
        self.thread.join().unwrap_or_else(|_| {
            Err(IngestError::Pipeline { camera: self.camera_id, reason: "the ingest thread panicked".into() })
        })
    }

    /// Stops the camera and waits for it.
    pub fn shutdown(self) -> Result<CameraReport, IngestError> {
        self.stop();
        self.join()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_jitter_only_shortens() {
        let p = RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
            ..RestartPolicy::default()
        };
        let ms = |a, r| p.delay(a, r).as_millis();
        assert_eq!(
            [ms(1, 0.0), ms(2, 0.0), ms(3, 0.0), ms(4, 0.0), ms(5, 0.0), ms(50, 0.0)],
            [100, 200, 400, 800, 1000, 1000]
        );
        assert_eq!(ms(1, 0.999_999), 50);
        assert_eq!(ms(5, 0.5), 750);
        assert_eq!(ms(u32::MAX, 0.0), 1000);
        let nan = RestartPolicy { multiplier: f64::NAN, jitter: 7.0, ..p.clone() };
        assert!(nan.validate().is_err() && nan.delay(3, 0.5) <= p.max_backoff);
        assert!(p.validate().is_ok());
        assert!(RestartPolicy::default().validate().is_ok());
    }

    #[test]
    fn bad_policies_name_the_field() {
        let bad = |p: RestartPolicy| p.validate().unwrap_err();
        assert!(bad(RestartPolicy { multiplier: 0.5, ..Default::default() }).starts_with("multiplier = 0.5"));
        assert!(bad(RestartPolicy { jitter: 2.0, ..Default::default() }).starts_with("jitter = 2"));
        assert!(bad(RestartPolicy { max_backoff: Duration::from_millis(1), ..Default::default() })
            .starts_with("max_backoff"));
        assert!(bad(RestartPolicy { max_attempts: Some(0), ..Default::default() }).starts_with("max_attempts"));
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let mut j = Jitter::seeded("cam-1");
        let v: Vec<f64> = (0..1000).map(|_| j.next()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn live_sources_are_told_from_files() {
        assert!(is_live("rtsp://u:p@10.0.0.1/s") && is_live("HTTP://cam/mjpeg") && is_live("rtsps://x/y"));
        assert!(!is_live("file:///a.mp4") && !is_live("/a.mp4") && !is_live("foo://x"));
    }
}
