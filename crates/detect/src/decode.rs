//! Decoding the heads' outputs into candidate boxes (model-input pixels).

use streetscope_contracts::BBox;

use crate::nms::Candidate;

/// Decodes one image of a detect or segment head laid out `[channels, anchors]`
/// (row-major): rows 0-3 are `cx, cy, w, h`, rows `4..4+nc` class scores; any
/// further rows (mask coefficients) are ignored. Keeps anchors whose best class
/// score is above `conf` (strictly, as Ultralytics does).
pub fn decode_anchors(out: &[f32], channels: usize, nc: usize, conf: f32) -> Vec<Candidate> {
    assert!(channels >= 4 + nc && out.len().is_multiple_of(channels), "output layout does not match the head");
    let n = out.len() / channels;
    // Class-major sweep: contiguous rows, so the max over classes vectorises.
    let mut best = out[4 * n..5 * n].to_vec();
    let mut arg = vec![0u32; n];
    for c in 1..nc {
        let row = &out[(4 + c) * n..(5 + c) * n];
        for ((b, a), &s) in best.iter_mut().zip(arg.iter_mut()).zip(row) {
            if s > *b {
                *b = s;
                *a = c as u32;
            }
        }
    }
    let mut cands = Vec::new();
    for (i, (&score, &class_id)) in best.iter().zip(&arg).enumerate() {
        if score > conf {
            let bbox = BBox::from_cxcywh(out[i], out[n + i], out[2 * n + i], out[3 * n + i]);
            cands.push(Candidate { bbox, score, class_id });
        }
    }
    cands
}

/// Decodes one image of an end-to-end head `[K, 6]`: `x1, y1, x2, y2, score, class`.
pub fn decode_end_to_end(out: &[f32], nc: usize, conf: f32) -> Vec<Candidate> {
    out.chunks_exact(6)
        .filter(|r| r[4] > conf && r[5] >= 0.0 && (r[5] as usize) < nc)
        .map(|r| Candidate { bbox: BBox::new(r[0], r[1], r[2], r[3]), score: r[4], class_id: r[5] as u32 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a `[channels, n]` output from per-anchor columns.
    fn layout(cols: &[Vec<f32>]) -> Vec<f32> {
        let ch = cols[0].len();
        (0..ch).flat_map(|c| cols.iter().map(move |col| col[c])).collect()
    }

    #[test]
    fn detect_head_decodes_boxes_and_best_class() {
        let out = layout(&[
            vec![100.0, 50.0, 20.0, 10.0, 0.1, 0.8, 0.3],
            vec![10.0, 10.0, 4.0, 4.0, 0.2, 0.1, 0.15], // below conf
            vec![300.0, 200.0, 40.0, 60.0, 0.6, 0.1, 0.65],
        ]);
        let c = decode_anchors(&out, 7, 3, 0.25);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], Candidate { bbox: BBox::new(90.0, 45.0, 110.0, 55.0), score: 0.8, class_id: 1 });
        assert_eq!(c[1].class_id, 2);
        assert_eq!(c[1].bbox, BBox::new(280.0, 170.0, 320.0, 230.0));
    }

    #[test]
    fn segment_head_ignores_mask_coefficients() {
        // 4 box + 2 classes + 3 mask coefficients (large values that must not be read as scores).
        let out = layout(&[vec![50.0, 50.0, 10.0, 10.0, 0.9, 0.1, 5.0, 5.0, 5.0]]);
        let c = decode_anchors(&out, 9, 2, 0.25);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].class_id, c[0].score), (0, 0.9));
    }

    #[test]
    fn end_to_end_head() {
        let out = [10.0, 20.0, 30.0, 40.0, 0.9, 2.0, 0.0, 0.0, 1.0, 1.0, 0.1, 0.0, 1.0, 1.0, 2.0, 2.0, 0.9, 7.0];
        let c = decode_end_to_end(&out, 3, 0.25);
        assert_eq!(c, vec![Candidate { bbox: BBox::new(10.0, 20.0, 30.0, 40.0), score: 0.9, class_id: 2 }]);
    }
}
