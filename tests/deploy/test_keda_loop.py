"""Scaling on lag, with KEDA's part played in the loop against the real broker.

The chart is rendered (Helm's Go SDK) with small test values; the detector
pool's cluster config and its ScaledObject are taken from the rendered
objects. Then, on 127.0.0.1: the test broker (tansu), the topics, the registry
with two recorded cameras, one ingest pod, one aggregator, and detector
processes (`streetscope detect --cluster`, one inference thread each) that this
test starts and stops as KEDA would make the HPA do:

- every `pollingInterval` it reads the detector group's lag on the frames
  topic with the calls KEDA's kafka scaler makes (Metadata for the partitions,
  ListOffsets for the newest offsets, OffsetFetch for the group's committed
  offsets), clips it at partitions x lagThreshold (allowIdleConsumers false);
- it computes the replicas with the HPA's rule for an AverageValue target
  (ceil(lag / lagThreshold), 10 % tolerance, within min/max) and the rendered
  behaviour (scale-up at once, scale-down after the stabilisation window, at
  most `value` pods per `periodSeconds`).

Ingest reads the recordings much faster than one single-threaded detector
detects, so the lag grows: the replicas must rise to the maximum, the lag fall
below the threshold, the replicas fall back to the minimum after the load, and
the final counts equal those of `streetscope run` (one detector) on the same
recordings. Bounded: everything stops by itself within LIMIT.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STREETSCOPE_CACHE", Path.home() / ".cache/streetscope"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target"))
BIN = TARGET / "release/streetscope"
TANSU = CACHE / "tansu/bin/tansu"
MODEL = CACHE / "models/yolo11n_seg_fp16.onnx"
CLIPS = ["one_bus", "two_way"]
LIMIT = 420  # seconds for the whole scaled run

kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (BIN.exists() and TANSU.exists() and MODEL.exists()),
    reason=f"needs {BIN}, {TANSU} (scripts/install-broker.sh) and {MODEL} (scripts/setup.sh)",
)

# The demo's detector and tracker settings, the file the distributed tests read too.
STAGE_SETTINGS_FILE = ROOT / "crates/cli/tests/common/stage-settings.toml"
STAGE_SETTINGS = tomllib.loads(STAGE_SETTINGS_FILE.read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's (and librdkafka's murmur2_random) partitioner gives a key."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    length = len(key)
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = key[length - rest :]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


class Procs:
    """Child processes, each logging to a file, all stopped at the end."""

    def __init__(self, dir: Path):
        self.dir, self.all = dir, []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        e = dict(os.environ, RUST_LOG="info,librdkafka=warn,rdkafka=warn", **(env or {}))
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=e, cwd=self.dir)
        p.name = name  # type: ignore[attr-defined]
        self.all.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen, grace: float = 20) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def log(self, name: str, lines: int = 20) -> str:
        text = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
        return f"--- {name} ---\n" + "\n".join(text[-lines:])

    def close(self) -> None:
        for p in reversed(self.all):
            self.stop(p, grace=5)


def render_test_chart(brokers: str) -> tuple[dict, str, str]:
    """The chart with small test values: (detector ScaledObject, detector
    cluster.toml, the other stages' cluster.toml)."""
    topic = lambda name, parts, policy="delete": {"name": name, "partitions": parts, "replication": 1, "cleanupPolicy": policy}  # noqa: E731
    values = {
        "kafka": {
            "brokers": brokers,
            "sessionTimeoutMs": 6000,
            "topics": {
                "cameras": topic("streetscope.cameras", 1, "compact"),
                "intersections": topic("streetscope.intersections", 1, "compact"),
                # Two partitions: two detectors at most, one partition each.
                "frames": topic("streetscope.frames", 2),
                "detections": topic("streetscope.detections", 1),
                "events": topic("streetscope.events", 1),
                "counts": topic("streetscope.counts", 1),
                "alerts": topic("streetscope.alerts", 1),
                "snapshots": topic("streetscope.snapshots", 1, "compact"),
                "dlq": topic("streetscope.dlq", 1),
            },
        },
        "registry": {"tokens": {"existingSecret": "unused-here"}},
        "ingest": {"replicas": 1},
        "aggregator": {"replicas": 1},
        "config": {
            "detector": STAGE_SETTINGS["detector"],
            "tracker": STAGE_SETTINGS["tracker"],
            "aggregate": {"snapshot_interval_s": 1, "counts_interval_s": 1, "finish_idle_s": 120},
            "ingest": {"stall_timeout_s": 120},
        },
        "detector": {
            "model": str(MODEL),
            # One inference thread per detector (with one run of the model, the
            # pool's `streams` below): on two cores a second replica adds capacity.
            "threads": 1,
            "autoscaling": {
                "lagThreshold": 20,
                "activationLagThreshold": 2,
                "pollingInterval": 2,
                "behavior": {
                    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 30}]},
                    "scaleDown": {"stabilizationWindowSeconds": 8, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 5}]},
                },
            },
            "pools": [
                {
                    "name": "cpu",
                    "image": "cpu",
                    "providers": ["cpu"],
                    "gpuResource": "",
                    "minReplicaCount": 1,
                    "maxReplicaCount": 2,
                    "resources": {"requests": {"cpu": "1"}},
                    "tolerations": [],
                    "config": {"streams": 1},
                }
            ],
        },
    }
    chart = helm.Chart.load(str(ROOT / "helm/streetscope"))
    rendered = chart.render(values, name="city", namespace="t")
    docs = [d for path, text in rendered.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    so = next(d for d in docs if d["kind"] == "ScaledObject" and d["metadata"]["name"].endswith("detector-cpu"))
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "city-streetscope-config")
    return so, cm["data"]["detector-cpu.toml"], cm["data"]["cluster.toml"]


def keda_lag(admin: AdminClient, consumer, group: str, topic: str, meta: dict) -> tuple[int, int]:
    """The total lag as KEDA's kafka scaler computes it, with its calls (and
    the lag before KEDA clips it)."""
    md = consumer.list_topics(topic, timeout=10)
    partitions = sorted(md.topics[topic].partitions)
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    committed = admin.list_consumer_group_offsets([req])[group].result(timeout=10)
    per = {}
    for tp in committed.topic_partitions:
        _, newest = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10, cached=False)
        if tp.offset < 0:
            # No committed offset: with offsetResetPolicy earliest the scaler counts it all.
            assert meta["offsetResetPolicy"] == "earliest"
            per[tp.partition] = newest
        else:
            per[tp.partition] = newest - tp.offset
    total = sum(per.values())
    if meta["allowIdleConsumers"] == "false":
        total = min(total, len(partitions) * int(meta["lagThreshold"]))
    return total, sum(per.values())


class Hpa:
    """The HPA's replica rule for KEDA's AverageValue metric, with the rendered behaviour."""

    def __init__(self, spec: dict):
        self.min, self.max = spec["minReplicaCount"], spec["maxReplicaCount"]
        self.threshold = int(spec["triggers"][0]["metadata"]["lagThreshold"])
        b = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        self.down_window = b["scaleDown"]["stabilizationWindowSeconds"]
        self.down_step = b["scaleDown"]["policies"][0]["value"]
        self.down_period = b["scaleDown"]["policies"][0]["periodSeconds"]
        self.up_step = b["scaleUp"]["policies"][0]["value"]
        self.recommendations: list[tuple[float, int]] = []
        self.last_down = -math.inf

    def desired(self, now: float, current: int, lag: int) -> int:
        ratio = lag / (self.threshold * current)
        rec = current if abs(ratio - 1) <= 0.1 else math.ceil(lag / self.threshold)
        rec = max(self.min, min(self.max, rec))
        self.recommendations.append((now, rec))
        self.recommendations = [(t, r) for t, r in self.recommendations if now - t <= self.down_window]
        if rec > current:
            return min(rec, current + self.up_step)
        stable = max(r for _, r in self.recommendations)  # the highest in the window
        if stable < current and now - self.last_down >= self.down_period:
            self.last_down = now
            return max(stable, current - self.down_step)
        return current


def counts_of(rows: list[dict]) -> dict:
    return {(r["camera_id"], r["line"], r["direction"], r["class_name"]): r["count"] for r in rows}


def one_detector_counts(dir: Path, cameras: list[dict]) -> dict:
    """`streetscope run` (one process, one detector) on the same recordings."""
    lines = []
    for cam in cameras:
        lines += [f"[[cameras]]", f"id = {json.dumps(cam['id'])}", f"intersection = {json.dumps(cam['intersection'])}", f"source = {json.dumps(cam['source'])}", "sample_fps = 10"]
        for ln in cam["lines"]:
            lines += ["[[cameras.lines]]"] + [f"{k} = {json.dumps(v)}" for k, v in ln.items()]
    lines += [STAGE_SETTINGS_FILE.read_text(), "[ingest]", "stall_timeout_s = 120"]
    cfg = dir / "one-process.toml"
    cfg.write_text("\n".join(lines) + "\n")
    out = dir / "one-process.jsonl"
    r = subprocess.run([str(BIN), "run", "--config", str(cfg), "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(out.read_text().splitlines()[-1])
    by: dict = {}
    for c in summary["counts"]:
        by.setdefault(c["intersection_id"], {}).update(counts_of([c]))
    return by


def latest_counts(brokers: str, topic: str) -> dict:
    """The latest counts record per intersection, read up to the end the topic
    had when called (the aggregators keep publishing: never wait for quiet)."""
    c = kafka.Consumer({"bootstrap.servers": brokers, "group.id": f"reader-{time.monotonic_ns()}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in md.topics[topic].partitions}
        todo = {p for p, end in ends.items() if end > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        latest, deadline = {}, time.monotonic() + 30
        while todo:
            assert time.monotonic() < deadline, f"could not read {topic} to {ends}"
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            if m.offset() + 1 >= ends[m.partition()]:
                todo.discard(m.partition())
            v = json.loads(m.value())
            if v.get("record") == "counts":
                latest[m.key().decode()] = v
        return latest
    finally:
        c.close()


def test_detectors_scale_on_lag_like_keda_and_count_exactly(tmp_path):
    procs = Procs(tmp_path)
    try:
        run_scaled(tmp_path, procs)
    finally:
        procs.close()


def run_scaled(dir: Path, procs: Procs) -> None:
    port = free_port()
    brokers = f"127.0.0.1:{port}"
    (dir / "broker").mkdir()
    broker = subprocess.Popen(
        [str(TANSU), "broker", "--listener-url", f"tcp://{brokers}", "--advertised-listener-url", f"tcp://{brokers}", "--storage-engine", "sqlite://tansu.db", "--silent"],
        cwd=dir / "broker", stdout=open(dir / "broker.log", "wb"), stderr=subprocess.STDOUT, env=dict(os.environ, RUST_LOG="warn"),
    )
    procs.all.append(broker)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "tansu did not listen"
            time.sleep(0.2)

    so, detector_toml, cluster_toml = render_test_chart(brokers)
    (dir / "detector.toml").write_text(detector_toml)
    (dir / "cluster.toml").write_text(cluster_toml)
    det_cfg = tomllib.loads(detector_toml)
    meta = so["spec"]["triggers"][0]["metadata"]
    group, topic = meta["consumerGroup"], meta["topic"]
    # The wiring this test relies on (and the chart tests assert).
    assert (group, topic, meta["bootstrapServers"]) == (det_cfg["kafka"]["groups"]["detect"], det_cfg["kafka"]["topics"]["frames"]["name"], brokers)
    assert (det_cfg["detector"]["threads"], det_cfg["detector"]["streams"]) == (1, 1)
    partitions = det_cfg["kafka"]["topics"]["frames"]["partitions"]

    r = subprocess.run([str(BIN), "topics", "create", "--cluster", str(dir / "cluster.toml")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    # Two recorded cameras whose frames land on different partitions.
    cameras = []
    for clip in CLIPS:
        truth = json.loads((ROOT / f"test-videos/{clip}.truth.json").read_text())
        cid = f"cam-{clip}"
        taken = {murmur2_partition(c["id"].encode(), partitions) for c in cameras}
        n = 0
        while murmur2_partition(cid.encode(), partitions) in taken:
            n += 1
            cid = f"cam-{clip}-{n}"
        src = ROOT / f"test-videos/out/{clip}.mp4"
        assert src.exists(), f"{src}: scripts/setup.sh generates the clips"
        cameras.append({
            "id": cid, "intersection": f"x-{clip}", "source": str(src), "sample_fps": 10.0, "frame_ids": "media",
            "lines": [{k: ln[k] for k in ("name", "start", "end", "forward", "backward")} for ln in truth["lines"]],
        })
    expected = one_detector_counts(dir, cameras)
    assert len(expected) == len(CLIPS), expected

    reg_port = free_port()
    (dir / "tokens").write_text("keda-loop-test-token write\n")
    procs.start("registry", [str(BIN), "registry", "--cluster", str(dir / "cluster.toml"), "--listen", f"127.0.0.1:{reg_port}", "--tokens-file", str(dir / "tokens")])
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{reg_port}/healthz", timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, procs.log("registry")
            time.sleep(0.3)

    def post(path: str, body: dict) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{reg_port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "Bearer keda-loop-test-token", "Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10).close()
        except urllib.error.HTTPError as e:
            raise AssertionError(f"POST {path} {body}: {e.code} {e.read().decode(errors='replace')}") from None

    for cam in cameras:
        post("/v1/intersections", {"id": cam["intersection"], "approaches": []})
        # The registry takes URLs: file:// names the recording on the ingest pod.
        post("/v1/cameras", dict(cam, source=f"file://{cam['source']}"))

    stage = lambda kind, cfg: [str(BIN), kind, "--cluster", str(dir / cfg), "--status-addr", "127.0.0.1:0"]  # noqa: E731
    procs.start("aggregate", stage("aggregate", "cluster.toml"))
    detectors = [procs.start("detect-0", stage("detect", "detector.toml"))]
    procs.start("ingest", stage("ingest", "cluster.toml"))

    admin = AdminClient({"bootstrap.servers": brokers})
    reader = kafka.Consumer({"bootstrap.servers": brokers, "group.id": "keda-operator-probe", "enable.auto.commit": False})
    hpa = Hpa(so["spec"])
    poll = so["spec"]["pollingInterval"]
    timeline: list[tuple[float, int, int, int]] = []  # (t, lag as KEDA sees it, raw lag, replicas)
    t0 = time.monotonic()
    started = 1
    done_at = None
    try:
        while True:
            now = time.monotonic() - t0
            assert now < LIMIT, "did not settle in time:\n" + "\n".join(f"t={t:.0f}s lag={lag} raw={raw} replicas={n}" for t, lag, raw, n in timeline) + "\n" + "\n".join(procs.log(p.name) for p in procs.all[1:])
            for p in detectors:
                assert p.poll() is None, procs.log(p.name, 40)
            lag, raw = keda_lag(admin, reader, group, topic, meta)
            want = hpa.desired(now, len(detectors), lag)
            while len(detectors) < want:
                detectors.append(procs.start(f"detect-{started}", stage("detect", "detector.toml")))
                started += 1
            while len(detectors) > want:
                # The newest goes first, as a ReplicaSet scaling down does.
                Procs.stop(detectors.pop())
            timeline.append((now, lag, raw, len(detectors)))
            if done_at is None:
                latest = latest_counts(brokers, det_cfg["kafka"]["topics"]["counts"]["name"]) if lag == 0 else {}
                if len(latest) == len(expected) and all(v.get("complete") for v in latest.values()):
                    done_at = now
            elif len(detectors) == hpa.min and now - done_at > hpa.down_window:
                break
            time.sleep(poll)
    finally:
        reader.close()

    report = "\n".join(f"t={t:5.1f}s lag={lag:4d} (unclipped {raw:4d}) replicas={n}" for t, lag, raw, n in timeline)
    print("\nKEDA in the loop (lagThreshold {}, max {}):\n{}".format(hpa.threshold, hpa.max, report))
    peak = max(range(len(timeline)), key=lambda i: timeline[i][3])
    assert timeline[peak][3] == hpa.max, f"the replicas rose to the maximum:\n{report}"
    assert any(lag < hpa.threshold for _, lag, _, _ in timeline[peak:]), f"the lag fell below the threshold:\n{report}"
    assert timeline[-1][3] == hpa.min, f"the replicas fell back:\n{report}"
    # The replica KEDA added did work: it detected frames of its partition.
    for name in [f"detect-{i}" for i in range(started)]:
        frames = re.findall(r"detect stage running frames=(\d+)", (dir / f"{name}.log").read_text(errors="replace"))
        assert frames and int(frames[-1]) > 0, f"{name} detected nothing:\n{procs.log(name)}"
    got = {k: counts_of(v["counts"]) for k, v in latest_counts(brokers, det_cfg["kafka"]["topics"]["counts"]["name"]).items()}
    assert got == expected, f"counts with KEDA-scaled detectors differ from one detector's:\n{got}\n{expected}"
