"""The Python half of the side-by-side tracker benchmark (scripts/bench-trackers.sh).

What Python users run today to count vehicles across a line: the `trackers`
package's ByteTrack (supervision 0.31 removed its own `sv.ByteTrack`) with
supervision's `LineZone`, one zone per counting line. This runs that pair over
the simulated detections that `crates/aggregate/examples/side_by_side.rs` wrote,
and compares both with the ground truth.

    python bench_trackers.py run DIR LEVEL... [--repeat N]   # the Python pair
    python bench_trackers.py report DIR LEVEL...              # both against the truth

`run` writes DIR/LEVEL.python.json: detections per second of each run (only
`tracker.update` and `LineZone.trigger` are timed; the frames are turned into
`sv.Detections` beforehand) and every count with the frame that triggered it.
LineZone counts with its default anchors (the four corners: a box counts once it
has wholly cleared the line); a second, untimed pass with the bottom-centre
anchor (the point Streetscope and the ground truth use) is reported as well.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

# One core: the comparison is per core, and numpy must not spread small work over threads.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402

FPS = 10.0
# Configured as Streetscope's tracker defaults are (crates/contracts/src/config.rs),
# so that the comparison is of implementations, not of settings.
BYTETRACK = dict(
    frame_rate=FPS,
    lost_track_buffer=15,  # in 30 fps frames: 5 frames at 10 fps (Streetscope: max_missed 5)
    track_activation_threshold=0.6,  # new_track_score
    high_conf_det_threshold=0.5,  # high_score
    minimum_consecutive_frames=3,  # min_hits
    minimum_iou_threshold=0.3,  # match_iou
)


def load_frames(path: Path):
    import supervision as sv

    frames, classes = [], {}
    with path.open() as f:
        for line in f:
            fd = json.loads(line)
            dets = fd["detections"]
            for d in dets:
                classes[d["class_id"]] = d["class_name"]
            if dets:
                xyxy = np.array([[d["bbox"]["x1"], d["bbox"]["y1"], d["bbox"]["x2"], d["bbox"]["y2"]] for d in dets], dtype=np.float32)
                conf = np.array([d["score"] for d in dets], dtype=np.float32)
                cls = np.array([d["class_id"] for d in dets], dtype=int)
                det = sv.Detections(xyxy=xyxy, confidence=conf, class_id=cls)
            else:
                det = sv.Detections.empty()
            frames.append((fd["seq"], fd["width"], fd["height"], det, len(dets)))
    return frames, classes


def line_zones(truth: dict, width: int, height: int, anchors):
    import supervision as sv

    zones = []
    for ln in truth["lines"]:
        (x0, y0), (x1, y1) = ln["start"], ln["end"]
        start = sv.Point(x0 * width, y0 * height)
        end = sv.Point(x1 * width, y1 * height)
        zones.append((ln["name"], sv.LineZone(start=start, end=end, triggering_anchors=anchors)))
    return zones


def run_pair(frames, truth, classes, anchors):
    """One pass: returns (seconds in tracker + LineZone, events)."""
    from trackers import ByteTrackTracker

    _, w, h, _, _ = frames[0]
    tracker = ByteTrackTracker(**BYTETRACK)
    zones = line_zones(truth, w, h, anchors)
    events = []
    busy = 0.0
    for seq, _, _, det, _ in frames:
        t0 = time.perf_counter()
        tracked = tracker.update(det)
        fired = [(name, z.trigger(tracked)) for name, z in zones]
        busy += time.perf_counter() - t0
        for name, (crossed_in, crossed_out) in fired:
            # LineZone's "out" is Streetscope's forward (left-hand side of
            # start -> end to the right-hand side), "in" its backward.
            for direction, crossed in (("forward", crossed_out), ("backward", crossed_in)):
                for i in np.flatnonzero(crossed):
                    events.append(
                        dict(line=name, direction=direction, class_name=classes.get(int(tracked.class_id[i]), "?"), emitted_seq=seq)
                    )
    return busy, events


def cmd_run(args):
    import supervision as sv

    out = Path(args.dir)
    for level in args.levels:
        frames, classes = load_frames(out / f"{level}.detections.jsonl")
        truth = json.loads((out / f"{level}.truth.json").read_text())
        n = sum(fr[4] for fr in frames)
        corners = [sv.Position.TOP_LEFT, sv.Position.TOP_RIGHT, sv.Position.BOTTOM_LEFT, sv.Position.BOTTOM_RIGHT]
        rates, events = [], []
        for r in range(args.repeat):
            busy, events = run_pair(frames, truth, classes, corners)
            rates.append(n / busy)
            print(f"{level} run {r + 1}: {n / busy:,.0f} detections/s", file=sys.stderr)
        _, events_bc = run_pair(frames, truth, classes, [sv.Position.BOTTOM_CENTER])
        report = dict(frames=len(frames), detections=n, rates=rates, events=events, events_bottom_center=events_bc)
        (out / f"{level}.python.json").write_text(json.dumps(report))


# ---------------------------------------------------------------------------
# Comparison


def counts(events):
    return Counter((e["line"], e["direction"], e["class_name"]) for e in events)


def accuracy(events, truth):
    """Per (line, direction): counted / true; and the share of true crossings
    missed or over-counted, per line-direction and per class."""
    got = counts(events)
    want = Counter()
    for c in truth["counts"]:
        want[(c["line"], c["direction"], c["class_name"])] += c["count"]
    by_ld_got, by_ld_want = Counter(), Counter()
    for (l, d, _), n in got.items():
        by_ld_got[(l, d)] += n
    for (l, d, _), n in want.items():
        by_ld_want[(l, d)] += n
    ratios = {k: by_ld_got[k] / by_ld_want[k] for k in by_ld_want}
    classes = {k: (got[k], want[k]) for k in set(got) | set(want)}
    # Mean absolute count error over (line, direction, class), relative to the truth's total.
    abs_err = sum(abs(got[k] - want[k]) for k in set(got) | set(want)) / max(1, sum(want.values()))
    worst_class = min(
        ((g / w, k, g, w) for k, (g, w) in classes.items() if w >= 20),
        default=None,
        key=lambda x: x[0],
    )
    over_class = max(
        ((g / w, k, g, w) for k, (g, w) in classes.items() if w >= 20),
        default=None,
        key=lambda x: x[0],
    )
    return ratios, abs_err, worst_class, over_class


def latency(events, truth, key="emitted_seq"):
    """Frames from each true crossing to the count of it. Counts are paired with
    true crossings of the same line and direction, each with the nearest one in
    time not yet paired (within 5 s); unpaired counts are left out."""
    by_ld = defaultdict(list)
    for c in truth["crossings"]:
        by_ld[(c["line"], c["direction"])].append(c["seq"])
    lags = []
    for (l, d), seqs in by_ld.items():
        seqs.sort()
        taken = [False] * len(seqs)
        evs = sorted(e[key] for e in events if (e["line"], e["direction"]) == (l, d))
        for at in evs:
            best = None
            for i, s in enumerate(seqs):
                if taken[i] or abs(at - s) > 50:
                    continue
                if best is None or abs(at - s) < abs(at - seqs[best]):
                    best = i
            if best is not None:
                taken[best] = True
                lags.append(at - seqs[best])
    if not lags:
        return None
    lags.sort()
    return dict(
        median=statistics.median(lags),
        p90=lags[int(0.9 * (len(lags) - 1))],
        within2=sum(1 for x in lags if abs(x) <= 2) / len(lags),
        n=len(lags),
    )


def cmd_report(args):
    out = Path(args.dir)
    rows = []
    print("| noise | implementation | detections/s (median) | counted/true per line and direction (min-max) | count error | worst class | most over-counted class | latency frames (median, p90, share within 2) |")
    print("|---|---|---:|---|---:|---|---|---|")
    speed = {}
    for level in args.levels:
        truth = json.loads((out / f"{level}.truth.json").read_text())
        ours = json.loads((out / f"{level}.streetscope.json").read_text())
        py = json.loads((out / f"{level}.python.json").read_text())
        for name, rep, evs in (
            ("Streetscope", ours, ours["events"]),
            ("ByteTrack + LineZone (corners)", py, py["events"]),
            ("ByteTrack + LineZone (bottom centre, untimed)", None, py["events_bottom_center"]),
        ):
            ratios, err, worst, over = accuracy(evs, truth)
            lat = latency(evs, truth)
            rate = statistics.median(rep["rates"]) if rep else None
            if rep:
                speed.setdefault(level, {})[name] = rate
            fmt = lambda c: "-" if c is None else f"{c[1][2]} {c[1][0]} {c[1][1]} {c[2]}/{c[3]}"
            print(
                f"| {level} | {name} | {'' if rate is None else f'{rate:,.0f}'} | "
                f"{min(ratios.values()):.3f}-{max(ratios.values()):.3f} | {err:.3f} | {fmt(worst)} | {fmt(over)} | "
                + ("-" if lat is None else f"{lat['median']:g}, {lat['p90']:g}, {lat['within2']:.0%}")
                + " |"
            )
        if "frame_seq" in (ours["events"] or [{}])[0]:
            lat = latency(ours["events"], truth, key="frame_seq")
            if lat:
                print(f"|  | Streetscope, by the frame each count is stamped with | | | | | | {lat['median']:g}, {lat['p90']:g}, {lat['within2']:.0%} |")
    print()
    for level, s in speed.items():
        ours = s["Streetscope"]
        theirs = s["ByteTrack + LineZone (corners)"]
        print(f"{level}: Streetscope {ours:,.0f} detections/s, Python pair {theirs:,.0f}: {ours / theirs:,.0f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("dir")
    r.add_argument("levels", nargs="+")
    r.add_argument("--repeat", type=int, default=3)
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("report")
    c.add_argument("dir")
    c.add_argument("levels", nargs="+")
    c.set_defaults(func=cmd_report)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
