"""Where a model's time goes inside ONNX Runtime: the per-operator profile of
bare `session.run` on the CPU provider, summed by operator type.

    python tools/python/ort_profile.py MODEL [--threads 2] [--runs 20] [--spin]

The session is configured as the detector's defaults (intra-op threads, one
inter-op thread, spinning off unless --spin, everything else ONNX Runtime's);
the input is random (timings do not depend on the picture). Prints the median
milliseconds of a run, then per operator type (as ONNX Runtime runs it, after
its graph optimisations: fused operators, inserted casts and layout reorders
included) the milliseconds per run, the share of the operators' time and the
nodes per run.
"""

import argparse
import collections
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--spin", action="store_true", help="let the intra-op threads spin (ONNX Runtime's default)")
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if a.spin else "0")
    so.enable_profiling = True
    tmp = tempfile.mkdtemp(prefix="ort-profile-")
    so.profile_file_prefix = os.path.join(tmp, "profile")
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    x = np.random.default_rng(0).random(shape).astype(dtype)
    warm = 3
    for _ in range(warm):
        s.run(None, {inp.name: x})
    ms = []
    for _ in range(a.runs):
        t = time.perf_counter()
        s.run(None, {inp.name: x})
        ms.append((time.perf_counter() - t) * 1e3)
    path = s.end_profiling()
    events = json.load(open(path))
    os.remove(path)
    os.rmdir(tmp)

    runs = warm + a.runs
    time_by, nodes_by = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            time_by[op] += e["dur"]
            nodes_by[op] += 1
    total = sum(time_by.values()) or 1
    print(f"{a.model}: {a.threads} threads, spinning {'on' if a.spin else 'off'}; "
          f"median {statistics.median(ms):.1f} ms per run ({a.runs} runs)")
    for op, us in time_by.most_common(a.top):
        print(f"  {op:24s} {us / runs / 1e3:8.2f} ms/run {100 * us / total:5.1f} %  {nodes_by[op] / runs:4.0f} nodes/run")


if __name__ == "__main__":
    main()
