//! Ground-truth geometry of counting lines, written independently of the
//! product's line test ([`crate::CountingLine::crossing`] and its dead band): the
//! simulator's and the test clips' truth use only this, so a bug in the
//! product's line test cannot hide in its own truth.

use crate::{CountingLine, Direction, NormPoint};

/// Where a point lies against a counting line, by the truth's own geometry (not
/// the product's [`CountingLine::side`]): the component of `p - start` along the
/// line's left-hand normal on screen (y grows downwards), in the line's length
/// units; positive on the left-hand side walking `start` -> `end`, 0 on the line.
pub fn truth_side(line: &CountingLine, p: NormPoint) -> f64 {
    let (ex, ey) = (line.end[0] - line.start[0], line.end[1] - line.start[1]);
    // Walking along (ex, ey) on a screen whose y points down, the left hand
    // points along (ey, -ex).
    (p.x - line.start[0]) * ey - (p.y - line.start[1]) * ex
}

/// Whether the movement from `a` to `b` crosses the segment of `line`, and in
/// which direction, by parametric intersection: the movement `a + t (b - a)` meets
/// the segment `start + u (end - start)` with `0 < t < 1` (neither point on the
/// line) and `0 <= u <= 1` (between the segment's ends, ends included); forward
/// when the movement goes from the left-hand side to the right-hand side. The
/// ground truth uses this, never the product's `CountingLine::crossing`, so a
/// bug in the product's line test cannot hide in its truth.
pub fn truth_crossing(line: &CountingLine, a: NormPoint, b: NormPoint) -> Option<Direction> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let (ex, ey) = (line.end[0] - line.start[0], line.end[1] - line.start[1]);
    let denom = dx * ey - dy * ex;
    if denom == 0.0 {
        return None; // parallel (or no movement)
    }
    let (sx, sy) = (line.start[0] - a.x, line.start[1] - a.y);
    let t = (sx * ey - sy * ex) / denom;
    let u = (sx * dy - sy * dx) / denom;
    if !(t > 0.0 && t < 1.0 && (0.0..=1.0).contains(&u)) {
        return None;
    }
    // The movement against the left-hand normal (ey, -ex): towards the right-hand side is forward.
    Some(if dx * ey - dy * ex < 0.0 { Direction::Forward } else { Direction::Backward })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f64, y: f64) -> NormPoint {
        NormPoint::new(x, y)
    }

    #[test]
    fn the_truths_own_line_test() {
        // Drawn bottom to top: rightward is forward (the clips' convention).
        let v = CountingLine::new("v", [0.5, 1.0], [0.5, 0.0]);
        assert_eq!(truth_crossing(&v, p(0.4, 0.5), p(0.6, 0.5)), Some(Direction::Forward));
        assert_eq!(truth_crossing(&v, p(0.6, 0.5), p(0.4, 0.5)), Some(Direction::Backward));
        assert!(truth_side(&v, p(0.2, 0.5)) > 0.0, "left of the screen is its left-hand side");
        // Drawn left to right: downward is forward.
        let h = CountingLine::new("h", [0.0, 0.5], [1.0, 0.5]);
        assert_eq!(truth_crossing(&h, p(0.5, 0.4), p(0.5, 0.6)), Some(Direction::Forward));
        assert_eq!(truth_crossing(&h, p(0.5, 0.6), p(0.5, 0.4)), Some(Direction::Backward));
        // Ending on the line is not crossing yet; starting on it neither.
        assert_eq!(truth_crossing(&v, p(0.4, 0.5), p(0.5, 0.5)), None);
        assert_eq!(truth_crossing(&v, p(0.5, 0.5), p(0.6, 0.5)), None);
        // Past the segment's end; through its end point (included).
        let seg = CountingLine::new("s", [0.5, 0.2], [0.5, 0.8]);
        assert_eq!(truth_crossing(&seg, p(0.4, 0.9), p(0.6, 0.9)), None);
        assert_eq!(truth_crossing(&seg, p(0.4, 0.8), p(0.6, 0.8)), Some(Direction::Backward));
        // Same side, parallel, standing still.
        assert_eq!(truth_crossing(&v, p(0.1, 0.5), p(0.4, 0.5)), None);
        assert_eq!(truth_crossing(&v, p(0.4, 0.1), p(0.4, 0.9)), None);
        assert_eq!(truth_crossing(&v, p(0.4, 0.1), p(0.4, 0.1)), None);
    }
}
