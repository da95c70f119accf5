"""The chart's demo broker, run for real: the containers the chart renders for a
demo install (demoBroker.enabled) are run as Kubernetes would run them, from
the images this repository builds (docker/Dockerfile.broker: tansu;
docker/Dockerfile: streetscope), without a cluster:

- the image refs, args, env, workingDir, user, read-only root and emptyDir
  mounts are the rendered pod's; ConfigMap mounts get the rendered ConfigMap's
  data; the Service's DNS name is the container's /etc/hosts entry for
  127.0.0.1;
- everything runs in a network namespace of its own (only loopback), so the
  rendered port 9092 is used as it is and nothing on the shared machine can
  collide with it.

Then: the broker serves Kafka, the pre-install hook Job (`streetscope topics
create`) creates every topic with the rendered partitions, the `helm test` pod
finds nothing left to change, and a message goes through the broker.

Needs root (buildah's vfs storage, mount and network namespaces). Skipped with
the reason when STREETSCOPE_SKIP_IMAGE=1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STREETSCOPE_CACHE", Path.home() / ".cache/streetscope"))
STORAGE = CACHE / "images/containers"
BUILDAH = ["buildah", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run"), "--storage-driver", "vfs"]

# A demo install, with the images built here as the chart's image references.
VALUES = {
    "image": {"repository": "localhost/streetscope", "tag": "test"},
    "demoBroker": {"enabled": True, "image": {"repository": "localhost/streetscope-broker", "tag": "test"}},
    "kafka": {"brokers": ""},
    "registry": {"tokens": {"existingSecret": "reg-tokens"}},
}

pytestmark = [
    pytest.mark.skipif(os.environ.get("STREETSCOPE_SKIP_IMAGE") == "1", reason="STREETSCOPE_SKIP_IMAGE=1"),
    pytest.mark.skipif(os.geteuid() != 0, reason="buildah's vfs storage and the namespaces need root here"),
]


def render() -> list[dict]:
    out = helm.Chart.load(str(ROOT / "helm/streetscope")).render(VALUES, name="city", namespace="streetscope", is_install=True)
    return [d for path, text in sorted(out.items()) if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]


def find(docs: list[dict], kind: str, name: str) -> dict:
    (d,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return d


def build(*args: str) -> str:
    r = subprocess.run(["bash", str(ROOT / "scripts/build-image.sh"), *args], capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout.strip().splitlines()[-1]


# The pod's view: a read-only root (when the container asks for one), tmpfs on
# each emptyDir, /proc and /dev, then chroot as the pod's user into the working
# directory with nothing but the image's and the container's environment.
JAIL = r"""
set -e
R=$1; shift
mount --bind "$R" "$R"
[ "$READ_ONLY" = 1 ] && mount -o remount,bind,ro "$R"
while [ "$1" != -- ]; do mount -t tmpfs -o size=256m,mode=1777 tmpfs "$R$1"; shift; done
shift
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
exec chroot --userspec="$USERSPEC" "$R" /usr/bin/env -i -C "$WORKDIR" "$@"
"""


class Pod:
    """A rendered pod's container, ready to run from its image's root filesystem."""

    def __init__(self, docs: list[dict], spec: dict, container: str, netns: str, hosts: str, roots: dict):
        (self.c,) = [c for c in spec["containers"] if c["name"] == container]
        image = self.c["image"]
        info = json.loads(subprocess.run(BUILDAH + ["inspect", "--type", "image", image], capture_output=True, text=True, check=True).stdout)
        config = info["OCIv1"]["config"]
        # One container (a copy of the image's root filesystem: vfs) per image,
        # shared by the pods run from it one after the other.
        if image not in roots:
            ctr = subprocess.run(BUILDAH + ["from", "--pull=never", image], capture_output=True, text=True, check=True).stdout.strip()
            roots[image] = (ctr, Path(subprocess.run(BUILDAH + ["mount", ctr], capture_output=True, text=True, check=True).stdout.strip()))
        self.ctr, self.root = roots[image]
        # Kubernetes' rules: command replaces the entrypoint, args the image's CMD.
        self.argv = self.c.get("command") or config.get("Entrypoint") or []
        self.argv = self.argv + (self.c.get("args") if "args" in self.c else config.get("Cmd") or [])
        env = dict(e.split("=", 1) for e in config.get("Env", []))
        for e in self.c.get("env", []):
            assert "value" in e, f"{e['name']}: only literal env values can be run here"
            env[e["name"]] = e["value"]
        self.env = env
        psc, sc = spec.get("securityContext", {}), self.c.get("securityContext", {})
        self.user = f"{sc.get('runAsUser', psc.get('runAsUser'))}:{sc.get('runAsGroup', psc.get('runAsGroup'))}"
        self.read_only = bool(sc.get("readOnlyRootFilesystem"))
        self.workdir = self.c.get("workingDir") or config.get("WorkingDir") or "/"
        # Volumes: emptyDirs become tmpfs; ConfigMap data is laid into the root
        # filesystem (read-only in the pod either way); nothing else is expected.
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        self.tmpfs = []
        for m in self.c.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "emptyDir" in v:
                assert (self.root / m["mountPath"].lstrip("/")).is_dir(), f"{image} has no {m['mountPath']} to mount on"
                self.tmpfs.append(m["mountPath"])
            elif "configMap" in v:
                data = find(docs, "ConfigMap", v["configMap"]["name"])["data"]
                paths = {i["key"]: i["path"] for i in v["configMap"].get("items", [])} or {k: k for k in data}
                target = self.root / m["mountPath"].lstrip("/")
                if "subPath" in m:
                    key = next(k for k, p in paths.items() if p == m["subPath"])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(data[key])
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    for k, p in paths.items():
                        (target / p).write_text(data[k])
            else:
                raise AssertionError(f"volume {m['name']}: {sorted(v)} cannot be run here")
        # What the cluster's DNS does for the Service names.
        if hosts not in (self.root / "etc/hosts").read_text():
            with open(self.root / "etc/hosts", "a") as f:
                f.write(hosts)
        self.netns = netns

    def command(self) -> tuple[list[str], dict]:
        cmd = ["nsenter", f"--net={self.netns}", "unshare", "--mount", "--pid", "--fork", "--kill-child", "--"]
        cmd += ["sh", "-c", JAIL, "jail", str(self.root), *self.tmpfs, "--"]
        cmd += [f"{k}={v}" for k, v in self.env.items()] + self.argv
        host_env = {"PATH": os.environ["PATH"], "USERSPEC": self.user, "READ_ONLY": "1" if self.read_only else "0", "WORKDIR": self.workdir}
        return cmd, host_env

    def run(self, timeout: int = 120) -> subprocess.CompletedProcess:
        cmd, env = self.command()
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)

    def start(self) -> subprocess.Popen:
        cmd, env = self.command()
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)



def stop_netns(netns: str, holder: int) -> None:
    """SIGTERM, then SIGKILL after 10 s, to every process in the namespace but its holder."""
    ns = os.readlink(netns)

    def members() -> list[int]:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and int(d.name) != holder:
                try:
                    if os.readlink(d / "ns/net") == ns:
                        out.append(int(d.name))
                except OSError:
                    pass
        return out

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while members() and time.monotonic() < deadline:
            time.sleep(0.2)
    assert not members(), f"still running in the test's network namespace: {members()}"


def in_netns(netns: str, hosts: Path, code: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """Python code in the namespace, with the Service names resolved as in the pods."""
    script = f'mount --bind "{hosts}" /etc/hosts && exec "{sys.executable}" -c "$0"'
    cmd = ["nsenter", f"--net={netns}", "unshare", "--mount", "--", "sh", "-c", script, code]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_demo_broker_serves_and_the_topics_job_provisions_it(tmp_path):
    docs = render()
    cpu, broker = build(), build("broker")
    svc = find(docs, "Service", "city-streetscope-kafka")
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 9092
    broker_pod = find(docs, "StatefulSet", "city-streetscope-kafka")["spec"]["template"]["spec"]
    job = find(docs, "Job", "city-streetscope-topics")
    test_pod = find(docs, "Pod", "city-streetscope-test-topics")
    assert broker_pod["containers"][0]["image"] == broker
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == cpu
    cluster = tomllib.loads(find(docs, "ConfigMap", "city-streetscope-topics")["data"]["cluster.toml"])
    assert cluster["kafka"]["brokers"] == "city-streetscope-kafka:9092"
    hosts_line = "127.0.0.1 city-streetscope-kafka\n"
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + hosts_line)

    # A network namespace with only loopback, held by a sleeping process.
    holder = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 600"])
    netns = f"/proc/{holder.pid}/ns/net"
    roots: dict[str, tuple[str, Path]] = {}
    procs: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "link", "show", "up"], capture_output=True, text=True).stdout.count("LOOPBACK") != 1:
            assert time.monotonic() < deadline, "the network namespace did not come up"
            time.sleep(0.1)

        kafka = Pod(docs, broker_pod, "kafka", netns, hosts_line, roots)
        assert kafka.read_only and kafka.user == "10001:10001", (kafka.read_only, kafka.user)
        p = kafka.start()
        procs.append(p)
        # The readiness probe: a TCP connect to the container port.
        wait = f"""
import socket, time
deadline = time.monotonic() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", {port['port']}), timeout=1).close(); break
    except OSError:
        assert time.monotonic() < deadline, "nothing listens"
        time.sleep(0.2)
"""
        r = in_netns(netns, hosts, wait)
        assert r.returncode == 0 and p.poll() is None, (r.stderr, p.poll() is None or p.stdout.read())
        # It runs as the pod's user.
        pids = subprocess.run(["pgrep", "-x", "tansu"], capture_output=True, text=True).stdout.split()
        mine = [pid for pid in pids if os.readlink(f"/proc/{pid}/ns/net") == os.readlink(netns)]
        assert len(mine) == 1, pids
        uids = Path(f"/proc/{mine[0]}/status").read_text().split("Uid:")[1].split()[:2]
        assert uids == ["10001", "10001"], uids

        # The pre-install hook Job, then the helm test pod.
        topics = Pod(docs, job["spec"]["template"]["spec"], "topics", netns, hosts_line, roots)
        r = topics.run()
        assert r.returncode == 0, r.stdout + r.stderr
        n = len(cluster["kafka"]["topics"])
        assert f"{n} topics, {n} changed" in r.stdout, r.stdout
        check = Pod(docs, test_pod["spec"], "topics-exist", netns, hosts_line, roots)
        r = check.run()
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"{n} topics, 0 changed" in r.stdout, r.stdout

        # An independent client: every topic with its rendered partitions, and a
        # message produced and consumed back through the advertised listener.
        want = {t["name"]: t["partitions"] for t in cluster["kafka"]["topics"].values()}
        probe = f"""
import json
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
conf = {{"bootstrap.servers": {cluster['kafka']['brokers']!r}}}
md = AdminClient(conf).list_topics(timeout=20)
print(json.dumps({{n: len(t.partitions) for n, t in md.topics.items() if not n.startswith("__")}}))
p = Producer(conf)
p.produce({cluster['kafka']['topics']['dlq']['name']!r}, key=b"k", value=b"through the demo broker")
assert p.flush(20) == 0
c = Consumer(dict(conf, **{{"group.id": "probe", "auto.offset.reset": "earliest"}}))
c.subscribe([{cluster['kafka']['topics']['dlq']['name']!r}])
for _ in range(60):
    m = c.poll(1)
    if m is not None and m.error() is None:
        print(m.value().decode()); break
c.close()
"""
        r = in_netns(netns, hosts, probe, timeout=120)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.strip().splitlines()
        assert {k: v for k, v in json.loads(lines[0]).items() if k in want} == want, lines[0]
        assert lines[-1] == "through the demo broker", r.stdout
        assert p.poll() is None, "the broker stopped"
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # unshare's --kill-child does not reach the broker (the signal set for
        # its parent's death is cleared when chroot changes the user): stop
        # whatever still runs in the test's network namespace.
        stop_netns(netns, holder.pid)
        holder.kill()
        holder.wait()
        for ctr, _ in roots.values():
            subprocess.run(BUILDAH + ["umount", ctr], capture_output=True)
            subprocess.run(BUILDAH + ["rm", ctr], capture_output=True)
