//! Alerts: stale cameras, long queues, counts off their recent baseline.
//!
//! Time is event time, taken from the input like everything in the analytics:
//! the latest capture time of any camera's frame, or a time the stage passes to
//! [`Aggregator::tick`](crate::Aggregator::tick) from its timer. Each alert is
//! raised once and cleared once its cause has gone ([`AlertState`]).
//!
//! - **Camera stale**: no frame from a camera for `camera_stale_s` while the time
//!   moved on (a camera that never sent one counts from the first time the
//!   aggregator knew). Raised at the moment the silence reached the limit;
//!   cleared by the camera's next frame.
//! - **Queue**: a lane's queue at or over `queue_length` for `queue_for_s`, where
//!   dips under it shorter than `queue_clear_s` do not count as an end (a queue
//!   at a signal moves up, and so is not queued, for a few seconds each green);
//!   cleared once it has stayed under for `queue_clear_s`.
//! - **Count anomaly**: on each closed window of the configured length, per
//!   camera, line and direction, the count against the median of the same count in
//!   the previous `anomaly_baseline_windows` windows that were judged; raised when
//!   it is at or below `anomaly_low_ratio` of that baseline or at or above
//!   `anomaly_high_ratio` of it, cleared by the next window back within bounds.
//!   Counts whose baseline is under `anomaly_min_baseline` are not judged. Windows
//!   in which the line's camera was stale or delivered under 90 % of its frames are
//!   neither judged nor added to the baseline: a camera outage is not a traffic
//!   anomaly (it has its own alert). Anomalous counts stay out of the baseline, so
//!   a drop lasting a few windows does not drag the median down with it; an
//!   anomaly that lasts `anomaly_baseline_windows` windows in a row becomes the new
//!   baseline, and its alert clears.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::AlertsConfig;
use streetscope_contracts::records::{AlertEvent, AlertKind, AlertState, WindowRecord, SCHEMA_VERSION};
use streetscope_contracts::Direction;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CameraWatch {
    intersection_id: String,
    /// Capture time of its latest frame.
    last_frame_ms: Option<i64>,
    stale: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QueueWatch {
    /// Start of the present spell at or over the threshold (dips under it shorter
    /// than `queue_clear_s` do not end a spell).
    spell_since: Option<i64>,
    /// The last time the queue was at or over the threshold.
    last_over: Option<i64>,
    raised: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CountWatch {
    /// The line's label of the direction.
    label: String,
    /// Counts of the last judged windows that were not anomalies, oldest first.
    history: VecDeque<u64>,
    /// Counts of the anomalous windows in a row, while raised.
    off_run: Vec<u64>,
    raised: bool,
}

/// Key of a queue: camera, lane.
type QueueKey = (String, String);
/// Key of a count: intersection, camera, line, direction.
type CountKey = (String, String, String, Direction);

/// What [`Alerts`] carry from input to input, for snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertsState {
    now_ms: Option<i64>,
    started_ms: Option<i64>,
    cameras: Vec<(String, CameraWatch)>,
    queues: Vec<(QueueKey, QueueWatch)>,
    counts: Vec<(CountKey, CountWatch)>,
}

/// The alert state of an aggregator's cameras.
#[derive(Debug)]
pub struct Alerts {
    cfg: AlertsConfig,
    /// Window length judged for count anomalies.
    anomaly_window_s: Option<u32>,
    now_ms: Option<i64>,
    started_ms: Option<i64>,
    /// Earliest time at which a camera may turn stale; nothing to check before.
    next_check_ms: i64,
    cameras: BTreeMap<String, CameraWatch>,
    queues: BTreeMap<QueueKey, QueueWatch>,
    counts: BTreeMap<CountKey, CountWatch>,
    events: Vec<AlertEvent>,
}

/// The median of non-empty `v`.
fn median(v: &VecDeque<u64>) -> f64 {
    let mut s: Vec<u64> = v.iter().copied().collect();
    s.sort_unstable();
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2] as f64
    } else {
        (s[n / 2 - 1] + s[n / 2]) as f64 / 2.0
    }
}

impl Alerts {
    /// `cameras`: (camera id, intersection id) of every camera; `window_lengths_s`:
    /// the windows' lengths (count anomalies are judged on one of them).
    pub fn new<'a>(
        cfg: &AlertsConfig,
        cameras: impl IntoIterator<Item = (&'a str, &'a str)>,
        window_lengths_s: &[u32],
    ) -> Self {
        Self {
            anomaly_window_s: cfg.anomaly_window(window_lengths_s),
            cfg: cfg.clone(),
            now_ms: None,
            started_ms: None,
            next_check_ms: i64::MIN,
            cameras: cameras
                .into_iter()
                .map(|(id, i)| {
                    (id.to_owned(), CameraWatch { intersection_id: i.to_owned(), last_frame_ms: None, stale: false })
                })
                .collect(),
            queues: BTreeMap::new(),
            counts: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    /// Watches camera `id` of `intersection_id` (added while running, or moved to
    /// another intersection); a new camera's silence counts from now.
    pub fn upsert_camera(&mut self, id: &str, intersection_id: &str) {
        let w = self.cameras.entry(id.to_owned()).or_insert_with(|| CameraWatch {
            intersection_id: intersection_id.to_owned(),
            last_frame_ms: None,
            stale: false,
        });
        w.intersection_id = intersection_id.to_owned();
        if w.last_frame_ms.is_none() {
            w.last_frame_ms = self.now_ms;
        }
        self.next_check_ms = i64::MIN;
    }

    /// Stops watching camera `id` (removed); its queue and count alerts are forgotten.
    pub fn remove_camera(&mut self, id: &str) {
        self.cameras.remove(id);
        self.queues.retain(|k, _| k.0 != id);
        self.counts.retain(|k, _| k.1 != id);
    }

    /// The event time reached, if any input carried one.
    pub fn now_ms(&self) -> Option<i64> {
        self.now_ms
    }

    fn stale_ms(&self) -> Option<i64> {
        (self.cfg.camera_stale_s > 0.0).then(|| (self.cfg.camera_stale_s * 1000.0).round() as i64)
    }

    fn emit(
        &mut self,
        intersection_id: &str,
        camera_id: &str,
        alert: AlertKind,
        state: AlertState,
        subject: &str,
    ) -> &mut AlertEvent {
        self.events.push(AlertEvent {
            schema_version: SCHEMA_VERSION,
            intersection_id: intersection_id.to_owned(),
            camera_id: camera_id.to_owned(),
            alert,
            state,
            subject: subject.to_owned(),
            time_ms: 0,
            value: 0.0,
            threshold: 0.0,
            window_start_ms: None,
            message: String::new(),
        });
        self.events.last_mut().expect("just pushed")
    }

    /// A frame of `camera_id` captured at `capture_ms`; returns whether it ends
    /// the camera's staleness.
    pub fn frame(&mut self, camera_id: &str, capture_ms: i64) -> bool {
        let Some(w) = self.cameras.get_mut(camera_id) else {
            return false;
        };
        let silence = w.last_frame_ms.or(self.started_ms).map_or(0, |l| capture_ms - l);
        w.last_frame_ms = Some(w.last_frame_ms.map_or(capture_ms, |l| l.max(capture_ms)));
        let was_stale = std::mem::replace(&mut w.stale, false);
        if was_stale {
            let intersection = w.intersection_id.clone();
            let limit = self.cfg.camera_stale_s;
            let ev = self.emit(&intersection, camera_id, AlertKind::CameraStale, AlertState::Cleared, camera_id);
            ev.time_ms = capture_ms;
            ev.value = silence as f64 / 1000.0;
            ev.threshold = limit;
            ev.message = format!("camera {camera_id} delivers frames again after {:.0} s without", ev.value);
        }
        was_stale
    }

    /// The event time has reached `now_ms` (a frame's capture time or a tick);
    /// returns the cameras that turned stale, with the time their silence began.
    pub fn advance_time(&mut self, now_ms: i64) -> Vec<(String, i64)> {
        if self.now_ms.is_some_and(|n| n >= now_ms) {
            return Vec::new();
        }
        self.now_ms = Some(now_ms);
        let started = *self.started_ms.get_or_insert(now_ms);
        let Some(limit) = self.stale_ms() else {
            return Vec::new();
        };
        if now_ms < self.next_check_ms {
            return Vec::new();
        }
        let mut next = i64::MAX;
        let mut turned = Vec::new();
        for (id, w) in &mut self.cameras {
            if w.stale {
                continue;
            }
            let since = w.last_frame_ms.unwrap_or(started);
            if now_ms - since >= limit {
                w.stale = true;
                turned.push((id.clone(), w.intersection_id.clone(), since));
            } else {
                next = next.min(since + limit);
            }
        }
        self.next_check_ms = next;
        let secs = self.cfg.camera_stale_s;
        turned
            .into_iter()
            .map(|(id, intersection, since)| {
                let ev = self.emit(&intersection, &id, AlertKind::CameraStale, AlertState::Raised, &id);
                ev.time_ms = since + limit;
                ev.value = (now_ms - since) as f64 / 1000.0;
                ev.threshold = secs;
                ev.message = format!("camera {id} has delivered no frame for {secs} s; its windows close without it");
                (id, since)
            })
            .collect()
    }

    /// The queue of `lane` of `camera_id` in its frame captured at `capture_ms`.
    pub fn queue(&mut self, intersection_id: &str, camera_id: &str, lane: &str, length: u32, capture_ms: i64) {
        if self.cfg.queue_length == 0 {
            return;
        }
        let key = (camera_id.to_owned(), lane.to_owned());
        let w = self.queues.entry(key).or_default();
        let (for_ms, clear_ms) =
            ((self.cfg.queue_for_s * 1000.0).round() as i64, (self.cfg.queue_clear_s * 1000.0).round() as i64);
        let quiet = w.last_over.is_none_or(|l| capture_ms - l >= clear_ms);
        let change = if length >= self.cfg.queue_length {
            if w.spell_since.is_none() || quiet {
                w.spell_since = Some(capture_ms);
            }
            w.last_over = Some(capture_ms);
            let since = w.spell_since.unwrap_or(capture_ms);
            (!w.raised && capture_ms - since >= for_ms).then_some(AlertState::Raised)
        } else if quiet {
            w.spell_since = None;
            w.raised.then_some(AlertState::Cleared)
        } else {
            None
        };
        let Some(state) = change else {
            return;
        };
        w.raised = state == AlertState::Raised;
        let (limit, for_s, clear_s) = (self.cfg.queue_length, self.cfg.queue_for_s, self.cfg.queue_clear_s);
        let ev = self.emit(intersection_id, camera_id, AlertKind::Queue, state, lane);
        ev.time_ms = capture_ms;
        ev.value = f64::from(length);
        ev.threshold = f64::from(limit);
        ev.message = match state {
            AlertState::Raised => {
                format!("queue of lane {lane} at {camera_id}: {length} vehicles, at least {limit} for {for_s} s")
            }
            AlertState::Cleared => {
                format!("queue of lane {lane} at {camera_id} under {limit} vehicles for {clear_s} s")
            }
        };
    }

    /// A window closed: judges its counts if it has the anomaly window's length.
    pub fn window_closed(&mut self, rec: &WindowRecord) {
        if self.anomaly_window_s != Some(rec.length_s) {
            return;
        }
        let judged: Vec<&str> = rec
            .cameras
            .iter()
            .filter(|c| !c.stale && c.frames_received * 10 >= c.frames_expected * 9)
            .map(|c| c.camera_id.as_str())
            .collect();
        let mut now: BTreeMap<CountKey, (String, u64)> = BTreeMap::new();
        for c in rec.counts.iter().filter(|c| judged.contains(&c.camera_id.as_str())) {
            let key = (rec.intersection_id.clone(), c.camera_id.clone(), c.line.clone(), c.direction);
            now.entry(key).or_insert_with(|| (c.direction_label.clone(), 0)).1 += c.count;
        }
        // Counts known before and absent now are zero, if their camera is judged.
        for (key, w) in &self.counts {
            if key.0 == rec.intersection_id && judged.contains(&key.1.as_str()) {
                now.entry(key.clone()).or_insert_with(|| (w.label.clone(), 0));
            }
        }
        let k = self.cfg.anomaly_baseline_windows as usize;
        let (low, high, min) = (self.cfg.anomaly_low_ratio, self.cfg.anomaly_high_ratio, self.cfg.anomaly_min_baseline);
        for (key, (label, count)) in now {
            let w = self.counts.entry(key.clone()).or_default();
            w.label = label.clone();
            let mut change = None;
            let mut new_normal = false;
            let baseline = (w.history.len() >= k).then(|| median(&w.history));
            let off =
                baseline.is_some_and(|b| b >= min as f64 && (count as f64 <= low * b || count as f64 >= high * b));
            if off {
                w.off_run.push(count);
                if !w.raised {
                    w.raised = true;
                    change = baseline.map(|b| (AlertState::Raised, b));
                }
                if w.off_run.len() >= k {
                    // A change that lasts is the new normal.
                    w.history = w.off_run.drain(..).collect();
                    w.raised = false;
                    new_normal = true;
                    if change.is_none() {
                        change = baseline.map(|b| (AlertState::Cleared, b));
                    }
                }
            } else {
                w.off_run.clear();
                if w.raised {
                    w.raised = false;
                    change = baseline.map(|b| (AlertState::Cleared, b));
                }
                w.history.push_back(count);
            }
            while w.history.len() > k {
                w.history.pop_front();
            }
            if let Some((state, baseline)) = change {
                let (_, camera, line, _) = &key;
                let subject = format!("{line}/{label}");
                let ev = self.emit(&rec.intersection_id, camera, AlertKind::CountAnomaly, state, &subject);
                ev.time_ms = rec.window_end_ms;
                ev.value = count as f64;
                ev.threshold = baseline;
                ev.window_start_ms = Some(rec.window_start_ms);
                ev.message = match state {
                    AlertState::Raised => format!(
                        "{count} crossings of {line} ({label}) at {camera} in {} s, against a median of {baseline} over the previous {k} windows",
                        rec.length_s
                    ),
                    AlertState::Cleared if new_normal => format!(
                        "crossings of {line} ({label}) at {camera} have been off their median of {baseline} for {k} windows: the new normal"
                    ),
                    AlertState::Cleared => format!("crossings of {line} ({label}) at {camera} back to {count}, median {baseline}"),
                };
            }
        }
    }

    /// The alerts raised or cleared since the last call, in order.
    pub fn take_events(&mut self) -> Vec<AlertEvent> {
        std::mem::take(&mut self.events)
    }

    /// Alerts not yet taken.
    pub fn pending(&self) -> &[AlertEvent] {
        &self.events
    }

    /// Its state between inputs.
    pub fn state(&self) -> AlertsState {
        AlertsState {
            now_ms: self.now_ms,
            started_ms: self.started_ms,
            cameras: self.cameras.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            queues: self.queues.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            counts: self.counts.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }

    /// Goes on from `state`, with `events` not yet taken. Cameras of the state that
    /// are not configured are dropped; configured ones absent from it start afresh.
    pub fn restore_state(&mut self, state: AlertsState, events: Vec<AlertEvent>) {
        self.now_ms = state.now_ms;
        self.started_ms = state.started_ms;
        self.next_check_ms = i64::MIN;
        for (id, w) in state.cameras {
            if let Some(c) = self.cameras.get_mut(&id) {
                *c = w;
            }
        }
        self.queues = state.queues.into_iter().collect();
        self.counts = state.counts.into_iter().collect();
        self.events = events;
    }
}

#[cfg(test)]
mod tests {
    use streetscope_contracts::records::{LateRecords, WindowCameraQuality, WindowCount};

    use super::*;

    fn alerts(cfg: AlertsConfig) -> Alerts {
        Alerts::new(&cfg, [("a", "x"), ("b", "x")], &[60])
    }

    fn kinds(a: &mut Alerts) -> Vec<(AlertKind, AlertState, String, i64)> {
        a.take_events().into_iter().map(|e| (e.alert, e.state, e.subject, e.time_ms)).collect()
    }

    #[test]
    fn a_silent_camera_turns_stale_and_its_next_frame_clears_it() {
        let mut a = alerts(AlertsConfig { camera_stale_s: 10.0, ..AlertsConfig::default() });
        let mut turned = Vec::new();
        for t in 0..=20 {
            a.frame("a", t * 1000);
            turned.extend(a.advance_time(t * 1000).into_iter().map(|c| (t, c)));
            if t <= 5 {
                a.frame("b", t * 1000);
            }
        }
        // Camera b's last frame was at 5 s: stale at 15 s.
        assert_eq!(turned, vec![(15, ("b".to_owned(), 5_000))]);
        assert!(a.cameras["b"].stale);
        let ev = a.take_events();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].alert, ev[0].state, ev[0].time_ms, ev[0].value),
            (AlertKind::CameraStale, AlertState::Raised, 15_000, 10.0)
        );
        assert!(a.frame("b", 30_000));
        assert_eq!(kinds(&mut a), vec![(AlertKind::CameraStale, AlertState::Cleared, "b".to_owned(), 30_000)]);
        assert!(!a.frame("b", 31_000));
        // A camera that never sends a frame is stale counting from the first time known.
        let mut a = alerts(AlertsConfig { camera_stale_s: 10.0, ..AlertsConfig::default() });
        a.frame("a", 100_000);
        assert!(a.advance_time(100_000).is_empty());
        assert_eq!(a.advance_time(110_000), vec![("a".to_owned(), 100_000), ("b".to_owned(), 100_000)]);
    }

    #[test]
    fn a_long_queue_raises_after_its_time_and_clears_after_a_quiet_spell() {
        let cfg = AlertsConfig { queue_length: 5, queue_for_s: 10.0, queue_clear_s: 5.0, ..AlertsConfig::default() };
        let mut a = alerts(cfg);
        // 6 queued for 4 s, then 2 for 7.5 s (long enough to end the spell); 6 from
        // 12.5 s with a dip to 3 at 22 s (a green: too short to end it); 2 from 40.5 s.
        let queue = |t: i64| match t {
            0..=4_000 => 6,
            4_500..=12_000 => 2,
            22_000 => 3,
            12_500..=40_000 => 6,
            _ => 2,
        };
        let mut t = 0;
        while t <= 50_000 {
            a.queue("x", "a", "n1", queue(t), t);
            t += 500;
        }
        assert_eq!(
            kinds(&mut a),
            vec![
                (AlertKind::Queue, AlertState::Raised, "n1".to_owned(), 22_500),
                (AlertKind::Queue, AlertState::Cleared, "n1".to_owned(), 45_000),
            ]
        );
    }

    fn window(start_s: i64, count: u64, received: u64) -> WindowRecord {
        WindowRecord {
            schema_version: 1,
            intersection_id: "x".into(),
            window_start_ms: start_s * 1000,
            window_end_ms: start_s * 1000 + 60_000,
            length_s: 60,
            counts: (count > 0)
                .then(|| WindowCount {
                    camera_id: "a".into(),
                    line: "north".into(),
                    direction: Direction::Forward,
                    direction_label: "in".into(),
                    class_name: "car".into(),
                    count,
                })
                .into_iter()
                .collect(),
            turning_movements: Vec::new(),
            cameras: vec![WindowCameraQuality {
                camera_id: "a".into(),
                frames_expected: 600,
                frames_received: received,
                frames_dropped: 0,
                gaps: Vec::new(),
                stale: false,
            }],
            late: LateRecords::default(),
            complete: true,
            zones: Vec::new(),
            queues: Vec::new(),
            speeds: Vec::new(),
        }
    }

    #[test]
    fn a_count_far_off_its_median_is_an_anomaly_until_it_comes_back() {
        let cfg = AlertsConfig { anomaly_baseline_windows: 4, anomaly_min_baseline: 5, ..AlertsConfig::default() };
        let mut a = alerts(cfg);
        let counts = [10, 12, 9, 11, 10, 4, 0, 9, 25, 11];
        for (i, &c) in counts.iter().enumerate() {
            a.window_closed(&window(i as i64 * 60, c, 600));
        }
        let ev = a.take_events();
        let got: Vec<(AlertState, f64, f64, i64)> =
            ev.iter().map(|e| (e.state, e.value, e.threshold, e.window_start_ms.unwrap() / 1000)).collect();
        // Window 5 (4 against a median of 10.5) raises; 6 (0) stays; 7 (9 against
        // the same median: the anomalies stayed out of it) clears; 8 (25 against the
        // median of 9, 11, 10, 9: 9.5) raises; 9 (11) clears.
        assert_eq!(
            got,
            vec![
                (AlertState::Raised, 4.0, 10.5, 300),
                (AlertState::Cleared, 9.0, 10.5, 420),
                (AlertState::Raised, 25.0, 9.5, 480),
                (AlertState::Cleared, 11.0, 9.5, 540),
            ]
        );
        assert_eq!(ev[0].subject, "north/in");
        // A window the camera delivered under 90 % of is neither judged nor remembered.
        let mut a =
            alerts(AlertsConfig { anomaly_baseline_windows: 2, anomaly_min_baseline: 5, ..AlertsConfig::default() });
        for (i, (c, rx)) in [(10, 600), (10, 600), (0, 100), (10, 600)].into_iter().enumerate() {
            a.window_closed(&window(i as i64 * 60, c, rx));
        }
        assert!(a.take_events().is_empty());
        assert_eq!(a.counts.values().next().unwrap().history, [10, 10]);
        // A drop that lasts two baseline windows is the new normal.
        let mut a =
            alerts(AlertsConfig { anomaly_baseline_windows: 2, anomaly_min_baseline: 2, ..AlertsConfig::default() });
        for (i, c) in [10, 10, 3, 3, 3].into_iter().enumerate() {
            a.window_closed(&window(i as i64 * 60, c, 600));
        }
        let ev = a.take_events();
        let got: Vec<(AlertState, f64, i64)> =
            ev.iter().map(|e| (e.state, e.threshold, e.window_start_ms.unwrap() / 1000)).collect();
        assert_eq!(got, vec![(AlertState::Raised, 10.0, 120), (AlertState::Cleared, 10.0, 180)]);
        assert!(ev[1].message.contains("new normal"), "{}", ev[1].message);
    }
}
