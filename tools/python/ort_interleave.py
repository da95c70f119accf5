"""Bare `session.run` of several ONNX Runtime configurations, interleaved: one
`ort_bare.py --serve` process per side, each asked in turn for --runs timed
runs, --rounds times; prints each side's median of its rounds' medians.

    python tools/python/ort_interleave.py [--model M] [--rounds 6] [--runs 20]

Sides: the plain build's CPU provider (spinning on, as the Python binding
defaults; and off, as the detector sets it) and the OpenVINO build's OpenVINO
provider at f32 and bf16 (the wheel scripts/setup.sh unpacks, put first on
PYTHONPATH). Input: frame 150 of the bench's 720p clip, letterboxed to 640.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("STREETSCOPE_CACHE", os.path.expanduser("~/.cache/streetscope"))


def frame(path, index, size=640):
    cap = cv2.VideoCapture(path)
    for _ in range(index + 1):
        ok, f = cap.read()
        if not ok:
            sys.exit(f"{path}: fewer than {index + 1} frames")
    h, w = f.shape[:2]
    s = min(size / w, size / h)
    nw, nh = round(w * s), round(h * s)
    c = np.full((size, size, 3), 114, np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    c[y0:y0 + nh, x0:x0 + nw] = cv2.resize(f, (nw, nh))
    return (c[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255).astype("<f4")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(CACHE, "models", "yolo11n_det_fp16.onnx"))
    p.add_argument("--clip", default=os.path.join(CACHE, "bench", "two_way_720p25.mp4"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()

    with tempfile.NamedTemporaryFile(suffix=".f32") as inp:
        frame(args.clip, 150).tofile(inp.name)
        base = [sys.executable, os.path.join(HERE, "ort_bare.py"), "--model", args.model,
                "--threads", str(args.threads), "--serve", "--input", inp.name]
        ov = {"PYTHONPATH": os.path.join(CACHE, "onnxruntime-openvino")}
        sides = {
            "plain build, CPU provider, spinning on": (base, {}),
            "plain build, CPU provider, spinning off": (base + ["--no-spin"], {}),
            "OpenVINO build, OpenVINO f32": (base + ["--provider", "openvino"], ov),
            "OpenVINO build, OpenVINO bf16": (base + ["--provider", "openvino", "--precision", "bf16"], ov),
        }
        procs = {}
        for name, (cmd, env) in sides.items():
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env={**os.environ, **env})
            print(name, proc.stdout.readline().strip(), file=sys.stderr)
            procs[name] = proc
        res = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, proc in procs.items():
                proc.stdin.write(f"{args.runs}\n")
                proc.stdin.flush()
                res[name].append(json.loads(proc.stdout.readline())["ms_median"])
        for proc in procs.values():
            proc.stdin.close()
            proc.wait()
    for name, v in res.items():
        print(json.dumps({"side": name, "ms_median_of_rounds": round(statistics.median(v), 2),
                          "rounds": [round(x, 1) for x in v]}))


if __name__ == "__main__":
    main()
