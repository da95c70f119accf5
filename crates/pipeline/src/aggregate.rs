//! The aggregator pods' state, without Kafka: the intersections a pod holds,
//! the registry it follows, and what each input does to them.
//!
//! [`Intersections`] is what `streetscope aggregate --cluster` keeps between
//! messages: one [`Aggregator`] per intersection of its detections partitions
//! (the same aggregator `streetscope run` drives), built from the registry and
//! restored from snapshots. Every method is an input — detections, an
//! end-of-stream marker, a record of the registry's tables, a tick of the
//! clock, a partition assigned or revoked — and returns the result records it
//! released, per intersection; the pod only moves bytes: it decodes messages,
//! publishes what comes back, and commits offsets by the delivery rules of
//! [`streetscope_transport::delivery`].
//!
//! Rules kept here, tested without a broker:
//! - detections of a camera the registry does not know, or puts in another
//!   intersection, or numbered from the future, are refused with a reason (the
//!   pod sends them to the dead-letter topic);
//! - a registry change reaches the intersections held as `streetscope run`
//!   applies its watched configuration: a camera added or edited goes through
//!   [`Aggregator::upsert_camera`], one deleted or moved away through
//!   [`Aggregator::remove_camera`]; changed approaches rebuild the aggregator
//!   from its own state;
//! - an intersection's tracks end when every recorded camera that sent frames
//!   has ended, or after `finish_idle` without new input;
//! - time without input follows each intersection's [`EventClock`];
//! - a snapshot carries the whole state, so a restored intersection continues
//!   exactly (its duplicates dropped by camera and sequence number).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use streetscope_aggregate::snapshot::AggregatorSnapshot;
use streetscope_aggregate::stage::EventClock;
use streetscope_aggregate::{Aggregator, DeliveryStats};
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::kafka::EndOfStream;
use streetscope_contracts::records::{CountsRecord, ResultRecord, SCHEMA_VERSION};
use streetscope_contracts::redact::scrub_text;
use streetscope_contracts::registry::{CameraSpec, IntersectionSpec};
use streetscope_contracts::FrameDetections;

/// The registry as the aggregator needs it: cameras and intersections by id.
#[derive(Debug, Default)]
pub struct Registry {
    cameras: BTreeMap<String, CameraConfig>,
    intersections: BTreeMap<String, IntersectionSpec>,
}

/// Which of the followed tables a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Cameras,
    Intersections,
}

/// What a record of the registry's tables changed.
#[derive(Debug)]
enum RegistryChange {
    /// A camera added (`old` None), edited, or deleted (`new` None).
    Camera { old: Option<Box<CameraConfig>>, new: Option<Box<CameraConfig>> },
    /// An intersection's spec (its approaches) written or deleted.
    Intersection(String),
}

impl Registry {
    /// Cameras known.
    pub fn cameras(&self) -> usize {
        self.cameras.len()
    }

    /// Intersections with a spec.
    pub fn intersections(&self) -> usize {
        self.intersections.len()
    }

    /// Takes one record of a followed table (`value` None: a tombstone); what
    /// it changed. Unreadable records are logged and change nothing.
    fn apply(&mut self, table: Table, key: &str, value: Option<&[u8]>) -> Option<RegistryChange> {
        match table {
            Table::Cameras => {
                let old = self.cameras.get(key).cloned();
                let new = match value.map(serde_json::from_slice::<CameraSpec>) {
                    None => None,
                    Some(Ok(spec)) if spec.camera.id == key => {
                        // Whoever can write the topic is held to the registry's
                        // checks here too (as the ingest pods hold it): a spec
                        // the registry would refuse (a polygon of a million
                        // points, a line of NaN) never reaches the tracker;
                        // the camera goes on as it was.
                        let errors = spec.validate();
                        if !errors.is_empty() {
                            let list: Vec<String> = errors.iter().take(20).map(ToString::to_string).collect();
                            let text: String = list.join("; ").chars().take(2000).collect();
                            tracing::error!(
                                camera = %key,
                                "camera spec refused ({} field(s) the registry would refuse): {text}; the camera stays as it was",
                                errors.len()
                            );
                            return None;
                        }
                        Some(spec.camera)
                    }
                    Some(Ok(spec)) => {
                        tracing::error!(camera = %key, "camera spec under another key ({:?}): ignored", spec.camera.id);
                        return None;
                    }
                    Some(Err(e)) => {
                        tracing::error!(camera = %key, "unreadable camera spec: {}", scrub_text(&e.to_string()));
                        return None;
                    }
                };
                match &new {
                    Some(c) => self.cameras.insert(key.to_owned(), c.clone()),
                    None => self.cameras.remove(key),
                };
                (old != new).then(|| RegistryChange::Camera { old: old.map(Box::new), new: new.map(Box::new) })
            }
            Table::Intersections => {
                match value.map(serde_json::from_slice::<IntersectionSpec>) {
                    None => {
                        self.intersections.remove(key);
                    }
                    Some(Ok(spec)) => {
                        self.intersections.insert(key.to_owned(), spec);
                    }
                    Some(Err(e)) => {
                        tracing::error!(intersection = %key, "unreadable intersection spec: {e}");
                        return None;
                    }
                }
                Some(RegistryChange::Intersection(key.to_owned()))
            }
        }
    }

    /// The cameras of `intersection`, in id order.
    fn cameras_of(&self, intersection: &str) -> Vec<CameraConfig> {
        self.cameras.values().filter(|c| c.intersection == intersection).cloned().collect()
    }

    /// `base` with the intersection's approaches from the registry: those of
    /// every camera of the intersection, so that a camera added later finds
    /// its approaches ([`Aggregator::upsert_camera`]).
    fn analytics_for(&self, intersection: &str, base: &AnalyticsConfig) -> AnalyticsConfig {
        let ids: HashSet<&str> =
            self.cameras.values().filter(|c| c.intersection == intersection).map(|c| c.id.as_str()).collect();
        let mut a = base.clone();
        a.approaches.retain(|ap| ids.contains(ap.camera.as_str()));
        if let Some(spec) = self.intersections.get(intersection) {
            a.approaches.extend(spec.approaches.iter().cloned());
        }
        a
    }
}

/// One intersection held by a pod.
#[derive(Debug)]
struct Held {
    agg: Aggregator,
    /// Detections partition it lives in.
    partition: i32,
    /// Camera set it was built with.
    cameras: Vec<CameraConfig>,
    /// Changed since the last snapshot.
    dirty: bool,
    /// Changed since the last counts record.
    counts_dirty: bool,
    /// Frames aggregated (duplicates excluded), newest capture time.
    frames: u64,
    as_of_ms: i64,
    /// When the last new (non-duplicate) input came.
    last_input: Instant,
    finished: bool,
    /// Cameras whose recording ended (end-of-stream markers).
    ended: BTreeSet<String>,
    /// Cameras that sent frames.
    seen: BTreeSet<String>,
    /// The event time reached.
    clock: EventClock,
}

impl Held {
    fn new(agg: Aggregator, partition: i32, cameras: Vec<CameraConfig>, at: Instant) -> Self {
        Self {
            agg,
            partition,
            cameras,
            dirty: false,
            counts_dirty: true,
            frames: 0,
            as_of_ms: 0,
            last_input: at,
            finished: false,
            ended: BTreeSet::new(),
            seen: BTreeSet::new(),
            clock: EventClock::default(),
        }
    }

    /// Ends every track; the records that releases.
    fn finish(&mut self) -> Vec<ResultRecord> {
        let ended = self.agg.finish();
        let records = self.agg.drain(ended);
        (self.finished, self.dirty, self.counts_dirty) = (true, true, true);
        records
    }

    fn stored(&self) -> StoredSnapshot {
        StoredSnapshot {
            frames: self.frames,
            as_of_ms: self.as_of_ms,
            finished: self.finished,
            ended: self.ended.clone(),
            seen: self.seen.clone(),
            state: self.agg.snapshot(),
        }
    }
}

/// What the snapshots topic holds per intersection.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredSnapshot {
    frames: u64,
    as_of_ms: i64,
    finished: bool,
    #[serde(default)]
    ended: BTreeSet<String>,
    #[serde(default)]
    seen: BTreeSet<String>,
    state: AggregatorSnapshot,
}

/// Result records released for one intersection (the key they are published under).
pub type Released = (String, Vec<ResultRecord>);

/// The intersections an aggregator pod holds, and the registry it follows.
#[derive(Debug)]
pub struct Intersections {
    registry: Registry,
    held: HashMap<String, Held>,
    tracker: TrackerConfig,
    analytics: AnalyticsConfig,
    finish_idle: Duration,
}

impl Intersections {
    /// Nothing held yet. `analytics` is the base every intersection's
    /// approaches are added to; tracks end after `finish_idle` without input.
    pub fn new(tracker: TrackerConfig, analytics: AnalyticsConfig, finish_idle: Duration) -> Self {
        Self { registry: Registry::default(), held: HashMap::new(), tracker, analytics, finish_idle }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Intersections held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Detections of one frame, from detections partition `partition`,
    /// arriving at `at` when this stage's clock reads `now_unix_ms`: the
    /// records they release, or why they cannot be aggregated (for the
    /// dead-letter topic). Decoding and [`FrameDetections::check`] are the
    /// caller's.
    pub fn detections(
        &mut self,
        fd: &FrameDetections,
        partition: i32,
        at: Instant,
        now_unix_ms: i64,
    ) -> Result<Vec<ResultRecord>, String> {
        let intersection: &str = &fd.intersection_id;
        fd.check_clock(now_unix_ms).map_err(|why| format!("detections {}: {why}", why.label()))?;
        match self.registry.cameras.get(fd.camera_id.as_ref()) {
            None => return Err(format!("detections of camera {:?}, which the registry does not know", fd.camera_id)),
            Some(c) if c.intersection != intersection => {
                return Err(format!(
                    "detections of camera {:?} for intersection {intersection:?}, but the registry puts it in {:?}",
                    fd.camera_id, c.intersection
                ))
            }
            Some(_) => {}
        }
        let h = self.ensure(intersection, &fd.camera_id, partition, at);
        let dups = h.agg.duplicates();
        let crossings = h.agg.process(fd).unwrap_or_else(|e| {
            tracing::warn!(camera = %fd.camera_id, seq = fd.seq, "{e}");
            Vec::new()
        });
        let records = h.agg.drain(crossings);
        if h.agg.duplicates() == dups {
            h.clock.observe(fd.capture_time_ms, at);
            h.frames += 1;
            h.as_of_ms = h.as_of_ms.max(fd.capture_time_ms);
            (h.last_input, h.finished) = (at, false);
            h.ended.remove(fd.camera_id.as_ref());
            if !h.seen.contains(fd.camera_id.as_ref()) {
                h.seen.insert(fd.camera_id.to_string());
            }
            (h.dirty, h.counts_dirty) = (true, true);
        }
        Ok(records)
    }

    /// The aggregator of `intersection`, built from the registry if not held
    /// yet; a camera the registry added while it was restored is taken in.
    fn ensure(&mut self, intersection: &str, camera: &str, partition: i32, at: Instant) -> &mut Held {
        if !self.held.contains_key(intersection) {
            let cameras = self.registry.cameras_of(intersection);
            let analytics = self.registry.analytics_for(intersection, &self.analytics);
            let agg = Aggregator::with_analytics(&cameras, &self.tracker, &analytics);
            self.held.insert(intersection.to_owned(), Held::new(agg, partition, cameras, at));
        }
        let h = self.held.get_mut(intersection).expect("inserted above");
        if !h.cameras.iter().any(|c| c.id == camera) {
            let c = self.registry.cameras[camera].clone();
            h.agg.upsert_camera(&c);
            h.cameras.push(c);
        }
        h
    }

    /// The last frame of `camera` (in `intersection`) taken: its sequence
    /// number and each detection's confirmed track
    /// ([`Aggregator::frame_tracks`]). None if the intersection is not held here.
    pub fn frame_tracks(&self, intersection: &str, camera: &str) -> Option<(u64, &[Option<u64>])> {
        self.held.get(intersection)?.agg.frame_tracks(camera)
    }

    /// A recorded camera ended; once every camera of its intersection that
    /// sent frames has, the intersection's tracks end (as at the end of the
    /// files in `streetscope run`).
    pub fn end_of_stream(&mut self, marker: &EndOfStream) -> Option<Released> {
        let Some(h) = self.held.get_mut(&marker.intersection_id) else {
            tracing::info!(camera = %marker.camera_id, "end of stream of a camera with no state here");
            return None;
        };
        h.ended.insert(marker.camera_id.clone());
        h.dirty = true;
        let all = h.seen.iter().all(|c| h.ended.contains(c));
        (all && !h.finished).then(|| {
            tracing::info!(intersection = %marker.intersection_id, "every recording ended: tracks ended");
            (marker.intersection_id.clone(), h.finish())
        })
    }

    /// Applies one record of the registry's tables (`value` None: a
    /// tombstone) to the intersections held here, as `streetscope run`
    /// applies its watched configuration; the records that releases.
    pub fn registry_record(&mut self, table: Table, key: &str, value: Option<&[u8]>) -> Vec<Released> {
        let Some(change) = self.registry.apply(table, key, value) else { return Vec::new() };
        let mut out = Vec::new();
        match change {
            RegistryChange::Camera { old, new } => {
                let id = old.as_ref().or(new.as_ref()).map(|c| c.id.clone()).expect("one of them");
                // Leaving an intersection held here (deleted, or moved to another).
                if let Some(old) =
                    old.as_ref().filter(|o| new.as_ref().is_none_or(|n| n.intersection != o.intersection))
                {
                    if let Some(h) = self.held.get_mut(&old.intersection) {
                        let ended = h.agg.remove_camera(&id);
                        let records = h.agg.drain(ended);
                        h.cameras.retain(|c| c.id != id);
                        (h.dirty, h.counts_dirty) = (true, true);
                        tracing::info!(camera = %id, intersection = %old.intersection, "camera left the intersection (registry)");
                        out.push((old.intersection.clone(), records));
                    }
                }
                // Added to, or edited in, an intersection held here.
                if let Some(new) = new {
                    if let Some(h) = self.held.get_mut(&new.intersection) {
                        h.agg.upsert_camera(&new);
                        let records = h.agg.drain(Vec::new());
                        h.cameras.retain(|c| c.id != id);
                        h.cameras.push((*new).clone());
                        (h.dirty, h.counts_dirty) = (true, true);
                        tracing::info!(camera = %id, intersection = %new.intersection, "camera updated (registry): counts from its next frame on");
                        out.push((new.intersection.clone(), records));
                    }
                }
            }
            RegistryChange::Intersection(id) => {
                // New approaches: the aggregator rebuilt from its own state.
                if let Some(h) = self.held.remove(&id) {
                    let cameras = self.registry.cameras_of(&id);
                    let analytics = self.registry.analytics_for(&id, &self.analytics);
                    let agg = match Aggregator::restore(&cameras, &self.tracker, &analytics, h.agg.snapshot()) {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::error!(intersection = %id, "cannot carry the state over to the new approaches ({e}); starting afresh");
                            Aggregator::with_analytics(&cameras, &self.tracker, &analytics)
                        }
                    };
                    let mut rebuilt = Held::new(agg, h.partition, cameras, h.last_input);
                    (rebuilt.frames, rebuilt.as_of_ms, rebuilt.finished, rebuilt.ended, rebuilt.seen, rebuilt.clock) =
                        (h.frames, h.as_of_ms, h.finished, h.ended, h.seen, h.clock);
                    (rebuilt.dirty, rebuilt.counts_dirty) = (true, true);
                    tracing::info!(intersection = %id, "intersection updated (registry)");
                    self.held.insert(id, rebuilt);
                }
            }
        }
        out
    }

    /// Ends the tracks of intersections that had no new input for
    /// `finish_idle` by `at`, as the end of a file does in `streetscope run`:
    /// the crossings they hold are released and the open windows closed.
    pub fn finish_idle(&mut self, at: Instant) -> Vec<Released> {
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut() {
            if !h.finished && h.frames > 0 && at.saturating_duration_since(h.last_input) >= self.finish_idle {
                tracing::info!(intersection = %id, "no new detections for {:?}: tracks ended", self.finish_idle);
                out.push((id.clone(), h.finish()));
            }
        }
        out
    }

    /// Moves each intersection's time to its [`EventClock`] at `at`, so that
    /// silent cameras turn stale and windows close without input; the records
    /// that releases.
    pub fn tick(&mut self, at: Instant) -> Vec<Released> {
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut() {
            let Some(now_ms) = h.clock.now(at) else { continue };
            h.agg.tick(now_ms);
            let records = h.agg.drain(Vec::new());
            if !records.is_empty() {
                h.dirty = true;
                out.push((id.clone(), records));
            }
        }
        out
    }

    /// A counts record of each intersection changed since its last one.
    pub fn counts(&mut self) -> Vec<Released> {
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut().filter(|(_, h)| h.counts_dirty) {
            h.counts_dirty = false;
            let complete = h.finished && !h.seen.is_empty() && h.seen.iter().all(|c| h.ended.contains(c));
            let record = ResultRecord::Counts(CountsRecord {
                schema_version: SCHEMA_VERSION,
                intersection_id: id.clone(),
                as_of_capture_time_ms: h.as_of_ms,
                frames: h.frames,
                duplicates: h.agg.duplicates(),
                counts: h.agg.counts(),
                turning_movements: h.agg.turning_movements(),
                complete,
            });
            out.push((id.clone(), vec![record]));
        }
        out
    }

    /// What reached each camera's aggregator (for `/metrics`).
    pub fn delivery(&self) -> Vec<(String, DeliveryStats)> {
        self.held.values().flat_map(|h| h.agg.delivery()).collect()
    }

    /// The state of every intersection changed since its last snapshot, as
    /// the snapshots topic stores it; they count as clean from now on.
    pub fn dirty_snapshots(&mut self) -> Vec<(String, StoredSnapshot)> {
        let mut out = Vec::new();
        for (id, h) in self.held.iter_mut().filter(|(_, h)| h.dirty) {
            out.push((id.clone(), h.stored()));
            h.dirty = false;
        }
        out
    }

    /// Restores the intersections of detections partition `partition` from
    /// the rows of its snapshots partition (`value` None: a tombstone); how
    /// many were restored. A snapshot that cannot be read or no longer fits
    /// the registry is logged and its intersection starts afresh.
    pub fn restore(
        &mut self,
        partition: i32,
        rows: impl IntoIterator<Item = (String, Option<Vec<u8>>)>,
        at: Instant,
    ) -> usize {
        let mut restored = 0;
        for (intersection, value) in rows {
            let Some(value) = value else { continue };
            let snap: StoredSnapshot = match serde_json::from_slice(&value) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(intersection, "unreadable snapshot ({e}); its state starts afresh");
                    continue;
                }
            };
            let cameras = self.registry.cameras_of(&intersection);
            let analytics = self.registry.analytics_for(&intersection, &self.analytics);
            match Aggregator::restore(&cameras, &self.tracker, &analytics, snap.state) {
                Ok(agg) => {
                    let mut h = Held::new(agg, partition, cameras, at);
                    (h.frames, h.as_of_ms, h.finished, h.ended, h.seen) =
                        (snap.frames, snap.as_of_ms, snap.finished, snap.ended, snap.seen);
                    self.held.insert(intersection, h);
                    restored += 1;
                }
                Err(e) => {
                    tracing::error!(intersection, "snapshot does not fit the registry ({e}); its state starts afresh")
                }
            }
        }
        restored
    }

    /// Drops the intersections of revoked detections partitions: their next
    /// owner restores them from the last snapshot.
    pub fn revoke(&mut self, partitions: &HashSet<i32>) {
        self.held.retain(|_, h| !partitions.contains(&h.partition));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use streetscope_contracts::identity::compose;
    use streetscope_contracts::{BBox, Detection};

    use super::*;

    /// 2026-01-01T00:00:00Z.
    const T0_MS: i64 = 1_767_225_600_000;
    const RUN: u64 = 1_767_225_590;

    fn camera_spec(id: &str, intersection: &str, line_x: f64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "id": id, "intersection": intersection, "source": format!("rtsp://127.0.0.1:8554/{id}"),
            "sample_fps": 5.0, "lines": [{"name": "v", "start": [line_x, 1.0], "end": [line_x, 0.0]}],
        }))
        .unwrap()
    }

    /// Frame `i` of camera `cam`: a car moving right 30 px a frame on a
    /// 1000x500 image from frame `from` for 9 frames (it crosses x = 0.5 at
    /// its 3rd frame).
    fn frame(cam: &str, intersection: &str, i: u64, from: u64) -> FrameDetections {
        let detections = (from..from + 9)
            .contains(&i)
            .then(|| {
                let x = 420.0 + 30.0 * (i - from) as f32;
                Detection {
                    class_id: 2,
                    class_name: Arc::from("car"),
                    score: 0.9,
                    bbox: BBox::new(x, 200.0, x + 100.0, 300.0),
                }
            })
            .into_iter()
            .collect();
        FrameDetections {
            camera_id: Arc::from(cam),
            intersection_id: Arc::from(intersection),
            seq: compose(RUN, i),
            pts_ns: 0,
            capture_time_ms: T0_MS + i as i64 * 200,
            width: 1000,
            height: 500,
            detections,
        }
    }

    fn stage() -> Intersections {
        let analytics = AnalyticsConfig { window_lengths_s: vec![60], allowed_lateness_s: 0.0, ..Default::default() };
        let mut s = Intersections::new(TrackerConfig::default(), analytics, Duration::from_secs(30));
        assert!(s.registry_record(Table::Cameras, "cam", Some(&camera_spec("cam", "x", 0.5))).is_empty());
        s
    }

    fn crossings(records: &[ResultRecord]) -> usize {
        records.iter().filter(|r| matches!(r, ResultRecord::Crossing(_))).count()
    }

    /// Feeds frames `range` of `cam`; the records released.
    fn feed(
        s: &mut Intersections,
        cam: &str,
        range: std::ops::Range<u64>,
        car_from: u64,
        t: Instant,
    ) -> Vec<ResultRecord> {
        let mut out = Vec::new();
        for i in range {
            out.extend(s.detections(&frame(cam, "x", i, car_from), 0, t, T0_MS + 60_000).unwrap());
        }
        out
    }

    #[test]
    fn unknown_misplaced_and_future_detections_are_refused_with_a_reason() {
        let mut s = stage();
        let t = Instant::now();
        // An unreadable spec changes nothing (logged).
        assert!(s.registry_record(Table::Cameras, "ghost", Some(b"{\"id\": 5}")).is_empty());
        // Nor does one the registry would refuse: the camera keeps its line.
        let mut refused: serde_json::Value = serde_json::from_slice(&camera_spec("cam", "x", 0.9)).unwrap();
        refused["sample_fps"] = serde_json::json!(-3.0);
        refused["template"] = serde_json::json!("/dev/zero");
        assert!(s.registry_record(Table::Cameras, "cam", Some(&serde_json::to_vec(&refused).unwrap())).is_empty());
        let why = s.detections(&frame("ghost", "x", 0, 0), 0, t, T0_MS).unwrap_err();
        assert!(why.contains("\"ghost\", which the registry does not know"), "{why}");
        let why = s.detections(&frame("cam", "elsewhere", 0, 0), 0, t, T0_MS).unwrap_err();
        assert!(why.contains("but the registry puts it in \"x\""), "{why}");
        let mut future = frame("cam", "x", 0, 0);
        future.seq = compose(RUN + 86_400, 0);
        let why = s.detections(&future, 0, t, T0_MS).unwrap_err();
        assert!(why.starts_with("detections sequence_from_the_future:"), "{why}");
        // A camera whose clock reset to 1970: refused, not a window in 1970.
        let mut reset = frame("cam", "x", 0, 0);
        reset.capture_time_ms = 5_000;
        let why = s.detections(&reset, 0, t, T0_MS).unwrap_err();
        assert!(why.starts_with("detections capture_time_off_clock:"), "{why}");
        assert_eq!(s.held(), 0, "nothing refused builds state");
        // The camera's frames are not blanked by the refused number.
        assert_eq!(crossings(&feed(&mut s, "cam", 0..20, 2, t)), 1);
    }

    #[test]
    fn a_snapshot_restores_the_state_and_replays_are_duplicates() {
        let t = Instant::now();
        let mut a = stage();
        let mut records = feed(&mut a, "cam", 0..5, 2, t);
        let snaps = a.dirty_snapshots();
        assert_eq!(snaps.len(), 1);
        assert!(a.dirty_snapshots().is_empty(), "clean after a snapshot");
        let rows = snaps.iter().map(|(id, s)| (id.clone(), Some(serde_json::to_vec(s).unwrap())));
        // The partition moves: a new pod restores it and is sent frames 3.. again (offsets lag snapshots).
        let mut b = stage();
        assert_eq!(b.restore(0, rows, t), 1);
        records.extend(feed(&mut b, "cam", 3..20, 2, t));
        records.extend(b.finish_idle(t + Duration::from_secs(31)).into_iter().flat_map(|(_, r)| r));
        assert_eq!(crossings(&records), 1, "the car crosses once, across the move: {records:?}");
        let stats = b.delivery();
        // This pod's counters (Prometheus counters of its own process): 17 sent, 2 of them again.
        assert_eq!((stats[0].1.frames, stats[0].1.duplicates), (15, 2), "{stats:?}");
        // A revoked partition's intersections are dropped.
        b.revoke(&HashSet::from([0]));
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn a_moved_line_counts_from_the_next_frame_and_a_deleted_camera_ends_its_tracks() {
        let t = Instant::now();
        let mut s = stage();
        let mut records = feed(&mut s, "cam", 0..20, 2, t);
        assert_eq!(crossings(&records), 1);
        // The line moves to x = 0.65: the next car crosses it 5 frames later than it would have crossed 0.5.
        let out = s.registry_record(Table::Cameras, "cam", Some(&camera_spec("cam", "x", 0.65)));
        assert_eq!(out.len(), 1, "the edit reaches the intersection held here");
        let next: Vec<_> = feed(&mut s, "cam", 20..40, 22, t);
        let at: Vec<u64> = next
            .iter()
            .filter_map(|r| match r {
                ResultRecord::Crossing(c) => Some(streetscope_contracts::identity::index_of(c.frame_seq)),
                _ => None,
            })
            .collect();
        assert_eq!(at.len(), 1, "{next:?}");
        assert!(at[0] >= 22 + 5, "crossed the moved line, not the old one: frame {at:?}");
        records.extend(next);
        // A car half-way when the camera is deleted: its track ends, no crossing invented.
        records.extend(feed(&mut s, "cam", 40..43, 41, t));
        let out = s.registry_record(Table::Cameras, "cam", None);
        assert_eq!(out.len(), 1);
        assert_eq!(crossings(&out[0].1), 0);
        assert_eq!(s.registry().cameras(), 0);
        assert!(s.detections(&frame("cam", "x", 43, 41), 0, t, T0_MS + 60_000).is_err(), "deleted: refused");
    }

    #[test]
    fn recordings_end_the_tracks_once_every_camera_ended_and_counts_say_complete() {
        let t = Instant::now();
        let mut s = stage();
        s.registry_record(Table::Cameras, "cam2", Some(&camera_spec("cam2", "x", 0.5)));
        feed(&mut s, "cam", 0..5, 2, t);
        feed(&mut s, "cam2", 0..5, 2, t);
        let end = |cam: &str| EndOfStream { camera_id: cam.into(), intersection_id: "x".into(), last_seq: None };
        assert!(s.end_of_stream(&end("cam")).is_none(), "cam2 still sends");
        let (id, records) = s.end_of_stream(&end("cam2")).expect("both ended");
        assert_eq!(id, "x");
        assert_eq!(crossings(&records), 2, "the held crossings come out at the end");
        let counts = s.counts();
        match &counts[0].1[0] {
            ResultRecord::Counts(c) => assert!(c.complete && c.frames == 10, "{c:?}"),
            r => panic!("{r:?}"),
        }
        assert!(s.counts().is_empty(), "nothing changed since");
    }

    #[test]
    fn silence_closes_windows_by_the_event_clock() {
        let t = Instant::now();
        let mut s = stage();
        let records = feed(&mut s, "cam", 0..20, 2, t);
        assert!(!records.iter().any(|r| matches!(r, ResultRecord::Window(_))));
        // Four seconds of frames, then silence: a minute and a half later the first window has closed.
        let out = s.tick(t + Duration::from_secs(90));
        assert!(out.iter().flat_map(|(_, r)| r).any(|r| matches!(r, ResultRecord::Window(_))), "{out:?}");
    }
}
