"""The whole pipeline as a Python user writes it today, to hold `streetscope run`
against: OpenCV decode, numpy letterbox, ONNX Runtime's Python binding, NMS
(OpenCV's), Roboflow `trackers` ByteTrack and supervision `LineZone` counting.

    python tools/python/pipeline_reference.py CLIP --truth CLIP.truth.json \\
        [--model M] [--threads 2] [--sample-fps 25]

Every frame is detected when --sample-fps is the clip's rate (else frames are
taken at that rate, as Streetscope samples). The session is configured as such a
script does: `intra_op_num_threads`, `inter_op_num_threads = 1`, all else
default. Counting lines come from the clip's ground truth (normalised
coordinates), ByteTrack is configured as Streetscope's tracker defaults
(crates/contracts/src/config.rs), scaled to the sampling rate. Prints one JSON
line: frames, seconds (wall, whole run after the model is loaded and run once), frames/s, and
crossings per line and direction ("forward" is supervision's "out").
"""

import argparse
import json
import os
import sys
import time
from collections import Counter

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv
from trackers import ByteTrackTracker

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_ref  # noqa: E402


def default_model():
    cache = os.environ.get("STREETSCOPE_CACHE") or os.path.expanduser("~/.cache/streetscope")
    # The detector's default (set-up makes it from the original, which stays beside it).
    return os.environ.get("STREETSCOPE_MODEL") or os.path.join(cache, "models", "yolo11n_det_fp16.onnx")


def letterbox(bgr, size, u8=False):
    """Ultralytics' LetterBox(center=True): returns the RGB CHW float tensor (for a
    model with a uint8 input, the RGB HWC bytes) and (scale, pad_x, pad_y) to map
    boxes back."""
    h, w = bgr.shape[:2]
    r = min(size / h, size / w)
    sw, sh = int(round(w * r)), int(round(h * r))
    px, py = int(round((size - sw) / 2 - 0.1)), int(round((size - sh) / 2 - 0.1))
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[py : py + sh, px : px + sw] = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR)
    if u8:
        return np.ascontiguousarray(canvas[None, :, :, ::-1]), (sw / w, sh / h, px, py)
    x = canvas[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x), (sw / w, sh / h, px, py)


def detect(sess, name, x, geom, nc, conf, iou, src_w, src_h):
    out = sess.run(None, {name: x})[0][0]  # [4 + nc (+ masks), anchors]
    cls = out[4 : 4 + nc]
    score = cls.max(axis=0)
    keep = score > conf
    if not keep.any():
        return sv.Detections.empty()
    cx, cy, bw, bh = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    score, cid = score[keep], cls[:, keep].argmax(axis=0)
    idx = cv2.dnn.NMSBoxes(np.stack([cx - bw / 2, cy - bh / 2, bw, bh], 1).tolist(), score.tolist(), conf, iou)
    idx = np.asarray(idx, dtype=int).reshape(-1)
    sx, sy, px, py = geom
    xyxy = np.stack(
        [(cx[idx] - bw[idx] / 2 - px) / sx, (cy[idx] - bh[idx] / 2 - py) / sy, (cx[idx] + bw[idx] / 2 - px) / sx, (cy[idx] + bh[idx] / 2 - py) / sy],
        1,
    )
    xyxy = np.clip(xyxy, 0, [src_w, src_h, src_w, src_h]).astype(np.float32)
    return sv.Detections(xyxy=xyxy, confidence=score[idx].astype(np.float32), class_id=cid[idx].astype(int))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip")
    p.add_argument("--truth", required=True, help="the clip's ground truth (its counting lines)")
    p.add_argument("--model", default=default_model())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sample-fps", type=float, default=25.0)
    p.add_argument("--conf", type=float, default=0.25)
    p.add_argument("--iou", type=float, default=0.7)
    p.add_argument("--provider", choices=["cpu", "openvino"], default="cpu",
                   help="openvino: ONNX Runtime's OpenVINO build (the onnxruntime-openvino wheel first on "
                        "PYTHONPATH), device CPU, f32, the same threads")
    args = p.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    if args.provider == "openvino":
        ov = {"device_type": "CPU", "num_of_threads": str(args.threads),
              "load_config": json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": "f32"}})}
        sess = ort.InferenceSession(args.model, so, providers=[("OpenVINOExecutionProvider", ov)])
    else:
        sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    u8 = inp.type == "tensor(uint8)"  # [1, size, size, 3], scaled inside the graph
    size = inp.shape[1] if u8 else inp.shape[2]
    # One run on a grey picture before the clock starts, as `streetscope run`
    # warms its detector up before its own (ONNX Runtime's first run allocates
    # its arena and is slower than the rest).
    sess.run(None, {inp.name: letterbox(np.full((size, size, 3), 114, np.uint8), size, u8)[0]})
    meta = sess.get_modelmeta().custom_metadata_map
    names = yolo_ref.parse_names(meta["names"])
    truth = json.load(open(args.truth))

    cap = cv2.VideoCapture(args.clip)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    rate = min(args.sample_fps, fps)
    # Streetscope's tracker defaults, in frames at the sampling rate.
    tracker = ByteTrackTracker(
        frame_rate=rate,
        lost_track_buffer=15,
        track_activation_threshold=0.6,
        high_conf_det_threshold=0.5,
        minimum_consecutive_frames=3,
        minimum_iou_threshold=0.3,
    )
    corners = [sv.Position.TOP_LEFT, sv.Position.TOP_RIGHT, sv.Position.BOTTOM_LEFT, sv.Position.BOTTOM_RIGHT]
    zones = [
        (ln["name"], sv.LineZone(start=sv.Point(ln["start"][0] * w, ln["start"][1] * h), end=sv.Point(ln["end"][0] * w, ln["end"][1] * h), triggering_anchors=corners))
        for ln in truth["lines"]
    ]
    counts = Counter()
    started = time.perf_counter()
    decoded = processed = 0
    next_t = 0.0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        t = decoded / fps
        decoded += 1
        if t + 1e-9 < next_t:
            continue
        next_t += 1.0 / rate
        x, geom = letterbox(bgr, size, u8)
        det = detect(sess, inp.name, x, geom, len(names), args.conf, args.iou, w, h)
        tracked = tracker.update(det)
        for name, z in zones:
            crossed_in, crossed_out = z.trigger(tracked)
            counts[(name, "forward")] += int(np.count_nonzero(crossed_out))
            counts[(name, "backward")] += int(np.count_nonzero(crossed_in))
        processed += 1
    secs = time.perf_counter() - started
    print(
        json.dumps(
            {
                "side": "python",
                "frames": processed,
                "decoded": decoded,
                "seconds": round(secs, 3),
                "fps": round(processed / secs, 3),
                "crossings": {f"{k[0]}/{k[1]}": v for k, v in sorted(counts.items())},
                "total_crossings": sum(counts.values()),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
