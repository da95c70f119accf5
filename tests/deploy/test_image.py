"""The CPU image, built from docker/Dockerfile by scripts/build-image.sh
(mmdebstrap base, buildah, no Docker engine), and run: the binary starts, every
GStreamer element the pipeline templates use is found, the image and the chart
name the model the image carries (det_fp16, the binary's default), the detector
finds the bus on bus.jpg, and a stage serves as the image's non-root user with the root
filesystem read-only (only /tmp and the cache writable, as the chart mounts
them). Also: hadolint on every Dockerfile.

Needs root (mmdebstrap, buildah's vfs storage, mount namespaces). Skipped with
the reason when STREETSCOPE_SKIP_IMAGE=1 (the image tests are the slow part).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("STREETSCOPE_CACHE", Path.home() / ".cache/streetscope"))
STORAGE = CACHE / "images/containers"
BUILDAH = ["buildah", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run"), "--storage-driver", "vfs"]
UID = 10001

needs_image = pytest.mark.skipif(os.environ.get("STREETSCOPE_SKIP_IMAGE") == "1", reason="STREETSCOPE_SKIP_IMAGE=1")


def test_dockerfiles_are_hadolint_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    files = sorted((ROOT / "docker").glob("Dockerfile*"))
    assert files
    for f in files:
        r = subprocess.run([str(hadolint), "--no-color", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{f.name}:\n{r.stdout}{r.stderr}"


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0:
        pytest.skip("building and running the image needs root here (mmdebstrap, mount namespaces)")
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "scripts/build-image.sh")], capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    print(f"\nimage ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def rootfs(image):
    """The image's root filesystem (a buildah container, mounted), and its config."""
    ctr = subprocess.run(BUILDAH + ["from", "--pull=never", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        path = subprocess.run(BUILDAH + ["mount", ctr], capture_output=True, text=True, check=True).stdout.strip()
        config = json.loads(subprocess.run(BUILDAH + ["inspect", "--type", "image", image], capture_output=True, text=True, check=True).stdout)
        yield Path(path), config["OCIv1"]["config"], ctr
    finally:
        subprocess.run(BUILDAH + ["umount", ctr], capture_output=True)
        subprocess.run(BUILDAH + ["rm", ctr], capture_output=True)


# A read-only root, tmpfs on /tmp and the cache, /proc and /dev, then chroot as
# the image's user with the image's environment: what the chart's pods get.
JAIL = r"""
set -e
R=$1; shift
mount --bind "$R" "$R"
mount -o remount,bind,ro "$R"
mount -t tmpfs -o size=256m,mode=1777 tmpfs "$R/tmp"
mount -t tmpfs -o size=64m,uid=10001,gid=10001 tmpfs "$R/var/cache/streetscope"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
exec chroot --userspec="$USERSPEC" "$R" "$@"
"""


def jailed(rootfs, argv: list[str], **kw) -> subprocess.Popen | subprocess.CompletedProcess:
    path, config, _ = rootfs
    env = dict(e.split("=", 1) for e in config["Env"])
    assert config["User"] == f"{UID}:{UID}"
    cmd = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--", "sh", "-c", JAIL, "jail", str(path), "/usr/bin/env", "-i"]
    cmd += [f"{k}={v}" for k, v in env.items()] + argv
    host_env = {"PATH": os.environ["PATH"], "USERSPEC": config["User"]}
    if kw.pop("background", False):
        return subprocess.Popen(cmd, env=host_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, env=host_env, capture_output=True, text=True, timeout=kw.pop("timeout", 120))


@needs_image
def test_binary_starts_in_the_image(rootfs):
    _, _, ctr = rootfs
    r = subprocess.run(BUILDAH + ["run", "--isolation", "chroot", "--user", f"{UID}:{UID}", "--", ctr, "streetscope", "--version"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"streetscope \d+\.\d+\.\d+\n", r.stdout), r.stdout


@needs_image
def test_root_is_read_only_and_user_is_not_root(rootfs):
    r = jailed(rootfs, ["/bin/sh", "-c", "id -u; id -g; touch /opt/x 2>&1 || echo refused; touch /tmp/x && echo tmp-ok"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == str(UID) and lines[1] == str(UID)
    assert "refused" in r.stdout and "Read-only file system" in r.stdout
    assert "tmp-ok" in r.stdout


def template_elements() -> set[str]:
    """Every GStreamer element named in pipelines/templates, with what the
    placeholders expand to ({encode}: jpegenc) and what decodebin picks for
    H.264/H.265 RTSP cameras."""
    names = set()
    for t in (ROOT / "pipelines/templates").glob("*.pipeline"):
        body = "\n".join(line for line in t.read_text().splitlines() if not line.lstrip().startswith("#"))
        for part in re.split(r"!", body):
            first = part.strip().split()[0] if part.strip() else ""
            if first and "/" not in first and "{" not in first and "=" not in first:
                names.add(first)
    assert {"rtspsrc", "uridecodebin", "appsink", "souphttpsrc", "v4l2src"} <= names, names
    # streetscopeletterbox is Streetscope's own element, registered in-process.
    names.discard("streetscopeletterbox")
    return names | {"jpegenc", "rtph264depay", "rtph265depay", "h264parse", "h265parse", "avdec_h264", "avdec_h265"}


@needs_image
def test_every_template_element_is_in_the_image(rootfs):
    elements = sorted(template_elements())
    script = "for e in " + " ".join(elements) + '; do gst-inspect-1.0 --exists "$e" || echo "missing $e"; done; echo done'
    r = jailed(rootfs, ["/bin/sh", "-c", script], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("done")
    assert "missing" not in r.stdout, r.stdout


@needs_image
def test_the_image_and_the_chart_name_the_model_the_image_carries(rootfs):
    """One model everywhere: the binary's default (det_u8, made by
    scripts/model-variants.sh --default), the image's STREETSCOPE_MODEL and the
    chart's detector.model."""
    path, config, _ = rootfs
    env = dict(e.split("=", 1) for e in config["Env"])
    chart = yaml.safe_load((ROOT / "helm/streetscope/values.yaml").read_text())["detector"]["model"]
    assert env["STREETSCOPE_MODEL"] == chart == "/opt/streetscope/models/yolo11n_det_u8.onnx", (env, chart)
    shipped = path / chart.lstrip("/")
    assert shipped.is_file(), sorted(p.name for p in (path / "opt/streetscope/models").iterdir())
    assert shipped.read_bytes() == (CACHE / "models/yolo11n_det_u8.onnx").read_bytes()
    # Beside it, the same model with a dynamic batch, for GPU pools that batch.
    batch = path / "opt/streetscope/models/yolo11n_det_u8_batch.onnx"
    assert batch.read_bytes() == (CACHE / "models/yolo11n_det_u8_batch.onnx").read_bytes()


@needs_image
def test_detector_finds_the_bus_in_the_image(rootfs):
    r = jailed(rootfs, ["streetscope", "detect", "/opt/streetscope/assets/bus.jpg"], timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    found = re.findall(r"^\s+(\w+)\s+([0-9.]+)\s+\[", r.stdout, re.M)
    assert any(name == "bus" and float(score) > 0.3 for name, score in found), r.stdout
    # The default providers name openvino: the detector loads the image's OpenVINO build.
    assert "model loaded on openvino" in r.stderr, r.stderr
    # `cpu` alone loads the plain build (its CPU provider is the faster one).
    r = jailed(rootfs, ["streetscope", "detect", "--providers", "cpu", "/opt/streetscope/assets/bus.jpg"], timeout=300)
    assert r.returncode == 0 and "model loaded on cpu" in r.stderr, r.stdout + r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_image
def test_a_stage_serves_as_non_root_with_a_read_only_root(rootfs):
    port = free_port()
    token = "t" * 32
    p = jailed(
        rootfs,
        ["/bin/sh", "-c", f'STREETSCOPE_REGISTRY_TOKENS="{token} read" exec streetscope registry --in-memory --listen 127.0.0.1:{port}'],
        background=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert p.poll() is None, p.stdout.read()
                assert time.monotonic() < deadline, "the registry did not answer in 60 s"
                time.sleep(0.3)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/cameras", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        # The serving process runs as the image's user (real and effective).
        pids = subprocess.run(["pgrep", "-x", "streetscope"], capture_output=True, text=True).stdout.split()
        serving = [pid for pid in pids if f"127.0.0.1:{port}" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert serving, "no streetscope process found"
        for pid in serving:
            uids = Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[:2]
            assert uids == [str(UID), str(UID)], uids
    finally:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        # unshare's --kill-child does not reach the registry (the signal set for
        # its parent's death is cleared when chroot changes the user): stop it
        # by its command line.
        for pid in subprocess.run(["pgrep", "-x", "streetscope"], capture_output=True, text=True).stdout.split():
            try:
                if f"127.0.0.1:{port}" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass

