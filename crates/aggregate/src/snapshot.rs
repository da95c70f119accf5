//! Snapshots of an [`Aggregator`]'s state, so that an intersection can move
//! between aggregators, or an aggregator restart, without losing or
//! double-counting a vehicle.
//!
//! An [`AggregatorSnapshot`] is plain serde data (JSON is fine), versioned by
//! [`SNAPSHOT_VERSION`]. It holds everything the aggregator carries from one
//! input to the next: per camera the last sequence number and frame seen, the
//! tracker's tracks, the line counter's and the turning-movement pairing's
//! per-track state; the counts and the turning-movement matrix; per intersection
//! the open windows, watermarks and late counters; and the records not yet taken.
//! It holds no configuration: [`Aggregator::restore`] takes the configuration
//! again and refuses a snapshot that does not fit it.
//!
//! Taken after an input whose (camera, sequence number) the transport then
//! commits, a snapshot makes the results effectively-once: inputs replayed after
//! a restore are duplicates by their sequence numbers and change nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::{AnalyticsConfig, CameraConfig, TrackerConfig};
use streetscope_contracts::records::{AlertEvent, CountRow, TurningCountRow, TurningMovementEvent, WindowRecord};

use crate::alerts::AlertsState;
use crate::counter::{CounterState, FrameStamp};
use crate::speed::MotionState;
use crate::tracker::{Tracker, TrackerState};
use crate::turning::TurningState;
use crate::window::WindowsState;
use crate::zones::ZonesState;
use crate::Aggregator;

/// Version of the snapshot format; [`Aggregator::restore`] refuses others.
/// 2: tracks carry a Kalman filter (the ByteTrack tracker); cameras carry their
/// zones' and speeds' per-track state, the aggregator its alerts' state.
pub const SNAPSHOT_VERSION: u32 = 2;

/// The whole state of an [`Aggregator`] (see the module doc).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggregatorSnapshot {
    /// [`SNAPSHOT_VERSION`] when taken.
    pub version: u32,
    cameras: Vec<CameraSnapshot>,
    counts: Vec<CountRow>,
    turning_movements: Vec<TurningCountRow>,
    intersections: Vec<WindowsState>,
    turning_events: Vec<TurningMovementEvent>,
    windows: Vec<WindowRecord>,
    duplicates: u64,
    alerts: AlertsState,
    /// Alerts not yet taken.
    alert_events: Vec<AlertEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CameraSnapshot {
    id: String,
    intersection_id: String,
    last_seq: Option<u64>,
    last_stamp: Option<FrameStamp>,
    tracker: TrackerState,
    counter: CounterState,
    turning: TurningState,
    zones: ZonesState,
    motion: MotionState,
}

/// Why a snapshot was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error("snapshot version {found}, this build reads version {SNAPSHOT_VERSION}")]
    Version { found: u32 },
    #[error("the snapshot holds camera {0:?}, which is not configured")]
    UnknownCamera(String),
    #[error(
        "the snapshot of camera {0:?} does not fit its configuration (intersection, counting lines, approaches, zones or calibration changed)"
    )]
    CameraMismatch(String),
    #[error("the snapshot of intersection {0:?} does not fit its configuration (cameras or window lengths changed)")]
    IntersectionMismatch(String),
}

impl Aggregator {
    /// The aggregator's whole state, to [`restore`](Aggregator::restore) later.
    pub fn snapshot(&self) -> AggregatorSnapshot {
        let mut ids: Vec<&String> = self.cameras.keys().collect();
        ids.sort();
        AggregatorSnapshot {
            version: SNAPSHOT_VERSION,
            cameras: ids
                .into_iter()
                .map(|id| {
                    let c = &self.cameras[id];
                    CameraSnapshot {
                        id: id.clone(),
                        intersection_id: c.intersection_id.clone(),
                        last_seq: c.last_seq,
                        last_stamp: c.last_stamp,
                        tracker: c.tracker.state(),
                        counter: c.counter.state(),
                        turning: c.turning.state(),
                        zones: c.zones.state(),
                        motion: c.motion.state(),
                    }
                })
                .collect(),
            counts: self.counts(),
            turning_movements: self.turning_movements(),
            intersections: self.intersections.iter().map(|w| w.state()).collect(),
            turning_events: self.turn_events.clone(),
            windows: self.closed_windows.clone(),
            duplicates: self.duplicates,
            alerts: self.alerts.state(),
            alert_events: self.alerts.pending().to_vec(),
        }
    }

    /// An aggregator configured like [`Aggregator::with_analytics`] that goes on
    /// from `snapshot`. Cameras configured but absent from the snapshot start
    /// afresh; a snapshot that holds a camera not configured, or whose lines,
    /// approaches, intersections or window lengths changed, is refused.
    pub fn restore(
        cameras: &[CameraConfig],
        tracker: &TrackerConfig,
        analytics: &AnalyticsConfig,
        snapshot: AggregatorSnapshot,
    ) -> Result<Self, RestoreError> {
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version { found: snapshot.version });
        }
        let mut agg = Self::with_analytics(cameras, tracker, analytics);
        for c in snapshot.cameras {
            let state = agg.cameras.get_mut(&c.id).ok_or_else(|| RestoreError::UnknownCamera(c.id.clone()))?;
            if state.intersection_id != c.intersection_id
                || !state.counter.restore_state(c.counter)
                || !state.turning.restore_state(c.turning)
                || !state.zones.restore_state(c.zones)
                || !state.motion.restore_state(c.motion)
            {
                return Err(RestoreError::CameraMismatch(c.id));
            }
            state.tracker = Tracker::restore(tracker.clone(), c.tracker);
            state.last_seq = c.last_seq;
            state.last_stamp = c.last_stamp;
        }
        let mut by_id: HashMap<String, WindowsState> =
            snapshot.intersections.into_iter().map(|w| (w.intersection_id().to_owned(), w)).collect();
        for w in &mut agg.intersections {
            if let Some(state) = by_id.remove(w.intersection_id()) {
                if !w.restore_state(state) {
                    return Err(RestoreError::IntersectionMismatch(w.intersection_id().to_owned()));
                }
            }
        }
        if let Some(id) = by_id.into_keys().next() {
            return Err(RestoreError::IntersectionMismatch(id));
        }
        agg.counts = snapshot
            .counts
            .into_iter()
            .map(|r| {
                ((r.intersection_id, r.camera_id, r.line, r.direction, r.class_name), (r.direction_label, r.count))
            })
            .collect();
        agg.turn_counts = snapshot
            .turning_movements
            .into_iter()
            .map(|r| ((r.intersection_id, r.camera_id, r.from, r.to, r.class_name), r.count))
            .collect();
        agg.turn_events = snapshot.turning_events;
        agg.closed_windows = snapshot.windows;
        agg.duplicates = snapshot.duplicates;
        agg.alerts.restore_state(snapshot.alerts, snapshot.alert_events);
        agg.idle = agg.intersections.iter().enumerate().filter(|(_, w)| w.all_stale()).map(|(i, _)| i).collect();
        Ok(agg)
    }
}

/// Serde for a map whose keys are not strings (tuples): a sequence of pairs.
pub(crate) mod map_as_vec {
    use super::*;

    pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: serde::Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: serde::Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        Vec::<(K, V)>::deserialize(d).map(|v| v.into_iter().collect())
    }
}
