//! Zones of one camera: occupancy, dwell times and queues.
//!
//! A track is inside a zone while its reference point (bottom-centre of its box)
//! is inside the zone's polygon. Only confirmed tracks count, so a short-lived
//! false track never occupies a zone. A track keeps its last known place while the
//! tracker coasts it through missed detections, until it is seen again or ends.
//!
//! - **Occupancy**: per zone and class, the confirmed tracks inside, every frame.
//! - **Dwell**: from the first frame a track was seen inside to the first frame it
//!   was seen outside again, in capture time; a track that ends inside (it left the
//!   picture from the zone, or was lost) dwelt until the last frame it was seen.
//!   Reported when the track leaves, if it is confirmed by then and its class is
//!   fixed (see [`crate::tracker`]); a stay that ends before the class is fixed is
//!   held and reported with the fixed class when it is, or with the final class
//!   when the track ends: every record of one track carries one class.
//! - **Stopped time**: of a stay, the time the track stood still: the intervals
//!   between its frames that began inside the zone and ended with its smoothed
//!   speed under the queue threshold (the queues' "nearly standing still", one
//!   definition for both). So it is part of the dwell, never more; the speed's
//!   smoothing delays both the stop and the start again by about the same lag,
//!   which leaves the length of a stop nearly as it was.
//! - **Queue**: per lane, the confirmed tracks inside any queue zone of the lane
//!   whose smoothed speed ([`crate::speed`]) is under the configured threshold:
//!   nearly standing still. A track whose speed is not known yet is not queued.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::ZoneConfig;

use crate::counter::FrameStamp;
use crate::tracker::{RetiredTrack, TrackUpdate};

/// A track's stay in a zone, once it has left.
#[derive(Debug, Clone, PartialEq)]
pub struct Dwell {
    /// Index of the zone in the camera's list.
    pub zone: usize,
    pub track_id: u64,
    pub class_name: String,
    /// Capture time of the first frame inside, ms since the Unix epoch.
    pub enter_ms: i64,
    /// Capture time of the first frame outside (or of the last frame seen inside
    /// for a track that ended inside).
    pub leave_ms: i64,
    /// Of that time, how long it stood still, ms (see the module doc).
    pub stopped_ms: i64,
}

impl Dwell {
    pub fn dwell_ms(&self) -> i64 {
        self.leave_ms - self.enter_ms
    }
}

/// What a camera's zones hold after one frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneFrame {
    /// Per zone (camera order): its name, and the confirmed tracks inside per class
    /// (classes with none left out), sorted by class.
    pub occupancy: Vec<(String, Vec<(String, u32)>)>,
    /// Per lane (sorted by name): its name and the vehicles queued.
    pub queues: Vec<(String, u32)>,
    /// Stays that ended in this frame.
    pub dwells: Vec<Dwell>,
}

/// One track's place with respect to the zones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TrackZones {
    class_name: String,
    confirmed: bool,
    /// Whether its smoothed speed is under the queue threshold (unknown: no).
    slow: bool,
    /// Per zone: capture time of its first frame inside, while inside.
    entered: Vec<Option<i64>>,
    /// Capture time of the last frame it was seen in.
    last_seen_ms: i64,
    /// Whether its class is fixed (confirmed, class settled): its stays are reported.
    #[serde(default)]
    settled: bool,
    /// Stays that ended before its class was fixed: (zone, enter, leave) in ms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    held: Vec<(usize, i64, i64)>,
    /// Per zone: ms stood still in the stay under way (absent in snapshots taken
    /// before stopped time was measured: 0).
    #[serde(default)]
    stopped: Vec<i64>,
    /// Per held stay (parallel to `held`, which keeps its old form so that older
    /// snapshots still restore): ms stood still.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    held_stopped: Vec<i64>,
}

/// What [`Zones`] carry from frame to frame, for snapshots: per track, sorted by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ZonesState {
    zones: Vec<String>,
    tracks: Vec<(u64, TrackZones)>,
}

/// The zones of one camera and the tracks in them.
#[derive(Debug, Default)]
pub struct Zones {
    zones: Vec<ZoneConfig>,
    /// The queue lanes, sorted.
    lanes: Vec<String>,
    /// Per zone: the index of its lane, for queue zones.
    lane_of: Vec<Option<usize>>,
    tracks: HashMap<u64, TrackZones>,
    /// Occupancy and queues after the last frame.
    last: ZoneFrame,
}

impl Zones {
    pub fn new(zones: &[ZoneConfig]) -> Self {
        let mut lanes: Vec<String> = zones.iter().filter_map(|z| z.queue_lane()).map(str::to_owned).collect();
        lanes.sort();
        lanes.dedup();
        let lane_of = zones
            .iter()
            .map(|z| z.queue_lane().and_then(|l| lanes.binary_search_by(|x| x.as_str().cmp(l)).ok()))
            .collect();
        Self { zones: zones.to_vec(), lanes, lane_of, tracks: HashMap::new(), last: ZoneFrame::default() }
    }

    /// Whether the camera has no zones.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The zones as configured.
    pub fn configs(&self) -> &[ZoneConfig] {
        &self.zones
    }

    pub fn zone(&self, i: usize) -> &ZoneConfig {
        &self.zones[i]
    }

    /// Takes the track updates of frame `at` and the tracks that ended; `slow`
    /// says whether a track is nearly standing still (`None`: not known).
    pub fn observe(
        &mut self,
        updates: &[TrackUpdate],
        retired: &[RetiredTrack],
        at: FrameStamp,
        slow: impl Fn(u64) -> Option<bool>,
    ) -> ZoneFrame {
        let mut dwells = Vec::new();
        let n = self.zones.len();
        for u in updates {
            let t = self.tracks.entry(u.track_id).or_insert_with(|| TrackZones {
                entered: vec![None; n],
                stopped: vec![0; n],
                ..TrackZones::default()
            });
            t.class_name.clear();
            t.class_name.push_str(&u.class_name);
            t.confirmed = u.confirmed;
            t.settled = u.confirmed && u.class_settled;
            t.slow = slow(u.track_id).unwrap_or(false);
            // The time since its last frame: stood still if it is slow now.
            let stood = if t.slow { at.capture_time_ms - t.last_seen_ms } else { 0 };
            t.last_seen_ms = at.capture_time_ms;
            for (zi, z) in self.zones.iter().enumerate() {
                let inside = z.contains(u.anchor);
                if t.entered[zi].is_some() {
                    t.stopped[zi] += stood;
                }
                match (t.entered[zi], inside) {
                    (None, true) => {
                        t.entered[zi] = Some(at.capture_time_ms);
                        t.stopped[zi] = 0;
                    }
                    (Some(enter_ms), false) => {
                        t.entered[zi] = None;
                        let stopped_ms = std::mem::take(&mut t.stopped[zi]);
                        if t.confirmed && !t.settled {
                            t.held.push((zi, enter_ms, at.capture_time_ms));
                            t.held_stopped.resize(t.held.len() - 1, 0);
                            t.held_stopped.push(stopped_ms);
                        } else if t.confirmed {
                            dwells.push(Dwell {
                                zone: zi,
                                track_id: u.track_id,
                                class_name: t.class_name.clone(),
                                enter_ms,
                                leave_ms: at.capture_time_ms,
                                stopped_ms,
                            });
                        }
                    }
                    _ => {}
                }
            }
            if t.settled {
                let class_name = t.class_name.clone();
                dwells.extend(held_dwells(u.track_id, &class_name, &mut t.held, &mut t.held_stopped));
            }
        }
        for r in retired {
            let Some(mut t) = self.tracks.remove(&r.track_id) else {
                continue;
            };
            if !r.confirmed {
                continue;
            }
            dwells.extend(held_dwells(r.track_id, &r.class_name, &mut t.held, &mut t.held_stopped));
            for (zi, enter_ms) in t.entered.iter().enumerate() {
                if let Some(enter_ms) = *enter_ms {
                    dwells.push(Dwell {
                        zone: zi,
                        track_id: r.track_id,
                        class_name: r.class_name.to_string(),
                        enter_ms,
                        leave_ms: t.last_seen_ms,
                        stopped_ms: t.stopped.get(zi).copied().unwrap_or(0),
                    });
                }
            }
        }
        let mut occupancy: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); n];
        let mut queues = vec![0u32; self.lanes.len()];
        let mut queued_in = vec![false; self.lanes.len()];
        for t in self.tracks.values().filter(|t| t.confirmed) {
            queued_in.iter_mut().for_each(|q| *q = false);
            for (zi, e) in t.entered.iter().enumerate() {
                if e.is_none() {
                    continue;
                }
                *occupancy[zi].entry(t.class_name.as_str()).or_insert(0) += 1;
                if let (Some(lane), true) = (self.lane_of[zi], t.slow) {
                    queued_in[lane] = true;
                }
            }
            for (q, &inside) in queues.iter_mut().zip(&queued_in) {
                *q += u32::from(inside);
            }
        }
        let frame = ZoneFrame {
            occupancy: self
                .zones
                .iter()
                .zip(occupancy)
                .map(|(z, by_class)| (z.name.clone(), by_class.into_iter().map(|(c, k)| (c.to_owned(), k)).collect()))
                .collect(),
            queues: self.lanes.iter().cloned().zip(queues).collect(),
            dwells,
        };
        self.last = ZoneFrame { dwells: Vec::new(), ..frame.clone() };
        frame
    }

    /// Occupancy and queues after the last frame (no dwells).
    pub fn last(&self) -> &ZoneFrame {
        &self.last
    }

    /// Its state between frames.
    pub fn state(&self) -> ZonesState {
        let mut tracks: Vec<(u64, TrackZones)> = self.tracks.iter().map(|(&id, t)| (id, t.clone())).collect();
        tracks.sort_by_key(|t| t.0);
        ZonesState { zones: self.zones.iter().map(|z| z.name.clone()).collect(), tracks }
    }

    /// Goes on from `state`; `false` (and no change) when it was taken with other zones.
    pub fn restore_state(&mut self, state: ZonesState) -> bool {
        let names: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
        if state.zones != names || state.tracks.iter().any(|(_, t)| t.entered.len() != names.len()) {
            return false;
        }
        self.tracks = state.tracks.into_iter().collect();
        for t in self.tracks.values_mut() {
            t.stopped.resize(names.len(), 0);
        }
        true
    }
}

/// The stays of a track held until its class was fixed, as dwells of `class_name`;
/// empties `held` and `held_stopped`.
fn held_dwells(
    track_id: u64,
    class_name: &str,
    held: &mut Vec<(usize, i64, i64)>,
    held_stopped: &mut Vec<i64>,
) -> Vec<Dwell> {
    let out = held
        .drain(..)
        .enumerate()
        .map(|(i, (zone, enter_ms, leave_ms))| Dwell {
            zone,
            track_id,
            class_name: class_name.to_owned(),
            enter_ms,
            leave_ms,
            stopped_ms: held_stopped.get(i).copied().unwrap_or(0),
        })
        .collect();
    held_stopped.clear();
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use streetscope_contracts::config::ZoneKind;
    use streetscope_contracts::NormPoint;

    use super::*;

    fn upd(id: u64, x: f64, confirmed: bool, class: &str) -> TrackUpdate {
        TrackUpdate {
            track_id: id,
            anchor: NormPoint::new(x, 0.5),
            confirmed,
            class_name: Arc::from(class),
            class_settled: true,
        }
    }

    fn at(seq: u64) -> FrameStamp {
        FrameStamp { seq, pts_ns: seq * 100_000_000, capture_time_ms: 1_000 + seq as i64 * 100 }
    }

    fn zones() -> Zones {
        let mut q1 = ZoneConfig::new("q1", vec![[0.4, 0.0], [0.6, 0.0], [0.6, 1.0], [0.4, 1.0]], ZoneKind::Queue);
        q1.lane = Some("lane".into());
        let mut q2 = ZoneConfig::new("q2", vec![[0.5, 0.0], [0.7, 0.0], [0.7, 1.0], [0.5, 1.0]], ZoneKind::Queue);
        q2.lane = Some("lane".into());
        let zone = ZoneConfig::new("z", vec![[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]], ZoneKind::Zone);
        Zones::new(&[q1, q2, zone])
    }

    #[test]
    fn occupancy_by_class_and_dwell_from_entry_to_exit() {
        let mut z = zones();
        let f = z.observe(
            &[upd(1, 0.45, true, "car"), upd(2, 0.2, true, "bus"), upd(3, 0.3, false, "car")],
            &[],
            at(0),
            |_| None,
        );
        assert_eq!(f.occupancy[0], ("q1".to_owned(), vec![("car".to_owned(), 1)]));
        assert_eq!(
            f.occupancy[2].1,
            vec![("bus".to_owned(), 1), ("car".to_owned(), 1)],
            "unconfirmed track 3 left out"
        );
        assert!(f.dwells.is_empty());
        // Track 1 not seen in frame 1 (coasting): still inside.
        let f = z.observe(&[upd(2, 0.3, true, "bus")], &[], at(1), |_| None);
        assert_eq!(f.occupancy[0].1, vec![("car".to_owned(), 1)]);
        let f = z.observe(&[upd(1, 0.8, true, "car")], &[], at(5), |_| None);
        assert_eq!(f.dwells.len(), 2, "{:?}", f.dwells);
        assert_eq!((f.dwells[0].zone, f.dwells[0].dwell_ms()), (0, 500));
        assert_eq!(f.dwells[1].zone, 2);
        // A track that ends inside dwelt until it was last seen.
        let r = RetiredTrack { track_id: 2, confirmed: true, class_name: Arc::from("bus") };
        let f = z.observe(&[], &[r], at(9), |_| None);
        assert_eq!(f.dwells.iter().map(|d| (d.zone, d.dwell_ms())).collect::<Vec<_>>(), vec![(2, 100)]);
        assert!(f.occupancy[2].1.is_empty());
    }

    #[test]
    fn a_stay_that_ends_before_the_class_is_fixed_is_reported_with_the_fixed_class() {
        let mut z = zones();
        let unsettled = |x: f64, class: &str| TrackUpdate { class_settled: false, ..upd(1, x, true, class) };
        z.observe(&[unsettled(0.2, "tuktuk")], &[], at(0), |_| None);
        // Leaves zone z while its class is not fixed yet: held.
        let f = z.observe(&[unsettled(0.8, "tuktuk")], &[], at(2), |_| None);
        assert!(f.dwells.is_empty(), "{:?}", f.dwells);
        // Its class is fixed as bus: the stay is reported, as a bus.
        let f = z.observe(&[upd(1, 0.85, true, "bus")], &[], at(3), |_| None);
        assert_eq!(
            f.dwells.iter().map(|d| (d.zone, d.class_name.as_str(), d.dwell_ms())).collect::<Vec<_>>(),
            vec![(2, "bus", 200)]
        );
        // A track that ends unsettled reports its held stays with its final class.
        let mut z = zones();
        z.observe(&[TrackUpdate { class_settled: false, ..upd(2, 0.2, true, "car") }], &[], at(0), |_| None);
        z.observe(&[TrackUpdate { class_settled: false, ..upd(2, 0.9, true, "car") }], &[], at(1), |_| None);
        let r = RetiredTrack { track_id: 2, confirmed: true, class_name: Arc::from("van") };
        let f = z.observe(&[], &[r], at(2), |_| None);
        assert_eq!(f.dwells.iter().map(|d| (d.zone, d.class_name.as_str())).collect::<Vec<_>>(), vec![(2, "van")]);
    }

    #[test]
    fn stopped_time_is_the_time_between_frames_inside_that_ended_slow() {
        // Track 1 in zone z (x < 0.5) from frame 0, slow at frames 4-8 (frame 6
        // not seen: the interval 5-7 ended slow), out at frame 12: 1.2 s inside,
        // 0.5 s of it standing. A snapshot halfway, taken before stopped time was
        // measured (no `stopped`), restores with the stay's stopped time from 0.
        let slow_at = |seq: u64| move |_| Some((4..=8).contains(&seq));
        let run = |z: &mut Zones, frames: std::ops::Range<u64>| {
            let mut out = Vec::new();
            for seq in frames.filter(|&s| s != 6) {
                let x = if seq < 12 { 0.2 } else { 0.8 };
                out.extend(z.observe(&[upd(1, x, true, "car")], &[], at(seq), slow_at(seq)).dwells);
            }
            out
        };
        let stays = |d: &[Dwell]| d.iter().map(|d| (d.zone, d.dwell_ms(), d.stopped_ms)).collect::<Vec<_>>();
        let mut z = zones();
        assert_eq!(stays(&run(&mut z, 0..13)), vec![(2, 1200, 500)]);

        let mut z = zones();
        assert!(run(&mut z, 0..6).is_empty());
        let state = serde_json::to_string(&z.state()).unwrap();
        let mut again = zones();
        assert!(again.restore_state(serde_json::from_str(&state).unwrap()));
        assert_eq!(stays(&run(&mut again, 6..13)), vec![(2, 1200, 500)], "from a snapshot");
        let old = state.replace(",\"stopped\":[0,0,200]", "");
        assert_ne!(old, state);
        let mut again = zones();
        assert!(again.restore_state(serde_json::from_str(&old).unwrap()));
        assert_eq!(stays(&run(&mut again, 6..13)), vec![(2, 1200, 300)], "from an older snapshot");

        // A stay held until the class is fixed keeps its stopped time; so does
        // one of a track that ends inside.
        let mut z = zones();
        let unsettled = |x: f64| TrackUpdate { class_settled: false, ..upd(1, x, true, "tuktuk") };
        for seq in 0..12 {
            z.observe(&[unsettled(0.2)], &[], at(seq), slow_at(seq));
        }
        assert!(z.observe(&[unsettled(0.8)], &[], at(12), |_| Some(false)).dwells.is_empty());
        let f = z.observe(&[upd(1, 0.85, true, "bus")], &[], at(13), |_| Some(false));
        assert_eq!(stays(&f.dwells), vec![(2, 1200, 500)]);
        z.observe(&[upd(2, 0.45, true, "car")], &[], at(20), |_| Some(true));
        z.observe(&[upd(2, 0.45, true, "car")], &[], at(23), |_| Some(true));
        let r = RetiredTrack { track_id: 2, confirmed: true, class_name: Arc::from("car") };
        let f = z.observe(&[], &[r], at(30), |_| None);
        assert_eq!(stays(&f.dwells), vec![(0, 300, 300), (2, 300, 300)]);
    }

    #[test]
    fn a_slow_track_counts_once_in_its_lanes_queue() {
        let mut z = zones();
        let ups = [upd(1, 0.55, true, "car"), upd(2, 0.65, true, "car"), upd(3, 0.45, true, "car")];
        // Track 1 is in both zones of the lane; track 3 is moving; track 2's speed unknown.
        let f = z.observe(&ups, &[], at(0), |id| match id {
            1 => Some(true),
            3 => Some(false),
            _ => None,
        });
        assert_eq!(f.queues, vec![("lane".to_owned(), 1)]);
        let f = z.observe(&ups, &[], at(1), |_| Some(true));
        assert_eq!(f.queues, vec![("lane".to_owned(), 3)]);
        let state = z.state();
        let mut again = zones();
        assert!(again.restore_state(state));
        assert_eq!(again.observe(&[], &[], at(2), |_| None).queues, vec![("lane".to_owned(), 3)]);
        assert!(!Zones::new(&[]).restore_state(z.state()));
    }
}
