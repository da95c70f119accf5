//! Non-maximum suppression.

use streetscope_contracts::BBox;

/// A candidate box before suppression, in model-input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BBox,
    pub score: f32,
    pub class_id: u32,
}

/// Keeps the highest-scoring boxes, removing any box whose IoU with a kept box
/// exceeds `iou`. With `class_agnostic` false, only boxes of the same class
/// suppress each other. Returns at most `max_det` boxes, best first. Ties in score
/// keep the earlier candidate (stable), so the result is deterministic.
pub fn nms(mut cands: Vec<Candidate>, iou: f32, class_agnostic: bool, max_det: usize) -> Vec<Candidate> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Candidate> = Vec::with_capacity(cands.len().min(max_det));
    for c in cands {
        if kept.len() >= max_det {
            break;
        }
        let suppressed = kept.iter().any(|k| (class_agnostic || k.class_id == c.class_id) && k.bbox.iou(&c.bbox) > iou);
        if !suppressed {
            kept.push(c);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f32, score: f32, class_id: u32) -> Candidate {
        Candidate { bbox: BBox::new(x, 0.0, x + 10.0, 10.0), score, class_id }
    }

    #[test]
    fn suppresses_overlapping_boxes_of_the_same_class() {
        let out = nms(vec![c(0.0, 0.5, 1), c(1.0, 0.9, 1), c(50.0, 0.3, 1)], 0.5, false, 100);
        assert_eq!(out, vec![c(1.0, 0.9, 1), c(50.0, 0.3, 1)]);
    }

    #[test]
    fn class_aware_keeps_overlaps_of_other_classes_and_agnostic_does_not() {
        let input = vec![c(0.0, 0.9, 1), c(1.0, 0.6, 4)];
        assert_eq!(nms(input.clone(), 0.5, false, 100).len(), 2);
        assert_eq!(nms(input, 0.5, true, 100), vec![c(0.0, 0.9, 1)]);
    }

    #[test]
    fn iou_at_the_threshold_is_kept() {
        // IoU of boxes offset by 10/3 is exactly 0.5: only IoU > threshold suppresses.
        let a = Candidate { bbox: BBox::new(0.0, 0.0, 30.0, 10.0), score: 0.9, class_id: 0 };
        let b = Candidate { bbox: BBox::new(10.0, 0.0, 40.0, 10.0), score: 0.8, class_id: 0 };
        assert!((a.bbox.iou(&b.bbox) - 0.5).abs() < 1e-6);
        assert_eq!(nms(vec![a, b], 0.5, true, 100).len(), 2);
    }

    #[test]
    fn max_det_and_stable_ties() {
        let out = nms(vec![c(0.0, 0.5, 0), c(100.0, 0.5, 0), c(200.0, 0.5, 0)], 0.5, true, 2);
        assert_eq!(out, vec![c(0.0, 0.5, 0), c(100.0, 0.5, 0)]);
    }
}
