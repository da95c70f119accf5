"""CPU variants of the detector's model, and how well they agree with it.

    python tools/python/model_variants.py make --model M --out DIR [--clips C...] [--only NAME]
    python tools/python/model_variants.py quant --model DET_FP32 --out V --exclude cls --method percentile
    python tools/python/model_variants.py compare --model M --variant V [--clips C...]
    python tools/python/model_variants.py counts --model M --model V [--fps 2.5 --fps 5 --fps 10]
    python tools/python/model_variants.py speed --model M [--model M2 ...] --threads 2

`make` writes (`--only det_fp16`, `det_u8` or `det_u8_batch`: that one alone,
what set-up makes; `--only det_int8_mixed`: det_fp32 and that one), from an
Ultralytics YOLO export (here an fp16 segmentation model whose input and
outputs are float32 with casts inside):

- `fp32.onnx`: the same graph in float32 (weights widened exactly, the casts
  removed).
- `det_fp16.onnx`: the original graph keeping only what boxes and classes
  need: the mask coefficients and the mask prototypes (a 160x160 branch) are
  cut off; the output is a detect head `[1, 4 + nc, anchors]`. Boxes and
  classes are the same computation, so they agree with the original.
- `det_u8.onnx`: det_fp16 taking the letterboxed frame as the JPEG decoder
  gives it, uint8 `[1, 640, 640, 3]` (RGB, NHWC), with the scaling to [0, 1]
  and the transpose to planes as the graph's first nodes (Cast, Div 255,
  Transpose): the same computation on the same values, moved from the
  detector's preprocessing into the runtime (where OpenVINO fuses it into the
  first convolution's input) — the detector's default model.
- `det_u8_batch.onnx`: det_u8 with a symbolic batch, for GPU detectors that
  batch frames across cameras (`detector.max_batch`); see batch_dynamic().
- `det_fp32.onnx`: the same cut of fp32.onnx.
- `det_int8.onnx`: det_fp32 quantised to INT8 (QDQ, per channel, static,
  calibrated on frames of the test clips) with onnxruntime.quantization,
  all but the head's decoding: it changes classes (not offered).
- `det_int8_mixed.onnx`: det_fp32 with the backbone, neck and the head's box
  branch in INT8 (QDQ, per channel, percentile calibration on 128 frames of
  the test clips) and the head's class branch and decoding in float: the CPU
  variant offered (RECIPES below; docs/benchmarks.md has its measurements).

`quant` makes one INT8 candidate of det_fp32 by a recipe given on the command
line (what stays float, per channel or per tensor, calibration method and
frames), to try recipes before naming one in RECIPES.

`compare` runs the original and a variant on frames of the test clips (every
--step-th frame, letterboxed like Ultralytics) and prints JSON: detections of
each, how many of the original's boxes the variant matches (IoU >= 0.5, any
class) and how many of those carry the same class, how many are matched with
the same class, their mean IoU, and the largest per-frame count difference.

`counts` runs `streetscope run` with each model on every clip at 2.5, 5 and
10 frames/s (the demo's configuration) and says whether the counts and turning
movements equal the first model's exactly.

`speed` times bare session.run of each model, interleaved, medians.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_ref  # noqa: E402

FP16, FP32 = TensorProto.FLOAT16, TensorProto.FLOAT


# --- making -------------------------------------------------------------------


def to_fp32(model):
    """The graph with every float16 tensor, attribute and cast made float32."""
    g = model.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == FP16:
            arr = numpy_helper.to_array(t).astype(np.float32)
            g.initializer[i].CopyFrom(numpy_helper.from_array(arr, t.name))
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type == FP16:
            vi.type.tensor_type.elem_type = FP32
    for n in g.node:
        for a in n.attribute:
            if a.name == "to" and n.op_type == "Cast" and a.i == FP16:
                a.i = FP32
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == FP16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
    # Casts float32 -> float32 are now no-ops: bypass them.
    drop = [n for n in g.node if n.op_type == "Cast" and n.attribute[0].i == FP32 and is_float(model, n.input[0])]
    outputs = {o.name for o in g.output}
    for n in drop:
        src, dst = n.input[0], n.output[0]
        g.node.remove(n)
        if dst in outputs:
            # Keep the graph output's name: rename the producer's output.
            for m in g.node:
                m.output[:] = [dst if o == src else o for o in m.output]
                m.input[:] = [dst if i == src else i for i in m.input]
        else:
            for m in g.node:
                m.input[:] = [src if i == dst else i for i in m.input]
            if src in [i.name for i in g.input]:
                pass
    return model


def is_float(model, name):
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.name == name:
            return vi.type.tensor_type.elem_type in (FP32, FP16)
    return True


def detect_only(model):
    """Boxes and classes only: the last Concat of the head loses its mask
    coefficients, the prototype output goes, dead nodes are pruned."""
    g = model.graph
    out0 = g.output[0].name
    producer = next(n for n in g.node if out0 in n.output)
    while producer.op_type == "Cast":  # an fp16 graph's output cast
        producer = next(n for n in g.node if producer.input[0] in n.output)
    if producer.op_type != "Concat" or len(producer.input) != 3:
        raise SystemExit(f"{out0} is made by {producer.op_type} with {len(producer.input)} inputs: not a YOLO segment head")
    del producer.input[2]
    stale = set(producer.output)  # shapes recorded for the old width
    for vi in [v for v in g.value_info if v.name in stale]:
        g.value_info.remove(vi)
    nc = len(yolo_ref.parse_names(meta(model)["names"]))
    dims = g.output[0].type.tensor_type.shape.dim
    dims[1].dim_value = 4 + nc
    del g.output[1:]
    # Live nodes: producers of the outputs, transitively (the exporter does not
    # keep its nodes in order, so walk producers rather than the list).
    producers = {o: n for n in g.node for o in n.output}
    live, todo, keep = set(), [o.name for o in g.output], {}
    while todo:
        name = todo.pop()
        if name in live:
            continue
        live.add(name)
        n = producers.get(name)
        if n is not None and id(n) not in keep:
            keep[id(n)] = n
            todo.extend(n.input)
    # Topological order, as the checker requires.
    ready = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    ordered, pending = [], list(keep.values())
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise SystemExit("the graph has a cycle")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    used = {i for n in g.node for i in n.input}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    vis = [v for v in g.value_info if v.name in used or v.name in live]
    del g.value_info[:]
    g.value_info.extend(vis)
    set_meta(model, "task", "detect")
    return model


def u8_input(model):
    """The model taking uint8 [N, H, W, 3] (the letterboxed RGB image as decoded)
    in place of float [N, 3, H, W] in [0, 1]: Cast, Div 255 (as the detector's
    `f32::from(v) / 255.0` and Ultralytics' `im / 255`), Transpose in front."""
    g = model.graph
    old = g.input[0]
    if old.type.tensor_type.elem_type != FP32:
        raise SystemExit(f"{old.name} is not a float32 input: fold a model that takes float32")
    n, c, h, w = old.type.tensor_type.shape.dim
    if c.dim_value != 3:
        raise SystemExit(f"{old.name} is not [batch, 3, height, width]")
    name = old.name
    # The old input becomes the Transpose's output; the new input takes its name.
    for node in g.node:
        node.input[:] = ["streetscope_chw" if i == name else i for i in node.input]
    g.initializer.append(helper.make_tensor("streetscope_255", FP32, [], [255.0]))
    for node in reversed([
        helper.make_node("Cast", [name], ["streetscope_f32"], to=FP32, name="streetscope_u8_cast"),
        helper.make_node("Div", ["streetscope_f32", "streetscope_255"], ["streetscope_scaled"], name="streetscope_u8_scale"),
        helper.make_node("Transpose", ["streetscope_scaled"], ["streetscope_chw"], perm=[0, 3, 1, 2], name="streetscope_u8_planes"),
    ]):
        g.node.insert(0, node)
    new = helper.make_tensor_value_info(name, TensorProto.UINT8, [1, 1, 1, 3])
    for dst, src in zip(new.type.tensor_type.shape.dim, (n, h, w)):
        dst.CopyFrom(src)
    g.input.remove(old)
    g.input.insert(0, new)
    return model


def batch_dynamic(model):
    """The model with a symbolic batch ("batch") where its export fixed 1, so
    that a GPU detector can run frames of several cameras at once: every
    Reshape's target shape takes its first dimension from its input (0, as
    Ultralytics' `dynamic=True` exports write it) instead of a constant 1,
    and the input's and outputs' first dimension is "batch". The same
    computation per image (batch 1 gives the same bytes out; a batch of n the
    n images' outputs up to the runtime's summation order). On OpenVINO (CPU)
    such a graph runs 14-18 % slower at batch 1 than the static one
    (docs/benchmarks.md), so CPU detectors keep det_u8."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    made = {}
    for node in g.node:
        if node.op_type != "Reshape":
            continue
        shape = node.input[1]
        if shape not in made:
            if shape not in inits:
                raise SystemExit(f"{node.name}: its target shape is computed, not a constant")
            a = numpy_helper.to_array(inits[shape]).copy()
            if a[0] != 1:
                raise SystemExit(f"{node.name}: target shape {a.tolist()} does not start with the batch of 1")
            a[0] = 0
            made[shape] = shape + "_batch"
            g.initializer.append(numpy_helper.from_array(a.astype(np.int64), made[shape]))
        node.input[1] = made[shape]
    for v in list(g.input) + list(g.output):
        dim = v.type.tensor_type.shape.dim[0]
        if dim.dim_value not in (0, 1):
            raise SystemExit(f"{v.name}: batch of {dim.dim_value}")
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    del g.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def feed(sess, x):
    """The session's input from a float32 NCHW frame in [0, 1] made from uint8
    pixels: for a uint8 model the pixels again, NHWC (exact)."""
    inp = sess.get_inputs()[0]
    if inp.type == "tensor(uint8)":
        x = np.ascontiguousarray((x * np.float32(255.0)).round().astype(np.uint8).transpose(0, 2, 3, 1))
    elif inp.type == "tensor(float16)":
        x = x.astype(np.float16)
    return {inp.name: x}


def meta(model):
    return {p.key: p.value for p in model.metadata_props}


def set_meta(model, key, value):
    for p in model.metadata_props:
        if p.key == key:
            p.value = value
            return
    model.metadata_props.add(key=key, value=value)


def make(args):
    os.makedirs(args.out, exist_ok=True)
    if args.only == "det_int8_mixed":
        # Its source, det_fp32, and the variant; calibration reads the clips (OpenCV).
        det_path = os.path.join(args.out, "det_fp32.onnx")
        det = detect_only(to_fp32(onnx.load(args.model)))
        onnx.checker.check_model(det)
        save(det, det_path)
        quantize(det_path, os.path.join(args.out, "det_int8_mixed.onnx"), args.clips, **RECIPES["det_int8_mixed"])
        return
    if args.only in ("det_fp16", "det_u8", "det_u8_batch"):
        # What set-up makes: needs onnx alone (no OpenCV, no calibration frames).
        det16 = detect_only(onnx.load(args.model))
        onnx.checker.check_model(det16)
        if args.only == "det_fp16":
            save(det16, os.path.join(args.out, "det_fp16.onnx"))
        else:
            det_u8 = u8_input(det16)
            onnx.checker.check_model(det_u8, full_check=True)
            if args.only == "det_u8":
                save(det_u8, os.path.join(args.out, "det_u8.onnx"))
            else:
                batch = batch_dynamic(det_u8)
                onnx.checker.check_model(batch, full_check=True)
                save(batch, os.path.join(args.out, "det_u8_batch.onnx"))
        return
    src = onnx.load(args.model)
    fp32 = to_fp32(src)
    onnx.checker.check_model(fp32)
    save(fp32, os.path.join(args.out, "fp32.onnx"))
    det16 = detect_only(onnx.load(args.model))
    onnx.checker.check_model(det16)
    save(det16, os.path.join(args.out, "det_fp16.onnx"))
    det_u8 = u8_input(det16)
    onnx.checker.check_model(det_u8, full_check=True)
    save(det_u8, os.path.join(args.out, "det_u8.onnx"))
    batch = batch_dynamic(onnx.load(os.path.join(args.out, "det_u8.onnx")))
    onnx.checker.check_model(batch, full_check=True)
    save(batch, os.path.join(args.out, "det_u8_batch.onnx"))
    det = detect_only(onnx.load(os.path.join(args.out, "fp32.onnx")))
    onnx.checker.check_model(det)
    det_path = os.path.join(args.out, "det_fp32.onnx")
    save(det, det_path)
    if not args.no_int8:
        for name, recipe in RECIPES.items():
            quantize(det_path, os.path.join(args.out, name + ".onnx"), args.clips, **recipe)


def quant(args):
    """One INT8 candidate of det_fp32 (for trying recipes before naming one)."""
    quantize(
        args.model,
        args.out,
        args.clips,
        exclude=args.exclude,
        per_channel=not args.per_tensor,
        method=args.method,
        calib_step=args.calib_step,
        calib_frames=args.calib_frames,
        symmetric_act=args.symmetric_act,
        calib_cache=args.calib_cache,
    )


def save(model, path):
    tmp = path + ".partial"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    print(path, flush=True)


# How each INT8 variant is made (quantize()). What stays float (`exclude`,
# comma-separated; the head's decoding after its two branches, DFL, box
# arithmetic, class sigmoid and concat, always does):
#   decode  that alone
#   tail    and every other non-Conv node of the head (its SiLUs): the head's
#           convolutions are INT8 (det_int8, the first try: 2 of 5 buses became
#           tuktuks in the demo's counts, 4 of 5 at 10 frames/s with 128 frames)
#   cls     and the head's class branch (cv3): the box branch (cv2) is INT8
#   box     and the box branch
#   logits  and the last conv of each branch (class logits, box distributions)
#   head    and the whole head (model.23): the backbone and neck alone are INT8
#   /model.N/  and every node of that layer
# Calibration "percentile" (99.999) against "minmax" and "entropy", per channel
# against per tensor, and the candidates' agreement and speed: docs/benchmarks.md.
RECIPES = {
    "det_int8": dict(exclude="tail", per_channel=True, method="minmax", calib_step=10, calib_frames=64),
    "det_int8_mixed": dict(exclude="cls", per_channel=True, method="percentile", calib_step=5, calib_frames=128),
}


def quantize(src, dst, clips, exclude="tail", per_channel=True, method="minmax", calib_step=10, calib_frames=64, symmetric_act=False, calib_cache=None):
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Frames are fed in strides of 8: the histogram calibrators (entropy,
    # percentile) keep every activation of every frame of a stride in memory
    # (about 0.2 GB a frame here), so one stride of all frames would not fit.
    stride = 8
    frames = list(clip_frames(clips, calib_step, 640, 640))[:calib_frames]
    frames = frames[: max(stride, len(frames) // stride * stride)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.set_range(0, len(frames))

        def __len__(self):
            return len(frames)

        def set_range(self, start_index, end_index):
            self.it = iter(frames[start_index:end_index])

        def get_next(self):
            f = next(self.it, None)
            return None if f is None else {"images": f[0]}

    pre = dst + ".pre.onnx"
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    nodes = onnx.load(pre).graph.node
    in_head = [n for n in nodes if n.name.startswith("/model.23/")]
    branch = lambda n, b: n.name.startswith(f"/model.23/{b}.")  # noqa: E731
    # The decoding after the two branches (DFL, box arithmetic, class sigmoid,
    # concat) stays float in every variant.
    keep_float = {n.name for n in in_head if not branch(n, "cv2") and not branch(n, "cv3")}
    for part in exclude.split(","):
        if part == "tail":  # det_int8's first try: every non-Conv of the head (SiLUs too)
            keep_float |= {n.name for n in in_head if n.op_type != "Conv"}
        elif part == "cls":  # the class branch
            keep_float |= {n.name for n in in_head if branch(n, "cv3")}
        elif part == "box":  # the box branch
            keep_float |= {n.name for n in in_head if branch(n, "cv2")}
        elif part == "logits":  # the last conv of each branch (class logits, box distributions)
            keep_float |= {n.name for n in in_head if (branch(n, "cv2") or branch(n, "cv3")) and n.name.split("/")[3].endswith(".2")}
        elif part == "head":
            keep_float |= {n.name for n in in_head}
        elif part.startswith("/model."):
            keep_float |= {n.name for n in nodes if n.name.startswith(part)}
        elif part != "decode":
            raise SystemExit(f"exclude = {exclude!r}: decode, tail, cls, box, logits, head or node-name prefixes (/model.0/), comma-separated")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    extra = {"ActivationSymmetric": symmetric_act, "CalibStridedMinMax": stride}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    tmp = dst + ".partial"
    quantize_static(
        pre,
        tmp,
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=sorted(keep_float),
        calibrate_method=methods[method],
        extra_options=extra,
        calibration_cache_path=calib_cache,
    )
    os.remove(pre)
    os.replace(tmp, dst)
    print(dst, flush=True)


# --- frames -------------------------------------------------------------------


def letterbox(bgr, dst_w, dst_h):
    import cv2

    h, w = bgr.shape[:2]
    r = min(dst_h / h, dst_w / w)
    sw, sh = int(round(w * r)), int(round(h * r))
    px, py = int(round((dst_w - sw) / 2 - 0.1)), int(round((dst_h - sh) / 2 - 0.1))
    out = np.full((dst_h, dst_w, 3), 114, np.uint8)
    out[py : py + sh, px : px + sw] = cv2.resize(bgr, (sw, sh), interpolation=cv2.INTER_LINEAR)
    return out


def clip_frames(clips, step, w, h):
    """(NCHW float32 tensor, clip name, frame index) of every step-th frame."""
    import cv2

    for clip in clips:
        cap = cv2.VideoCapture(clip)
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            if i % step == 0:
                rgb = letterbox(bgr, w, h)[:, :, ::-1]
                x = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None].astype(np.float32) / np.float32(255.0)
                yield x, os.path.basename(clip), i
            i += 1
        cap.release()


# --- comparing ----------------------------------------------------------------


def session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def detections(sess, x, nc, conf, iou):
    outs = sess.run(None, feed(sess, x))
    return yolo_ref.postprocess(outs, "anchors", nc, conf, iou, agnostic=True)


def match(a, b, thr=0.5, same_class=True):
    """Greedy matching of b to a (IoU >= thr; of the same class unless
    same_class is false): list of (IoU, whether the classes agree)."""
    used, pairs = set(), []
    for ca, _, ba in a:
        best, bj = 0.0, None
        for j, (cb, _, bb) in enumerate(b):
            if j in used or (same_class and cb != ca):
                continue
            v = yolo_ref.iou(ba, bb)
            if v > best:
                best, bj = v, j
        if bj is not None and best >= thr:
            used.add(bj)
            pairs.append((best, b[bj][0] == ca))
    return pairs


def compare(args):
    nc = len(yolo_ref.parse_names(meta(onnx.load(args.model, load_external_data=False))["names"]))
    ref, var = session(args.model, args.threads), session(args.variant, args.threads)
    n_ref = n_var = matched = frames = boxes = classes_agree = 0
    ious, worst_count = [], 0
    for x, _, _ in clip_frames(args.clips, args.step, 640, 640):
        a = detections(ref, x, nc, args.conf, args.iou)
        b = detections(var, x, nc, args.conf, args.iou)
        m = match(a, b)
        # Boxes alone (any class), and how many of those carry the same class.
        mb = match(a, b, same_class=False)
        frames += 1
        n_ref += len(a)
        n_var += len(b)
        matched += len(m)
        boxes += len(mb)
        classes_agree += sum(1 for _, same in mb if same)
        ious += [v for v, _ in m]
        worst_count = max(worst_count, abs(len(a) - len(b)))
    print(
        json.dumps(
            {
                "variant": os.path.basename(args.variant),
                "frames": frames,
                "detections_original": n_ref,
                "detections_variant": n_var,
                "boxes_matched_iou_0.5": boxes,
                "box_match_rate": round(boxes / max(n_ref, 1), 4),
                "class_agreement_of_matched_boxes": round(classes_agree / max(boxes, 1), 4),
                "matched_same_class_iou_0.5": matched,
                "matched_share": round(matched / max(n_ref, 1), 4),
                "mean_iou_of_matches": round(float(np.mean(ious)) if ious else 0.0, 4),
                "min_iou_of_matches": round(float(np.min(ious)) if ious else 0.0, 4),
                "largest_count_difference_in_a_frame": worst_count,
            }
        ),
        flush=True,
    )


def counts(args):
    """The pipeline's counts with each model: `streetscope run` on every clip
    at every sampling rate with the demo's configuration (its lines, tracker and
    turning movements; both test clips share the demo's line names), the source
    and rate swapped in. Prints one JSON line per model, clip and rate, with
    whether the counts (line, direction, class) and the turning movements (from,
    to, class) equal the first model's exactly."""
    import subprocess
    import tempfile

    demo = open(args.config).read()
    if 'source = "../test-videos/out/two_way.mp4"' not in demo or "sample_fps = 10" not in demo:
        raise SystemExit(f"{args.config} changed shape: expected its two_way source and sample_fps = 10")
    first = {}
    for model in args.model:
        for clip in args.clips:
            for fps in args.fps:
                with tempfile.TemporaryDirectory() as tmp:
                    cfg = os.path.join(tmp, "c.toml")
                    out = os.path.join(tmp, "r.jsonl")
                    with open(cfg, "w") as f:
                        f.write(
                            demo.replace('source = "../test-videos/out/two_way.mp4"', f"source = {json.dumps(os.path.abspath(clip))}").replace(
                                "sample_fps = 10", f"sample_fps = {fps!r}"
                            )
                        )
                    t0 = time.perf_counter()
                    run = subprocess.run([args.binary, "run", "--config", cfg, "--model", model, "-o", out], capture_output=True, text=True)
                    if run.returncode != 0:
                        raise SystemExit(f"streetscope run failed on {clip} at {fps} frames/s with {model}:\n{run.stderr}")
                    wall = time.perf_counter() - t0
                    summary = [r for r in map(json.loads, open(out)) if r["record"] == "summary"][-1]
                got = {
                    "counts": sorted(f"{c['line']} {c['direction_label']} {c['class_name']}: {c['count']}" for c in summary["counts"]),
                    "movements": sorted(f"{m['from']}->{m['to']} {m['class_name']}: {m['count']}" for m in summary["turning_movements"]),
                }
                key = (clip, fps)
                first.setdefault(key, got)
                print(
                    json.dumps(
                        {
                            "model": os.path.basename(model),
                            "clip": os.path.basename(clip),
                            "sample_fps": fps,
                            **got,
                            "equal_to_first_model": got == first[key],
                            "wall_s": round(wall, 1),
                        }
                    ),
                    flush=True,
                )


def speed(args):
    sessions = [(m, session(m, args.threads)) for m in args.model]
    x = np.full((1, 3, 640, 640), 114 / 255, np.float32)
    feeds = {m: feed(s, x) for m, s in sessions}
    for m, s in sessions:
        for _ in range(3):
            s.run(None, feeds[m])
    rounds = {m: [] for m, _ in sessions}
    for _ in range(args.rounds):
        for m, s in sessions:
            t = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                s.run(None, feeds[m])
                t.append(time.perf_counter() - t0)
            rounds[m].append(statistics.median(t) * 1e3)
    for m, r in rounds.items():
        print(json.dumps({"model": os.path.basename(m), "ms_median_of_rounds": round(statistics.median(r), 1), "rounds_ms": [round(v, 1) for v in r]}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    default_clips = ["test-videos/out/two_way.mp4", "test-videos/out/one_bus.mp4"]
    m = sub.add_parser("make")
    m.add_argument("--model", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--clips", nargs="+", default=default_clips)
    m.add_argument("--no-int8", action="store_true")
    m.add_argument("--only", choices=["det_fp16", "det_u8", "det_u8_batch", "det_int8_mixed"], help="make this variant alone (det_fp16, det_u8, det_u8_batch: what set-up makes)")
    q = sub.add_parser("quant")
    q.add_argument("--model", required=True, help="det_fp32.onnx")
    q.add_argument("--out", required=True)
    q.add_argument("--clips", nargs="+", default=default_clips)
    q.add_argument("--exclude", default="head", help="decode, tail, cls, box, logits, head or node-name prefixes, comma-separated")
    q.add_argument("--per-tensor", action="store_true")
    q.add_argument("--method", choices=["minmax", "entropy", "percentile"], default="minmax")
    q.add_argument("--calib-step", type=int, default=5)
    q.add_argument("--calib-frames", type=int, default=1000)
    q.add_argument("--symmetric-act", action="store_true")
    q.add_argument("--calib-cache", help="a JSON file of activation ranges: read when present, else written (any --exclude may share it)")
    c = sub.add_parser("compare")
    c.add_argument("--model", required=True)
    c.add_argument("--variant", required=True)
    c.add_argument("--clips", nargs="+", default=default_clips)
    c.add_argument("--step", type=int, default=5)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--conf", type=float, default=0.25)
    c.add_argument("--iou", type=float, default=0.7)
    k = sub.add_parser("counts")
    k.add_argument("--binary", default=os.path.expanduser("~/.cache/streetscope/target/release/streetscope"))
    k.add_argument("--model", required=True, action="append", help="the first is the reference")
    k.add_argument("--clips", nargs="+", default=default_clips)
    k.add_argument("--fps", type=float, action="append", help="sampling rates (default 2.5, 5 and 10, as the e2e tests)")
    k.add_argument("--config", default="pipelines/demo.toml")
    s = sub.add_parser("speed")
    s.add_argument("--model", required=True, action="append")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    if args.cmd == "counts" and not args.fps:
        args.fps = [2.5, 5.0, 10.0]
    {"make": make, "quant": quant, "compare": compare, "counts": counts, "speed": speed}[args.cmd](args)


if __name__ == "__main__":
    main()
