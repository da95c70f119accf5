//! Event-time tumbling windows of one intersection.
//!
//! Every record is filed by the capture time of its frame (a crossing by the frame
//! at which it happened, a turning movement by the later of its two crossings,
//! however late the counter released them) under the window of each configured
//! length that holds that time; windows are aligned to the Unix epoch.
//!
//! **Watermarks.** Each camera's watermark is the latest capture time it has
//! delivered minus the allowed lateness; a window closes, and its
//! [`WindowRecord`] is emitted, once every camera of the intersection has a
//! watermark at or past its end. Windows close in order, so a window in which no
//! frame arrived at all (a camera outage) is still emitted, empty and incomplete.
//! A camera that has delivered nothing yet holds every window open.
//!
//! **Late records** — those whose window has closed — are not added to any window;
//! they are counted in [`WindowRecord::late`] of the next record of that length.
//!
//! **Data quality.** Per camera, frames received in the window against
//! `sample_fps` × length, and the runs of missing sequence numbers (filed under
//! the window of the frame that revealed them).
//!
//! **Stale cameras.** A camera the aggregator declared stale ([`Windows::set_stale`])
//! no longer holds windows open: the watermark is the least of the other cameras'
//! (or, when every camera is stale, the time the aggregator has reached, less the
//! allowed lateness). Its next frame makes it fresh again. Every window that
//! overlaps its silence (from its last frame to its next) says so in the camera's
//! `stale` flag and is not complete.
//!
//! **Zones, queues, speeds.** Per frame of a camera, the occupancy of each of its
//! zones and the queue of each of its lanes are added to the windows holding the
//! frame (means are over the camera's frames in the window); dwell times are
//! filed by the time the vehicle left, movement speeds with their movement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streetscope_contracts::records::{
    LateRecords, SeqGap, WindowCameraQuality, WindowCount, WindowMovementSpeed, WindowQueue, WindowRecord,
    WindowTurningCount, WindowZone, WindowZoneClass, ZoneVisit, SCHEMA_VERSION,
};
use streetscope_contracts::Direction;

/// At most this many windows in a row are emitted empty when the watermark jumps
/// (a clock that jumps ahead by a year must not emit half a million records),
/// or between two open windows far apart (one opened by a record dated decades back).
const MAX_EMPTY_RUN: i64 = 10_000;

/// Key of a window count: camera, line, direction, class.
type CountKey = (String, String, Direction, String);
/// Key of a window turning count: camera, from, to, class.
type TurnKey = (String, String, String, String);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct FrameAcc {
    received: u64,
    dropped: u64,
    gaps: Vec<SeqGap>,
}

/// Occupancy and dwell times of one zone (or one class in a zone) in a window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ZoneAcc {
    /// Sum over the camera's frames of the vehicles inside.
    occupancy_sum: u64,
    occupancy_max: u32,
    dwells: u64,
    dwell_sum_ms: i64,
    dwell_max_ms: i64,
    /// The stays themselves (zones only, not their classes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    visits: Vec<ZoneVisit>,
}

impl ZoneAcc {
    fn occupancy(&mut self, n: u32) {
        self.occupancy_sum += u64::from(n);
        self.occupancy_max = self.occupancy_max.max(n);
    }

    fn dwell(&mut self, ms: i64) {
        self.dwells += 1;
        self.dwell_sum_ms += ms;
        self.dwell_max_ms = self.dwell_max_ms.max(ms);
    }

    fn mean_dwell_s(&self) -> Option<f64> {
        (self.dwells > 0).then(|| self.dwell_sum_ms as f64 / 1000.0 / self.dwells as f64)
    }
}

/// Key of a zone: camera, zone.
type ZoneKey = (String, String);
/// Key of a zone's class: camera, zone, class.
type ZoneClassKey = (String, String, String);
/// Key of a movement's speeds: camera, from, to.
type SpeedKey = (String, String, String);

/// One frame's zones of one camera, as the windows take them.
#[derive(Debug, Clone, Copy)]
pub struct ZoneSample<'a> {
    /// Per zone: its name, and the vehicles inside per class (classes with none left out).
    pub occupancy: &'a [(String, Vec<(String, u32)>)],
    /// Per lane: its name and the vehicles queued.
    pub queues: &'a [(String, u32)],
}

/// What one open window has gathered.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Acc {
    /// Per key: the direction's label and the count.
    #[serde(with = "crate::snapshot::map_as_vec")]
    counts: BTreeMap<CountKey, (String, u64)>,
    #[serde(with = "crate::snapshot::map_as_vec")]
    turning: BTreeMap<TurnKey, u64>,
    /// Per camera, in [`Windows::cameras`] order.
    frames: Vec<FrameAcc>,
    #[serde(with = "crate::snapshot::map_as_vec")]
    zones: BTreeMap<ZoneKey, ZoneAcc>,
    #[serde(with = "crate::snapshot::map_as_vec")]
    zone_classes: BTreeMap<ZoneClassKey, ZoneAcc>,
    /// Per camera and lane: the sum over frames of the vehicles queued, and the most.
    #[serde(with = "crate::snapshot::map_as_vec")]
    queues: BTreeMap<ZoneKey, (u64, u32)>,
    /// Per camera and lane: frames by the vehicles queued in them (index 0, 1, …).
    #[serde(default, with = "crate::snapshot::map_as_vec")]
    queue_frames: BTreeMap<ZoneKey, Vec<u64>>,
    /// Per movement: each vehicle's speed, km/h.
    #[serde(with = "crate::snapshot::map_as_vec")]
    speeds: BTreeMap<SpeedKey, Vec<f64>>,
}

impl Acc {
    fn new(cameras: usize) -> Self {
        Self {
            counts: BTreeMap::new(),
            turning: BTreeMap::new(),
            frames: vec![FrameAcc::default(); cameras],
            zones: BTreeMap::new(),
            zone_classes: BTreeMap::new(),
            queues: BTreeMap::new(),
            queue_frames: BTreeMap::new(),
            speeds: BTreeMap::new(),
        }
    }
}

/// The windows of one length.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Series {
    length_s: u32,
    length_ms: i64,
    /// End of the last window closed: everything before it is closed.
    closed_until: Option<i64>,
    #[serde(with = "crate::snapshot::map_as_vec")]
    open: BTreeMap<i64, Acc>,
    late: LateRecords,
}

impl Series {
    fn start_of(&self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.length_ms) * self.length_ms
    }

    /// The open window holding `t_ms`, or `None` when it has closed.
    fn acc(&mut self, t_ms: i64, cameras: usize) -> Option<&mut Acc> {
        let start = self.start_of(t_ms);
        if self.closed_until.is_some_and(|c| start < c) {
            return None;
        }
        Some(self.open.entry(start).or_insert_with(|| Acc::new(cameras)))
    }
}

/// One camera of the intersection.
#[derive(Debug, Clone)]
struct Camera {
    id: String,
    sample_fps: f64,
    max_capture_ms: Option<i64>,
    /// Its silences while stale: from its last frame to its next (`None` while
    /// still stale), latest last.
    stale: Vec<(i64, Option<i64>)>,
}

impl Camera {
    fn is_stale(&self) -> bool {
        self.stale.last().is_some_and(|s| s.1.is_none())
    }
}

/// What [`Windows`] carry from frame to frame, for snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WindowsState {
    intersection_id: String,
    /// Per camera: its id and the latest capture time it delivered.
    cameras: Vec<(String, Option<i64>)>,
    series: Vec<Series>,
    /// Per camera: its stale silences not yet behind every closed window.
    #[serde(default)]
    stale: Vec<Vec<(i64, Option<i64>)>>,
    /// The watermark used while every camera is stale.
    #[serde(default)]
    idle_watermark: Option<i64>,
}

impl WindowsState {
    pub fn intersection_id(&self) -> &str {
        &self.intersection_id
    }
}

/// The windows of one intersection.
#[derive(Debug, Clone)]
pub struct Windows {
    intersection_id: String,
    cameras: Vec<Camera>,
    lateness_ms: i64,
    series: Vec<Series>,
    idle_watermark: Option<i64>,
}

impl Windows {
    /// `cameras`: id and sample rate of each camera of the intersection, in the
    /// order the other methods index them.
    pub fn new(intersection_id: &str, cameras: &[(String, f64)], lengths_s: &[u32], allowed_lateness_s: f64) -> Self {
        Self {
            intersection_id: intersection_id.to_owned(),
            cameras: cameras
                .iter()
                .map(|(id, fps)| Camera { id: id.clone(), sample_fps: *fps, max_capture_ms: None, stale: Vec::new() })
                .collect(),
            lateness_ms: (allowed_lateness_s.max(0.0) * 1000.0).round() as i64,
            series: lengths_s
                .iter()
                .map(|&l| Series {
                    length_s: l,
                    length_ms: i64::from(l.max(1)) * 1000,
                    closed_until: None,
                    open: BTreeMap::new(),
                    late: LateRecords::default(),
                })
                .collect(),
            idle_watermark: None,
        }
    }

    pub fn intersection_id(&self) -> &str {
        &self.intersection_id
    }

    /// Its state between frames.
    pub fn state(&self) -> WindowsState {
        WindowsState {
            intersection_id: self.intersection_id.clone(),
            cameras: self.cameras.iter().map(|c| (c.id.clone(), c.max_capture_ms)).collect(),
            series: self.series.clone(),
            stale: self.cameras.iter().map(|c| c.stale.clone()).collect(),
            idle_watermark: self.idle_watermark,
        }
    }

    /// Goes on from `state`; `false` (and no change) when it was taken for other
    /// cameras or other window lengths. The allowed lateness and the cameras'
    /// sample rates stay as configured.
    pub fn restore_state(&mut self, state: WindowsState) -> bool {
        let same_cameras = state.cameras.len() == self.cameras.len()
            && state.cameras.iter().zip(&self.cameras).all(|(s, c)| s.0 == c.id);
        let same_lengths = state.series.len() == self.series.len()
            && state.series.iter().zip(&self.series).all(|(s, c)| s.length_s == c.length_s);
        let n = self.cameras.len();
        let fits = state.series.iter().all(|s| s.open.values().all(|a| a.frames.len() == n));
        // The newest time the state knows: no open window may start further back
        // than MAX_EMPTY_RUN windows before it. Closing windows never skips an
        // open one, so one forged far back (a snapshot with `17672200000`, a
        // digit short) made the first close emit every window since 1970: 29
        // million records and seconds of work (found at volume, seed
        // 0x5747524545545343).
        let newest = state.cameras.iter().filter_map(|c| c.1).chain(state.idle_watermark).chain(
            state.series.iter().filter_map(|s| s.open.keys().next_back().map(|&k| k.saturating_add(s.length_ms))),
        );
        let newest = newest.max();
        let possible = state.series.iter().all(|s| {
            s.length_ms > 0
                && s.length_ms == i64::from(s.length_s) * 1000
                && s.open.keys().all(|&k| {
                    k.rem_euclid(s.length_ms) == 0
                        && s.closed_until.is_none_or(|c| k >= c)
                        && newest.is_some_and(|t| t.saturating_sub(k) / s.length_ms <= MAX_EMPTY_RUN)
                })
                // The end of the closed windows, likewise: on a boundary, and
                // not further back (i64::MIN made the first close run away).
                && s.closed_until.is_none_or(|c| {
                    c.rem_euclid(s.length_ms) == 0
                        && newest.is_some_and(|t| t.saturating_sub(c) / s.length_ms <= MAX_EMPTY_RUN)
                })
        });
        if state.intersection_id != self.intersection_id || !same_cameras || !same_lengths || !fits || !possible {
            return false;
        }
        let mut stale = state.stale.into_iter();
        for (c, (_, m)) in self.cameras.iter_mut().zip(state.cameras) {
            c.max_capture_ms = m;
            c.stale = stale.next().unwrap_or_default();
        }
        self.series = state.series;
        self.idle_watermark = state.idle_watermark;
        true
    }

    /// A frame of camera `cam` arrived; `gap` is the run of sequence numbers found
    /// missing before it.
    pub fn frame(&mut self, cam: usize, capture_ms: i64, gap: Option<SeqGap>) {
        let c = &mut self.cameras[cam];
        c.max_capture_ms = Some(c.max_capture_ms.map_or(capture_ms, |m| m.max(capture_ms)));
        if let Some(silence) = c.stale.last_mut().filter(|s| s.1.is_none()) {
            silence.1 = Some(capture_ms.max(silence.0));
        }
        let n = self.cameras.len();
        for s in &mut self.series {
            match s.acc(capture_ms, n) {
                Some(acc) => {
                    let f = &mut acc.frames[cam];
                    f.received += 1;
                    if let Some(g) = gap {
                        f.dropped += g.frames();
                        f.gaps.push(g);
                    }
                }
                None => s.late.frames += 1,
            }
        }
    }

    /// A crossing of camera `cam` in the frame captured at `capture_ms`.
    pub fn crossing(
        &mut self,
        cam: usize,
        capture_ms: i64,
        line: &str,
        direction: Direction,
        label: &str,
        class: &str,
    ) {
        let n = self.cameras.len();
        let camera_id = &self.cameras[cam].id;
        for s in &mut self.series {
            match s.acc(capture_ms, n) {
                Some(acc) => {
                    let key = (camera_id.clone(), line.to_owned(), direction, class.to_owned());
                    acc.counts.entry(key).or_insert_with(|| (label.to_owned(), 0)).1 += 1;
                }
                None => s.late.crossings += 1,
            }
        }
    }

    /// A turning movement of camera `cam` completed at `capture_ms`.
    pub fn turning(&mut self, cam: usize, capture_ms: i64, from: &str, to: &str, class: &str) {
        let n = self.cameras.len();
        let camera_id = &self.cameras[cam].id;
        for s in &mut self.series {
            match s.acc(capture_ms, n) {
                Some(acc) => {
                    let key = (camera_id.clone(), from.to_owned(), to.to_owned(), class.to_owned());
                    *acc.turning.entry(key).or_insert(0) += 1;
                }
                None => s.late.turning_movements += 1,
            }
        }
    }

    /// Camera `cam` is stale: silent since `since_ms` (its last frame, or when the
    /// aggregator started for one that never sent any). Its watermark stops
    /// holding windows open until its next [`frame`](Windows::frame).
    pub fn set_stale(&mut self, cam: usize, since_ms: i64) {
        let c = &mut self.cameras[cam];
        if !c.is_stale() {
            c.stale.push((since_ms, None));
        }
    }

    /// Whether camera `cam` is stale.
    pub fn is_stale(&self, cam: usize) -> bool {
        self.cameras[cam].is_stale()
    }

    /// Whether every camera of the intersection is stale.
    pub fn all_stale(&self) -> bool {
        self.cameras.iter().all(Camera::is_stale)
    }

    /// The time the aggregator has reached (the latest capture time of any camera,
    /// or a tick): while every camera is stale, the watermark follows it.
    pub fn set_now(&mut self, now_ms: i64) {
        let wm = now_ms - self.lateness_ms;
        self.idle_watermark = Some(self.idle_watermark.map_or(wm, |w| w.max(wm)));
    }

    /// One frame of camera `cam`'s zones (see [`ZoneSample`]).
    pub fn zones(&mut self, cam: usize, capture_ms: i64, sample: ZoneSample<'_>) {
        let n = self.cameras.len();
        let camera_id = &self.cameras[cam].id;
        for s in &mut self.series {
            // A late frame was counted late by `frame`.
            let Some(acc) = s.acc(capture_ms, n) else {
                continue;
            };
            for (zone, classes) in sample.occupancy {
                let key = (camera_id.clone(), zone.clone());
                acc.zones.entry(key).or_default().occupancy(classes.iter().map(|c| c.1).sum());
                for (class, k) in classes {
                    let key = (camera_id.clone(), zone.clone(), class.clone());
                    acc.zone_classes.entry(key).or_default().occupancy(*k);
                }
            }
            for (lane, k) in sample.queues {
                let q = acc.queues.entry((camera_id.clone(), lane.clone())).or_insert((0, 0));
                q.0 += u64::from(*k);
                q.1 = q.1.max(*k);
                let h = acc.queue_frames.entry((camera_id.clone(), lane.clone())).or_default();
                if h.len() <= *k as usize {
                    h.resize(*k as usize + 1, 0);
                }
                h[*k as usize] += 1;
            }
        }
    }

    /// A vehicle of `class` left zone `zone` of camera `cam` at `leave_ms` after `dwell_ms` inside.
    pub fn dwell(&mut self, cam: usize, zone: &str, visit: &ZoneVisit) {
        let n = self.cameras.len();
        let camera_id = &self.cameras[cam].id;
        let (class, dwell_ms) = (&visit.class_name, visit.leave_ms - visit.enter_ms);
        for s in &mut self.series {
            match s.acc(visit.leave_ms, n) {
                Some(acc) => {
                    let z = acc.zones.entry((camera_id.clone(), zone.to_owned())).or_default();
                    z.dwell(dwell_ms);
                    z.visits.push(visit.clone());
                    let key = (camera_id.clone(), zone.to_owned(), class.to_owned());
                    acc.zone_classes.entry(key).or_default().dwell(dwell_ms);
                }
                None => s.late.dwells += 1,
            }
        }
    }

    /// The speed of a turning movement of camera `cam` completed at `capture_ms`
    /// (a late one was counted late by [`turning`](Windows::turning)).
    pub fn movement_speed(&mut self, cam: usize, capture_ms: i64, from: &str, to: &str, kmh: f64) {
        let n = self.cameras.len();
        let camera_id = &self.cameras[cam].id;
        for s in &mut self.series {
            if let Some(acc) = s.acc(capture_ms, n) {
                acc.speeds.entry((camera_id.clone(), from.to_owned(), to.to_owned())).or_default().push(kmh);
            }
        }
    }

    /// Closes the windows every camera's watermark has passed; appends their records.
    pub fn advance(&mut self, out: &mut Vec<WindowRecord>) {
        let Some(wm) = self.watermark() else {
            return;
        };
        for i in 0..self.series.len() {
            self.close(i, wm, true, out);
        }
    }

    /// End of input: closes every window that holds anything, and those before it.
    /// Late records not yet reported go out with an (empty) next window if no
    /// open one is left to carry them.
    pub fn flush(&mut self, out: &mut Vec<WindowRecord>) {
        for i in 0..self.series.len() {
            let s = &self.series[i];
            let upto = match (s.open.last_key_value(), s.closed_until) {
                (Some((&last, _)), _) => last.saturating_add(s.length_ms),
                (None, Some(closed)) if !s.late.is_empty() => closed.saturating_add(s.length_ms),
                _ => continue,
            };
            self.close(i, upto, false, out);
        }
    }

    /// The intersection's watermark: the least of its cameras' that are not stale;
    /// when every camera is stale, the time reached less the lateness.
    fn watermark(&self) -> Option<i64> {
        let mut fresh = self.cameras.iter().filter(|c| !c.is_stale()).peekable();
        if fresh.peek().is_none() {
            return self.idle_watermark;
        }
        fresh.map(|c| c.max_capture_ms.map(|m| m.saturating_sub(self.lateness_ms))).min().flatten()
    }

    /// Closes series `i`'s windows that end at or before `upto`, in order.
    /// `by_watermark`: whether the watermarks closed them (or the end of input).
    fn close(&mut self, i: usize, upto: i64, by_watermark: bool, out: &mut Vec<WindowRecord>) {
        let s = &self.series[i];
        let l = s.length_ms;
        let Some(mut start) = s.closed_until.or_else(|| s.open.keys().next().copied()) else {
            return;
        };
        // Saturating and checked: times near either end of i64 (a restored
        // `closed_until` of i64::MIN wrapped the distance to the open windows
        // negative, so nothing was skipped and the close emitted windows from
        // i64::MIN on, until memory ran out; found at volume, seed
        // 0x5747524545545343).
        while start.checked_add(l).is_some_and(|end| end <= upto) {
            // An empty stretch of more than MAX_EMPTY_RUN windows goes out as
            // its last MAX_EMPTY_RUN windows; an open window is never skipped.
            // Between open windows too: a record dated decades back (a camera
            // clock reset to 1970) opened a window there, and the next true
            // one made the close emit every window since (millions).
            let s = &self.series[i];
            if !s.open.contains_key(&start) {
                let next = s.open.range(start..).next().map_or(s.start_of(upto), |(&k, _)| k);
                if next.saturating_sub(start) / l > MAX_EMPTY_RUN {
                    start = next - MAX_EMPTY_RUN * l;
                }
            }
            let rec = self.record(i, start, by_watermark);
            out.push(rec);
            start += l;
            self.series[i].closed_until = Some(start);
        }
        // Silences that every closed window is past are no longer needed.
        let closed = self.series.iter().map(|s| s.closed_until.unwrap_or(i64::MIN)).min().unwrap_or(i64::MIN);
        for c in &mut self.cameras {
            c.stale.retain(|s| s.1.is_none_or(|end| end > closed));
        }
    }

    /// The record of series `i`'s window at `start`, removing it from the open ones.
    fn record(&mut self, i: usize, start: i64, by_watermark: bool) -> WindowRecord {
        let s = &mut self.series[i];
        let (length_s, end) = (s.length_s, start + s.length_ms);
        let mut acc = s.open.remove(&start).unwrap_or_else(|| Acc::new(self.cameras.len()));
        let late = std::mem::take(&mut s.late);
        let received: BTreeMap<String, u64> =
            self.cameras.iter().zip(&acc.frames).map(|(c, f)| (c.id.clone(), f.received)).collect();
        let mut complete = true;
        let cameras: Vec<WindowCameraQuality> = self
            .cameras
            .iter()
            .zip(acc.frames)
            .map(|(c, f)| {
                let expected = (c.sample_fps * f64::from(length_s)).round() as u64;
                // At the end of input, a window its camera's frames did not reach ended early.
                let frame_ms = (1000.0 / c.sample_fps).ceil() as i64;
                let reached = by_watermark || c.max_capture_ms.is_some_and(|m| m + frame_ms >= end);
                let stale = c.stale.iter().any(|&(from, to)| from < end && to.is_none_or(|to| to > start));
                complete &= reached && !stale && f.dropped == 0 && f.received + expected / 100 >= expected;
                WindowCameraQuality {
                    camera_id: c.id.clone(),
                    frames_expected: expected,
                    frames_received: f.received,
                    frames_dropped: f.dropped,
                    gaps: f.gaps,
                    stale,
                }
            })
            .collect();
        WindowRecord {
            schema_version: SCHEMA_VERSION,
            intersection_id: self.intersection_id.clone(),
            window_start_ms: start,
            window_end_ms: end,
            length_s,
            counts: acc
                .counts
                .into_iter()
                .map(|((camera_id, line, direction, class_name), (direction_label, count))| WindowCount {
                    camera_id,
                    line,
                    direction,
                    direction_label,
                    class_name,
                    count,
                })
                .collect(),
            turning_movements: acc
                .turning
                .into_iter()
                .map(|((camera_id, from, to, class_name), count)| WindowTurningCount {
                    camera_id,
                    from,
                    to,
                    class_name,
                    count,
                })
                .collect(),
            cameras,
            late,
            complete,
            zones: zone_rows(acc.zones, acc.zone_classes, &received),
            queues: acc
                .queues
                .into_iter()
                .map(|((camera_id, lane), (sum, max))| {
                    let frames = received.get(&camera_id).copied().unwrap_or(0);
                    let mut by_queue = acc.queue_frames.remove(&(camera_id.clone(), lane.clone())).unwrap_or_default();
                    // Frames of the camera that did not report the lane had none queued.
                    let seen: u64 = by_queue.iter().sum();
                    if frames > seen {
                        if by_queue.is_empty() {
                            by_queue.push(0);
                        }
                        by_queue[0] += frames - seen;
                    }
                    WindowQueue {
                        mean_queue: mean(sum, frames),
                        camera_id,
                        lane,
                        max_queue: max,
                        frames_by_queue: by_queue,
                    }
                })
                .collect(),
            speeds: acc
                .speeds
                .into_iter()
                .filter_map(|((camera_id, from, to), mut v)| {
                    v.retain(|x| x.is_finite());
                    if v.is_empty() {
                        return None;
                    }
                    v.sort_by(f64::total_cmp);
                    Some(WindowMovementSpeed {
                        camera_id,
                        from,
                        to,
                        vehicles: v.len() as u64,
                        mean_kmh: v.iter().sum::<f64>() / v.len() as f64,
                        p50_kmh: percentile(&v, 0.5),
                        p85_kmh: percentile(&v, 0.85),
                    })
                })
                .collect(),
        }
    }
}

/// `sum / frames`, 0 for no frames.
fn mean(sum: u64, frames: u64) -> f64 {
    if frames == 0 {
        0.0
    } else {
        sum as f64 / frames as f64
    }
}

/// The `p` quantile of sorted, non-empty `v` by the nearest-rank method.
pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The zone rows of a window; `received`: frames per camera id.
fn zone_rows(
    zones: BTreeMap<ZoneKey, ZoneAcc>,
    classes: BTreeMap<ZoneClassKey, ZoneAcc>,
    received: &BTreeMap<String, u64>,
) -> Vec<WindowZone> {
    let mut rows: Vec<WindowZone> = zones
        .into_iter()
        .map(|((camera_id, zone), z)| {
            let frames = received.get(&camera_id).copied().unwrap_or(0);
            WindowZone {
                mean_occupancy: mean(z.occupancy_sum, frames),
                max_occupancy: z.occupancy_max,
                dwells: z.dwells,
                mean_dwell_s: z.mean_dwell_s(),
                max_dwell_s: (z.dwells > 0).then(|| z.dwell_max_ms as f64 / 1000.0),
                classes: Vec::new(),
                visits: {
                    let mut v = z.visits;
                    v.sort_by_key(|v| (v.leave_ms, v.track_id));
                    v
                },
                camera_id,
                zone,
            }
        })
        .collect();
    for ((camera_id, zone, class_name), z) in classes {
        let frames = received.get(&camera_id).copied().unwrap_or(0);
        if let Some(row) = rows.iter_mut().find(|r| r.camera_id == camera_id && r.zone == zone) {
            row.classes.push(WindowZoneClass {
                class_name,
                mean_occupancy: mean(z.occupancy_sum, frames),
                max_occupancy: z.occupancy_max,
                dwells: z.dwells,
                mean_dwell_s: z.mean_dwell_s(),
            });
        }
    }
    rows
}

// The camera set of an intersection changes while it runs (cameras added and
// removed from a watched config or the registry).
impl Windows {
    /// Adds a camera (or returns the index of a camera of this id); returns its
    /// index. Until it delivers a frame it holds the windows open, like a camera
    /// at the start.
    pub fn add_camera(&mut self, id: &str, sample_fps: f64) -> usize {
        if let Some(i) = self.cameras.iter().position(|c| c.id == id) {
            self.cameras[i].sample_fps = sample_fps;
            return i;
        }
        self.cameras.push(Camera { id: id.to_owned(), sample_fps, max_capture_ms: None, stale: Vec::new() });
        for s in &mut self.series {
            for acc in s.open.values_mut() {
                acc.frames.push(FrameAcc::default());
            }
        }
        self.cameras.len() - 1
    }

    /// Removes camera `cam`: it no longer holds the watermark nor appears in the
    /// quality of windows still open; its crossings already filed stay counted.
    /// Cameras after it move down one index.
    pub fn remove_camera(&mut self, cam: usize) {
        if cam >= self.cameras.len() {
            return;
        }
        self.cameras.remove(cam);
        for s in &mut self.series {
            for acc in s.open.values_mut() {
                if cam < acc.frames.len() {
                    acc.frames.remove(cam);
                }
            }
        }
    }

    /// The index of the camera `id`, if it is one of the intersection's.
    pub fn camera_index(&self, id: &str) -> Option<usize> {
        self.cameras.iter().position(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(lateness_s: f64) -> Windows {
        Windows::new("x", &[("a".into(), 1.0), ("b".into(), 1.0)], &[10], lateness_s)
    }

    fn spans(out: &[WindowRecord]) -> Vec<(i64, bool)> {
        out.iter().map(|r| (r.window_start_ms, r.complete)).collect()
    }

    #[test]
    fn a_window_closes_when_every_camera_passed_its_end_plus_the_lateness() {
        let mut w = windows(2.0);
        let mut out = Vec::new();
        for t in 0..13 {
            w.frame(0, t * 1000, None);
            w.advance(&mut out);
        }
        assert!(out.is_empty(), "camera b has sent nothing");
        for t in 0..12 {
            w.frame(1, t * 1000, None);
            w.advance(&mut out);
        }
        assert!(out.is_empty(), "camera b's watermark is at 9 s");
        w.frame(1, 12_000, None);
        w.advance(&mut out);
        assert_eq!(spans(&out), vec![(0, true)]);
        assert_eq!(out[0].cameras.iter().map(|c| c.frames_received).collect::<Vec<_>>(), vec![10, 10]);
    }

    #[test]
    fn late_records_go_to_the_next_record_and_outages_give_empty_windows() {
        let mut w = windows(0.0);
        let mut out = Vec::new();
        for t in [0, 5_000, 10_000] {
            w.frame(0, t, None);
            w.frame(1, t, None);
        }
        w.advance(&mut out);
        assert_eq!(spans(&out), vec![(0, false)]);
        w.crossing(0, 9_000, "l", Direction::Forward, "in", "car");
        w.turning(1, 9_500, "n", "s", "car");
        // Both cameras jump to 35 s: windows 10-20 and 20-30 close, 20-30 empty.
        w.frame(0, 35_000, Some(SeqGap::within_run(3, 27)));
        w.frame(1, 35_000, None);
        w.advance(&mut out);
        assert_eq!(spans(&out), vec![(0, false), (10_000, false), (20_000, false)]);
        assert_eq!(out[1].late, LateRecords { crossings: 1, turning_movements: 1, ..LateRecords::default() });
        assert!(out[2].late.is_empty());
        assert_eq!(out[2].cameras[0].frames_received, 0);
        w.flush(&mut out);
        assert_eq!(out.len(), 4);
        let last = &out[3];
        assert_eq!((last.window_start_ms, last.complete, last.cameras[0].frames_dropped), (30_000, false, 25));
    }

    #[test]
    fn a_record_dated_decades_back_emits_a_bounded_run_of_empty_windows() {
        // One camera whose clock read 1970 for a frame (reset), then the true time.
        let mut w = Windows::new("x", &[("a".into(), 1.0)], &[60], 0.0);
        let mut out = Vec::new();
        w.frame(0, 5_000, None);
        w.crossing(0, 5_000, "l", Direction::Forward, "in", "car");
        w.advance(&mut out);
        assert!(out.is_empty());
        let now = 1_767_225_600_000;
        w.frame(0, now, None);
        let started = std::time::Instant::now();
        w.advance(&mut out);
        // The 1970 window with its crossing, then the last MAX_EMPTY_RUN
        // windows before now, empty; not the 29 million since 1970.
        assert_eq!(out.len(), 1 + MAX_EMPTY_RUN as usize);
        assert_eq!((out[0].window_start_ms, out[0].counts.len()), (0, 1));
        assert_eq!(out[1].window_start_ms, now - MAX_EMPTY_RUN * 60_000);
        assert_eq!(out.last().map(|r| r.window_end_ms), Some(now));
        assert!(out[1..].iter().all(|r| r.counts.is_empty() && !r.complete && r.cameras[0].frames_received == 0));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        // The camera goes on counting.
        w.crossing(0, now + 1_000, "l", Direction::Forward, "in", "car");
        w.frame(0, now + 61_000, None);
        w.advance(&mut out);
        assert_eq!(out.last().map(|r| (r.window_start_ms, r.counts.len())), Some((now, 1)));
    }

    #[test]
    fn times_at_the_ends_of_i64_close_a_bounded_number_of_windows() {
        // A capture time just short of i64::MAX (recordings are not checked
        // against the clock): the window after it would end past i64::MAX.
        let mut w = Windows::new("x", &[("a".into(), 1.0)], &[60], 0.0);
        let mut out = Vec::new();
        w.frame(0, 0, None);
        w.frame(0, i64::MAX - 5, None);
        w.advance(&mut out);
        w.flush(&mut out);
        assert_eq!(out.len(), 1 + MAX_EMPTY_RUN as usize, "the first window and the last empty run");
        // A restored state whose closed windows end at i64::MIN is refused
        // (it made the first close run from i64::MIN, until memory ran out).
        let now = 1_767_225_600_000;
        let mut w = Windows::new("x", &[("a".into(), 1.0)], &[60], 0.0);
        w.frame(0, now, None);
        let mut state = w.state();
        state.series[0].closed_until = Some(i64::MIN);
        let mut fresh = Windows::new("x", &[("a".into(), 1.0)], &[60], 0.0);
        assert!(fresh.restore_state(w.state()), "the same state with its own end restores");
        assert!(!fresh.restore_state(state.clone()));
        // Closing from i64::MIN anyway (the bound of restore aside) stays bounded.
        fresh.series = state.series;
        fresh.frame(0, now + 60_000, None);
        let mut out = Vec::new();
        fresh.advance(&mut out);
        assert_eq!(out.len(), MAX_EMPTY_RUN as usize + 1, "the empty run before the open window, and it");
    }

    #[test]
    fn late_records_left_at_the_end_go_out_with_an_empty_window() {
        let mut w = windows(0.0);
        let mut out = Vec::new();
        for t in [0, 10_000] {
            w.frame(0, t, None);
            w.frame(1, t, None);
        }
        w.advance(&mut out);
        assert_eq!(spans(&out), vec![(0, false)]);
        // Frame 10 s filed its window (10-20) as open: flushing closes it, with the late crossing.
        w.crossing(0, 5_000, "l", Direction::Forward, "in", "car");
        w.flush(&mut out);
        assert_eq!(spans(&out), vec![(0, false), (10_000, false)]);
        assert_eq!(out[1].late.crossings, 1);
        // Nothing open any more: a late crossing goes out with an empty window.
        w.crossing(0, 5_000, "l", Direction::Forward, "in", "car");
        w.flush(&mut out);
        assert_eq!(spans(&out), vec![(0, false), (10_000, false), (20_000, false)]);
        assert_eq!((out[2].late.crossings, out[2].cameras[0].frames_received), (1, 0));
        w.flush(&mut out);
        assert_eq!(out.len(), 3, "nothing more to flush");
    }
}
