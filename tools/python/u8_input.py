"""A lead for the detector on OpenVINO: the model given the letterboxed frame as
it comes out of the JPEG decoder (uint8, NHWC) with the [0, 1] scaling and the
HWC -> CHW transpose folded into the graph (Cast, Div 255, Transpose), against
the model as the detector runs it today (float32 NCHW filled by the stage's
preprocessing worker). Measures both with ONNX Runtime's OpenVINO build (the
wheel scripts/setup.sh unpacks), interleaved, and the largest difference of
their raw outputs on a real frame.

    $(scripts/python-env.sh bench) tools/python/u8_input.py [--model M] [--rounds 8] [--runs 40]

The detector's default model since 2026-12-06 is this fold of det_fp16 (det_u8,
made by set-up); docs/benchmarks.md ("A second machine", "The model takes the
decoded bytes") has the measurements.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

CACHE = os.environ.get("STREETSCOPE_CACHE", os.path.expanduser("~/.cache/streetscope"))
sys.path.insert(0, os.path.join(CACHE, "onnxruntime-openvino"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model_variants  # noqa: E402
from ort_interleave import frame  # noqa: E402


def fold(src: str, dst: str) -> str:
    """Writes `src` with a uint8 NHWC input in front (model_variants.u8_input, as
    set-up makes det_u8); returns the input's name (unchanged)."""
    m = model_variants.u8_input(onnx.load(src))
    onnx.save(m, dst)
    return m.graph.input[0].name


def session(path: str, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    ov = {"device_type": "CPU", "num_of_threads": str(threads)}
    return ort.InferenceSession(path, so, providers=[("OpenVINOExecutionProvider", ov)])


def timed(run, runs: int) -> float:
    for _ in range(5):
        run()
    t = time.perf_counter()
    for _ in range(runs):
        run()
    return (time.perf_counter() - t) / runs * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(CACHE, "models", "yolo11n_det_fp16.onnx"))
    ap.add_argument("--clip", default="test-videos/out/two_way.mp4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=40)
    a = ap.parse_args()
    x = frame(a.clip, 150)  # float32 NCHW in [0, 1], as the stage fills it
    u8 = np.ascontiguousarray((x[0] * 255).round().astype(np.uint8).transpose(1, 2, 0)[None])
    with tempfile.TemporaryDirectory() as tmp:
        folded = os.path.join(tmp, "u8.onnx")
        name = fold(a.model, folded)
        f32, fu8 = session(a.model, a.threads), session(folded, a.threads)
        ya = f32.run(None, {name: x})[0]
        yb = fu8.run(None, {name: u8})[0]
        print(f"ONNX Runtime {ort.__version__} ({ort.get_device()}), {a.threads} threads, {a.model}")
        print(f"largest difference of the raw outputs: {float(np.abs(ya - yb).max()):.6f}")
        ms = {"float32 NCHW input": [], "uint8 NHWC input, folded": []}
        for r in range(a.rounds):
            ms["float32 NCHW input"].append(timed(lambda: f32.run(None, {name: x}), a.runs))
            ms["uint8 NHWC input, folded"].append(timed(lambda: fu8.run(None, {name: u8}), a.runs))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in ms.items()), flush=True)
        for k, v in ms.items():
            print(f"{k}: median {statistics.median(v):.2f} ms")


if __name__ == "__main__":
    main()
