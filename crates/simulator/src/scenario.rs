//! Ready-made scenarios.

use streetscope_contracts::CountingLine;

use crate::spec::{Approach, IntersectionSpec, PhaseSpec, SignalPlan};

/// The default four-way junction ([`IntersectionSpec::default`]): 1280x720 at
/// 10 fps, two lanes each way on every arm, 400 vehicles per hour per approach
/// (20 % left, 60 % straight, 20 % right), split phasing with 20 s greens.
pub fn default_four_way() -> IntersectionSpec {
    IntersectionSpec::default()
}

/// Name of the extra line of [`stop_and_go`].
pub const QUEUE_LINE: &str = "north_queue";

/// Stop-and-go traffic standing on counting lines.
///
/// Only the north approach has traffic (500 vehicles per hour), and it has a short
/// green (3 s, then amber, in a 25 s cycle): close to capacity, so a queue stands
/// all the time without growing without bound, and vehicles move up through it in
/// starts and stops (most stop two or more times in view). The front vehicle of each lane stops with its front bumper
/// exactly on the stop line — and, coming in southbound, its front bumper is the
/// bottom-centre of its box, the reference point of the counters, so it stands
/// *on* the `north` line all through the red. An extra line, [`QUEUE_LINE`], crosses
/// the inbound lanes one car length and one standing gap (62 px) upstream: where
/// the second vehicle stands when the first is a car.
pub fn stop_and_go() -> IntersectionSpec {
    let mut spec = IntersectionSpec::default();
    for a in [Approach::East, Approach::South, Approach::West] {
        spec.approaches.get_mut(a).rate_veh_h = 0.0;
    }
    spec.approaches.north.rate_veh_h = 500.0;
    spec.signal = SignalPlan {
        phases: vec![
            PhaseSpec { green: vec![Approach::North], green_s: 3.0 },
            PhaseSpec { green: vec![Approach::East, Approach::West], green_s: 12.0 },
        ],
        amber_s: 3.0,
        all_red_s: 2.0,
        offset_s: 0.0,
    };
    let [_, hy] = spec.junction_half_size();
    let [cx, cy] = spec.center_px();
    let (w, h) = (f64::from(spec.width), f64::from(spec.height));
    let y = (cy - hy - 62.0) / h;
    let lanes = f64::from(spec.approaches.north.lanes_in) * spec.lane_width_px;
    // Drawn west to east: southbound (inbound) traffic crosses it forward.
    spec.extra_lines.push(CountingLine::new(QUEUE_LINE, [(cx - lanes) / w, y], [cx / w, y]));
    spec
}
