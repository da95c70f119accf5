"""A plain numpy reference of Ultralytics' YOLO post-processing, shared by the
test-model generator and the detector reference.

It follows `ultralytics.utils.nms.non_max_suppression` (8.4) for one image with
`multi_label=False`: the best class of each anchor, a confidence threshold
(`score > conf`, strictly, as Ultralytics does), centre/size to corners, greedy
NMS by descending score in which a box is suppressed when its IoU with a kept box
is greater than `iou` (of the same class unless class-agnostic), at most
`max_det` boxes. End-to-end heads (`[K, 6]`) are only thresholded.
"""

import numpy as np


def decode_anchors(out, nc, conf):
    """`out` is one image of a detect/segment head, `[channels, anchors]`.

    Returns (boxes xyxy float32 [n, 4], scores float32 [n], classes int [n]) of the
    anchors above `conf`, in anchor order. Rows after `4 + nc` (mask coefficients)
    are ignored.
    """
    out = np.asarray(out, dtype=np.float32)
    cls = out[4 : 4 + nc]
    best = cls.max(axis=0)
    arg = cls.argmax(axis=0)  # first of tied classes, like torch.max
    keep = np.nonzero(best > np.float32(conf))[0]
    cx, cy, w, h = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    two = np.float32(2.0)
    boxes = np.stack([cx - w / two, cy - h / two, cx + w / two, cy + h / two], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), best[keep], arg[keep]


def decode_end_to_end(out, conf):
    """`out` is one image of an end-to-end head, `[K, 6]` of x1, y1, x2, y2, score, class."""
    out = np.asarray(out, dtype=np.float32)
    keep = np.nonzero(out[:, 4] > np.float32(conf))[0]
    return out[keep, :4], out[keep, 4], out[keep, 5].astype(np.int64)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union <= 0 else inter / union


def nms(boxes, scores, classes, iou_thres, agnostic, max_det=300):
    """Indices kept, best first; equal scores keep anchor order (stable sort)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    kept = []
    for i in order:
        if len(kept) >= max_det:
            break
        if any((agnostic or classes[k] == classes[i]) and iou(boxes[k], boxes[i]) > iou_thres for k in kept):
            continue
        kept.append(int(i))
    return kept


def postprocess(outputs, head, nc, conf, iou_thres, agnostic, max_det=300):
    """Detections of image 0 in model-input pixels: list of (class_id, score, [x1, y1, x2, y2])."""
    first = np.asarray(outputs[0])[0]
    if head == "end2end":
        boxes, scores, classes = decode_end_to_end(first, conf)
        order = list(range(min(len(scores), max_det)))
    else:
        boxes, scores, classes = decode_anchors(first, nc, conf)
        order = nms(boxes, scores, classes, iou_thres, agnostic, max_det)
    return [(int(classes[i]), float(scores[i]), [float(v) for v in boxes[i]]) for i in order]


def parse_names(text):
    """Ultralytics writes `names` as a Python dict repr."""
    import ast

    d = ast.literal_eval(text)
    return [d[i] for i in range(len(d))]
