//! What really happened: the per-frame state of every visible vehicle and the
//! whole run's ground truth (vehicles, line crossings, counts, turning movements,
//! queues), in the same conventions as the aggregator.
//!
//! **Crossings.** A vehicle's reference point is the bottom-centre of the box a
//! perfect detector would report (clipped to the image), normalised, exactly as
//! the aggregator takes it; it is followed only while the vehicle is detectable.
//! Per line, the last point strictly off the line is kept, and the movement from
//! it to the current point decides a crossing by the truth's own geometry
//! ([`truth_crossing`]: parametric segment intersection, not the product's
//! `CountingLine::crossing`, so that a bug there cannot hide in the truth); each
//! vehicle counts at most once per line and direction. With a noiseless detector and a perfect tracker, the
//! aggregator's counts therefore equal [`GroundTruth::counts`] exactly.
//!
//! **Turning movements.** A vehicle counts in [`GroundTruth::turning_movements`]
//! when both its entry crossing (its arm's line, `in`) and its exit crossing (the
//! exit arm's line, `out`) happened in frames the simulation yielded; vehicles
//! already past their entry line at frame 0, or not yet out at the end, do not.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streetscope_contracts::{BBox, CountingLine, Direction};

use crate::signal::SignalState;
use crate::spec::{Approach, Movement};

/// A vehicle's way through the junction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MovementKey {
    /// The arm it comes in by.
    pub from: Approach,
    /// The arm it leaves by.
    pub to: Approach,
    /// What its driver does.
    pub movement: Movement,
}

impl std::fmt::Display for MovementKey {
    /// E.g. `"S->N straight"`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}->{} {}", self.from.letter(), self.to.letter(), self.movement.name())
    }
}

/// One visible vehicle in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct TrueObject {
    /// The vehicle's id, unique in the run, from 1.
    pub vehicle_id: u64,
    /// Its class id.
    pub class_id: u32,
    /// Its class name.
    pub class_name: Arc<str>,
    /// Its box as a perfect detector would report it: clipped to the image.
    pub bbox: BBox,
    /// Its speed, pixels per second.
    pub speed_px_s: f64,
    /// Its way through the junction.
    pub movement: MovementKey,
    /// Whether it is queued: slower than the queue speed, before its stop line.
    pub queued: bool,
    /// Its inbound lane, 0 the innermost.
    pub lane_in: u32,
}

/// Where a detection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectionSource {
    /// The vehicle with this id.
    Vehicle(u64),
    /// Nothing: a false positive.
    FalsePositive,
}

/// A vehicle's crossing of one counting line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthCrossing {
    /// The vehicle.
    pub vehicle_id: u64,
    /// Its class name.
    pub class_name: String,
    /// The line's name.
    pub line: String,
    /// The direction of the crossing.
    pub direction: Direction,
    /// The line's label for that direction.
    pub direction_label: String,
    /// The first frame with the reference point past the line.
    pub seq: u64,
    /// That frame's time, seconds from frame 0.
    pub time_s: f64,
}

/// When a vehicle crossed a line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CrossingTime {
    /// Direction of the crossing (`forward` = in for entries, `backward` = out for exits).
    pub direction: Direction,
    /// The first frame with the reference point past the line.
    pub seq: u64,
    /// That frame's time, seconds from frame 0.
    pub time_s: f64,
}

/// One vehicle's life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VehicleTruth {
    /// Unique id, from 1 in order of entering the road.
    pub id: u64,
    /// Class name.
    pub class_name: String,
    /// Class id.
    pub class_id: u32,
    /// Its way through the junction.
    pub movement: MovementKey,
    /// Inbound lane, 0 the innermost.
    pub lane_in: u32,
    /// Outbound lane, 0 the innermost.
    pub lane_out: u32,
    /// Desired speed, pixels per second.
    pub desired_speed_px_s: f64,
    /// When it arrived (possibly waiting off the simulated road), seconds from frame 0.
    pub arrival_s: f64,
    /// When it entered the simulated road, seconds from frame 0 (negative in warm-up).
    pub spawn_s: f64,
    /// When it left the simulated road, if it did.
    pub despawn_s: Option<f64>,
    /// Crossing of its entry arm's line inwards, if in a yielded frame.
    pub entry: Option<CrossingTime>,
    /// Crossing of its exit arm's line outwards, if in a yielded frame.
    pub exit: Option<CrossingTime>,
    /// How long it stood in its queue where a camera sees it, seconds: the
    /// yielded frames in which it was detectable and queued (slower than
    /// [`IntersectionSpec::queue_speed_px_s`](crate::IntersectionSpec::queue_speed_px_s)
    /// over the step to that frame, its front not past its stop line), one frame
    /// interval each. What the stopped time of its stays in the queue zones
    /// ([`IntersectionSpec::queue_zones`](crate::IntersectionSpec::queue_zones))
    /// measures when the aggregator's queue speed is the simulator's.
    #[serde(default)]
    pub queued_in_view_s: f64,
}

/// Crossings of one line in one direction by one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineCount {
    /// The line's name.
    pub line: String,
    /// Direction of the crossings.
    pub direction: Direction,
    /// The line's label for that direction.
    pub direction_label: String,
    /// Class name.
    pub class_name: String,
    /// Number of crossings.
    pub count: u64,
}

/// Vehicles of one class that made one movement (entry and exit both seen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurningCount {
    /// The movement.
    pub movement: MovementKey,
    /// Class name.
    pub class_name: String,
    /// Number of vehicles.
    pub count: u64,
}

/// Queue on one approach at one whole second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueSample {
    /// Seconds from frame 0.
    pub time_s: f64,
    /// The approach.
    pub approach: Approach,
    /// Vehicles before the stop line slower than the queue speed, visible or not.
    pub queued: u32,
    /// Those of them a camera could detect.
    pub queued_in_view: u32,
    /// Those a camera could detect per inbound lane (0 the innermost), one entry
    /// per lane of the approach: what the queue zones of
    /// [`IntersectionSpec::queue_zones`](crate::IntersectionSpec::queue_zones) measure.
    #[serde(default)]
    pub queued_in_view_by_lane: Vec<u32>,
    /// Vehicles that arrived but wait for room to enter the simulated road.
    pub backlog: u32,
}

/// The ground truth of a run (so far).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// Intersection id.
    pub intersection_id: String,
    /// Camera id.
    pub camera_id: String,
    /// Frames yielded so far (dropped ones included).
    pub frames: u64,
    /// Seconds covered by those frames.
    pub duration_s: f64,
    /// The counting lines, in the order the counts use.
    pub lines: Vec<CountingLine>,
    /// Every vehicle on the road at some yielded frame, by id.
    pub vehicles: Vec<VehicleTruth>,
    /// Every crossing, in frame order.
    pub crossings: Vec<TruthCrossing>,
    /// Crossings per line (in `lines` order), direction (forward first) and class (by name).
    pub counts: Vec<LineCount>,
    /// Vehicles per movement and class (see the module doc for the rule).
    pub turning_movements: Vec<TurningCount>,
    /// Queue per approach at every whole second.
    pub queues: Vec<QueueSample>,
}

impl GroundTruth {
    /// Count for a line, direction and class; 0 when absent.
    pub fn count(&self, line: &str, direction: Direction, class_name: &str) -> u64 {
        self.counts
            .iter()
            .find(|c| c.line == line && c.direction == direction && c.class_name == class_name)
            .map_or(0, |c| c.count)
    }

    /// Total count for a line and direction over all classes.
    pub fn line_total(&self, line: &str, direction: Direction) -> u64 {
        self.counts.iter().filter(|c| c.line == line && c.direction == direction).map(|c| c.count).sum()
    }

    /// Vehicles of `class_name` (or of every class, with `None`) that made the movement from `from` to `to`.
    pub fn turning(&self, from: Approach, to: Approach, class_name: Option<&str>) -> u64 {
        self.turning_movements
            .iter()
            .filter(|t| t.movement.from == from && t.movement.to == to)
            .filter(|t| class_name.is_none_or(|c| c == t.class_name))
            .map(|t| t.count)
            .sum()
    }
}

/// One simulated frame: the truth, and what the camera's detector reported.
#[derive(Debug, Clone, PartialEq)]
pub struct SimFrame {
    /// Frame index, from 0; also the detections' `seq`.
    pub seq: u64,
    /// Seconds from frame 0.
    pub time_s: f64,
    /// Every detectable vehicle, by id.
    pub objects: Vec<TrueObject>,
    /// Signal aspect per approach, in [`Approach::ALL`] order.
    pub signals: [SignalState; 4],
    /// The detector's output; `None` when the frame was dropped.
    pub detections: Option<streetscope_contracts::FrameDetections>,
    /// Where each detection came from, parallel to `detections.detections`.
    pub sources: Vec<DetectionSource>,
}

pub use streetscope_contracts::truth_geometry::{truth_crossing, truth_side};
