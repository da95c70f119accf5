//! The dashboard's state: result records and camera specs in, the figures each
//! page shows out. Pure: time comes from the records (capture times) and from
//! the caller (`received_ms`, the wall clock when a record arrived, only shown
//! and used to measure delivery), there is no IO.
//!
//! Figures and where they come from:
//! - totals per camera, line, direction and class: the crossings seen, each
//!   counted once (a crossing replayed after a fault — same camera, track, line
//!   and direction — is recognised and dropped); a [`CountsRecord`] of the
//!   intersection, when one comes (the distributed aggregator's running totals,
//!   the truth after a fault), replaces them.
//! - the turning-movement matrix by class: turning movements, once per track;
//!   replaced the same way by a [`CountsRecord`].
//! - 15-minute bins of the day: crossings by capture time, in the day (UTC plus
//!   [`Dashboard::day_offset_ms`]) of the newest capture time seen.
//! - last hour: crossings captured in the hour before the newest capture time.
//! - queues, speeds, data quality: the newest window record of the shortest length.
//! - open alerts: raised and not yet cleared (kind, camera, subject).

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use serde::Serialize;
use streetscope_contracts::config::CameraConfig;
use streetscope_contracts::records::{
    AlertEvent, AlertKind, AlertState, CountsRecord, CrossingEvent, ResultRecord, RunSummary, TurningMovementEvent,
    WindowRecord,
};
use streetscope_contracts::Direction;

/// Milliseconds in a bin of the day chart.
pub const BIN_MS: i64 = 15 * 60 * 1000;
/// Bins in a day.
pub const BINS: usize = 96;
const DAY_MS: i64 = 24 * 3600 * 1000;
const HOUR_MS: i64 = 3600 * 1000;
/// Crossings kept for the "latest crossings" lists.
pub const RECENT: usize = 30;

/// Key of a total: camera, line, direction label, class.
type CountKey = (String, String, String, String);
/// Key of a turning count: from, to, class.
type TurnKey = (String, String, String);

#[derive(Debug, Clone)]
struct Camera {
    spec: CameraConfig,
    /// Ingest's state name (`streaming`, `backing_off`, …) where it is known.
    state: Option<String>,
    last_capture_ms: Option<i64>,
}

#[derive(Debug, Default, Clone)]
struct Intersection {
    totals: BTreeMap<CountKey, u64>,
    turning: BTreeMap<TurnKey, u64>,
    /// The day the bins are of (its start, ms since the epoch, offset applied).
    day_start_ms: Option<i64>,
    bins: Vec<u64>,
    /// Capture times of the crossings of the last hour (and some older ones,
    /// dropped as the newest time moves on).
    last_hour: VecDeque<i64>,
    crossings: u64,
    turning_movements: u64,
    /// Newest window record per length.
    windows: BTreeMap<u32, WindowRecord>,
    windows_seen: u64,
    alerts: BTreeMap<(AlertKind, String, String), AlertEvent>,
    recent: VecDeque<Recent>,
    /// From the latest [`CountsRecord`], if any: frames, duplicates, complete.
    counts_record: Option<(u64, u64, bool)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recent {
    pub camera_id: String,
    pub line: String,
    pub direction_label: String,
    pub class_name: String,
    pub track_id: u64,
    pub frame_seq: u64,
    pub capture_time_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_kmh: Option<f64>,
    /// Wall clock when the dashboard received the record, ms since the epoch.
    pub received_ms: i64,
}

/// The whole state. Feed it with [`Dashboard::apply`] and the camera methods;
/// read it with the page views.
#[derive(Debug, Default, Clone)]
pub struct Dashboard {
    /// Offset of the city's day from UTC, ms (the bins are of the city's day).
    pub day_offset_ms: i64,
    cameras: BTreeMap<String, Camera>,
    intersections: BTreeMap<String, Intersection>,
    /// Crossings seen: (camera, track, line, direction).
    seen: HashSet<(String, u64, String, Direction)>,
    /// Turning movements seen: (camera, track).
    seen_turns: HashSet<(String, u64)>,
    newest_ms: Option<i64>,
    summary: Option<RunSummary>,
    records: u64,
    replayed: u64,
    version: u64,
}

impl Dashboard {
    pub fn new(cameras: &[CameraConfig]) -> Self {
        let mut d = Self::default();
        for c in cameras {
            d.upsert_camera(c.clone());
        }
        d
    }

    /// Changes whenever anything shown may have changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Adds or updates a camera (its lines, zones, intersection).
    pub fn upsert_camera(&mut self, spec: CameraConfig) {
        self.intersections.entry(spec.intersection.clone()).or_default();
        let e = self.cameras.entry(spec.id.clone()).or_insert(Camera {
            spec: spec.clone(),
            state: None,
            last_capture_ms: None,
        });
        e.spec = spec;
        self.version += 1;
    }

    pub fn remove_camera(&mut self, id: &str) {
        if self.cameras.remove(id).is_some() {
            self.version += 1;
        }
    }

    /// The camera's spec, if known.
    pub fn camera_spec(&self, id: &str) -> Option<&CameraConfig> {
        self.cameras.get(id).map(|c| &c.spec)
    }

    /// Sets a camera's state as ingest reports it (`streaming`, `stopped`, …).
    pub fn set_camera_state(&mut self, id: &str, state: &str) {
        if let Some(c) = self.cameras.get_mut(id) {
            if c.state.as_deref() != Some(state) {
                c.state = Some(state.to_owned());
                self.version += 1;
            }
        }
    }

    fn intersection(&mut self, id: &str) -> &mut Intersection {
        self.intersections.entry(id.to_owned()).or_default()
    }

    fn saw_camera(&mut self, camera: &str, t: i64) {
        if let Some(c) = self.cameras.get_mut(camera) {
            c.last_capture_ms = Some(c.last_capture_ms.map_or(t, |o| o.max(t)));
        }
    }

    /// Takes one result record, received at `received_ms` (wall clock).
    pub fn apply(&mut self, rec: &ResultRecord, received_ms: i64) {
        self.records += 1;
        self.version += 1;
        match rec {
            ResultRecord::Crossing(c) => self.crossing(c, received_ms),
            ResultRecord::TurningMovement(t) => self.turn(t),
            ResultRecord::Window(w) => self.window(w),
            ResultRecord::Alert(a) => self.alert(a),
            ResultRecord::Counts(c) => self.counts(c),
            ResultRecord::Summary(s) => self.summary = Some(s.clone()),
        }
    }

    fn advance(&mut self, t: i64) {
        self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
    }

    fn crossing(&mut self, c: &CrossingEvent, received_ms: i64) {
        let key = (c.camera_id.clone(), c.track_id, c.line.clone(), c.direction);
        if !self.seen.insert(key) {
            self.replayed += 1;
            return;
        }
        self.advance(c.capture_time_ms);
        self.saw_camera(&c.camera_id, c.capture_time_ms);
        let newest = self.newest_ms.unwrap_or(c.capture_time_ms);
        let offset = self.day_offset_ms;
        let i = self.intersection(&c.intersection_id);
        if i.counts_record.is_none() {
            *i.totals
                .entry((c.camera_id.clone(), c.line.clone(), c.direction_label.clone(), c.class_name.clone()))
                .or_default() += 1;
        }
        i.crossings += 1;
        let day = day_start(newest, offset);
        if i.day_start_ms != Some(day) {
            // A new day: the chart starts again (older days are in the windows).
            i.day_start_ms = Some(day);
            i.bins = vec![0; BINS];
        }
        if (day..day + DAY_MS).contains(&c.capture_time_ms) {
            i.bins[((c.capture_time_ms - day) / BIN_MS) as usize] += 1;
        }
        i.last_hour.push_back(c.capture_time_ms);
        while i.last_hour.front().is_some_and(|&t| t <= newest - HOUR_MS) {
            i.last_hour.pop_front();
        }
        i.recent.push_front(Recent {
            camera_id: c.camera_id.clone(),
            line: c.line.clone(),
            direction_label: c.direction_label.clone(),
            class_name: c.class_name.clone(),
            track_id: c.track_id,
            frame_seq: c.frame_seq,
            capture_time_ms: c.capture_time_ms,
            speed_kmh: c.speed_kmh,
            received_ms,
        });
        i.recent.truncate(RECENT);
    }

    fn turn(&mut self, t: &TurningMovementEvent) {
        if !self.seen_turns.insert((t.camera_id.clone(), t.track_id)) {
            self.replayed += 1;
            return;
        }
        self.advance(t.capture_time_ms);
        let i = self.intersection(&t.intersection_id);
        i.turning_movements += 1;
        if i.counts_record.is_none() {
            *i.turning.entry((t.from.clone(), t.to.clone(), t.class_name.clone())).or_default() += 1;
        }
    }

    fn window(&mut self, w: &WindowRecord) {
        let i = self.intersection(&w.intersection_id);
        i.windows_seen += 1;
        if i.windows.get(&w.length_s).is_none_or(|o| o.window_start_ms <= w.window_start_ms) {
            i.windows.insert(w.length_s, w.clone());
        }
    }

    fn alert(&mut self, a: &AlertEvent) {
        let i = self.intersection(&a.intersection_id);
        let key = (a.alert, a.camera_id.clone(), a.subject.clone());
        match a.state {
            AlertState::Raised => {
                i.alerts.insert(key, a.clone());
            }
            AlertState::Cleared => {
                i.alerts.remove(&key);
            }
        }
    }

    fn counts(&mut self, c: &CountsRecord) {
        self.advance(c.as_of_capture_time_ms);
        let i = self.intersection(&c.intersection_id);
        i.totals = c
            .counts
            .iter()
            .map(|r| ((r.camera_id.clone(), r.line.clone(), r.direction_label.clone(), r.class_name.clone()), r.count))
            .collect();
        i.turning = c
            .turning_movements
            .iter()
            .map(|r| ((r.from.clone(), r.to.clone(), r.class_name.clone()), r.count))
            .collect();
        i.counts_record = Some((c.frames, c.duplicates, c.complete));
    }

    /// The city overview.
    pub fn overview(&self) -> Overview {
        let intersections = self
            .intersections
            .iter()
            .map(|(id, i)| {
                let cameras = self
                    .cameras
                    .values()
                    .filter(|c| &c.spec.intersection == id)
                    .map(|c| self.camera_summary(c))
                    .collect();
                IntersectionSummary {
                    id: id.clone(),
                    cameras,
                    total: i.totals.values().sum(),
                    last_hour: i.last_hour.len() as u64,
                    turning_movements: i.turning.values().sum(),
                    open_alerts: i.alerts.values().cloned().collect(),
                }
            })
            .collect();
        Overview {
            intersections,
            newest_capture_ms: self.newest_ms,
            records: self.records,
            replayed: self.replayed,
            finished: self.summary.is_some(),
        }
    }

    fn camera_summary(&self, c: &Camera) -> CameraSummary {
        let open = self
            .intersections
            .get(&c.spec.intersection)
            .is_some_and(|i| i.alerts.keys().any(|(k, cam, _)| *k == AlertKind::CameraStale && cam == &c.spec.id));
        CameraSummary {
            id: c.spec.id.clone(),
            intersection_id: c.spec.intersection.clone(),
            // A stale alert says more than ingest's own view (a stream that
            // plays but delivers nothing downstream).
            state: if open { "stale".into() } else { c.state.clone().unwrap_or_else(|| "unknown".into()) },
            last_capture_ms: c.last_capture_ms,
            lines: c.spec.lines.iter().map(|l| l.name.clone()).collect(),
            zones: c.spec.zones.iter().map(|z| z.name.clone()).collect(),
            calibrated: c.spec.calibration.is_some(),
        }
    }

    /// One intersection's page; `None` for an unknown id.
    pub fn intersection_view(&self, id: &str) -> Option<IntersectionView> {
        let i = self.intersections.get(id)?;
        let counts = i
            .totals
            .iter()
            .map(|((camera, line, dir, class), n)| CountCell {
                camera_id: camera.clone(),
                line: line.clone(),
                direction_label: dir.clone(),
                class_name: class.clone(),
                count: *n,
            })
            .collect();
        let approaches: BTreeSet<&String> = i.turning.keys().flat_map(|(f, t, _)| [f, t]).collect();
        let classes: BTreeSet<&String> = i.turning.keys().map(|(_, _, c)| c).collect();
        let turning = TurningMatrix {
            approaches: approaches.iter().map(|s| (*s).clone()).collect(),
            classes: classes.iter().map(|s| (*s).clone()).collect(),
            cells: i
                .turning
                .iter()
                .map(|((f, t, c), n)| TurnCell { from: f.clone(), to: t.clone(), class_name: c.clone(), count: *n })
                .collect(),
        };
        let window = i.windows.values().next().cloned();
        Some(IntersectionView {
            id: id.to_owned(),
            cameras: self
                .cameras
                .values()
                .filter(|c| c.spec.intersection == id)
                .map(|c| self.camera_summary(c))
                .collect(),
            total: i.totals.values().sum(),
            last_hour: i.last_hour.len() as u64,
            counts,
            turning,
            day_start_ms: i.day_start_ms,
            bins: if i.bins.is_empty() { vec![0; BINS] } else { i.bins.clone() },
            chart_svg: crate::chart::bins_svg(if i.bins.is_empty() { &[] } else { &i.bins }, i.day_start_ms),
            latest_window: window,
            windows_seen: i.windows_seen,
            open_alerts: i.alerts.values().cloned().collect(),
            recent: i.recent.iter().cloned().collect(),
            crossings_seen: i.crossings,
            counts_from_aggregator: i.counts_record.map(|(frames, duplicates, complete)| AggregatorCounts {
                frames,
                duplicates,
                complete,
            }),
            summary_frames: self.summary.as_ref().map(|s| s.frames),
        })
    }

    /// One camera's page (the snapshot is served apart); `None` for an unknown id.
    pub fn camera_view(&self, id: &str) -> Option<CameraView> {
        let c = self.cameras.get(id)?;
        let i = self.intersections.get(&c.spec.intersection);
        let counts = i
            .map(|i| {
                i.totals
                    .iter()
                    .filter(|((cam, ..), _)| cam == id)
                    .map(|((camera, line, dir, class), n)| CountCell {
                        camera_id: camera.clone(),
                        line: line.clone(),
                        direction_label: dir.clone(),
                        class_name: class.clone(),
                        count: *n,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let recent = i.map(|i| i.recent.iter().filter(|r| r.camera_id == id).cloned().collect()).unwrap_or_default();
        let quality = i.and_then(|i| i.windows.values().next()).and_then(|w| {
            w.cameras.iter().find(|q| q.camera_id == id).map(|q| CameraQuality {
                window_start_ms: w.window_start_ms,
                length_s: w.length_s,
                frames_expected: q.frames_expected,
                frames_received: q.frames_received,
                frames_dropped: q.frames_dropped,
                stale: q.stale,
            })
        });
        Some(CameraView { camera: self.camera_summary(c), counts, recent, quality })
    }
}

/// The start of the day of `t` (ms since the epoch) for a day offset from UTC by `offset`.
pub fn day_start(t: i64, offset: i64) -> i64 {
    (t + offset).div_euclid(DAY_MS) * DAY_MS - offset
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    pub intersections: Vec<IntersectionSummary>,
    pub newest_capture_ms: Option<i64>,
    /// Result records received.
    pub records: u64,
    /// Records recognised as replays (delivered twice) and dropped.
    pub replayed: u64,
    /// The run ended (its summary came): the figures are final.
    pub finished: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IntersectionSummary {
    pub id: String,
    pub cameras: Vec<CameraSummary>,
    /// Crossings so far, all lines, directions and classes.
    pub total: u64,
    /// Crossings captured in the hour before the newest capture time.
    pub last_hour: u64,
    pub turning_movements: u64,
    pub open_alerts: Vec<AlertEvent>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraSummary {
    pub id: String,
    pub intersection_id: String,
    pub state: String,
    pub last_capture_ms: Option<i64>,
    pub lines: Vec<String>,
    pub zones: Vec<String>,
    pub calibrated: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountCell {
    pub camera_id: String,
    pub line: String,
    pub direction_label: String,
    pub class_name: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TurnCell {
    pub from: String,
    pub to: String,
    pub class_name: String,
    pub count: u64,
}

/// The turning-movement matrix: rows `from`, columns `to`, one table per class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TurningMatrix {
    pub approaches: Vec<String>,
    pub classes: Vec<String>,
    pub cells: Vec<TurnCell>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AggregatorCounts {
    pub frames: u64,
    pub duplicates: u64,
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IntersectionView {
    pub id: String,
    pub cameras: Vec<CameraSummary>,
    pub total: u64,
    pub last_hour: u64,
    pub counts: Vec<CountCell>,
    pub turning: TurningMatrix,
    pub day_start_ms: Option<i64>,
    /// Crossings per 15 minutes of the day.
    pub bins: Vec<u64>,
    /// The bins as an SVG bar chart (drawn here: no script library in the browser).
    pub chart_svg: String,
    /// Newest window of the shortest length: queues, speeds, data quality.
    pub latest_window: Option<WindowRecord>,
    pub windows_seen: u64,
    pub open_alerts: Vec<AlertEvent>,
    pub recent: Vec<Recent>,
    pub crossings_seen: u64,
    /// Present once a counts record of the aggregator came (it then holds the totals).
    pub counts_from_aggregator: Option<AggregatorCounts>,
    /// Frames of the run, once its summary came (`streetscope run`).
    pub summary_frames: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraQuality {
    pub window_start_ms: i64,
    pub length_s: u32,
    pub frames_expected: u64,
    pub frames_received: u64,
    pub frames_dropped: u64,
    pub stale: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CameraView {
    pub camera: CameraSummary,
    pub counts: Vec<CountCell>,
    pub recent: Vec<Recent>,
    pub quality: Option<CameraQuality>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use streetscope_contracts::records::{
        CountRow, LateRecords, TurningCountRow, WindowCameraQuality, WindowQueue, SCHEMA_VERSION,
    };

    /// 2026-12-05T08:00:00Z.
    const T0: i64 = 1_796_457_600_000;

    fn cam(id: &str, intersection: &str) -> CameraConfig {
        toml::from_str(&format!("id = {id:?}\nintersection = {intersection:?}\nsource = \"a.mp4\"\n")).unwrap()
    }

    fn crossing(camera: &str, track: u64, line: &str, dir: Direction, class: &str, t: i64) -> ResultRecord {
        ResultRecord::Crossing(CrossingEvent {
            schema_version: SCHEMA_VERSION,
            intersection_id: "x".into(),
            camera_id: camera.into(),
            line: line.into(),
            direction: dir,
            direction_label: if dir == Direction::Forward { "eastbound" } else { "westbound" }.into(),
            class_name: class.into(),
            track_id: track,
            frame_seq: track * 10,
            stream_time_s: 0.0,
            capture_time_ms: t,
            speed_kmh: None,
        })
    }

    fn turn(track: u64, from: &str, to: &str, t: i64) -> ResultRecord {
        ResultRecord::TurningMovement(TurningMovementEvent {
            schema_version: SCHEMA_VERSION,
            intersection_id: "x".into(),
            camera_id: "a".into(),
            track_id: track,
            from: from.into(),
            to: to.into(),
            class_name: "car".into(),
            entry_frame_seq: 1,
            entry_capture_time_ms: t - 1000,
            exit_frame_seq: 2,
            exit_capture_time_ms: t,
            capture_time_ms: t,
            speed_kmh: None,
        })
    }

    fn alert(state: AlertState, t: i64) -> ResultRecord {
        ResultRecord::Alert(AlertEvent {
            schema_version: SCHEMA_VERSION,
            intersection_id: "x".into(),
            camera_id: "a".into(),
            alert: AlertKind::CameraStale,
            state,
            subject: "a".into(),
            time_ms: t,
            value: 30.0,
            threshold: 30.0,
            window_start_ms: None,
            message: "camera a sent no frame for 30 s".into(),
        })
    }

    fn dashboard() -> Dashboard {
        Dashboard::new(&[cam("a", "x"), cam("b", "x"), cam("c", "y")])
    }

    #[test]
    fn totals_bins_and_last_hour_from_crossings() {
        let mut d = dashboard();
        let f = Direction::Forward;
        // Two hours ago, at 06:10; then 07:20, 07:50, 07:59.
        d.apply(&crossing("a", 1, "l1", f, "car", T0 - 110 * 60_000), 1);
        d.apply(&crossing("a", 2, "l1", f, "car", T0 - 40 * 60_000), 2);
        d.apply(&crossing("b", 3, "l2", Direction::Backward, "bus", T0 - 10 * 60_000), 3);
        d.apply(&crossing("a", 4, "l1", f, "car", T0 - 60_000), 4);
        let v = d.intersection_view("x").unwrap();
        assert_eq!((v.total, v.last_hour, v.crossings_seen), (4, 3, 4));
        let cells: Vec<(&str, &str, &str, &str, u64)> = v
            .counts
            .iter()
            .map(|c| {
                (c.camera_id.as_str(), c.line.as_str(), c.direction_label.as_str(), c.class_name.as_str(), c.count)
            })
            .collect();
        assert_eq!(cells, [("a", "l1", "eastbound", "car", 3), ("b", "l2", "westbound", "bus", 1)]);
        // 06:10 is bin 24, 07:20 bin 29, 07:50 and 07:59 bin 31.
        assert_eq!(v.day_start_ms, Some(T0 - 8 * HOUR_MS));
        let nonzero: Vec<(usize, u64)> = v.bins.iter().copied().enumerate().filter(|b| b.1 > 0).collect();
        assert_eq!(nonzero, [(24, 1), (29, 1), (31, 2)]);
        assert!(v.chart_svg.contains(r#"data-bin="31" data-count="2""#));
        // The newest first, with when it was received.
        assert_eq!((v.recent[0].track_id, v.recent[0].received_ms), (4, 4));
        let o = d.overview();
        let x = &o.intersections[0];
        assert_eq!((x.id.as_str(), x.total, x.last_hour, x.cameras.len()), ("x", 4, 3, 2));
        assert_eq!(o.intersections[1].total, 0);
        assert_eq!(d.camera_view("b").unwrap().counts.len(), 1);
    }

    #[test]
    fn replayed_records_count_once() {
        let mut d = dashboard();
        for _ in 0..3 {
            d.apply(&crossing("a", 1, "l1", Direction::Forward, "car", T0), 0);
            d.apply(&turn(1, "west", "east", T0), 0);
        }
        // The same track crossing back is another crossing.
        d.apply(&crossing("a", 1, "l1", Direction::Backward, "car", T0 + 1), 0);
        let v = d.intersection_view("x").unwrap();
        assert_eq!(v.total, 2);
        assert_eq!(v.turning.cells.len(), 1);
        assert_eq!(v.turning.cells[0].count, 1);
        assert_eq!(d.overview().replayed, 4);
    }

    #[test]
    fn a_new_day_starts_the_chart_again() {
        let mut d = dashboard();
        d.apply(&crossing("a", 1, "l1", Direction::Forward, "car", T0), 0);
        d.apply(&crossing("a", 2, "l1", Direction::Forward, "car", T0 + 24 * HOUR_MS), 0);
        let v = d.intersection_view("x").unwrap();
        assert_eq!(v.bins.iter().sum::<u64>(), 1);
        assert_eq!(v.day_start_ms, Some(T0 + 16 * HOUR_MS));
        assert_eq!(v.total, 2, "totals run on");
        // A city at UTC+2: 08:00Z is 10:00 there, bin 40.
        let mut d = Dashboard { day_offset_ms: 2 * HOUR_MS, ..dashboard() };
        d.apply(&crossing("a", 1, "l1", Direction::Forward, "car", T0), 0);
        assert_eq!(d.intersection_view("x").unwrap().bins[40], 1);
    }

    #[test]
    fn the_turning_matrix_by_class() {
        let mut d = dashboard();
        d.apply(&turn(1, "west", "east", T0), 0);
        d.apply(&turn(2, "west", "east", T0), 0);
        d.apply(&turn(3, "east", "north", T0), 0);
        let t = d.intersection_view("x").unwrap().turning;
        assert_eq!(t.approaches, ["east", "north", "west"]);
        assert_eq!(t.classes, ["car"]);
        let cells: Vec<(&str, &str, u64)> = t.cells.iter().map(|c| (c.from.as_str(), c.to.as_str(), c.count)).collect();
        assert_eq!(cells, [("east", "north", 1), ("west", "east", 2)]);
        assert_eq!(d.overview().intersections[0].turning_movements, 3);
    }

    #[test]
    fn alerts_open_and_close_and_mark_the_camera_stale() {
        let mut d = dashboard();
        d.set_camera_state("a", "streaming");
        d.apply(&alert(AlertState::Raised, T0), 0);
        let o = d.overview();
        assert_eq!(o.intersections[0].open_alerts.len(), 1);
        assert_eq!(o.intersections[0].cameras[0].state, "stale");
        assert_eq!(o.intersections[0].cameras[1].state, "unknown");
        d.apply(&alert(AlertState::Cleared, T0 + 5000), 0);
        let o = d.overview();
        assert!(o.intersections[0].open_alerts.is_empty());
        assert_eq!(o.intersections[0].cameras[0].state, "streaming");
    }

    #[test]
    fn the_newest_window_gives_queues_and_quality() {
        let mut d = dashboard();
        let window = |start: i64, complete: bool| {
            ResultRecord::Window(WindowRecord {
                schema_version: SCHEMA_VERSION,
                intersection_id: "x".into(),
                window_start_ms: start,
                window_end_ms: start + 60_000,
                length_s: 60,
                counts: vec![],
                turning_movements: vec![],
                cameras: vec![WindowCameraQuality {
                    camera_id: "a".into(),
                    frames_expected: 600,
                    frames_received: 590,
                    frames_dropped: 10,
                    gaps: vec![],
                    stale: false,
                }],
                late: LateRecords::default(),
                complete,
                zones: vec![],
                queues: vec![WindowQueue {
                    camera_id: "a".into(),
                    lane: "n1".into(),
                    mean_queue: 2.5,
                    max_queue: 4,
                    frames_by_queue: Vec::new(),
                }],
                speeds: vec![],
            })
        };
        d.apply(&window(T0, true), 0);
        d.apply(&window(T0 - 60_000, false), 0); // late and older: not the newest
        let v = d.intersection_view("x").unwrap();
        let w = v.latest_window.unwrap();
        assert_eq!((w.window_start_ms, w.complete, w.queues[0].max_queue), (T0, true, 4));
        assert_eq!(v.windows_seen, 2);
        let q = d.camera_view("a").unwrap().quality.unwrap();
        assert_eq!((q.frames_received, q.frames_dropped), (590, 10));
    }

    #[test]
    fn a_counts_record_holds_the_totals() {
        let mut d = dashboard();
        d.apply(&crossing("a", 1, "l1", Direction::Forward, "car", T0), 0);
        let row = |count| CountRow {
            intersection_id: "x".into(),
            camera_id: "a".into(),
            line: "l1".into(),
            direction: Direction::Forward,
            direction_label: "eastbound".into(),
            class_name: "car".into(),
            count,
        };
        let counts = |n| {
            ResultRecord::Counts(CountsRecord {
                schema_version: SCHEMA_VERSION,
                intersection_id: "x".into(),
                as_of_capture_time_ms: T0,
                frames: 100,
                duplicates: 3,
                counts: vec![row(n)],
                turning_movements: vec![TurningCountRow {
                    intersection_id: "x".into(),
                    camera_id: "a".into(),
                    from: "w".into(),
                    to: "e".into(),
                    class_name: "car".into(),
                    count: 1,
                }],
                complete: false,
            })
        };
        d.apply(&counts(5), 0);
        // Crossings after it do not add to the aggregator's totals: its next record does.
        d.apply(&crossing("a", 2, "l1", Direction::Forward, "car", T0 + 1), 0);
        let v = d.intersection_view("x").unwrap();
        assert_eq!((v.total, v.crossings_seen), (5, 2));
        assert_eq!(v.counts_from_aggregator, Some(AggregatorCounts { frames: 100, duplicates: 3, complete: false }));
        d.apply(&counts(6), 0);
        assert_eq!(d.intersection_view("x").unwrap().total, 6);
        assert_eq!(d.intersection_view("x").unwrap().turning.cells[0].count, 1);
    }

    #[test]
    fn unknown_pages_are_none_and_cameras_come_and_go() {
        let mut d = dashboard();
        assert!(d.intersection_view("nope").is_none());
        assert!(d.camera_view("nope").is_none());
        let v0 = d.version();
        d.upsert_camera(cam("d", "z"));
        assert!(d.version() > v0);
        assert_eq!(d.overview().intersections.len(), 3);
        d.remove_camera("d");
        assert!(d.camera_view("d").is_none());
    }
}
