"""Bare `session.run` of ONNX Runtime's Python binding on one prepared input:
the limit that `streetscope bench detect` compares the detect stage with.

    python tools/python/ort_bare.py --model M --threads 2 [--streams S] [--input x.f32] [--serve]

The session is configured as a Python user would (`InferenceSession` with
`intra_op_num_threads`, everything else default) unless options say otherwise.
The input is the raw prepared image of batch 1 in --input, as the detector
prepares it for the model: little-endian float32 NCHW for float models (converted
to float16 once for fp16 models), the letterboxed RGB bytes (NHWC) for uint8
models; without it, a grey image.

With --streams S, S sessions of --threads threads each run at once, each on
its own Python thread (the binding releases the GIL while a session runs), and
the frames/s are of all of them together (OpenVINO's thread pinning is turned
off then: pinned, every session's threads go to the same cores).

Without --serve: --runs timed runs after --warmup, prints one JSON line
{"runs": n, "seconds": s, "ms_median": m, "fps": f}.
With --serve (what bench detect uses, to interleave with its own runs in one
process each): prints {"ready": true, ...} then answers each line `N` on stdin
with the JSON of N timed runs, until stdin closes.
"""

import argparse
import json
import statistics
import sys
import threading
import time

import numpy as np
import onnxruntime as ort


def session(args):
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    if args.inter_threads:
        so.inter_op_num_threads = args.inter_threads
    if args.no_spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if args.no_arena:
        so.enable_cpu_mem_arena = False
    if args.no_mem_pattern:
        so.enable_mem_pattern = False
    if args.opt_level is not None:
        so.graph_optimization_level = {
            0: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            2: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            3: ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
            99: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[args.opt_level]
    if args.provider == "openvino":
        # ONNX Runtime's OpenVINO build (the onnxruntime-openvino wheel, on PYTHONPATH):
        # configured as the detector configures it (threads, device, precision).
        opts = {"device_type": args.device, "num_of_threads": str(args.threads or 0)}
        if args.device.startswith("CPU"):
            cpu = {"INFERENCE_PRECISION_HINT": args.precision}
            if args.streams > 1:
                cpu["ENABLE_CPU_PINNING"] = "NO"
            opts["load_config"] = json.dumps({"CPU": cpu})
        return ort.InferenceSession(args.model, so, providers=[("OpenVINOExecutionProvider", opts)])
    return ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's choice)")
    p.add_argument("--inter-threads", type=int, default=0)
    p.add_argument("--no-spin", action="store_true")
    p.add_argument("--no-arena", action="store_true")
    p.add_argument("--no-mem-pattern", action="store_true")
    p.add_argument("--opt-level", type=int, choices=[0, 1, 2, 3, 99])
    p.add_argument("--input", help="raw prepared image of batch 1 (float32 NCHW, or uint8 NHWC for uint8 models)")
    p.add_argument("--provider", choices=["cpu", "openvino"], default="cpu",
                   help="openvino: the onnxruntime-openvino wheel must come first on PYTHONPATH")
    p.add_argument("--device", default="CPU", help="OpenVINO device")
    p.add_argument("--precision", choices=["f32", "bf16"], default="f32", help="OpenVINO CPU precision")
    p.add_argument("--streams", type=int, default=1, help="sessions running at once, each on its own thread")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--serve", action="store_true")
    args = p.parse_args()

    sessions = [session(args) for _ in range(max(1, args.streams))]
    sess = sessions[0]
    inp = sess.get_inputs()[0]
    if inp.type == "tensor(uint8)":
        # [batch, height, width, 3]: the letterboxed RGB image, scaled inside the graph.
        _, h, w, c = inp.shape
        dims = lambda h, w: (1, h, w, c)  # noqa: E731
    else:
        _, c, h, w = inp.shape
        dims = lambda h, w: (1, c, h, w)  # noqa: E731
    h, w = (h if isinstance(h, int) else 640), (w if isinstance(w, int) else 640)
    if inp.type == "tensor(uint8)":
        x = np.fromfile(args.input, dtype=np.uint8) if args.input else np.full(dims(h, w), 114, dtype=np.uint8)
        x = x.reshape(dims(h, w))
    elif args.input:
        x = np.fromfile(args.input, dtype="<f4").reshape(dims(h, w))
    else:
        x = np.full(dims(h, w), 114 / 255, dtype=np.float32)
    if inp.type == "tensor(float16)":
        x = x.astype(np.float16)
    feed = {inp.name: x}
    for s in sessions:
        for _ in range(args.warmup):
            s.run(None, feed)

    def runs_of(s, n, times):
        for _ in range(n):
            t = time.perf_counter()
            s.run(None, feed)
            times.append(time.perf_counter() - t)

    def timed(n):
        times = []
        if len(sessions) == 1:
            runs_of(sess, n, times)
            total = sum(times)
        else:
            # n runs shared among the sessions, all at once; frames/s of the whole.
            share = [n // len(sessions) + (i < n % len(sessions)) for i in range(len(sessions))]
            threads = [threading.Thread(target=runs_of, args=(s, k, times)) for s, k in zip(sessions, share)]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            total = time.perf_counter() - t
        return {"runs": n, "seconds": total, "ms_median": statistics.median(times) * 1e3, "fps": n / total}

    if not args.serve:
        print(json.dumps(timed(args.runs)), flush=True)
        return
    print(json.dumps({"ready": True, "onnxruntime": ort.__version__, "input": inp.type,
                      "providers": sess.get_providers()}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line:
            print(json.dumps(timed(int(line))), flush=True)


if __name__ == "__main__":
    main()
