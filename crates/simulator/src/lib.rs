//! Streetscope traffic simulator: vehicles through a configurable four-way
//! intersection, the ground truth of what they did, and the noisy detections a
//! camera's detector would yield.
//!
//! It drives the analytics' accuracy tests, the benchmarks and the city-scale load
//! tests. It is pure (no IO; serde for the specs and the truth) and deterministic:
//! the same [`IntersectionSpec`], [`NoiseSpec`] and seed give the same frames,
//! bit for bit, on every platform and with every dependency version (it carries its
//! own random number generator).
//!
//! - [`spec`]: what to simulate — the junction seen by the camera (arms, lanes,
//!   demand, turning ratios, signal plan, vehicle classes) and the detector's errors.
//! - [`Simulation`] (in `sim`): the loop. Vehicles arrive by a Poisson process,
//!   choose a movement and a lane, follow the vehicle ahead (Krauss model), stop at
//!   their stop line on red and queue, and cross the junction on their route.
//!   Each frame yields a [`SimFrame`]: the true boxes, and the
//!   [`FrameDetections`](streetscope_contracts::FrameDetections) of the noisy detector.
//! - [`truth`]: per-frame truth and the run's [`GroundTruth`]: vehicles, line
//!   crossings by the aggregator's own rules, counts, turning movements, queues.
//! - [`scenario`]: ready-made scenarios (the default junction, stop-and-go).
//!
//! Model in brief (pixel units, x right, y down, north at the top): the junction
//! box is as wide as the widest road plus half a lane each side; each arm has one counting line across the
//! whole road at the box's edge, which is also the stop line, named for the arm
//! (`north`...) and counting `in` (forward) and `out` (backward). Boxes are the
//! axis-aligned bounds of each vehicle's rotated footprint. There is no yielding
//! inside the junction, so the default plan gives each approach its own phase.
//!
//! ```
//! use streetscope_simulator::{NoiseSpec, Simulation, scenario};
//! use streetscope_contracts::Direction;
//!
//! let mut spec = scenario::default_four_way();
//! spec.duration_s = 60.0;
//! let mut sim = Simulation::new(spec, NoiseSpec::typical(), 42)?;
//! let lines = sim.counting_lines().to_vec(); // give these to the aggregator
//! while let Some(frame) = sim.step() {
//!     if let Some(detections) = frame.detections {
//!         // feed `detections` to the tracker / aggregator ...
//! #       let _ = detections;
//!     }
//! }
//! let truth = sim.ground_truth();
//! let north_in = truth.line_total("north", Direction::Forward);
//! assert!(north_in > 0 && lines.len() == 4);
//! # Ok::<(), streetscope_simulator::SimError>(())
//! ```

mod layout;
mod rng;
pub mod scenario;
mod signal;
mod sim;
pub mod spec;
pub mod truth;

pub use signal::SignalState;
pub use sim::{NoiseStats, SimError, Simulation};
pub use spec::{
    Approach, ApproachSpec, Approaches, ClassSpec, DrivingSide, IntersectionSpec, Movement, NoiseSpec, PhaseSpec,
    SignalPlan, TurningRatios, PX_PER_M,
};
pub use truth::{
    CrossingTime, DetectionSource, GroundTruth, LineCount, MovementKey, QueueSample, SimFrame, TrueObject,
    TruthCrossing, TurningCount, VehicleTruth,
};
