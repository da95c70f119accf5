"""Generates small ONNX models whose outputs are known constants, to test the
detector's head recognition, decoding and NMS against exact expectations.

    python tools/python/make_test_models.py OUTDIR

Each model takes `images` ([batch, 3, 64, 64]; the uint8 ones [batch, 64, 64, 3],
the letterboxed RGB bytes) and ignores the pixel values: its
outputs are constants expanded to the batch size (Shape of the input, its first
dimension, Expand), so a dynamic batch works; detect_dynamic.onnx has, like
Ultralytics' `dynamic=True` exports, a symbolic batch, input size and anchor
count, so its input size comes from the metadata; detect_u8_batch has a
symbolic batch alone. Ultralytics-style metadata
(`names`, `imgsz`, `task`, `end2end`) is written as Ultralytics does. Writes
OUTDIR/expected.json: for each model, the detections (confidence 0.25, IoU 0.7)
of class-agnostic and of class-aware NMS, from the numpy reference in yolo_ref.py.
Every model is checked with onnx.checker and run once with ONNX Runtime.
"""

import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yolo_ref  # noqa: E402

NAMES = ["car", "bus", "person"]
NAMES_META = "{0: 'car', 1: 'bus', 2: 'person'}"
IMGSZ = 64
CONF, IOU = 0.25, 0.7
MASKS, PROTO = 32, 16

# Anchors of the detect head: cx, cy, w, h, then the scores of car, bus, person.
ANCHORS = [
    [20, 20, 16, 16, 0.90, 0.10, 0.05],  # 0: car 0.90, kept
    [21, 20, 16, 16, 0.80, 0.05, 0.10],  # 1: car 0.80, IoU 0.88 with 0 (same class): suppressed
    [20, 21, 16, 16, 0.10, 0.75, 0.00],  # 2: bus 0.75, IoU 0.88 with 0: kept only class-aware
    [50, 50, 10, 10, 0.20, 0.24, 0.10],  # 3: below the threshold
    [48, 16, 12, 20, 0.60, 0.60, 0.30],  # 4: tied car/bus 0.60: the first class (car) wins
    [16, 48, 20, 12, 0.05, 0.10, 0.55],  # 5: person 0.55
    [22, 48, 20, 12, 0.00, 0.00, 0.50],  # 6: person 0.50, IoU 0.54 with 5: kept
    [60, 4, 16, 12, 0.10, 0.30, 0.00],  # 7: bus 0.30, partly outside the image: clipped
]

# Rows of the end-to-end head: x1, y1, x2, y2, score, class; best first, zero padding.
E2E_ROWS = [
    [10, 10, 30, 30, 0.90, 0],
    [12, 10, 32, 30, 0.85, 0],  # overlaps the first: end-to-end heads need no NMS, both stay
    [40, 40, 60, 60, 0.50, 2],
    [2, 40, 20, 62, 0.30, 1],
    [5, 5, 9, 9, 0.20, 1],  # below the threshold
] + [[0, 0, 0, 0, 0, 0]] * 5

ONNX_TYPE = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}


def detect_output(masks=0):
    a = np.array(ANCHORS, dtype=np.float64).T  # [4 + nc, N]
    if masks:
        # Mask coefficients: large values that must not be read as class scores.
        a = np.concatenate([a, np.full((masks, a.shape[1]), 5.0)], axis=0)
    return a[None]


def batch_constant(name, value, dtype, out_dims, nodes, inits):
    """Adds nodes computing `value` ([1, ...]) expanded to the input's batch size."""
    const = f"{name}_const"
    inits.append(numpy_helper.from_array(value.astype(dtype), const))
    tail = f"{name}_tail"
    inits.append(numpy_helper.from_array(np.array(value.shape[1:], dtype=np.int64), tail))
    nodes += [
        helper.make_node("Concat", ["batch_dim", tail], [f"{name}_shape"], axis=0),
        helper.make_node("Expand", [const, f"{name}_shape"], [name]),
    ]
    return helper.make_tensor_value_info(name, ONNX_TYPE[dtype], out_dims)


def make_model(outputs, dtype=np.float32, dynamic=False, meta=None, u8=False, batch_only=False):
    """`outputs`: list of (name, constant [1, ...]). Returns the ModelProto."""
    # Dynamic as Ultralytics' `dynamic=True` exports: batch, input size and anchors symbolic.
    batch = "batch" if dynamic or batch_only else 1
    nodes = [helper.make_node("Shape", ["images"], ["batch_dim"], start=0, end=1)]
    inits, outs = [], []
    for name, value in outputs:
        dims = [batch, *value.shape[1:]]
        if dynamic and len(dims) == 3:
            dims[2] = "anchors"
        outs.append(batch_constant(name, value, dtype, dims, nodes, inits))
    hw = ["height", "width"] if dynamic else [IMGSZ, IMGSZ]
    if u8:
        inp = helper.make_tensor_value_info("images", TensorProto.UINT8, [batch, *hw, 3])
    else:
        inp = helper.make_tensor_value_info("images", ONNX_TYPE[dtype], [batch, 3, *hw])
    graph = helper.make_graph(nodes, "streetscope_test_head", [inp], outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="streetscope-tests")
    model.ir_version = 9
    for k, v in (meta or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model, full_check=True)
    return model


def meta(task, end2end=False):
    m = {"names": NAMES_META, "imgsz": f"[{IMGSZ}, {IMGSZ}]", "task": task, "stride": "32", "batch": "1"}
    if end2end:
        m["end2end"] = "True"
    return m


def run_once(path, dtype, outputs, batch=1, u8=False):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    if u8:
        x = np.random.default_rng(0).integers(0, 256, (batch, IMGSZ, IMGSZ, 3), dtype=np.uint8)
    else:
        x = np.random.default_rng(0).random((batch, 3, IMGSZ, IMGSZ)).astype(dtype)
    got = sess.run(None, {"images": x})
    assert len(got) == len(outputs), path
    for g, (name, value) in zip(got, outputs):
        want = np.broadcast_to(value.astype(dtype), (batch, *value.shape[1:]))
        assert g.dtype == dtype and g.shape == want.shape, (path, name, g.dtype, g.shape)
        assert np.array_equal(g, want), (path, name)
    return got


def expectations(outputs, head, dtype):
    """Expected detections in model-input pixels (identity letterbox: clipped to the image)."""
    as_run = [np.asarray(v, dtype=dtype).astype(np.float32) for _, v in outputs]
    res = {}
    for key, agnostic in (("agnostic", True), ("class_aware", False)):
        dets = yolo_ref.postprocess(as_run, head, len(NAMES), CONF, IOU, agnostic)
        res[key] = [
            {
                "class_id": c,
                "class_name": NAMES[c],
                "score": s,
                "box": [min(max(v, 0.0), float(IMGSZ)) for v in box],
            }
            for c, s, box in dets
        ]
    return res


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_test_models.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    protos = np.linspace(-1.0, 1.0, MASKS * PROTO * PROTO).reshape(1, MASKS, PROTO, PROTO)
    specs = {
        # name: (outputs, dtype, dynamic, head, metadata[, options of make_model])
        "detect_f32": ([("output0", detect_output())], np.float32, False, "detect", meta("detect")),
        "detect_u8": ([("output0", detect_output())], np.float32, False, "detect", meta("detect"), {"u8": True}),
        "detect_u8_batch": ([("output0", detect_output())], np.float32, False, "detect", meta("detect"),
                            {"u8": True, "batch_only": True}),
        "detect_f16": ([("output0", detect_output())], np.float16, False, "detect", meta("detect")),
        "detect_dynamic": ([("output0", detect_output())], np.float32, True, "detect", meta("detect")),
        "segment_f32": (
            [("output0", detect_output(MASKS)), ("output1", protos)],
            np.float32,
            False,
            "segment",
            meta("segment"),
        ),
        "end2end_f32": ([("output0", np.array(E2E_ROWS, dtype=np.float64)[None])], np.float32, False, "end2end",
                        meta("detect", end2end=True)),
        "bad_shape": ([("output0", np.array([[0.5, 0.25, 0.125]]))], np.float32, False, None, meta("detect")),
    }
    expected = {"confidence": CONF, "iou": IOU, "imgsz": [IMGSZ, IMGSZ], "names": NAMES, "models": {}}
    for name, (outputs, dtype, dynamic, head, md, *extra) in specs.items():
        kw = extra[0] if extra else {}
        path = os.path.join(outdir, f"{name}.onnx")
        model = make_model(outputs, dtype, dynamic, md, **kw)
        onnx.save(model, path + ".part")
        os.replace(path + ".part", path)
        u8 = kw.get("u8", False)
        run_once(path, dtype, outputs, u8=u8)
        if dynamic or kw.get("batch_only"):
            run_once(path, dtype, outputs, batch=3, u8=u8)
        entry = {
            "file": f"{name}.onnx",
            "precision": "u8" if u8 else "f16" if dtype == np.float16 else "f32",
            "dynamic_batch": dynamic or kw.get("batch_only", False),
            "output_shapes": [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output],
        }
        if head is None:
            entry["error_contains"] = "output0[1, 3]"
        else:
            entry["head"] = head
            if head == "segment":
                entry["masks"] = MASKS
            entry.update(expectations(outputs, head, dtype))
        expected["models"][name] = entry
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(os.path.join(outdir, "expected.json"))


if __name__ == "__main__":
    main()
