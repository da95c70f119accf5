//! The tracker's motion model: a Kalman filter of a box moving at constant
//! velocity, one step per frame.
//!
//! State `[cx, cy, w, h, vx, vy, vw, vh]` (centre, size and their velocities, in
//! pixels and pixels per frame); the detector measures `[cx, cy, w, h]`. This is
//! ByteTrack's filter with width in place of its aspect ratio (as BoT-SORT does):
//! the boxes here are the axis-aligned bounds of turning vehicles, whose width and
//! height change independently. Process and measurement noise scale with the
//! box's size (ByteTrack's 1/20 and 1/160 of it), so a bus and a bike are
//! followed alike in their own units, with a floor of [`MIN_STD_PX`] so that a
//! tiny box's filter never trusts a measurement more than the pixel grid allows.

use nalgebra::{SMatrix, SVector};
use serde::{Deserialize, Serialize};
use streetscope_contracts::BBox;

type State = SVector<f64, 8>;
type Cov = SMatrix<f64, 8, 8>;
type Meas = SVector<f64, 4>;

/// Standard deviation of position noise, per unit of box size (ByteTrack's).
const STD_POSITION: f64 = 1.0 / 20.0;
/// Standard deviation of the noise of the centre's velocity, per unit of box
/// size: eight times ByteTrack's 1/160, which is tuned for 30 frames/s. A frame
/// interval three times as long makes the change of velocity per frame (in
/// pixels per frame) nine times as large for the same acceleration, and vehicles
/// turn and brake at junctions.
const STD_VELOCITY: f64 = 1.0 / 20.0;
/// Standard deviation of the noise of the size's velocity, per unit of box size
/// (ByteTrack's): sizes change slowly, and a small box's jitter must not turn
/// into growth or shrinkage.
const STD_SIZE_VELOCITY: f64 = 1.0 / 160.0;
/// Standard deviation of a new track's centre velocity, per unit of box size:
/// large, so that its second detection sets its velocity.
const STD_VELOCITY_START: f64 = 0.5;
/// The least standard deviation of a position or size, pixels: a detector's box
/// edges are not more precise than a pixel or so, whatever the box's size.
pub const MIN_STD_PX: f64 = 1.0;

/// One box's filter: its state estimate and covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxFilter {
    mean: State,
    cov: Cov,
}

fn measure(b: &BBox) -> Meas {
    let (cx, cy) = b.center();
    Meas::new(cx as f64, cy as f64, b.width() as f64, b.height() as f64)
}

/// Per-coordinate standard deviations for a box of width `w` and height `h`.
fn stds(w: f64, h: f64, k: f64, floor: f64) -> [f64; 4] {
    let (w, h) = (w.abs(), h.abs());
    [(k * w).max(floor), (k * h).max(floor), (k * w).max(floor), (k * h).max(floor)]
}

impl BoxFilter {
    /// A filter started on a first detection, at rest with an uncertain velocity.
    pub fn new(b: &BBox) -> Self {
        let z = measure(b);
        let mut mean = State::zeros();
        mean.fixed_rows_mut::<4>(0).copy_from(&z);
        let p = stds(z[2], z[3], 2.0 * STD_POSITION, MIN_STD_PX);
        let v = stds(z[2], z[3], STD_VELOCITY_START, MIN_STD_PX);
        let vs = stds(z[2], z[3], 10.0 * STD_SIZE_VELOCITY, MIN_STD_PX / 8.0);
        let diag = SVector::<f64, 8>::from_column_slice(&[p[0], p[1], p[2], p[3], v[0], v[1], vs[2], vs[3]]);
        Self { mean, cov: Cov::from_diagonal(&diag.component_mul(&diag)) }
    }

    /// Moves the estimate one frame ahead.
    pub fn predict(&mut self) {
        let (w, h) = (self.mean[2], self.mean[3]);
        let p = stds(w, h, STD_POSITION, MIN_STD_PX);
        let v = stds(w, h, STD_VELOCITY, MIN_STD_PX / 8.0);
        let vs = stds(w, h, STD_SIZE_VELOCITY, MIN_STD_PX / 64.0);
        let q = SVector::<f64, 8>::from_column_slice(&[p[0], p[1], p[2], p[3], v[0], v[1], vs[2], vs[3]]);
        // x' = F x with F = [I I; 0 I]; P' = F P Fᵀ + Q, by blocks.
        let vel = self.mean.fixed_rows::<4>(4).into_owned();
        self.mean.fixed_rows_mut::<4>(0).zip_apply(&vel, |x, v| *x += v);
        // With P = [A B; Bᵀ C]: F P Fᵀ = [A + B + Bᵀ + C, B + C; (B + C)ᵀ, C].
        let a = self.cov.fixed_view::<4, 4>(0, 0).into_owned();
        let bc = self.cov.fixed_view::<4, 4>(0, 4) + self.cov.fixed_view::<4, 4>(4, 4);
        let top_left = a + bc + self.cov.fixed_view::<4, 4>(4, 0);
        self.cov.fixed_view_mut::<4, 4>(0, 0).copy_from(&top_left);
        self.cov.fixed_view_mut::<4, 4>(0, 4).copy_from(&bc);
        self.cov.fixed_view_mut::<4, 4>(4, 0).copy_from(&bc.transpose());
        for (i, qi) in q.iter().enumerate() {
            self.cov[(i, i)] += qi * qi;
        }
        // A box never shrinks below a pixel, whatever its velocity says.
        self.mean[2] = self.mean[2].max(1.0);
        self.mean[3] = self.mean[3].max(1.0);
    }

    /// Whether the covariance has the filter's own structure: the four
    /// coordinates independent, each coupled with its velocity only (a 2x2
    /// block per coordinate). [`BoxFilter::new`] makes it so and
    /// [`BoxFilter::predict`] and [`BoxFilter::update`] keep it (every noise is
    /// diagonal, and the transition couples a coordinate with its velocity only).
    fn blockwise(&self) -> bool {
        (0..8).all(|i| (0..8).all(|j| i % 4 == j % 4 || self.cov[(i, j)] == 0.0))
    }

    /// Corrects the estimate with a detection.
    pub fn update(&mut self, b: &BBox) {
        let z = measure(b);
        let r = stds(self.mean[2], self.mean[3], STD_POSITION, MIN_STD_PX);
        if self.blockwise() {
            self.update_blockwise(&z, &r);
        } else {
            self.update_dense(&z, &r, b);
        }
    }

    /// [`BoxFilter::update`] in matrix form, for any covariance.
    fn update_dense(&mut self, z: &Meas, r: &[f64; 4], b: &BBox) {
        let r = Meas::from_column_slice(r);
        // H = [I 0]: H P is P's top four rows; S = H P Hᵀ + R its top-left block.
        let hp: SMatrix<f64, 4, 8> = self.cov.fixed_rows::<4>(0).into_owned();
        let s = hp.fixed_columns::<4>(0) + SMatrix::<f64, 4, 4>::from_diagonal(&r.component_mul(&r));
        // K = P Hᵀ S⁻¹, so Kᵀ = S⁻¹ H P (P and S symmetric). The four coordinates
        // are independent (every noise is diagonal), so P is four 2x2 blocks and S
        // is diagonal: dividing by its diagonal is the solve, at a fraction of
        // the cost. A general S goes through Cholesky.
        let diagonal = (0..4).all(|i| (0..4).all(|j| i == j || s[(i, j)] == 0.0));
        let kt = if diagonal {
            let mut kt = hp;
            for i in 0..4 {
                let inv = 1.0 / s[(i, i)];
                kt.row_mut(i).scale_mut(inv);
            }
            kt
        } else {
            let Some(chol) = s.cholesky() else {
                // Not positive definite (cannot happen with R > 0): restart on the detection.
                *self = Self::new(b);
                return;
            };
            chol.solve(&hp)
        };
        let innovation = z - self.mean.fixed_rows::<4>(0);
        self.mean += kt.transpose() * innovation;
        self.cov -= kt.transpose() * hp;
        // Keep it symmetric against rounding.
        self.cov = (self.cov + self.cov.transpose()) * 0.5;
    }

    /// [`BoxFilter::update`] for a covariance of the filter's own structure:
    /// the same arithmetic as the matrix form below, term for term (the terms
    /// the structure makes zero left out), so the result is the same to the bit,
    /// in a twentieth of the operations: per coordinate `i`, with `p`, `q`, `v`
    /// its position variance, position-velocity covariance and velocity
    /// variance, `S = p + r²`, `K = [p, q] / S`.
    fn update_blockwise(&mut self, z: &Meas, r: &[f64; 4]) {
        let y = z - self.mean.fixed_rows::<4>(0);
        for (i, &ri) in r.iter().enumerate() {
            let (p, q, v) = (self.cov[(i, i)], self.cov[(i, i + 4)], self.cov[(i + 4, i + 4)]);
            let inv = 1.0 / (p + ri * ri);
            let (kp, kq) = (p * inv, q * inv);
            self.mean[i] += kp * y[i];
            self.mean[i + 4] += kq * y[i];
            // P - K H P, made symmetric as the matrix form does: the mean of
            // the two off-diagonal terms.
            let pq = ((q - kp * q) + (q - kq * p)) * 0.5;
            self.cov[(i, i)] = p - kp * p;
            self.cov[(i, i + 4)] = pq;
            self.cov[(i + 4, i)] = pq;
            self.cov[(i + 4, i + 4)] = v - kq * q;
        }
    }

    /// The estimated box.
    pub fn bbox(&self) -> BBox {
        let (cx, cy, w, h) = (self.mean[0], self.mean[1], self.mean[2].max(1.0), self.mean[3].max(1.0));
        BBox::new((cx - w / 2.0) as f32, (cy - h / 2.0) as f32, (cx + w / 2.0) as f32, (cy + h / 2.0) as f32)
    }

    /// The estimated velocity of the centre, pixels per frame.
    pub fn velocity(&self) -> (f64, f64) {
        (self.mean[4], self.mean[5])
    }

    /// The estimated rate of change of the width and height, pixels per frame.
    pub fn size_velocity(&self) -> (f64, f64) {
        (self.mean[6], self.mean[7])
    }

    /// Stops the size from changing (a lost track's size is held, as ByteTrack does
    /// with its height velocity).
    pub fn hold_size(&mut self) {
        self.mean[6] = 0.0;
        self.mean[7] = 0.0;
    }
}

#[cfg(test)]
fn transition() -> Cov {
    let mut f = Cov::identity();
    for i in 0..4 {
        f[(i, i + 4)] = 1.0;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox::new(x, y, x + w, y + h)
    }

    #[test]
    fn learns_a_constant_velocity_and_predicts_with_it() {
        let mut f = BoxFilter::new(&bx(0.0, 100.0, 40.0, 20.0));
        for i in 1..20 {
            f.predict();
            f.update(&bx(10.0 * i as f32, 100.0, 40.0, 20.0));
        }
        let (vx, vy) = f.velocity();
        assert!((vx - 10.0).abs() < 0.2 && vy.abs() < 0.1, "velocity {vx} {vy}");
        f.predict();
        let b = f.bbox();
        assert!((b.x1 - 200.0).abs() < 1.0 && (b.y1 - 100.0).abs() < 0.5, "{b:?}");
        assert!((b.width() - 40.0).abs() < 0.5 && (b.height() - 20.0).abs() < 0.5, "{b:?}");
    }

    #[test]
    fn bridges_missed_frames_along_its_velocity() {
        let mut f = BoxFilter::new(&bx(0.0, 0.0, 30.0, 30.0));
        for i in 1..10 {
            f.predict();
            f.update(&bx(5.0 * i as f32, 8.0 * i as f32, 30.0, 30.0));
        }
        for _ in 0..3 {
            f.predict();
        }
        let b = f.bbox();
        assert!((b.x1 - 60.0).abs() < 1.5 && (b.y1 - 96.0).abs() < 1.5, "{b:?}");
    }

    #[test]
    fn smooths_jitter() {
        // A standing box measured with ±3 px alternating noise: the estimate stays
        // well inside the noise.
        let mut f = BoxFilter::new(&bx(100.0, 100.0, 50.0, 50.0));
        let mut worst: f32 = 0.0;
        for i in 1..60 {
            let e = if i % 2 == 0 { 3.0 } else { -3.0 };
            f.predict();
            f.update(&bx(100.0 + e, 100.0 - e, 50.0, 50.0));
            if i > 10 {
                worst = worst.max((f.bbox().x1 - 100.0).abs());
            }
        }
        assert!(worst < 2.0, "estimate moved {worst} px");
    }

    #[test]
    fn the_block_prediction_equals_f_p_f_transposed() {
        let mut f = BoxFilter::new(&bx(10.0, 20.0, 30.0, 40.0));
        f.predict();
        f.update(&bx(13.0, 21.0, 31.0, 39.0));
        f.cov[(0, 5)] = 0.25; // not a structure the filter makes, so that every block is exercised
        f.cov[(5, 0)] = 0.25;
        let (before, w, h) = (f.cov, f.mean[2], f.mean[3]);
        f.predict();
        let mut expected = transition() * before * transition().transpose();
        let q = [stds(w, h, STD_POSITION, MIN_STD_PX), stds(w, h, STD_VELOCITY, MIN_STD_PX / 8.0)];
        let qs = stds(w, h, STD_SIZE_VELOCITY, MIN_STD_PX / 64.0);
        let diag = [q[0][0], q[0][1], q[0][2], q[0][3], q[1][0], q[1][1], qs[2], qs[3]];
        for (i, d) in diag.iter().enumerate() {
            expected[(i, i)] += d * d;
        }
        assert!((f.cov - expected).abs().max() < 1e-9, "{}", f.cov - expected);
    }

    #[test]
    fn the_diagonal_update_equals_the_general_one() {
        let mut f = BoxFilter::new(&bx(10.0, 20.0, 30.0, 40.0));
        for i in 1..5 {
            f.predict();
            f.update(&bx(10.0 + 3.0 * i as f32, 20.0, 30.0, 40.0 - i as f32));
        }
        f.predict();
        let z = bx(26.0, 19.0, 31.0, 35.0);
        let mut fast = f.clone();
        fast.update(&z);
        // The same update through Cholesky, by hand.
        let r = Meas::from_column_slice(&stds(f.mean[2], f.mean[3], STD_POSITION, MIN_STD_PX));
        let hp: SMatrix<f64, 4, 8> = f.cov.fixed_rows::<4>(0).into_owned();
        let s = hp.fixed_columns::<4>(0) + SMatrix::<f64, 4, 4>::from_diagonal(&r.component_mul(&r));
        let kt = s.cholesky().unwrap().solve(&hp);
        let mean = f.mean + kt.transpose() * (measure(&z) - f.mean.fixed_rows::<4>(0));
        let cov = f.cov - kt.transpose() * hp;
        assert!((fast.mean - mean).abs().max() < 1e-9 && (fast.cov - cov).abs().max() < 1e-9);
    }

    #[test]
    fn the_blockwise_update_equals_the_matrix_one_to_the_bit() {
        // A track through starts, stops, turns and missed frames.
        let mut f = BoxFilter::new(&bx(100.0, 200.0, 30.0, 60.0));
        for i in 1..60 {
            let t = i as f32;
            f.predict();
            if i % 7 == 3 {
                f.hold_size();
                continue;
            }
            let z = bx(100.0 + 3.0 * t + (t * 0.7).sin() * 4.0, 200.0 - t * t * 0.05, 30.0 + t * 0.3, 60.0 - t * 0.4);
            assert!(f.blockwise(), "step {i}");
            let mut dense = f.clone();
            f.update(&z);
            // The matrix form, forced.
            let r = stds(dense.mean[2], dense.mean[3], STD_POSITION, MIN_STD_PX);
            dense.update_dense(&measure(&z), &r, &z);
            assert_eq!(f.mean, dense.mean, "step {i}");
            assert_eq!(f.cov, dense.cov, "step {i}");
        }
    }

    #[test]
    fn survives_a_serde_round_trip_exactly() {
        let mut f = BoxFilter::new(&bx(1.5, 2.25, 10.0, 26.0));
        f.predict();
        f.update(&bx(3.0, 2.0, 11.0, 25.0));
        let back: BoxFilter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
    }
}
