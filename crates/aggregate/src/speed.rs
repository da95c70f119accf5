//! Speeds of tracks.
//!
//! A camera with a ground-plane calibration maps each track's reference point
//! (normalised image coordinates) to the road through a [`Homography`] computed
//! from the four point pairs of its [`CalibrationConfig`]; positions are then in
//! metres and speeds in km/h. Without a calibration, positions are in image
//! heights (x scaled by the aspect ratio, so both axes share the unit) and speeds
//! are only good for telling a standing vehicle from a moving one.
//!
//! **Smoothing.** A track's speed is the slope of straight lines fitted by least
//! squares to its x and y positions over the last `smoothing_s` of its life
//! (at least three positions spanning half of it): jitter of the boxes averages
//! out instead of adding up as it would in a sum of frame-to-frame steps.
//! Time is the frames' stream position, so the rate of a file does not matter.
//!
//! **At a past frame.** Crossings are released a few frames after they happen
//! (the counter waits for the track's confirmation and class), so each track keeps
//! its recent positions ([`HISTORY_MS`]); the speed at a crossing is fitted over
//! the positions within half the smoothing time either side of its frame, and a
//! movement's speed is the length of the track's path between its entry and exit
//! crossings over the time it took. The path is measured in steps of half the
//! smoothing time, long enough that the jitter of the boxes adds next to nothing,
//! short enough to follow a turn.

use std::collections::{HashMap, VecDeque};

use nalgebra::{Matrix3, SMatrix, SVector, Vector3};
use serde::{Deserialize, Serialize};
use streetscope_contracts::config::CalibrationConfig;
use streetscope_contracts::zones::collinear_triple;
use streetscope_contracts::NormPoint;

use crate::counter::FrameStamp;
use crate::tracker::TrackUpdate;

/// How long a track keeps its positions, ms of stream time.
pub const HISTORY_MS: i64 = 60_000;

/// Why four point pairs define no ground plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalibrationError {
    #[error("points {0:?} of the calibration's {1} lie on a line; pick four points no three of which are in a line")]
    Collinear([usize; 3], &'static str),
    #[error(
        "the calibration's image and world points are not in the same order round the quadrilateral, so part of it maps to infinity"
    )]
    Order,
}

/// A plane-to-plane projective map: normalised image coordinates to metres on
/// the road.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography {
    m: Matrix3<f64>,
    /// Sign of the homogeneous coordinate on the calibrated side of the horizon.
    sign: f64,
}

impl Homography {
    /// The homography that maps each `image[i]` to `world[i]` (the direct linear
    /// transform with `h33 = 1`, the world points centred and scaled first so that
    /// coordinates far from the origin keep their precision).
    pub fn from_points(image: &[[f64; 2]; 4], world: &[[f64; 2]; 4]) -> Result<Self, CalibrationError> {
        if let Some(t) = collinear_triple(image) {
            return Err(CalibrationError::Collinear(t, "image"));
        }
        if let Some(t) = collinear_triple(world) {
            return Err(CalibrationError::Collinear(t, "world"));
        }
        let (cx, cy) = (world.iter().map(|p| p[0]).sum::<f64>() / 4.0, world.iter().map(|p| p[1]).sum::<f64>() / 4.0);
        let scale = world.iter().map(|p| (p[0] - cx).hypot(p[1] - cy)).sum::<f64>() / 4.0;
        let mut a = SMatrix::<f64, 8, 8>::zeros();
        let mut b = SVector::<f64, 8>::zeros();
        for (i, (p, q)) in image.iter().zip(world).enumerate() {
            let (x, y) = (p[0], p[1]);
            let (u, v) = ((q[0] - cx) / scale, (q[1] - cy) / scale);
            let r = 2 * i;
            a.row_mut(r).copy_from_slice(&[x, y, 1.0, 0.0, 0.0, 0.0, -x * u, -y * u]);
            a.row_mut(r + 1).copy_from_slice(&[0.0, 0.0, 0.0, x, y, 1.0, -x * v, -y * v]);
            b[r] = u;
            b[r + 1] = v;
        }
        let h = a.lu().solve(&b).ok_or(CalibrationError::Collinear([0, 1, 2], "image"))?;
        let normalised = Matrix3::new(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0);
        let denormalise = Matrix3::new(scale, 0.0, cx, 0.0, scale, cy, 0.0, 0.0, 1.0);
        let m = denormalise * normalised;
        let w: Vec<f64> = image.iter().map(|p| (m * Vector3::new(p[0], p[1], 1.0)).z).collect();
        if !(w.iter().all(|&w| w > 0.0) || w.iter().all(|&w| w < 0.0)) {
            return Err(CalibrationError::Order);
        }
        Ok(Self { m, sign: w[0].signum() })
    }

    /// The homography of a camera's calibration.
    pub fn from_config(c: &CalibrationConfig) -> Result<Self, CalibrationError> {
        Self::from_points(&c.image, &c.world)
    }

    /// Where image point `p` (normalised) is on the road, metres; `None` beyond
    /// the horizon.
    pub fn apply(&self, p: NormPoint) -> Option<[f64; 2]> {
        let v = self.m * Vector3::new(p.x, p.y, 1.0);
        (v.z * self.sign > 1e-12).then(|| [v.x / v.z, v.y / v.z])
    }
}

/// One position of a track.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    seq: u64,
    /// Stream time, ms.
    t_ms: f64,
    p: [f64; 2],
}

/// A track's positions. Its smoothed speed is fitted to them when asked for
/// (most cameras never ask: no queue zones), not at every frame. Snapshots taken
/// before held the speed too; it is ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TrackMotion {
    samples: VecDeque<Sample>,
}

/// What [`Motion`] carries from frame to frame, for snapshots: per track, sorted by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MotionState {
    calibrated: bool,
    tracks: Vec<(u64, TrackMotion)>,
}

/// Positions and speeds of one camera's tracks.
#[derive(Debug)]
pub struct Motion {
    calibration: Option<CalibrationConfig>,
    homography: Option<Homography>,
    smoothing_ms: f64,
    tracks: HashMap<u64, TrackMotion>,
}

/// The least-squares slope of `(t, x)` and `(t, y)`, units per ms, and the time span.
fn fit(samples: impl Iterator<Item = Sample> + Clone) -> Option<([f64; 2], f64)> {
    let (mut n, mut st, mut sx, mut sy) = (0.0, 0.0, 0.0, 0.0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in samples.clone() {
        n += 1.0;
        st += s.t_ms;
        sx += s.p[0];
        sy += s.p[1];
        lo = lo.min(s.t_ms);
        hi = hi.max(s.t_ms);
    }
    if n < 3.0 {
        return None;
    }
    let (mt, mx, my) = (st / n, sx / n, sy / n);
    let (mut stt, mut stx, mut sty) = (0.0, 0.0, 0.0);
    for s in samples {
        let dt = s.t_ms - mt;
        stt += dt * dt;
        stx += dt * (s.p[0] - mx);
        sty += dt * (s.p[1] - my);
    }
    (stt > 0.0).then(|| ([stx / stt, sty / stt], hi - lo))
}

impl Motion {
    /// `calibration`: the camera's, if any (one that defines no homography gives
    /// no km/h: [`AnalyticsConfig`](streetscope_contracts::config::PipelineConfig::validate)
    /// refuses those); `smoothing_s`: see the module doc.
    pub fn new(calibration: Option<&CalibrationConfig>, smoothing_s: f64) -> Self {
        let homography = calibration.and_then(|c| Homography::from_config(c).ok());
        Self {
            calibration: calibration.cloned(),
            homography,
            smoothing_ms: smoothing_s.max(0.01) * 1000.0,
            tracks: HashMap::new(),
        }
    }

    /// Whether it was made with `calibration`.
    pub fn has_calibration(&self, calibration: Option<&CalibrationConfig>) -> bool {
        self.calibration.as_ref() == calibration
    }

    /// Whether positions are in metres (the camera has a calibration).
    pub fn calibrated(&self) -> bool {
        self.homography.is_some()
    }

    fn position(&self, p: NormPoint, w: u32, h: u32) -> Option<[f64; 2]> {
        match &self.homography {
            Some(hg) => hg.apply(p),
            None => Some([p.x * f64::from(w) / f64::from(h.max(1)), p.y]),
        }
    }

    /// Takes the track updates of frame `at` (a `w` x `h` image).
    pub fn observe(&mut self, updates: &[TrackUpdate], at: FrameStamp, w: u32, h: u32) {
        let t_ms = at.pts_ns as f64 / 1e6;
        for u in updates {
            let Some(p) = self.position(u.anchor, w, h) else {
                self.tracks.remove(&u.track_id);
                continue;
            };
            let tm = self.tracks.entry(u.track_id).or_default();
            if tm.samples.back().is_some_and(|s| s.t_ms >= t_ms) {
                // The stream restarted (a reconnection): what came before does not compare.
                *tm = TrackMotion::default();
            }
            tm.samples.push_back(Sample { seq: at.seq, t_ms, p });
            while tm.samples.front().is_some_and(|s| s.t_ms < t_ms - HISTORY_MS as f64) {
                tm.samples.pop_front();
            }
        }
    }

    /// Forgets a track that ended.
    pub fn retire(&mut self, track_id: u64) {
        self.tracks.remove(&track_id);
    }

    /// The track's smoothed speed at its last position: km/h with a calibration,
    /// image heights per second without; `None` until it has enough positions.
    pub fn speed(&self, track_id: u64) -> Option<f64> {
        let v = self.smoothed(self.tracks.get(&track_id)?)?;
        Some(if self.calibrated() { v * 3.6 } else { v })
    }

    /// The speed fitted to a track's positions over the smoothing time up to
    /// its last one, units per second; `None` until they span half of it.
    fn smoothed(&self, tm: &TrackMotion) -> Option<f64> {
        let (t_ms, window) = (tm.samples.back()?.t_ms, self.smoothing_ms);
        let recent = tm.samples.iter().rev().take_while(|s| s.t_ms >= t_ms - window).copied();
        fit(recent).filter(|(_, span)| *span >= window / 2.0).map(|(v, _)| v[0].hypot(v[1]) * 1000.0)
    }

    /// Every track's smoothed speed (as [`Motion::speed`]), by track id.
    pub fn speeds(&self) -> Vec<(u64, f64)> {
        let scale = if self.calibrated() { 3.6 } else { 1.0 };
        let mut v: Vec<(u64, f64)> =
            self.tracks.iter().filter_map(|(&id, t)| Some((id, self.smoothed(t)? * scale))).collect();
        v.sort_by_key(|t| t.0);
        v
    }

    /// The track's smoothed speed in km/h (calibrated cameras only).
    pub fn speed_kmh(&self, track_id: u64) -> Option<f64> {
        self.calibrated().then(|| self.speed(track_id)).flatten()
    }

    /// The track's speed around frame `seq`, km/h: fitted over its positions
    /// within half the smoothing time either side of that frame.
    pub fn speed_kmh_at(&self, track_id: u64, seq: u64) -> Option<f64> {
        if !self.calibrated() {
            return None;
        }
        let tm = self.tracks.get(&track_id)?;
        let at = tm.samples.iter().find(|s| s.seq == seq)?.t_ms;
        let half = self.smoothing_ms / 2.0;
        let near = tm.samples.iter().filter(|s| (s.t_ms - at).abs() <= half).copied();
        let (v, span) = fit(near)?;
        (span >= half).then(|| v[0].hypot(v[1]) * 1000.0 * 3.6)
    }

    /// The track's mean speed from frame `from_seq` to frame `to_seq` (either
    /// order), km/h: distance covered over time taken.
    pub fn travel_kmh(&self, track_id: u64, from_seq: u64, to_seq: u64) -> Option<f64> {
        if !self.calibrated() {
            return None;
        }
        let tm = self.tracks.get(&track_id)?;
        let (a, b) = (from_seq.min(to_seq), from_seq.max(to_seq));
        let i = tm.samples.iter().position(|s| s.seq == a)?;
        let j = tm.samples.iter().position(|s| s.seq == b)?;
        let (first, last) = (tm.samples[i], tm.samples[j]);
        let dt_s = (last.t_ms - first.t_ms) / 1000.0;
        if dt_s <= 0.0 {
            return None;
        }
        // The path in steps of half the smoothing time, ending on the exit's position.
        let step = self.smoothing_ms / 2.0;
        let mut length = 0.0;
        let mut from = first;
        for s in tm.samples.range(i + 1..=j) {
            if s.t_ms - from.t_ms >= step || s.seq == b {
                length += (s.p[0] - from.p[0]).hypot(s.p[1] - from.p[1]);
                from = *s;
            }
        }
        Some(length / dt_s * 3.6)
    }

    /// Its state between frames.
    pub fn state(&self) -> MotionState {
        let mut tracks: Vec<(u64, TrackMotion)> = self.tracks.iter().map(|(&id, t)| (id, t.clone())).collect();
        tracks.sort_by_key(|t| t.0);
        MotionState { calibrated: self.calibrated(), tracks }
    }

    /// Goes on from `state`; `false` (and no change) when it was taken with a
    /// calibration and this camera has none, or the other way round.
    pub fn restore_state(&mut self, state: MotionState) -> bool {
        if state.calibrated != self.calibrated() {
            return false;
        }
        self.tracks = state.tracks.into_iter().collect();
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A camera looking down a road at an angle: a known perspective map from the
    /// ground (metres) to the image (normalised).
    fn camera() -> Matrix3<f64> {
        Matrix3::new(0.02, 0.004, 0.5, 0.0, 0.004, 0.3, 0.0, 0.05, 1.0)
    }

    fn project(g: &Matrix3<f64>, w: [f64; 2]) -> NormPoint {
        let v = g * Vector3::new(w[0], w[1], 1.0);
        NormPoint::new(v.x / v.z, v.y / v.z)
    }

    #[test]
    fn four_points_recover_a_perspective_map() {
        let g = camera();
        let world = [[-3.5, 0.0], [3.5, 0.0], [3.5, 30.0], [-3.5, 30.0]];
        let image = world.map(|w| {
            let p = project(&g, w);
            [p.x, p.y]
        });
        let h = Homography::from_points(&image, &world).unwrap();
        for w in [[0.0, 10.0], [-2.0, 25.0], [1.7, 3.3], [10.0, 50.0]] {
            let back = h.apply(project(&g, w)).unwrap();
            assert!((back[0] - w[0]).abs() < 1e-9 && (back[1] - w[1]).abs() < 1e-9, "{w:?} -> {back:?}");
        }
        // Far-off world coordinates (a city grid in metres) keep their precision.
        let far = world.map(|w| [w[0] + 500_000.0, w[1] + 4_000_000.0]);
        let h = Homography::from_points(&image, &far).unwrap();
        let back = h.apply(project(&g, [1.0, 12.0])).unwrap();
        assert!((back[0] - 500_001.0).abs() < 1e-4 && (back[1] - 4_000_012.0).abs() < 1e-4, "{back:?}");
    }

    #[test]
    fn degenerate_calibrations_are_refused() {
        let world = [[0.0, 0.0], [3.5, 0.0], [3.5, 10.0], [0.0, 10.0]];
        let image = [[0.3, 0.6], [0.5, 0.6], [0.7, 0.6], [0.1, 0.9]];
        assert_eq!(Homography::from_points(&image, &world), Err(CalibrationError::Collinear([0, 1, 2], "image")));
        let image = [[0.3, 0.6], [0.7, 0.6], [0.9, 0.9], [0.1, 0.9]];
        let crossed = [[0.0, 0.0], [3.5, 0.0], [0.0, 10.0], [3.5, 10.0]];
        assert_eq!(Homography::from_points(&image, &crossed), Err(CalibrationError::Order));
        assert!(Homography::from_points(&image, &world).is_ok());
    }

    fn upd(id: u64, p: NormPoint) -> TrackUpdate {
        TrackUpdate { track_id: id, anchor: p, confirmed: true, class_name: Arc::from("car"), class_settled: true }
    }

    fn stamp(seq: u64, fps: f64) -> FrameStamp {
        FrameStamp { seq, pts_ns: (seq as f64 * 1e9 / fps) as u64, capture_time_ms: 0 }
    }

    #[test]
    fn a_vehicle_at_constant_speed_through_a_perspective_view() {
        let g = camera();
        let world = [[-3.5, 0.0], [3.5, 0.0], [3.5, 30.0], [-3.5, 30.0]];
        let image = world.map(|w| {
            let p = project(&g, w);
            [p.x, p.y]
        });
        let cal = CalibrationConfig { image, world };
        let mut m = Motion::new(Some(&cal), 1.0);
        // 15 m/s (54 km/h) away from the camera, with a wobble of ±3 cm.
        for seq in 0..40u64 {
            let t = seq as f64 / 10.0;
            let wobble = if seq % 2 == 0 { 0.03 } else { -0.03 };
            m.observe(&[upd(1, project(&g, [1.0 + wobble, 2.0 + 15.0 * t]))], stamp(seq, 10.0), 1280, 720);
            if seq < 5 {
                assert_eq!(m.speed_kmh(1), None, "too few positions at frame {seq}");
            }
        }
        let v = m.speed_kmh(1).unwrap();
        assert!((v - 54.0).abs() < 0.5, "{v}");
        let at = m.speed_kmh_at(1, 20).unwrap();
        assert!((at - 54.0).abs() < 0.5, "{at}");
        let travel = m.travel_kmh(1, 10, 35).unwrap();
        assert!((travel - 54.0).abs() < 0.5, "{travel}");
        assert_eq!(m.travel_kmh(1, 35, 10), Some(travel));
        assert_eq!(m.speed_kmh_at(1, 99), None);
        m.retire(1);
        assert_eq!(m.speed_kmh(1), None);
    }

    #[test]
    fn without_a_calibration_speeds_are_in_image_heights_per_second() {
        let mut m = Motion::new(None, 1.0);
        for seq in 0..20u64 {
            // 0.1 image widths per second across a 16:9 image.
            let x = 0.1 + 0.01 * seq as f64;
            m.observe(&[upd(7, NormPoint::new(x, 0.5))], stamp(seq, 10.0), 1280, 720);
        }
        let v = m.speed(7).unwrap();
        assert!((v - 0.1 * 1280.0 / 720.0).abs() < 1e-9, "{v}");
        assert_eq!((m.speed_kmh(7), m.travel_kmh(7, 0, 10)), (None, None));
        // A restarted stream starts the track's positions over.
        m.observe(&[upd(7, NormPoint::new(0.5, 0.5))], stamp(0, 10.0), 1280, 720);
        assert_eq!(m.speed(7), None);
    }
}
