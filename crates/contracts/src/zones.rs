//! Zones and ground-plane calibration of a camera, in normalised image
//! coordinates, with the geometric tests behind them and their validation.
//!
//! A **zone** is a simple polygon (at least three points, no edge crossing
//! another). A track is inside a zone when its reference point (the bottom-centre
//! of its box, where the vehicle meets the road) is. A zone of kind `queue`
//! measures the queue of one lane: its vehicles that are nearly standing still.
//!
//! A **calibration** pairs four points of the image with their positions on the
//! ground in metres; the homography they define turns image positions into ground
//! positions, and so track movements into speeds. No three of the four points may
//! lie on a line (in the image or on the ground), and they must go round the
//! quadrilateral in the same order in both, or the mapping sends part of the
//! quadrilateral to infinity.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::FieldError;
use crate::geometry::NormPoint;

/// What a zone measures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneKind {
    /// Occupancy and dwell time.
    #[default]
    Zone,
    /// Occupancy and dwell time, and the queue of its lane: the vehicles inside
    /// that are nearly standing still (`analytics.speed.queue_max_kmh`).
    Queue,
}

/// A named area of a camera's image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Unique name of the zone within its camera, e.g. `"north_stop_lane_1"`.
    pub name: String,
    /// The polygon's corners in order, `[x, y]` in normalised image coordinates;
    /// at least three, no edge crossing another.
    pub polygon: Vec<[f64; 2]>,
    /// `zone` (occupancy, dwell) or `queue` (also the queue of its lane).
    #[serde(default)]
    pub kind: ZoneKind,
    /// The lane whose queue a `queue` zone measures, e.g. `"north_1"`; default the
    /// zone's name. Several queue zones may name one lane (a lane drawn in parts):
    /// a vehicle counts once per lane.
    #[serde(default)]
    pub lane: Option<String>,
}

impl ZoneConfig {
    pub fn new(name: impl Into<String>, polygon: Vec<[f64; 2]>, kind: ZoneKind) -> Self {
        Self { name: name.into(), polygon, kind, lane: None }
    }

    /// The lane of a queue zone (its `lane`, else its name); `None` for other zones.
    pub fn queue_lane(&self) -> Option<&str> {
        (self.kind == ZoneKind::Queue).then(|| self.lane.as_deref().unwrap_or(&self.name))
    }

    /// Whether `p` is inside the polygon or on its boundary (so a zone drawn to the
    /// image's edge holds the vehicles cut by the edge, whose reference point is on it).
    pub fn contains(&self, p: NormPoint) -> bool {
        polygon_contains(&self.polygon, p)
    }
}

/// A camera's ground-plane calibration: four image points and where they are on
/// the ground.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// Four points of the image, `[x, y]` in normalised image coordinates, in
    /// order round a quadrilateral on the road (e.g. the corners of a lane
    /// marking's rectangle).
    pub image: [[f64; 2]; 4],
    /// The same four points on the ground, `[x, y]` in metres in any Cartesian
    /// frame on the road's plane, in the same order.
    pub world: [[f64; 2]; 4],
}

/// Whether `p` is inside `polygon` (even-odd rule) or on its boundary.
pub fn polygon_contains(polygon: &[[f64; 2]], p: NormPoint) -> bool {
    let mut inside = false;
    let n = polygon.len();
    let q = [p.x, p.y];
    if (0..n).any(|i| {
        let (a, b) = (polygon[i], polygon[(i + 1) % n]);
        orient(a, b, q).abs() <= 1e-12 * (1.0 + (b[0] - a[0]).hypot(b[1] - a[1]))
            && q[0] >= a[0].min(b[0])
            && q[0] <= a[0].max(b[0])
            && q[1] >= a[1].min(b[1])
            && q[1] <= a[1].max(b[1])
    }) {
        return true;
    }
    for i in 0..n {
        let [xi, yi] = polygon[i];
        let [xj, yj] = polygon[(i + n - 1) % n];
        if (yi > p.y) != (yj > p.y) && p.x < (xj - xi) * (p.y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

/// Whether two simple polygons share some area: an edge of one crosses an
/// edge of the other, or a corner of one lies strictly inside the other.
/// Polygons that only touch (a shared edge or corner) do not overlap.
pub fn polygons_overlap(a: &[[f64; 2]], b: &[[f64; 2]]) -> bool {
    let edges = |p: &[[f64; 2]]| (0..p.len()).map(|i| (p[i], p[(i + 1) % p.len()])).collect::<Vec<_>>();
    let (ea, eb) = (edges(a), edges(b));
    let crossing = ea.iter().any(|&(p1, p2)| {
        eb.iter().any(|&(q1, q2)| {
            let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
            let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
            d1 * d2 < 0.0 && d3 * d4 < 0.0
        })
    });
    let strictly_inside = |p: &[[f64; 2]], q: [f64; 2]| {
        let point = NormPoint::new(q[0], q[1]);
        let on_edge = edges(p).iter().any(|&(a, b)| segments_touch(a, b, q, q));
        !on_edge && polygon_contains(p, point)
    };
    crossing || a.iter().any(|&q| strictly_inside(b, q)) || b.iter().any(|&q| strictly_inside(a, q))
}

/// Twice the signed area of the triangle `a b c` (positive when counter-clockwise
/// in a y-up frame).
fn orient(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

/// Whether the closed segments `p1 p2` and `q1 q2` share a point.
fn segments_touch(p1: [f64; 2], p2: [f64; 2], q1: [f64; 2], q2: [f64; 2]) -> bool {
    let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
    let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0)) && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0)) {
        return true;
    }
    let on = |a: [f64; 2], b: [f64; 2], p: [f64; 2], d: f64| {
        d == 0.0 && p[0] >= a[0].min(b[0]) && p[0] <= a[0].max(b[0]) && p[1] >= a[1].min(b[1]) && p[1] <= a[1].max(b[1])
    };
    on(q1, q2, p1, d1) || on(q1, q2, p2, d2) || on(p1, p2, q1, d3) || on(p1, p2, q2, d4)
}

/// The first pair of edges (`i`, `j`: edge `i` runs from point `i` to the next)
/// that cross or touch where they should not, or a repeated point; `None` for a
/// simple polygon. Adjacent edges may only share their common point.
pub fn polygon_self_intersection(polygon: &[[f64; 2]]) -> Option<(usize, usize)> {
    let n = polygon.len();
    let edge = |i: usize| (polygon[i], polygon[(i + 1) % n]);
    for i in 0..n {
        for j in i + 1..n {
            if polygon[i] == polygon[j] {
                return Some((i, j));
            }
            let adjacent = j == i + 1 || (i == 0 && j == n - 1);
            let (a1, a2) = edge(i);
            let (b1, b2) = edge(j);
            if adjacent {
                // Sharing their common point is fine; folding back onto each other is not.
                let (shared, a_other, b_other) = if j == i + 1 { (a2, a1, b2) } else { (a1, a2, b1) };
                let folds = orient(a_other, shared, b_other) == 0.0
                    && (b_other[0] - shared[0]) * (a_other[0] - shared[0])
                        + (b_other[1] - shared[1]) * (a_other[1] - shared[1])
                        > 0.0;
                if folds && n > 3 {
                    return Some((i, j));
                }
                continue;
            }
            if segments_touch(a1, a2, b1, b2) {
                return Some((i, j));
            }
        }
    }
    None
}

/// Three of the four points (indices) that lie on a line, within a tolerance
/// relative to the points' spread; `None` when no three do.
pub fn collinear_triple(points: &[[f64; 2]; 4]) -> Option<[usize; 3]> {
    let spread =
        points.iter().flat_map(|a| points.iter().map(move |b| (a[0] - b[0]).hypot(a[1] - b[1]))).fold(0.0, f64::max);
    if spread == 0.0 {
        return Some([0, 1, 2]);
    }
    // A triangle whose height is under 0.5 % of the spread is degenerate.
    let tol = 0.005 * spread * spread;
    [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]]
        .into_iter()
        .find(|&[a, b, c]| orient(points[a], points[b], points[c]).abs() < tol)
}

/// Checks a camera's zones; `at` makes a field's path, e.g. `cameras[0].zones`.
pub(crate) fn validate_zones(zones: &[ZoneConfig], at: &str, errs: &mut Vec<FieldError>) {
    let mut bad =
        |field: String, value: String, reason: &str| errs.push(FieldError { field, value, reason: reason.to_owned() });
    let mut names = std::collections::HashSet::new();
    for (j, z) in zones.iter().enumerate() {
        let f = |name: &str| format!("{at}[{j}].{name}");
        if z.name.trim().is_empty() {
            bad(f("name"), format!("{:?}", z.name), "must not be empty");
        } else if !names.insert(z.name.as_str()) {
            bad(f("name"), format!("{:?}", z.name), "zone names must be unique per camera");
        }
        for (field, label) in [("name", Some(&z.name)), ("lane", z.lane.as_ref())] {
            if let Some(n) = label.map(|l| l.chars().count()).filter(|&n| n > crate::config::MAX_LABEL_CHARS) {
                bad(f(field), format!("{n} characters"), "at most 64 characters");
            }
        }
        if let Some(lane) = &z.lane {
            if lane.trim().is_empty() {
                bad(f("lane"), format!("{lane:?}"), "must not be empty");
            } else if z.kind != ZoneKind::Queue {
                bad(f("lane"), format!("{lane:?}"), "only a zone of kind \"queue\" has a lane");
            }
        }
        if z.polygon.len() < 3 {
            bad(f("polygon"), format!("{:?}", z.polygon), "a polygon needs at least 3 points");
            continue;
        }
        if z.polygon.len() > 64 {
            bad(f("polygon"), format!("{} points", z.polygon.len()), "at most 64 points");
            continue;
        }
        let mut coords_ok = true;
        for (k, p) in z.polygon.iter().enumerate() {
            if !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
                bad(format!("{at}[{j}].polygon[{k}]"), format!("{p:?}"), "coordinates are normalised: each in [0, 1]");
                coords_ok = false;
            }
        }
        if !coords_ok {
            continue;
        }
        let n = z.polygon.len();
        let area2: f64 = (0..n).map(|i| orient([0.0, 0.0], z.polygon[i], z.polygon[(i + 1) % n])).sum();
        if let Some((a, b)) = polygon_self_intersection(&z.polygon) {
            bad(
                f("polygon"),
                format!("{:?}", z.polygon),
                &format!(
                    "not a simple polygon: edge {a} (points {a}-{}) and edge {b} (points {b}-{}) cross or touch; \
                     list the corners in order round the area",
                    (a + 1) % n,
                    (b + 1) % n
                ),
            );
        } else if area2.abs() < 1e-8 {
            bad(f("polygon"), format!("{:?}", z.polygon), "the polygon has no area (its points lie on a line)");
        }
    }
}

/// Checks a camera's calibration; `at` is its field's path, e.g. `cameras[0].calibration`.
pub(crate) fn validate_calibration(c: &CalibrationConfig, at: &str, errs: &mut Vec<FieldError>) {
    let mut bad = |field: String, value: String, reason: String| errs.push(FieldError { field, value, reason });
    let mut ok = true;
    for (k, p) in c.image.iter().enumerate() {
        if !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)) {
            bad(format!("{at}.image[{k}]"), format!("{p:?}"), "coordinates are normalised: each in [0, 1]".into());
            ok = false;
        }
    }
    for (k, p) in c.world.iter().enumerate() {
        if !p.iter().all(|v| v.is_finite() && v.abs() <= 100_000.0) {
            bad(format!("{at}.world[{k}]"), format!("{p:?}"), "metres: finite, within 100 km of the origin".into());
            ok = false;
        }
    }
    if !ok {
        return;
    }
    let mut degenerate = false;
    for (field, pts) in [("image", &c.image), ("world", &c.world)] {
        if let Some([a, b, d]) = collinear_triple(pts) {
            degenerate = true;
            bad(
                format!("{at}.{field}"),
                format!("{pts:?}"),
                format!(
                    "points {a}, {b} and {d} lie on a line, so the four points define no ground plane; \
                     pick four points no three of which are in a line (e.g. the corners of a rectangle on the road)"
                ),
            );
        }
    }
    if degenerate {
        return;
    }
    // A homography keeps every triangle's orientation, up to one sign for all of
    // them, exactly when no point of the quadrilateral goes through infinity.
    let triples = [[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]];
    let signs: Vec<bool> = triples
        .iter()
        .map(|&[a, b, d]| {
            (orient(c.image[a], c.image[b], c.image[d]) > 0.0) == (orient(c.world[a], c.world[b], c.world[d]) > 0.0)
        })
        .collect();
    if !signs.iter().all(|&s| s == signs[0]) {
        bad(
            format!("{at}.world"),
            format!("{:?}", c.world),
            format!(
                "the points are not in the same order round the quadrilateral as `image` {:?}; list both in the same order",
                c.image
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Vec<[f64; 2]> {
        vec![[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
    }

    #[test]
    fn polygons_overlap_when_they_share_area_not_when_they_touch() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let shifted = |dx: f64, dy: f64| square.map(|[x, y]| [x + dx, y + dy]);
        assert!(polygons_overlap(&square, &shifted(0.5, 0.5)), "corners inside each other");
        assert!(!polygons_overlap(&square, &shifted(1.0, 0.0)), "a shared edge");
        assert!(!polygons_overlap(&square, &shifted(1.0, 1.0)), "a shared corner");
        assert!(!polygons_overlap(&square, &shifted(2.0, 0.0)), "apart");
        let inner = [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]];
        assert!(polygons_overlap(&square, &inner) && polygons_overlap(&inner, &square), "one inside the other");
        // A cross: the bars cross without a corner of either inside the other.
        let wide = [[-1.0, 0.4], [2.0, 0.4], [2.0, 0.6], [-1.0, 0.6]];
        let tall = [[0.4, -1.0], [0.6, -1.0], [0.6, 2.0], [0.4, 2.0]];
        assert!(polygons_overlap(&wide, &tall));
        // An L around the square's corner touches it along two edges only.
        let l = [[1.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 1.0], [1.0, 1.0]];
        assert!(!polygons_overlap(&square, &l));
    }

    #[test]
    fn contains_by_the_even_odd_rule() {
        let z = ZoneConfig::new("z", square(), ZoneKind::Zone);
        assert!(z.contains(NormPoint::new(0.3, 0.3)));
        assert!(!z.contains(NormPoint::new(0.6, 0.3)));
        assert!(!z.contains(NormPoint::new(0.3, 0.05)));
        // The boundary is inside: a zone drawn to the image's edge holds what is cut by it.
        let edge = ZoneConfig::new("e", vec![[0.1, 0.5], [0.5, 0.5], [0.5, 1.0], [0.1, 1.0]], ZoneKind::Zone);
        assert!(edge.contains(NormPoint::new(0.3, 1.0)) && edge.contains(NormPoint::new(0.1, 0.7)));
        assert!(!edge.contains(NormPoint::new(0.6, 1.0)));
        // A concave "L".
        let l = [[0.0, 0.0], [0.4, 0.0], [0.4, 0.2], [0.2, 0.2], [0.2, 0.6], [0.0, 0.6]];
        assert!(polygon_contains(&l, NormPoint::new(0.1, 0.5)));
        assert!(!polygon_contains(&l, NormPoint::new(0.3, 0.5)));
    }

    #[test]
    fn self_intersections_are_found() {
        assert_eq!(polygon_self_intersection(&square()), None);
        let bow_tie = [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]];
        assert_eq!(polygon_self_intersection(&bow_tie), Some((0, 2)));
        let repeated = [[0.1, 0.1], [0.5, 0.1], [0.1, 0.1], [0.3, 0.5]];
        assert!(polygon_self_intersection(&repeated).is_some());
        // A spike folding back along its own edge.
        let spike = [[0.1, 0.1], [0.5, 0.1], [0.3, 0.1], [0.3, 0.5]];
        assert!(polygon_self_intersection(&spike).is_some());
        let l = [[0.0, 0.0], [0.4, 0.0], [0.4, 0.2], [0.2, 0.2], [0.2, 0.6], [0.0, 0.6]];
        assert_eq!(polygon_self_intersection(&l), None);
    }

    #[test]
    fn collinear_points_are_found() {
        assert_eq!(collinear_triple(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), None);
        assert_eq!(collinear_triple(&[[0.0, 0.0], [1.0, 0.0], [2.0, 0.001], [0.0, 1.0]]), Some([0, 1, 2]));
        assert_eq!(collinear_triple(&[[0.0, 0.0], [1.0, 1.0], [0.5, 0.0], [2.0, 2.0]]), Some([0, 1, 3]));
    }

    #[test]
    fn calibration_errors_name_the_field_and_say_why() {
        let good = CalibrationConfig {
            image: [[0.3, 0.6], [0.7, 0.6], [0.9, 0.9], [0.1, 0.9]],
            world: [[0.0, 0.0], [3.5, 0.0], [3.5, 10.0], [0.0, 10.0]],
        };
        let check = |c: &CalibrationConfig| {
            let mut errs = Vec::new();
            validate_calibration(c, "cameras[0].calibration", &mut errs);
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        };
        assert!(check(&good).is_empty());
        let mut line = good.clone();
        line.world = [[0.0, 0.0], [3.5, 0.0], [7.0, 0.0], [0.0, 10.0]];
        let errs = check(&line);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("cameras[0].calibration.world = [[0.0, 0.0], [3.5, 0.0], [7.0, 0.0]"), "{errs:?}");
        assert!(errs[0].contains("points 0, 1 and 2 lie on a line"), "{errs:?}");
        let mut crossed = good.clone();
        crossed.world.swap(2, 3);
        let errs = check(&crossed);
        assert!(errs[0].contains("not in the same order"), "{errs:?}");
        // Mirrored (same order, other handedness) is a valid calibration.
        let mut mirrored = good.clone();
        mirrored.world = [[0.0, 0.0], [-3.5, 0.0], [-3.5, 10.0], [0.0, 10.0]];
        assert!(check(&mirrored).is_empty());
        let mut outside = good;
        outside.image[1] = [1.2, 0.6];
        assert_eq!(
            check(&outside),
            ["cameras[0].calibration.image[1] = [1.2, 0.6]: coordinates are normalised: each in [0, 1]"]
        );
    }

    const CAMERA: &str = r#"
        [[cameras]]
        id = "cam-1"
        intersection = "main-and-5th"
        source = "clip.mp4"
        [[cameras.zones]]
        name = "north_q1"
        kind = "queue"
        lane = "north_1"
        polygon = [[0.44, 0.0], [0.47, 0.0], [0.47, 0.37], [0.44, 0.37]]
        [[cameras.zones]]
        name = "box"
        polygon = [[0.4, 0.4], [0.6, 0.4], [0.6, 0.6], [0.4, 0.6]]
        [cameras.calibration]
        image = [[0.3, 0.6], [0.7, 0.6], [0.9, 0.9], [0.1, 0.9]]
        world = [[0.0, 0.0], [3.5, 0.0], [3.5, 10.0], [0.0, 10.0]]
    "#;

    fn errors(text: &str) -> Vec<String> {
        match crate::PipelineConfig::from_toml_str(text, "x", None) {
            Ok(_) => Vec::new(),
            Err(crate::ConfigError::Invalid { errors, .. }) => errors.iter().map(|e| e.to_string()).collect(),
            Err(e) => vec![e.to_string()],
        }
    }

    #[test]
    fn zones_and_calibration_parse_with_defaults() {
        let cfg = crate::PipelineConfig::from_toml_str(CAMERA, "x", None).unwrap();
        let cam = &cfg.cameras[0];
        assert_eq!(cam.zones.len(), 2);
        assert_eq!(
            (cam.zones[0].queue_lane(), cam.zones[1].kind, cam.zones[1].queue_lane()),
            (Some("north_1"), ZoneKind::Zone, None)
        );
        assert_eq!(cam.calibration.as_ref().unwrap().world[2], [3.5, 10.0]);
        assert!(errors(&CAMERA.replace("kind = \"queue\"", "kind = \"queues\"")).iter().any(|e| e.contains("queues")));
    }

    #[test]
    fn bad_zones_name_the_field_and_the_value() {
        let text = CAMERA
            .replace("name = \"box\"", "name = \"north_q1\"")
            .replace("[0.6, 0.4], [0.6, 0.6]", "[0.6, 0.6], [0.6, 0.4]")
            .replace("[0.47, 0.0], [0.47, 0.37]", "[1.47, 0.0], [0.47, 0.37]");
        let errs = errors(&text);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(errs[0], "cameras[0].zones[0].polygon[1] = [1.47, 0.0]: coordinates are normalised: each in [0, 1]");
        assert_eq!(errs[1], "cameras[0].zones[1].name = \"north_q1\": zone names must be unique per camera");
        assert!(errs[2].starts_with("cameras[0].zones[1].polygon = [[0.4, 0.4], [0.6, 0.6], [0.6, 0.4], [0.4, 0.6]]: not a simple polygon: edge 0"), "{}", errs[2]);
        let two = CAMERA.replace("[0.44, 0.0], [0.47, 0.0], [0.47, 0.37], [0.44, 0.37]", "[0.44, 0.0], [0.47, 0.0]");
        assert_eq!(
            errors(&two),
            ["cameras[0].zones[0].polygon = [[0.44, 0.0], [0.47, 0.0]]: a polygon needs at least 3 points"]
        );
        let lane = CAMERA.replace("name = \"box\"", "name = \"box\"\nlane = \"x\"");
        assert_eq!(errors(&lane), ["cameras[0].zones[1].lane = \"x\": only a zone of kind \"queue\" has a lane"]);
        let collinear = CAMERA.replace("[0.9, 0.9], [0.1, 0.9]", "[0.9, 0.6], [0.1, 0.9]");
        let errs = errors(&collinear);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("cameras[0].calibration.image = [[0.3, 0.6], [0.7, 0.6], [0.9, 0.6], [0.1, 0.9]]: points 0, 1 and 2 lie on a line"), "{}", errs[0]);
    }
}
