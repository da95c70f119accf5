"""A Python reference of the Streetscope detector (crates/detect), for comparing
the Rust side with ONNX Runtime's Python API on the very same input.

    python tools/python/reference.py --image bus.jpg [--model M]
    python tools/python/reference.py --rgb frame.rgb --geometry frame.json [--model M]

With --image the image is letterboxed as Ultralytics' LetterBox(center=True) does
(aspect kept, scaled size rounded, grey 114 padding split evenly with the odd
pixel on the right/bottom; bilinear resize, here Pillow's). For an
apples-to-apples comparison pass instead the letterboxed RGB8 bytes the Rust side
fed its model (--rgb, dst_w*dst_h*3 bytes) with their geometry (--geometry: the
JSON of streetscope_contracts::Letterbox: src_w, src_h, dst_w, dst_h, scaled_w,
scaled_h, pad_x, pad_y).

Then: /255, CHW (for a uint8 model, which scales inside its graph, the bytes
as they are, HWC), ONNX Runtime on the CPU, decode the detect/segment/end-to-end
head, NMS (class-agnostic unless --class-aware), map the boxes back to source
pixels (x_src = (x - pad_x) / (scaled_w / src_w), likewise y), clip to the image.
Prints JSON: {"letterbox": {...}, "names": [...], "detections": [{class_id,
class_name, score, box: [x1, y1, x2, y2]}]}.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnxruntime as ort

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_ref  # noqa: E402


def default_model():
    if os.environ.get("STREETSCOPE_MODEL"):
        return os.environ["STREETSCOPE_MODEL"]
    cache = os.environ.get("STREETSCOPE_CACHE") or os.path.expanduser("~/.cache/streetscope")
    return os.path.join(cache, "models", "yolo11n_seg_fp16.onnx")


def letterbox_geometry(src_w, src_h, dst_w, dst_h):
    """Ultralytics LetterBox(center=True, auto=False, scaleup=True)."""
    r = min(dst_h / src_h, dst_w / src_w)
    scaled_w, scaled_h = int(round(src_w * r)), int(round(src_h * r))
    dw, dh = (dst_w - scaled_w) / 2, (dst_h - scaled_h) / 2
    return {
        "src_w": src_w,
        "src_h": src_h,
        "dst_w": dst_w,
        "dst_h": dst_h,
        "scaled_w": scaled_w,
        "scaled_h": scaled_h,
        "pad_x": int(round(dw - 0.1)),
        "pad_y": int(round(dh - 0.1)),
    }


def letterbox_image(path, dst_w, dst_h):
    from PIL import Image

    img = Image.open(path).convert("RGB")
    g = letterbox_geometry(img.width, img.height, dst_w, dst_h)
    if (g["scaled_w"], g["scaled_h"]) != img.size:
        img = img.resize((g["scaled_w"], g["scaled_h"]), Image.BILINEAR)
    canvas = Image.new("RGB", (dst_w, dst_h), (114, 114, 114))
    canvas.paste(img, (g["pad_x"], g["pad_y"]))
    return np.asarray(canvas, dtype=np.uint8), g


def head_of(session, meta):
    """Head kind and class count, recognised as crates/detect/src/model.rs does for
    Ultralytics' exports."""
    shapes = [o.shape for o in session.get_outputs()]
    names = yolo_ref.parse_names(meta["names"]) if "names" in meta else None
    first = shapes[0]
    if first[2] == 6 and (meta.get("end2end", "").lower() == "true" or len(shapes) == 1 and first[1] > 6):
        return "end2end", len(names)
    if len(shapes) >= 2 and len(shapes[1]) == 4:
        return "segment", first[1] - 4 - shapes[1][1]
    return "detect", first[1] - 4


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_model())
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="an image file, letterboxed here")
    src.add_argument("--rgb", help="letterboxed RGB8 bytes (needs --geometry)")
    ap.add_argument("--geometry", help="JSON file of the letterbox geometry of --rgb")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--class-aware", action="store_true", help="NMS per class (default: class-agnostic)")
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--names", help="comma-separated class names replacing the metadata's")
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    # A uint8 model takes the letterboxed RGB bytes, [batch, height, width, 3].
    u8 = inp.type == "tensor(uint8)"
    dst_h, dst_w = (inp.shape[1], inp.shape[2]) if u8 else (inp.shape[2], inp.shape[3])
    meta = session.get_modelmeta().custom_metadata_map
    if not isinstance(dst_h, int) or not isinstance(dst_w, int):
        dst_h, dst_w = json.loads(meta["imgsz"])

    if args.image:
        rgb, geom = letterbox_image(args.image, dst_w, dst_h)
    else:
        if not args.geometry:
            ap.error("--rgb needs --geometry")
        with open(args.geometry) as f:
            geom = json.load(f)
        if (geom["dst_w"], geom["dst_h"]) != (dst_w, dst_h):
            sys.exit(f"geometry is {geom['dst_w']}x{geom['dst_h']}; the model takes {dst_w}x{dst_h}")
        raw = np.fromfile(args.rgb, dtype=np.uint8)
        if raw.size != dst_w * dst_h * 3:
            sys.exit(f"{args.rgb}: {raw.size} bytes, expected {dst_w * dst_h * 3}")
        rgb = raw.reshape(dst_h, dst_w, 3)

    if u8:
        x = np.ascontiguousarray(rgb[None])
    else:
        x = (rgb.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
        x = np.ascontiguousarray(x.astype(np.float16 if inp.type == "tensor(float16)" else np.float32))
    outputs = [o.astype(np.float32) for o in session.run(None, {inp.name: x})]

    head, nc = head_of(session, meta)
    names = args.names.split(",") if args.names else yolo_ref.parse_names(meta["names"])
    dets = yolo_ref.postprocess(outputs, head, nc, args.conf, args.iou, not args.class_aware, args.max_det)

    sx, sy = geom["scaled_w"] / geom["src_w"], geom["scaled_h"] / geom["src_h"]
    px, py = geom["pad_x"], geom["pad_y"]
    out = []
    for c, s, (x1, y1, x2, y2) in dets:
        box = [(x1 - px) / sx, (y1 - py) / sy, (x2 - px) / sx, (y2 - py) / sy]
        box = [min(max(v, 0.0), float(geom["src_w"] if i % 2 == 0 else geom["src_h"])) for i, v in enumerate(box)]
        out.append({"class_id": c, "class_name": names[c], "score": s, "box": box})
    json.dump({"model": args.model, "head": head, "letterbox": geom, "names": names, "detections": out}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
