//! Zones, speeds and alerts as the [`Aggregator`] files them: a frame's zones go
//! to its intersection's windows and to the queue alerts; the time reached
//! (frames of any camera, or [`Aggregator::tick`]) turns silent cameras stale;
//! closed windows are judged for count anomalies.

use streetscope_contracts::records::{AlertEvent, ZoneVisit};

use crate::window::ZoneSample;
use crate::zones::ZoneFrame;
use crate::Aggregator;

impl Aggregator {
    /// Files one frame's zones of camera `camera_id` (captured at `capture_ms`).
    pub(crate) fn file_zones(&mut self, camera_id: &str, capture_ms: i64, zones: ZoneFrame) {
        let cam = &self.cameras[camera_id];
        let (wi, wc) = cam.windows_at;
        self.intersections[wi].zones(wc, capture_ms, ZoneSample { occupancy: &zones.occupancy, queues: &zones.queues });
        for (lane, length) in &zones.queues {
            self.alerts.queue(&cam.intersection_id, camera_id, lane, *length, capture_ms);
        }
        self.file_dwells(camera_id, zones);
    }

    /// Files the dwell times of the tracks that left a zone.
    pub(crate) fn file_dwells(&mut self, camera_id: &str, zones: ZoneFrame) {
        let cam = &self.cameras[camera_id];
        let (wi, wc) = cam.windows_at;
        for d in &zones.dwells {
            let zone = &cam.zones.zone(d.zone).name;
            let visit = ZoneVisit {
                track_id: d.track_id,
                class_name: d.class_name.clone(),
                enter_ms: d.enter_ms,
                leave_ms: d.leave_ms,
                stopped_ms: d.stopped_ms,
            };
            self.intersections[wi].dwell(wc, zone, &visit);
        }
    }

    /// The event time has reached `now_ms`: cameras silent for too long turn
    /// stale, and the windows of intersections with no camera left fresh follow the time.
    pub(crate) fn reach(&mut self, now_ms: i64) {
        for (id, since) in self.alerts.advance_time(now_ms) {
            let Some(cam) = self.cameras.get(&id) else {
                continue;
            };
            let (wi, wc) = cam.windows_at;
            let w = &mut self.intersections[wi];
            w.set_stale(wc, since);
            if w.all_stale() {
                self.idle.insert(wi);
            }
            w.advance(&mut self.closed_windows);
        }
        for &wi in &self.idle {
            let w = &mut self.intersections[wi];
            w.set_now(now_ms);
            w.advance(&mut self.closed_windows);
        }
    }

    /// Judges the windows closed since `from` (an index into the closed windows).
    pub(crate) fn judge_windows(&mut self, from: usize) {
        for rec in &self.closed_windows[from.min(self.closed_windows.len())..] {
            self.alerts.window_closed(rec);
        }
    }

    /// The time has reached `now_ms` (event time: capture times are milliseconds
    /// since the Unix epoch) without a frame: a stage calls this from a timer so
    /// that cameras turn stale, and windows close, even when no camera sends
    /// anything. Times at or before the latest reached change nothing.
    pub fn tick(&mut self, now_ms: i64) {
        let closed_before = self.closed_windows.len();
        self.reach(now_ms);
        self.judge_windows(closed_before);
    }

    /// The latest event time reached (a frame's capture time or a tick).
    pub fn now_ms(&self) -> Option<i64> {
        self.alerts.now_ms()
    }

    /// The alerts raised or cleared since the last call, in order.
    pub fn take_alerts(&mut self) -> Vec<AlertEvent> {
        self.alerts.take_events()
    }

    /// The occupancy of each of camera `camera_id`'s zones after its last frame:
    /// per zone, the confirmed tracks inside per class (see [`crate::zones`]).
    pub fn zone_occupancy(&self, camera_id: &str) -> Vec<(String, Vec<(String, u32)>)> {
        self.cameras.get(camera_id).map(|c| c.zones.last().occupancy.clone()).unwrap_or_default()
    }

    /// The queue of each of camera `camera_id`'s lanes after its last frame.
    pub fn queue_lengths(&self, camera_id: &str) -> Vec<(String, u32)> {
        self.cameras.get(camera_id).map(|c| c.zones.last().queues.clone()).unwrap_or_default()
    }

    /// The smoothed speed of each of camera `camera_id`'s tracks that has one, by
    /// track id: km/h with a calibration, image heights per second without.
    pub fn track_speeds(&self, camera_id: &str) -> Vec<(u64, f64)> {
        self.cameras.get(camera_id).map(|c| c.motion.speeds()).unwrap_or_default()
    }
}
