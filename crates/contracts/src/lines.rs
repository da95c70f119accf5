//! Counting lines and the geometric tests behind line crossings.
//!
//! A line is a segment from `start` to `end` in normalised image coordinates.
//! Its **forward** direction is a crossing from the left-hand side to the
//! right-hand side of someone walking along the line from `start` to `end`, as
//! seen on the screen. A line drawn from the bottom of the image to the top
//! therefore counts traffic moving to the right (east on a north-up view) as
//! forward; draw it the other way round to swap the directions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geometry::NormPoint;

/// The direction of a crossing relative to the line's orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Forward,
    Backward,
}

/// A named counting line, with a label for each direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountingLine {
    /// Unique name of the line within its camera, e.g. `"stop_line_north"`.
    pub name: String,
    /// Start of the segment, `[x, y]` in normalised image coordinates.
    pub start: [f64; 2],
    /// End of the segment, `[x, y]` in normalised image coordinates.
    pub end: [f64; 2],
    /// Label of a forward crossing (left-hand to right-hand side walking from
    /// `start` to `end`), e.g. `"eastbound"`.
    #[serde(default = "default_forward")]
    pub forward: String,
    /// Label of a backward crossing, e.g. `"westbound"`.
    #[serde(default = "default_backward")]
    pub backward: String,
}

fn default_forward() -> String {
    "in".to_owned()
}

fn default_backward() -> String {
    "out".to_owned()
}

impl CountingLine {
    pub fn new(name: impl Into<String>, start: [f64; 2], end: [f64; 2]) -> Self {
        Self { name: name.into(), start, end, forward: default_forward(), backward: default_backward() }
    }

    /// The label a user gave to `dir`.
    pub fn label(&self, dir: Direction) -> &str {
        match dir {
            Direction::Forward => &self.forward,
            Direction::Backward => &self.backward,
        }
    }

    /// Signed side of `p`: positive on the left-hand side (walking start → end,
    /// on screen, where y grows downwards), negative on the right, 0 on the line.
    pub fn side(&self, p: NormPoint) -> f64 {
        let (dx, dy) = (self.end[0] - self.start[0], self.end[1] - self.start[1]);
        // Screen coordinates have y pointing down, so the usual counter-clockwise
        // cross product is mirrored: left-hand side is where the cross product is negative.
        -(dx * (p.y - self.start[1]) - dy * (p.x - self.start[0]))
    }

    /// If the movement from `a` to `b` crosses the segment, its direction.
    ///
    /// A movement that ends exactly on the line does not cross yet; one that starts
    /// on it is taken to come from the side where `b` is not — callers keep the
    /// last point that was strictly off the line (see `aggregate`), which gives
    /// hysteresis for boxes that stand on the line.
    pub fn crossing(&self, a: NormPoint, b: NormPoint) -> Option<Direction> {
        let (sa, sb) = (self.side(a), self.side(b));
        if sa == 0.0 || sb == 0.0 || (sa > 0.0) == (sb > 0.0) {
            return None;
        }
        // The movement changes side of the infinite line; check it also passes
        // between the segment's ends (the segment's ends on opposite sides of,
        // or on, the movement's line).
        let mv = CountingLine::new("", [a.x, a.y], [b.x, b.y]);
        let (s0, s1) =
            (mv.side(NormPoint::new(self.start[0], self.start[1])), mv.side(NormPoint::new(self.end[0], self.end[1])));
        if s0 != 0.0 && s1 != 0.0 && (s0 > 0.0) == (s1 > 0.0) {
            return None;
        }
        Some(if sa > 0.0 { Direction::Forward } else { Direction::Backward })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> NormPoint {
        NormPoint::new(x, y)
    }

    #[test]
    fn bottom_to_top_line_counts_rightward_motion_as_forward() {
        let line = CountingLine::new("l", [0.5, 1.0], [0.5, 0.0]);
        assert!(line.side(p(0.2, 0.5)) > 0.0, "left of the screen is the left-hand side");
        assert_eq!(line.crossing(p(0.4, 0.5), p(0.6, 0.5)), Some(Direction::Forward));
        assert_eq!(line.crossing(p(0.6, 0.5), p(0.4, 0.5)), Some(Direction::Backward));
    }

    #[test]
    fn left_to_right_line_counts_downward_motion_as_forward() {
        // Walking east along the screen, your right hand points down the screen.
        let line = CountingLine::new("l", [0.0, 0.5], [1.0, 0.5]);
        assert_eq!(line.crossing(p(0.5, 0.4), p(0.5, 0.6)), Some(Direction::Forward));
        assert_eq!(line.crossing(p(0.5, 0.6), p(0.5, 0.4)), Some(Direction::Backward));
    }

    #[test]
    fn no_crossing_on_the_same_side_or_past_the_segment_end() {
        let line = CountingLine::new("l", [0.5, 0.2], [0.5, 0.8]);
        assert_eq!(line.crossing(p(0.1, 0.5), p(0.4, 0.5)), None);
        // Crosses the infinite line, but below the segment.
        assert_eq!(line.crossing(p(0.4, 0.9), p(0.6, 0.9)), None);
        // Diagonal movement through the segment.
        assert!(line.crossing(p(0.4, 0.1), p(0.6, 0.7)).is_some());
    }

    #[test]
    fn touching_the_line_is_not_a_crossing() {
        let line = CountingLine::new("l", [0.5, 0.0], [0.5, 1.0]);
        assert_eq!(line.crossing(p(0.4, 0.5), p(0.5, 0.5)), None);
        assert_eq!(line.crossing(p(0.5, 0.5), p(0.6, 0.5)), None);
    }

    #[test]
    fn labels_default_to_in_and_out() {
        let line: CountingLine = toml::from_str("name = 'a'\nstart = [0.0, 0.0]\nend = [1.0, 1.0]").unwrap();
        assert_eq!(line.label(Direction::Forward), "in");
        assert_eq!(line.label(Direction::Backward), "out");
    }
}
