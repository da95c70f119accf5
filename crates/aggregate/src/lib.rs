//! Aggregate: tracking and line-crossing counts per camera, results per intersection.
//!
//! The analytics are pure: they take time from their input (frame sequence
//! numbers and stream positions), do no IO, and are tested with data —
//! detections in, events and counts out.
//!
//! - [`tracker`]: links detections of consecutive frames into tracks (ByteTrack:
//!   a [`kalman`] filter per track, high- then low-score detections matched by IoU
//!   with an optimal [`assignment`]), votes each track's class.
//! - [`counter`]: turns track movements into directional line crossings, with a
//!   dead band around each line against jitter; each track counted at most once per
//!   line and direction.
//! - [`turning`]: pairs each track's entry and exit of the configured approaches
//!   (crossings of their lines, or positions in their zones) into a turning movement.
//! - [`window`]: event-time tumbling windows per intersection, with watermarks,
//!   late records and data-quality flags.
//! - [`snapshot`]: the aggregator's whole state as serde data, and its restore.
//! - [`zones`]: occupancy, dwell times and queue lengths in each camera's zones.
//! - [`speed`]: track positions on the ground (a homography from the camera's
//!   calibration) and smoothed speeds.
//! - [`alerts`]: stale cameras, long queues, count anomalies.
//! - [`Aggregator`]: per-camera state, duplicate suppression, counts, the
//!   turning-movement matrix, window records, alerts.

pub mod alerts;
mod analytics;
pub mod assignment;
pub mod counter;
pub mod kalman;
pub mod snapshot;
pub mod speed;
pub mod stage;
pub mod tracker;
pub mod turning;
pub mod window;
pub mod zones;

use std::collections::{BTreeMap, HashMap};

use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::identity::{self, Arrival};
use streetscope_contracts::records::{
    CountRow, CrossingEvent, ResultRecord, SeqGap, TurningCountRow, TurningMovementEvent, WindowRecord, SCHEMA_VERSION,
};
use streetscope_contracts::{Direction, FrameDetections};

pub use snapshot::{AggregatorSnapshot, RestoreError, SNAPSHOT_VERSION};

use alerts::Alerts;
use counter::{Crossing, FrameStamp, LineCounter};
use speed::Motion;
use tracker::Tracker;
use turning::{Movement, Turning};
use window::Windows;
use zones::Zones;

/// Why the aggregator refused an input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AggregateError {
    #[error("detections for camera {0:?}, which is not configured")]
    UnknownCamera(String),
}

/// State of one camera: its tracker and its line counter.
#[derive(Debug)]
struct CameraState {
    intersection_id: String,
    tracker: Tracker,
    counter: LineCounter,
    turning: Turning,
    /// Index of the camera's intersection in [`Aggregator::intersections`], and
    /// of the camera among the intersection's.
    windows_at: (usize, usize),
    last_seq: Option<u64>,
    last_stamp: Option<FrameStamp>,
    sample_fps: f64,
    /// Frames taken, dropped as duplicates, and found missing (not snapshotted:
    /// counters of this process, as Prometheus expects of counters).
    delivery: DeliveryStats,
    zones: Zones,
    motion: Motion,
    /// Speed under which a track in a queue zone is queued, in [`Motion::speed`]'s unit.
    queue_max_speed: f64,
}

/// Key of a count: intersection, camera, line, direction, class.
type CountKey = (String, String, String, Direction, String);
/// Key of a turning count: intersection, camera, from, to, class.
type TurnKey = (String, String, String, String, String);

/// Per-camera tracking and counting for a set of cameras.
#[derive(Debug)]
pub struct Aggregator {
    cameras: HashMap<String, CameraState>,
    /// Per key: the direction's label and the count.
    counts: BTreeMap<CountKey, (String, u64)>,
    turn_counts: BTreeMap<TurnKey, u64>,
    /// Turning movements not yet taken ([`Aggregator::take_turning_events`]).
    turn_events: Vec<TurningMovementEvent>,
    /// Windows per intersection, sorted by intersection id.
    intersections: Vec<Windows>,
    /// Window records not yet taken ([`Aggregator::take_windows`]).
    closed_windows: Vec<WindowRecord>,
    duplicates: u64,
    alerts: Alerts,
    /// Intersections whose cameras are all stale (their windows follow the time reached).
    idle: std::collections::BTreeSet<usize>,
    /// Settings for cameras added while running ([`Aggregator::upsert_camera`]).
    tracker_config: TrackerConfig,
    analytics: AnalyticsConfig,
}

impl Aggregator {
    /// An aggregator with the default analytics: no approaches (so no turning
    /// movements), windows of [`AnalyticsConfig::default`].
    pub fn new(cameras: &[CameraConfig], tracker: &TrackerConfig) -> Self {
        Self::with_analytics(cameras, tracker, &AnalyticsConfig::default())
    }

    /// An aggregator with turning movements and windows as `analytics` says.
    /// `analytics` should have passed [`AnalyticsConfig::validate`]; approaches of
    /// unknown cameras, lines or zones are ignored.
    pub fn with_analytics(cameras: &[CameraConfig], tracker: &TrackerConfig, analytics: &AnalyticsConfig) -> Self {
        let mut ids: Vec<&str> = cameras.iter().map(|c| c.intersection.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let intersections = ids
            .iter()
            .map(|&id| {
                let mut cams: Vec<(String, f64)> =
                    cameras.iter().filter(|c| c.intersection == id).map(|c| (c.id.clone(), c.sample_fps)).collect();
                cams.sort_by(|a, b| a.0.cmp(&b.0));
                Windows::new(id, &cams, &analytics.window_lengths_s, analytics.allowed_lateness_s)
            })
            .collect();
        let alerts = Alerts::new(
            &analytics.alerts,
            cameras.iter().map(|c| (c.id.as_str(), c.intersection.as_str())),
            &analytics.window_lengths_s,
        );
        let cameras = cameras
            .iter()
            .map(|c| {
                let approaches: Vec<_> = analytics.approaches.iter().filter(|a| a.camera == c.id).collect();
                let at = ids.binary_search(&c.intersection.as_str()).expect("listed above");
                let mut peers: Vec<&str> =
                    cameras.iter().filter(|o| o.intersection == c.intersection).map(|o| o.id.as_str()).collect();
                peers.sort_unstable();
                let within = peers.binary_search(&c.id.as_str()).expect("listed above");
                let state = CameraState {
                    intersection_id: c.intersection.clone(),
                    tracker: Tracker::new(tracker.clone()),
                    counter: LineCounter::new(c.lines.clone(), tracker.line_hysteresis),
                    turning: Turning::new(c.lines.iter().map(|l| l.name.as_str()), &c.zones, &approaches),
                    windows_at: (at, within),
                    last_seq: None,
                    last_stamp: None,
                    sample_fps: c.sample_fps,
                    delivery: DeliveryStats::default(),
                    zones: Zones::new(&c.zones),
                    motion: Motion::new(c.calibration.as_deref(), analytics.speed.smoothing_s),
                    queue_max_speed: if c.calibration.is_some() {
                        analytics.speed.queue_max_kmh
                    } else {
                        analytics.speed.queue_max_image_speed
                    },
                };
                (c.id.clone(), state)
            })
            .collect();
        Self {
            cameras,
            counts: BTreeMap::new(),
            turn_counts: BTreeMap::new(),
            turn_events: Vec::new(),
            intersections,
            closed_windows: Vec::new(),
            duplicates: 0,
            alerts,
            idle: std::collections::BTreeSet::new(),
            tracker_config: tracker.clone(),
            analytics: analytics.clone(),
        }
    }

    /// Takes one frame's detections; returns the crossings they complete.
    /// A frame whose sequence number is not above the last one seen for its camera
    /// is a duplicate (at-least-once delivery) and changes nothing.
    pub fn process(&mut self, fd: &FrameDetections) -> Result<Vec<CrossingEvent>, AggregateError> {
        let cam = self
            .cameras
            .get_mut(fd.camera_id.as_ref())
            .ok_or_else(|| AggregateError::UnknownCamera(fd.camera_id.to_string()))?;
        let gap = match identity::arrival(cam.last_seq, fd.seq) {
            Arrival::Duplicate => {
                self.duplicates += 1;
                cam.delivery.duplicates += 1;
                return Ok(Vec::new());
            }
            Arrival::First | Arrival::Next { missing: 0 } => None,
            Arrival::Next { missing } => {
                cam.delivery.missing += missing;
                Some(SeqGap::within_run(fd.seq - missing, fd.seq - 1))
            }
            Arrival::NewRun => {
                // The camera's ingest started again (another pod, a restart): the
                // frames in between are estimated from the capture times.
                let last = cam.last_stamp.map_or(fd.capture_time_ms, |s| s.capture_time_ms);
                let slots = (fd.capture_time_ms - last).max(0) as f64 * cam.sample_fps / 1000.0;
                let estimated = (slots.round() as u64).saturating_sub(1);
                cam.delivery.restarts += 1;
                cam.delivery.missing += estimated;
                let last_seq = cam.last_seq.unwrap_or_default();
                Some(SeqGap {
                    first_seq: last_seq + 1,
                    last_seq: fd.seq - 1,
                    restart: true,
                    frames_estimated: Some(estimated),
                })
            }
        };
        // Frames that never arrived: the tracker carries its tracks through them.
        let lost = gap.as_ref().map_or(0, SeqGap::frames);
        cam.delivery.frames += 1;
        cam.last_seq = Some(fd.seq);
        let stamp = FrameStamp { seq: fd.seq, pts_ns: fd.pts_ns, capture_time_ms: fd.capture_time_ms };
        cam.last_stamp = Some(stamp);
        let (wi, wc) = cam.windows_at;
        let closed_before = self.closed_windows.len();
        self.intersections[wi].frame(wc, fd.capture_time_ms, gap);
        if self.alerts.frame(&fd.camera_id, fd.capture_time_ms) {
            self.idle.remove(&wi);
        }
        let cam = self.cameras.get_mut(fd.camera_id.as_ref()).expect("found above");
        let updates = cam.tracker.update_after(lost, &fd.detections, fd.width, fd.height);
        cam.motion.observe(&updates, stamp, fd.width, fd.height);
        let moves = cam.turning.track(&updates, stamp);
        let zones = (!cam.zones.is_empty()).then(|| {
            let max = cam.queue_max_speed;
            cam.zones.observe(&updates, cam.tracker.retired(), stamp, |id| cam.motion.speed(id).map(|v| v < max))
        });
        let crossings = cam.counter.observe(&updates, cam.tracker.retired(), stamp);
        let events = self.record(fd.camera_id.as_ref(), crossings);
        for m in moves {
            self.file_movement(&fd.camera_id, m);
        }
        if let Some(zones) = zones {
            self.file_zones(&fd.camera_id, fd.capture_time_ms, zones);
        }
        self.retire_tracks(fd.camera_id.as_ref());
        self.intersections[wi].advance(&mut self.closed_windows);
        self.reach(fd.capture_time_ms);
        self.judge_windows(closed_before);
        Ok(events)
    }

    /// The last frame [`Aggregator::process`] took of `camera` (duplicates
    /// change nothing): its sequence number and, per detection in the order
    /// given, the id of its confirmed track (what the crossings and movements
    /// of that vehicle carry as `track_id`). None before the camera's first
    /// frame. For the dashboard's snapshots.
    pub fn frame_tracks(&self, camera: &str) -> Option<(u64, &[Option<u64>])> {
        let cam = self.cameras.get(camera)?;
        Some((cam.last_seq?, cam.tracker.frame_tracks()))
    }

    /// End of input: ends every track, releasing the crossings they still hold,
    /// and closes every open window (see [`Aggregator::take_windows`]).
    pub fn finish(&mut self) -> Vec<CrossingEvent> {
        let mut ids: Vec<String> = self.cameras.keys().cloned().collect();
        ids.sort();
        let closed_before = self.closed_windows.len();
        let mut events = Vec::new();
        for id in ids {
            let cam = self.cameras.get_mut(&id).expect("listed above");
            let Some(stamp) = cam.last_stamp else {
                continue;
            };
            cam.tracker.finish();
            let zones = (!cam.zones.is_empty()).then(|| cam.zones.observe(&[], cam.tracker.retired(), stamp, |_| None));
            let crossings = cam.counter.observe(&[], cam.tracker.retired(), stamp);
            events.extend(self.record(&id, crossings));
            if let Some(zones) = zones {
                self.file_dwells(&id, zones);
            }
            self.retire_tracks(&id);
        }
        for w in &mut self.intersections {
            w.flush(&mut self.closed_windows);
        }
        self.judge_windows(closed_before);
        events
    }

    /// Forgets the tracks of camera `camera_id` that ended at its last update,
    /// filing the turning movements they complete.
    fn retire_tracks(&mut self, camera_id: &str) {
        let cam = self.cameras.get_mut(camera_id).expect("a known camera");
        let moves: Vec<Movement> = cam.tracker.retired().iter().filter_map(|r| cam.turning.retire(r)).collect();
        for m in moves {
            self.file_movement(camera_id, m);
        }
        let cam = self.cameras.get_mut(camera_id).expect("a known camera");
        for r in cam.tracker.retired() {
            cam.motion.retire(r.track_id);
        }
    }

    /// Adds a turning movement of camera `camera_id` to the events, the matrix and the windows.
    fn file_movement(&mut self, camera_id: &str, m: Movement) {
        let cam = &self.cameras[camera_id];
        let last = if m.exit.capture_time_ms >= m.entry.capture_time_ms { m.exit } else { m.entry };
        let ev = TurningMovementEvent {
            schema_version: SCHEMA_VERSION,
            intersection_id: cam.intersection_id.clone(),
            camera_id: camera_id.to_owned(),
            track_id: m.track_id,
            from: cam.turning.name(m.from).to_owned(),
            to: cam.turning.name(m.to).to_owned(),
            class_name: m.class_name.to_string(),
            entry_frame_seq: m.entry.seq,
            entry_capture_time_ms: m.entry.capture_time_ms,
            exit_frame_seq: m.exit.seq,
            exit_capture_time_ms: m.exit.capture_time_ms,
            capture_time_ms: last.capture_time_ms,
            speed_kmh: cam.motion.travel_kmh(m.track_id, m.entry.seq, m.exit.seq),
        };
        let (wi, wc) = cam.windows_at;
        let windows = &mut self.intersections[wi];
        windows.turning(wc, ev.capture_time_ms, &ev.from, &ev.to, &ev.class_name);
        if let Some(kmh) = ev.speed_kmh {
            windows.movement_speed(wc, ev.capture_time_ms, &ev.from, &ev.to, kmh);
        }
        let key =
            (ev.intersection_id.clone(), ev.camera_id.clone(), ev.from.clone(), ev.to.clone(), ev.class_name.clone());
        *self.turn_counts.entry(key).or_insert(0) += 1;
        self.turn_events.push(ev);
    }

    /// Turns crossings into events and adds them to the counts, the turning
    /// movements and the windows.
    fn record(&mut self, camera_id: &str, crossings: Vec<Crossing>) -> Vec<CrossingEvent> {
        let cam = self.cameras.get_mut(camera_id).expect("a known camera");
        let windows = &mut self.intersections[cam.windows_at.0];
        let wc = cam.windows_at.1;
        let mut events = Vec::with_capacity(crossings.len());
        let mut moves = Vec::new();
        for c in crossings {
            moves.extend(cam.turning.observe(&c));
            let line = cam.counter.line(c.line);
            let ev = CrossingEvent {
                schema_version: streetscope_contracts::records::SCHEMA_VERSION,
                intersection_id: cam.intersection_id.clone(),
                camera_id: camera_id.to_owned(),
                line: line.name.clone(),
                direction: c.direction,
                direction_label: line.label(c.direction).to_owned(),
                class_name: c.class_name.to_string(),
                track_id: c.track_id,
                frame_seq: c.at.seq,
                stream_time_s: c.at.pts_ns as f64 / 1e9,
                capture_time_ms: c.at.capture_time_ms,
                speed_kmh: cam.motion.speed_kmh_at(c.track_id, c.at.seq),
            };
            windows.crossing(wc, ev.capture_time_ms, &ev.line, ev.direction, &ev.direction_label, &ev.class_name);
            let key = (
                ev.intersection_id.clone(),
                ev.camera_id.clone(),
                ev.line.clone(),
                ev.direction,
                ev.class_name.clone(),
            );
            self.counts.entry(key).or_insert_with(|| (ev.direction_label.clone(), 0)).1 += 1;
            events.push(ev);
        }
        for m in moves {
            self.file_movement(camera_id, m);
        }
        events
    }

    /// Counts so far per intersection, camera, line, direction and class, sorted.
    pub fn counts(&self) -> Vec<CountRow> {
        self.counts
            .iter()
            .map(|((intersection_id, camera_id, line, direction, class_name), (label, count))| CountRow {
                intersection_id: intersection_id.clone(),
                camera_id: camera_id.clone(),
                line: line.clone(),
                direction: *direction,
                direction_label: label.clone(),
                class_name: class_name.clone(),
                count: *count,
            })
            .collect()
    }

    /// The turning-movement matrix so far: vehicles per intersection, camera,
    /// entry approach, exit approach and class, sorted.
    pub fn turning_movements(&self) -> Vec<TurningCountRow> {
        self.turn_counts
            .iter()
            .map(|((intersection_id, camera_id, from, to, class_name), count)| TurningCountRow {
                intersection_id: intersection_id.clone(),
                camera_id: camera_id.clone(),
                from: from.clone(),
                to: to.clone(),
                class_name: class_name.clone(),
                count: *count,
            })
            .collect()
    }

    /// The turning movements completed since the last call, in the order they completed.
    pub fn take_turning_events(&mut self) -> Vec<TurningMovementEvent> {
        std::mem::take(&mut self.turn_events)
    }

    /// The windows closed since the last call (by [`Aggregator::process`] as the
    /// watermarks pass, or flushed by [`Aggregator::finish`]), in the order they closed.
    pub fn take_windows(&mut self) -> Vec<WindowRecord> {
        std::mem::take(&mut self.closed_windows)
    }

    /// Inputs ignored as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Per camera, sorted by id: frames taken, duplicates dropped, frames found
    /// missing and restarts of its ingest seen, since this aggregator was made
    /// or restored.
    pub fn delivery(&self) -> Vec<(String, DeliveryStats)> {
        let mut out: Vec<(String, DeliveryStats)> =
            self.cameras.iter().map(|(id, c)| (id.clone(), c.delivery)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every record its inputs so far have released and nobody took yet, in
    /// the order consumers read them: `crossings` (what the input just given
    /// returned), then the turning movements they completed, the windows that
    /// closed, and the alerts raised or cleared. Both `streetscope run` and the
    /// aggregator pods publish exactly this after each input, tick or change.
    pub fn drain(&mut self, crossings: Vec<CrossingEvent>) -> Vec<ResultRecord> {
        let mut out: Vec<ResultRecord> = crossings.into_iter().map(ResultRecord::Crossing).collect();
        out.extend(self.take_turning_events().into_iter().map(ResultRecord::TurningMovement));
        out.extend(self.take_windows().into_iter().map(ResultRecord::Window));
        out.extend(self.take_alerts().into_iter().map(ResultRecord::Alert));
        out
    }
}

/// What reached the aggregator of one camera (see [`Aggregator::delivery`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Frames taken (not duplicates).
    pub frames: u64,
    /// Frames dropped as duplicates (replays after a crash or a rebalance).
    pub duplicates: u64,
    /// Frames that never arrived: numbers skipped inside a run, and the frames
    /// a camera would have given while its ingest restarted (estimated).
    pub missing: u64,
    /// Changes of run: the camera's ingest started again.
    pub restarts: u64,
}

// The camera set changes while the aggregator runs (a watched config file, the
// registry): cameras are added, updated and removed one at a time, and no other
// camera's state is touched.
impl Aggregator {
    /// Adds camera `c`, or updates the camera of its id. A new camera starts with
    /// a fresh tracker and joins its intersection's windows (created if new). An
    /// update keeps the camera's tracks, counts and duplicate suppression; new
    /// counting lines (or approaches) start counting from the next frame, and
    /// crossings held by the old lines are dropped. A change of intersection moves
    /// the camera to the new intersection's windows.
    pub fn upsert_camera(&mut self, c: &CameraConfig) {
        // The camera's state built exactly as at start-up, with the same settings.
        let mut fresh = Aggregator::with_analytics(std::slice::from_ref(c), &self.tracker_config, &self.analytics);
        let mut state = fresh.cameras.remove(&c.id).expect("built above");
        if let Some(old) = self.cameras.get_mut(&c.id) {
            if old.intersection_id == c.intersection {
                old.counter = state.counter;
                old.turning = state.turning;
                // New zones or a new calibration start afresh (stays in the old zones end unreported).
                if old.zones.configs() != c.zones.as_slice() {
                    old.zones = state.zones;
                }
                if !old.motion.has_calibration(c.calibration.as_deref()) {
                    old.motion = state.motion;
                }
                old.queue_max_speed = state.queue_max_speed;
                old.sample_fps = state.sample_fps;
                self.alerts.upsert_camera(&c.id, &c.intersection);
                let (wi, _) = old.windows_at;
                self.intersections[wi].add_camera(&c.id, c.sample_fps);
                return;
            }
            // Moved to another intersection: leave the old one's windows, keep
            // the duplicate suppression.
            let (last_seq, last_stamp) = (old.last_seq, old.last_stamp);
            self.leave_windows(&c.id);
            self.cameras.remove(&c.id);
            (state.last_seq, state.last_stamp) = (last_seq, last_stamp);
        }
        let wi = match self.intersections.iter().position(|w| w.intersection_id() == c.intersection) {
            Some(wi) => wi,
            None => {
                self.intersections.push(fresh.intersections.remove(0));
                self.intersections.len() - 1
            }
        };
        let wc = self.intersections[wi].add_camera(&c.id, c.sample_fps);
        state.windows_at = (wi, wc);
        self.cameras.insert(c.id.clone(), state);
        self.alerts.upsert_camera(&c.id, &c.intersection);
    }

    /// Removes camera `id`: its tracks end, releasing the crossings they held
    /// (returned, and filed like any other), and it leaves its intersection's
    /// windows, which then close without it. Its counts so far stay in
    /// [`Aggregator::counts`]. Detections of the camera that come later are
    /// refused as [`AggregateError::UnknownCamera`]. Unknown ids change nothing.
    pub fn remove_camera(&mut self, id: &str) -> Vec<CrossingEvent> {
        let Some(cam) = self.cameras.get_mut(id) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        if let Some(stamp) = cam.last_stamp {
            cam.tracker.finish();
            let crossings = cam.counter.observe(&[], cam.tracker.retired(), stamp);
            events = self.record(id, crossings);
            self.retire_tracks(id);
        }
        let wi = self.leave_windows(id);
        self.cameras.remove(id);
        self.alerts.remove_camera(id);
        self.intersections[wi].advance(&mut self.closed_windows);
        events
    }

    /// Takes camera `id` out of its intersection's windows, renumbering the
    /// cameras after it; returns the intersection's index.
    fn leave_windows(&mut self, id: &str) -> usize {
        let (wi, wc) = self.cameras[id].windows_at;
        self.intersections[wi].remove_camera(wc);
        for cam in self.cameras.values_mut() {
            if cam.windows_at.0 == wi && cam.windows_at.1 > wc {
                cam.windows_at.1 -= 1;
            }
        }
        wi
    }

    /// The ids of the cameras it knows, sorted.
    pub fn camera_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.cameras.keys().cloned().collect();
        ids.sort();
        ids
    }
}
