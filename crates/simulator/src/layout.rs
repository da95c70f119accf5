//! The road network built from an [`IntersectionSpec`]: one route per inbound
//! lane and movement, each a polyline from beyond the image edge, through the
//! junction, to beyond the opposite image edge.
//!
//! A route has three parts: the inbound lane up to the stop line (shared by every
//! route that starts in that lane, so arc lengths there are comparable), the
//! connector across the junction (a straight segment, or a quadratic Bézier through
//! the corner where the two lanes' centre lines meet for a turn), and the outbound
//! lane (shared by every route that ends in it).

use crate::spec::{Approach, DrivingSide, IntersectionSpec, Movement, MAX_LANES};

/// A polyline with its cumulative arc lengths.
#[derive(Debug, Clone)]
pub(crate) struct Polyline {
    pts: Vec<[f64; 2]>,
    cum: Vec<f64>,
}

impl Polyline {
    fn new(points: Vec<[f64; 2]>) -> Self {
        let mut pts: Vec<[f64; 2]> = Vec::with_capacity(points.len());
        for p in points {
            if pts.last().is_none_or(|q| (p[0] - q[0]).hypot(p[1] - q[1]) > 1e-9) {
                pts.push(p);
            }
        }
        let mut cum = Vec::with_capacity(pts.len());
        let mut total = 0.0;
        for (i, p) in pts.iter().enumerate() {
            if i > 0 {
                total += (p[0] - pts[i - 1][0]).hypot(p[1] - pts[i - 1][1]);
            }
            cum.push(total);
        }
        Self { pts, cum }
    }

    pub(crate) fn len(&self) -> f64 {
        *self.cum.last().expect("a route has points")
    }

    /// Arc length of the `i`-th point.
    fn s_of(&self, i: usize) -> f64 {
        self.cum[i]
    }

    /// Point and unit direction at arc length `s`; beyond either end, extrapolated
    /// along the end segment.
    pub(crate) fn at(&self, s: f64) -> ([f64; 2], [f64; 2]) {
        let seg = self.cum.partition_point(|&c| c <= s).clamp(1, self.pts.len() - 1) - 1;
        let (a, b) = (self.pts[seg], self.pts[seg + 1]);
        let len = self.cum[seg + 1] - self.cum[seg];
        let dir = [(b[0] - a[0]) / len, (b[1] - a[1]) / len];
        let t = s - self.cum[seg];
        ([a[0] + dir[0] * t, a[1] + dir[1] * t], dir)
    }
}

/// One way through the junction.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) from: Approach,
    pub(crate) lane_in: u32,
    pub(crate) movement: Movement,
    pub(crate) to: Approach,
    pub(crate) lane_out: u32,
    pub(crate) path: Polyline,
    /// Arc length of the stop line (end of the inbound lane).
    pub(crate) stop_s: f64,
    /// Arc length of the start of the outbound lane.
    pub(crate) merge_s: f64,
    /// Index of the inbound lane among all inbound lanes.
    pub(crate) in_group: usize,
    /// Index of the outbound lane among all outbound lanes.
    pub(crate) out_group: usize,
}

/// Number of lane groups each way (arms x most lanes).
pub(crate) const GROUPS: usize = 4 * MAX_LANES as usize;

/// Segments of a turn's Bézier curve.
const TURN_SEGMENTS: usize = 16;

/// Road simulated beyond the image edge on outbound lanes, pixels.
const LEAD_OUT_PX: f64 = 10.0;

/// All routes of the junction.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) routes: Vec<Route>,
    /// Per inbound lane group and movement, the route, if that lane serves it.
    pub(crate) by_lane: [[Option<usize>; 3]; GROUPS],
}

pub(crate) fn in_group(a: Approach, lane: u32) -> usize {
    a.index() * MAX_LANES as usize + lane as usize
}

fn out_group(a: Approach, lane: u32) -> usize {
    a.index() * MAX_LANES as usize + lane as usize
}

impl Layout {
    /// Builds the routes of a valid spec.
    pub(crate) fn new(spec: &IntersectionSpec) -> Self {
        let [hx, hy] = spec.junction_half_size();
        let [cx, cy] = spec.center_px();
        let (w, h) = (f64::from(spec.width), f64::from(spec.height));
        let side = match spec.driving_side {
            DrivingSide::Right => 1.0,
            DrivingSide::Left => -1.0,
        };
        let lw = spec.lane_width_px;
        // Point at distance `t` from the centre along arm `a`, in lane `k` of the
        // direction whose heading is `heading`: lanes lie to the keep side of the
        // centre line, lane 0 the innermost.
        let lane_point = |a: Approach, heading: [f64; 2], k: u32, t: f64| {
            let o = a.outward();
            let right = [-heading[1], heading[0]];
            let off = side * (f64::from(k) + 0.5) * lw;
            [cx + o[0] * t + right[0] * off, cy + o[1] * t + right[1] * off]
        };
        let half_along = |a: Approach| if a.outward()[0] == 0.0 { hy } else { hx };
        let edge = |a: Approach| match a {
            Approach::North => cy,
            Approach::South => h - cy,
            Approach::West => cx,
            Approach::East => w - cx,
        };
        // The turn across the oncoming traffic uses the innermost lanes.
        let across = match spec.driving_side {
            DrivingSide::Right => Movement::Left,
            DrivingSide::Left => Movement::Right,
        };

        let mut routes = Vec::new();
        let mut by_lane = [[None; 3]; GROUPS];
        for from in Approach::ALL {
            let a = spec.approaches.get(from);
            let o = from.outward();
            let inbound = [-o[0], -o[1]];
            for m in Movement::ALL {
                let to = from.exit_for(m);
                let n_out = spec.approaches.get(to).lanes_out;
                if a.lanes_in == 0 || n_out == 0 {
                    continue;
                }
                for k in 0..a.lanes_in {
                    let lane_out = match m {
                        Movement::Straight => k.min(n_out - 1),
                        _ if m == across => 0,
                        _ => n_out - 1,
                    };
                    let serves = match m {
                        Movement::Straight => true,
                        _ if m == across => k == 0,
                        _ => k == a.lanes_in - 1,
                    };
                    if !serves {
                        continue;
                    }
                    let outward = to.outward();
                    let p_start = lane_point(from, inbound, k, edge(from) + spec.offscreen_px);
                    let p_stop = lane_point(from, inbound, k, half_along(from));
                    let p_merge = lane_point(to, outward, lane_out, half_along(to));
                    let p_end = lane_point(to, outward, lane_out, edge(to) + LEAD_OUT_PX);
                    let mut pts = vec![p_start, p_stop];
                    if m != Movement::Straight {
                        // The corner where the two lanes' centre lines meet.
                        let c = if inbound[0] == 0.0 { [p_stop[0], p_merge[1]] } else { [p_merge[0], p_stop[1]] };
                        for i in 1..TURN_SEGMENTS {
                            let t = i as f64 / TURN_SEGMENTS as f64;
                            let (u, v, x) = ((1.0 - t) * (1.0 - t), 2.0 * (1.0 - t) * t, t * t);
                            pts.push([
                                u * p_stop[0] + v * c[0] + x * p_merge[0],
                                u * p_stop[1] + v * c[1] + x * p_merge[1],
                            ]);
                        }
                    }
                    let merge_index = pts.len();
                    pts.push(p_merge);
                    pts.push(p_end);
                    let path = Polyline::new(pts);
                    let (stop_s, merge_s) = (path.s_of(1), path.s_of(merge_index));
                    by_lane[in_group(from, k)][m as usize] = Some(routes.len());
                    routes.push(Route {
                        from,
                        lane_in: k,
                        movement: m,
                        to,
                        lane_out,
                        path,
                        stop_s,
                        merge_s,
                        in_group: in_group(from, k),
                        out_group: out_group(to, lane_out),
                    });
                }
            }
        }
        Self { routes, by_lane }
    }

    /// The inbound lanes of `from` that serve movement `m`.
    pub(crate) fn lanes_for(&self, from: Approach, m: Movement) -> impl Iterator<Item = (u32, usize)> + '_ {
        (0..MAX_LANES).filter_map(move |k| self.by_lane[in_group(from, k)][m as usize].map(|r| (k, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polyline_points_and_extrapolation() {
        let p = Polyline::new(vec![[0.0, 0.0], [10.0, 0.0], [10.0, 0.0], [10.0, 5.0]]);
        assert_eq!(p.len(), 15.0);
        assert_eq!(p.at(4.0), ([4.0, 0.0], [1.0, 0.0]));
        assert_eq!(p.at(12.0), ([10.0, 2.0], [0.0, 1.0]));
        assert_eq!(p.at(-3.0), ([-3.0, 0.0], [1.0, 0.0]));
        assert_eq!(p.at(20.0), ([10.0, 10.0], [0.0, 1.0]));
    }

    #[test]
    fn default_junction_has_routes_for_every_movement_and_lanes_on_the_keep_side() {
        let spec = IntersectionSpec::default();
        let layout = Layout::new(&spec);
        // Two lanes: left from lane 0, straight from both, right from lane 1.
        assert_eq!(layout.routes.len(), 4 * 4);
        let north_straight: Vec<&Route> =
            layout.routes.iter().filter(|r| r.from == Approach::North && r.movement == Movement::Straight).collect();
        assert_eq!(north_straight.len(), 2);
        for r in north_straight {
            let (p, d) = r.path.at(r.stop_s);
            // Southbound, keeping right: west of the centre line, heading down.
            assert!(p[0] < 640.0, "{p:?}");
            assert_eq!(d, [0.0, 1.0]);
            assert_eq!(p[1], 360.0 - 100.0);
            assert_eq!(r.to, Approach::South);
        }
        let left = &layout.routes[layout.by_lane[in_group(Approach::North, 0)][0].unwrap()];
        assert_eq!(left.to, Approach::East);
        let (p, d) = left.path.at(left.merge_s + 1.0);
        assert!(p[1] > 360.0 && (d[0] - 1.0).abs() < 1e-12, "{p:?} {d:?}");
    }
}
