"""The Helm chart, rendered by Helm's own Go SDK (helm-python-sdk) and checked
object by object: Kubernetes' schemas (kubernetes-validate, strict), KEDA's CRD
schemas (vendored, strict), the cluster-config schema generated from the Rust
types, and the wiring between them (the KEDA trigger reads exactly the group,
topic and brokers the detectors use; GPU limits; probes on served paths;
restricted pods; no replicas on KEDA targets). Bad values must be refused with a
message that says what to fix.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm/streetscope"
KUBE_VERSION = "1.37.0"
VENDOR = ROOT / "tools/deploy/vendor/keda"
CLUSTER_SCHEMA = json.loads((ROOT / "docs/schemas/cluster-config.schema.json").read_text())

# What every install must give: brokers and the registry's tokens Secret.
BASE = {"kafka": {"brokers": "kafka-0.kafka:9092,kafka-1.kafka:9092"}, "registry": {"tokens": {"existingSecret": "reg-tokens"}}}


def merged(*layers: dict) -> dict:
    out: dict = {}
    for layer in layers:
        out = _merge(out, copy.deepcopy(layer))
    return out


def _merge(a: dict, b: dict) -> dict:
    for k, v in b.items():
        a[k] = _merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


def example(name: str) -> dict:
    return yaml.safe_load((CHART / "examples" / name).read_text())


CASES = {
    "defaults": BASE,
    "small-city": example("small-city.yaml"),
    "large-city": example("large-city.yaml"),
    "demo": merged(BASE, {"kafka": {"brokers": ""}, "demoBroker": {"enabled": True}, "metrics": {"serviceMonitor": True}}),
    "tls-sasl-aggregator-scaling": merged(
        BASE,
        {
            "kafka": {
                "security": {
                    "existingSecret": "kafka-creds",
                    "tls": {"enabled": True, "certKey": "tls.crt", "keyKey": "tls.key", "keyPasswordKey": "key-pass"},
                    "sasl": {"enabled": True, "mechanism": "SCRAM-SHA-256"},
                }
            },
            "aggregator": {"autoscaling": {"enabled": True, "maxReplicaCount": 8}},
            "engineCache": {"enabled": True},
            "detector": {"pools": [dict(example("large-city.yaml")["detector"]["pools"][0], maxReplicaCount=16)]},
        },
    ),
}


@pytest.fixture(scope="session")
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render(chart: helm.Chart, values: dict) -> list[dict]:
    out = chart.render(values, name="city", namespace="streetscope", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for d in yaml.safe_load_all(text):
            if d:
                d.setdefault("metadata", {}).setdefault("annotations", {})
                docs.append(d)
    return docs


@pytest.fixture(scope="session", params=sorted(CASES))
def case(request, chart) -> tuple[str, dict, list[dict]]:
    values = CASES[request.param]
    return request.param, values, render(chart, values)


def kind(docs: list[dict], k: str) -> list[dict]:
    return [d for d in docs if d["kind"] == k]


def by_name(docs: list[dict], k: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == k and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{k}/{name}: {len(found)} found"
    return found[0]


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    out = []
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            out.append((name, d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            out.append((name, d["spec"]))
    return out


def strict(schema):
    """An OpenAPI v3 schema of a CRD made strict: objects with listed properties
    refuse others (as the API server's strict field validation does)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd_schema(file: str) -> dict:
    text = (VENDOR / file).read_text()
    crd = yaml.safe_load(text)
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    return strict(version["schema"]["openAPIV3Schema"])


KEDA = {
    ("keda.sh/v1alpha1", "ScaledObject"): crd_schema("scaledobjects.keda.sh.yaml"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): crd_schema("triggerauthentications.keda.sh.yaml"),
}


def config_of(docs: list[dict], pod: dict) -> dict:
    """The cluster.toml a pod mounts, parsed."""
    vol = next(v for v in pod["volumes"] if v["name"] == "config")
    cm = by_name(docs, "ConfigMap", vol["configMap"]["name"])
    items = vol["configMap"].get("items")
    key = items[0]["key"] if items else "cluster.toml"
    return tomllib.loads(cm["data"][key])


def served_paths(rust_file: str) -> set[str]:
    return set(re.findall(r'\.route\(\s*"([^"]+)"', (ROOT / rust_file).read_text()))


# ---------------------------------------------------------------------------


VALUES_SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def test_values_schema_takes_the_stage_sections_from_the_cluster_schema():
    """`streetscope schema` writes config.* and $defs of values.schema.json from
    the cluster configuration (scripts/test.sh runs `streetscope schema
    --check`); this checks the same rule without the binary."""
    sections = {
        name: {"$ref": "#/$defs/" + p["$ref"].rsplit("/", 1)[-1]}
        for name, p in CLUSTER_SCHEMA["properties"].items()
        if name != "kafka" and "$ref" in p
    }
    config = VALUES_SCHEMA["properties"]["config"]
    assert config["properties"] == sections, "run `streetscope schema`"
    assert config["additionalProperties"] is False
    assert VALUES_SCHEMA["$defs"] == CLUSTER_SCHEMA["$defs"], "run `streetscope schema`"


def test_values_schema_refuses_unknown_keys_everywhere():
    """Every object of the chart's own keys that lists its properties refuses others."""

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node:
                assert node.get("additionalProperties") is False, f"{path}: additionalProperties is not false"
            for k, v in node.items():
                if k != "$defs":
                    walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}/{i}")

    walk(VALUES_SCHEMA, "")


@pytest.mark.parametrize("name", sorted(CASES))
def test_lint_strict(name):
    report = helm.lint(str(CHART), CASES[name], strict=True, kube_version=f"v{KUBE_VERSION}")
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not errors, errors


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_pass_the_schema(chart, name):
    chart.validate_schema(CASES[name])


def test_every_object_is_valid_kubernetes(case):
    name, _, docs = case
    assert len(docs) > 10
    for d in docs:
        key = (d["apiVersion"], d["kind"])
        if key in KEDA:
            jsonschema.validate(d, KEDA[key])
        elif d["apiVersion"].startswith("monitoring.coreos.com/"):
            assert d["kind"] == "ServiceMonitor"
        else:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)


def test_cluster_configs_match_the_stages_schema(case):
    _, _, docs = case
    for cm in kind(docs, "ConfigMap"):
        for key, text in cm["data"].items():
            if key.endswith(".toml"):
                cfg = tomllib.loads(text)
                jsonschema.validate(cfg, CLUSTER_SCHEMA)


def test_keda_trigger_reads_what_the_detectors_consume(case):
    name, values, docs = case
    scaled = kind(docs, "ScaledObject")
    pools = values.get("detector", {}).get("pools") or [{"name": "gpu"}]
    detector_sos = [s for s in scaled if "-detector-" in s["metadata"]["name"]]
    assert len(detector_sos) == len(pools)
    for so in scaled:
        target = by_name(docs, "Deployment", so["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"], f"{target['metadata']['name']}: KEDA owns its replicas"
        pod = target["spec"]["template"]["spec"]
        cfg = config_of(docs, pod)
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert all(isinstance(v, str) for v in meta.values()), meta
        assert meta["bootstrapServers"] == cfg["kafka"]["brokers"]
        is_detector = "-detector-" in so["metadata"]["name"]
        group = cfg["kafka"]["groups"]["detect" if is_detector else "aggregate"]
        topic = cfg["kafka"]["topics"]["frames" if is_detector else "detections"]
        assert meta["consumerGroup"] == group
        assert meta["topic"] == topic["name"]
        assert so["spec"]["maxReplicaCount"] <= topic["partitions"]
        assert meta["allowIdleConsumers"] == "false"
        assert pod["containers"][0]["args"][0] == ("detect" if is_detector else "aggregate")
        # The trigger authenticates with the Secret the pods mount.
        security = cfg["kafka"]["security"]
        if "sasl" in security or "tls" in security:
            ta = by_name(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
            mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
            refs = ta["spec"]["secretTargetRef"]
            assert {r["name"] for r in refs} <= mounted
            by_param = {r["parameter"]: r["key"] for r in refs}
            if "sasl" in security:
                assert Path(security["sasl"]["password_file"]).name == by_param["password"]
                assert meta["sasl"] == security["sasl"]["mechanism"].lower().replace("-sha-", "_sha")
                (cmref,) = ta["spec"]["configMapTargetRef"]
                cm = by_name(docs, "ConfigMap", cmref["name"])
                assert cm["data"][cmref["key"]] == security["sasl"]["username"]
            if "tls" in security:
                assert meta["tls"] == "enable"
                assert Path(security["tls"]["ca_file"]).name == by_param["ca"]
                if "cert_file" in security["tls"]:
                    assert Path(security["tls"]["cert_file"]).name == by_param["cert"]
                    assert Path(security["tls"]["key_file"]).name == by_param["key"]
        else:
            assert "authenticationRef" not in trigger and meta["tls"] == "disable"


def test_detector_pools_get_their_gpus(case):
    _, values, docs = case
    pools = values.get("detector", {}).get("pools")
    if pools is None:
        pools = yaml.safe_load((CHART / "values.yaml").read_text())["detector"]["pools"]
    for p in pools:
        dep = by_name(docs, "Deployment", f"city-streetscope-detector-{p['name']}")
        pod = dep["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        limits = c["resources"].get("limits", {})
        cfg = config_of(docs, pod)
        assert cfg["detector"]["providers"] == p["providers"]
        if p["image"] == "gpu":
            assert "-gpu" in c["image"].split("@")[0].split(":")[0]
            assert limits[p["gpuResource"]] == p.get("gpuCount", 1)
            assert any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])), "GPU nodes are tainted"
            if p.get("gpuProduct"):
                assert pod["nodeSelector"]["nvidia.com/gpu.product"] == p["gpuProduct"]
        else:
            assert not any("/" in k for k in limits), limits
            assert "-gpu" not in c["image"]


def test_probes_point_at_served_paths(case):
    _, values, docs = case
    stage = served_paths("crates/cli/src/status.rs")
    registry = served_paths("crates/registry/src/api.rs")
    assert {"/healthz", "/readyz", "/metrics"} <= stage
    for name, pod in pod_specs(docs):
        for c in pod["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c or "httpGet" not in c[probe]:
                    continue
                get = c[probe]["httpGet"]
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                assert get["port"] in ports, f"{name}: probe on an undeclared port"
                served = registry if c["args"][0] == "registry" else stage
                assert get["path"] in served, f"{name}: {probe} on {get['path']}, not served"
                if c["args"][0] != "registry":
                    assert f"0.0.0.0:{ports[get['port']]}" in c["args"], f"{name}: status endpoint on another port"
            if c.get("args") and c["args"][0] in ("ingest", "detect", "aggregate"):
                assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_pods_are_restricted(case):
    _, _, docs = case
    for name, pod in pod_specs(docs):
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert "add" not in sc["capabilities"], name
            assert "memory" in c["resources"]["limits"], f"{name}/{c['name']}: no memory limit"
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if c in pod["containers"]:
                assert "/tmp" in mounts, f"{name}/{c['name']}: no writable /tmp (GStreamer registry, temp files)"


def test_production_defaults(case):
    name, values, docs = case
    deployments = [d for d in kind(docs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] != "registry"]
    pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in kind(docs, "PodDisruptionBudget")]
    for d in deployments:
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in pdb_selectors), d["metadata"]["name"]
        assert d["spec"]["template"]["spec"]["topologySpreadConstraints"], d["metadata"]["name"]
        assert re.fullmatch(r"[0-9a-f]{64}", d["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
    reg = by_name(docs, "Deployment", "city-streetscope-registry")
    assert reg["spec"]["replicas"] == 1 and reg["spec"]["strategy"]["type"] == "Recreate"
    assert kind(docs, "NetworkPolicy")
    hooks = [d for d in docs if d["metadata"]["annotations"].get("helm.sh/hook") == "pre-install,pre-upgrade"]
    job = next(d for d in hooks if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["topics", "create"]
    # The hook's ConfigMap comes first (hooks run before the release's own).
    hook_cm = next(d for d in hooks if d["kind"] == "ConfigMap")
    assert int(hook_cm["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    tests = [d for d in docs if d["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    assert {t["metadata"]["name"] for t in tests} == {"city-streetscope-test-registry", "city-streetscope-test-topics"}


def test_service_monitors_only_when_asked_or_present(case):
    name, values, docs = case
    sm = kind(docs, "ServiceMonitor")
    setting = values.get("metrics", {}).get("serviceMonitor", "auto")
    # Offline rendering has no monitoring.coreos.com API, so "auto" renders none.
    assert bool(sm) == (setting is True)


def test_every_config_section_reaches_the_stages(chart):
    """Each section the values schema admits under config.* (the cluster
    configuration's, from `streetscope schema`) is rendered into cluster.toml."""
    sections = sorted(VALUES_SCHEMA["properties"]["config"]["properties"])
    assert {"detector", "tracker", "status", "registry"} <= set(sections), sections
    docs = render(chart, merged(BASE, {"config": {"status": {"max_connections": 7}, "tracker": {"max_missed": 9}}}))
    for d in [d for d in docs if d["kind"] == "Deployment"]:
        cfg = config_of(docs, d["spec"]["template"]["spec"])
        assert cfg["status"]["max_connections"] == 7, d["metadata"]["name"]
        assert cfg["tracker"]["max_missed"] == 9, d["metadata"]["name"]
        jsonschema.validate(cfg, CLUSTER_SCHEMA)


def test_grafana_dashboard_ships_the_file(chart):
    """The dashboard ConfigMap carries dashboards/streetscope.json exactly,
    labelled for Grafana's sidecar; label, namespace and annotations come from
    values, and it can be switched off."""
    dashboard = json.loads((CHART / "dashboards/streetscope.json").read_text())
    (cm,) = [d for d in render(chart, BASE) if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "city-streetscope-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "streetscope"
    (text,) = cm["data"].values()
    assert json.loads(text) == dashboard
    assert text == (CHART / "dashboards/streetscope.json").read_text().rstrip("\n")

    custom = {"label": "grafana.example.org/dashboard", "labelValue": "streetscope", "namespace": "monitoring", "annotations": {"grafana_folder": "Traffic"}}
    (cm,) = [d for d in render(chart, merged(BASE, {"metrics": {"grafanaDashboard": custom}})) if d["metadata"]["name"] == "city-streetscope-dashboard"]
    assert cm["metadata"]["labels"]["grafana.example.org/dashboard"] == "streetscope"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Traffic"
    kubernetes_validate.validate(cm, KUBE_VERSION, strict=True)

    off = render(chart, merged(BASE, {"metrics": {"grafanaDashboard": {"enabled": False}}}))
    assert not [d for d in off if d["metadata"]["name"] == "city-streetscope-dashboard"]


def test_engine_cache_wiring(case):
    _, values, docs = case
    if not values.get("engineCache", {}).get("enabled"):
        assert not [j for j in kind(docs, "Job") if "warmup" in j["metadata"]["name"]]
        return
    jobs = {j["metadata"]["labels"]["streetscope.io/pool"]: j for j in kind(docs, "Job") if "warmup" in j["metadata"]["name"]}
    for pool, job in jobs.items():
        key = job["metadata"]["annotations"]["streetscope.io/engine-key"]
        dep = by_name(docs, "Deployment", f"city-streetscope-detector-{pool}")
        pod = dep["spec"]["template"]["spec"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "engines")
        assert mount["subPath"] == key and mount["readOnly"] is True
        assert config_of(docs, pod)["detector"]["tensorrt"]["engine_cache_dir"] == mount["mountPath"]
        wpod = job["spec"]["template"]["spec"]
        wmount = next(m for m in wpod["containers"][0]["volumeMounts"] if m["name"] == "engines")
        assert wmount["subPath"] == key and not wmount.get("readOnly")
        assert pod["initContainers"][0]["name"] == "wait-engine"
        # The warm-up builds with the pool's own configuration: the same model,
        # providers, TensorRT settings and cache directory as its detectors.
        assert "streetscope detect --config /etc/streetscope/cluster.toml" in wpod["containers"][0]["args"][0]
        assert config_of(docs, wpod) == config_of(docs, pod)
        assert wmount["mountPath"] == mount["mountPath"]


def test_engine_key_follows_the_engine_settings(chart):
    """An engine built for other TensorRT settings (precision, batch profile)
    does not load: new settings are a new key, hence a new warm-up Job."""
    gpu = {"engineCache": {"enabled": True}, "detector": {"pools": [dict(POOL, gpuProduct="NVIDIA-L4")]}}

    def key(values):
        (job,) = [j for j in kind(render(chart, merged(BASE, gpu, values)), "Job") if "warmup" in j["metadata"]["name"]]
        return job["metadata"]["annotations"]["streetscope.io/engine-key"], job["metadata"]["name"]

    plain = key({})
    assert plain[0].startswith("yolo11n_det_u8_nvidia-l4_trt"), plain
    assert key({"config": {"detector": {"confidence": 0.4}}}) == plain
    for change in ({"max_batch": 8, "opt_batch": 8}, {"fp16": False}):
        other = key({"config": {"detector": {"tensorrt": change}}})
        assert other[0] != plain[0] and other[1] != plain[1], (change, plain, other)


def test_config_change_rolls_only_the_pods_it_concerns(chart):
    before = render(chart, BASE)
    after = render(chart, merged(BASE, {"config": {"detector": {"confidence": 0.4}}}))

    def sums(docs):
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for d in kind(docs, "Deployment")}

    b, a = sums(before), sums(after)
    changed = {n for n in b if a[n] != b[n]}
    assert changed == {"city-streetscope-detector-gpu"}


def test_cpu_pools_run_openvino_first(chart):
    """The CPU image carries ONNX Runtime's OpenVINO build, 1.17-1.27x its CPU
    provider on x86-64: the shipped examples' CPU pools name it first, and the
    schema takes it (it once allowed only tensorrt, cuda and cpu)."""
    for name in ("small-city", "large-city"):
        for p in example(f"{name}.yaml").get("detector", {}).get("pools", []):
            if p["image"] == "cpu":
                assert p["providers"][0] == "openvino", (name, p)
    docs = render(chart, merged(BASE, {"detector": {"pools": [dict(POOL, name="c", image="cpu", providers=["openvino", "cpu"], gpuResource="")]}}))
    dep = by_name(docs, "Deployment", "city-streetscope-detector-c")
    assert config_of(docs, dep["spec"]["template"]["spec"])["detector"]["providers"] == ["openvino", "cpu"]
    with pytest.raises(helm.HelmError) as err:
        chart.render(merged(BASE, {"detector": {"pools": [dict(POOL, providers=["openvin0"])]}}), name="city", namespace="streetscope")
    assert "providers" in str(err.value), err.value


def test_a_gpu_pool_batches_on_its_own_model_beside_a_cpu_pool(chart):
    """Pools of one release with their own model and [detector] settings: the
    GPU pool batches on the dynamic-batch model, the CPU pool keeps the default
    model at batch 1, and the GPU pool's engine is keyed by its own model and
    TensorRT profile."""
    gpu = dict(POOL, name="gpu", gpuProduct="NVIDIA-L4", model="/opt/streetscope/models/yolo11n_det_u8_batch.onnx",
               config={"max_batch": 8, "max_wait_ms": 10, "threads": 4, "tensorrt": {"opt_batch": 8, "max_batch": 8}})
    cpu = dict(POOL, name="cpu", image="cpu", providers=["openvino", "cpu"], gpuResource="")
    values = merged(BASE, {"engineCache": {"enabled": True}, "config": {"detector": {"confidence": 0.3}},
                           "detector": {"pools": [gpu, cpu]}})
    docs = render(chart, values)
    cfg = {p: config_of(docs, by_name(docs, "Deployment", f"city-streetscope-detector-{p}")["spec"]["template"]["spec"])["detector"]
           for p in ("gpu", "cpu")}
    assert cfg["gpu"]["model"] == gpu["model"] and cfg["gpu"]["max_batch"] == 8 and cfg["gpu"]["max_wait_ms"] == 10
    assert cfg["gpu"]["tensorrt"]["max_batch"] == 8 and cfg["gpu"]["confidence"] == 0.3 and cfg["gpu"]["threads"] == 4
    assert cfg["cpu"]["threads"] == 0, "detector.threads, the chart's default, where the pool says nothing"
    assert cfg["cpu"]["model"] == "/opt/streetscope/models/yolo11n_det_u8.onnx" and "max_batch" not in cfg["cpu"]
    assert cfg["cpu"]["providers"] == ["openvino", "cpu"] and cfg["cpu"]["confidence"] == 0.3
    (job,) = [j for j in kind(docs, "Job") if "warmup" in j["metadata"]["name"]]
    assert job["metadata"]["annotations"]["streetscope.io/engine-key"].startswith("yolo11n_det_u8_batch_nvidia-l4_")
    assert config_of(docs, job["spec"]["template"]["spec"])["detector"] == cfg["gpu"]
    with pytest.raises(helm.HelmError) as err:
        chart.render(merged(BASE, {"detector": {"pools": [dict(POOL, config={"model": "/m.onnx"})]}}), name="city", namespace="streetscope")
    assert "detector.pools[g].config.model: set detector.pools[g].model instead" in str(err.value)


# --- bad values are refused, with a message that says what to do ------------

POOL = {"name": "g", "image": "gpu", "providers": ["cuda"], "gpuResource": "nvidia.com/gpu", "gpuCount": 1, "minReplicaCount": 1, "maxReplicaCount": 4, "resources": {"requests": {"cpu": "1"}}}

REFUSED = [
    ("max-above-partitions", {"detector": {"pools": [dict(POOL, maxReplicaCount=17)]}}, "maxReplicaCount 17 is above the frames topic's 16 partitions"),
    ("pools-sum-above-partitions", {"detector": {"pools": [dict(POOL, maxReplicaCount=10), dict(POOL, name="h", maxReplicaCount=10)]}}, "add up to 20, above the frames topic's 16 partitions"),
    ("misspelled-key", {"detectr": {}}, "additional properties 'detectr' not allowed"),
    ("misspelled-stage-setting", {"config": {"tracker": {"max_mised": 3}}}, "additional properties 'max_mised' not allowed"),
    ("string-lag-threshold", {"detector": {"autoscaling": {"lagThreshold": "100"}}}, "lagThreshold"),
    ("ingest-above-partitions", {"ingest": {"replicas": 5}}, "ingest.replicas 5 is above the cameras topic's 4 partitions"),
    ("snapshots-partitions", {"kafka": {"topics": {"snapshots": {"name": "s", "partitions": 3}}}}, "must equal kafka.topics.detections.partitions"),
    ("tls-without-secret", {"kafka": {"security": {"tls": {"enabled": True}}}}, "kafka.security.existingSecret is required"),
    ("no-brokers", {"kafka": {"brokers": ""}}, "kafka.brokers is required"),
    ("cpu-pool-with-gpu", {"detector": {"pools": [dict(POOL, image="cpu")]}}, "a cpu pool runs the CPU image"),
    ("scale-to-zero-min", {"detector": {"pools": [dict(POOL, scaleToZero=True)]}}, "scaleToZero needs minReplicaCount 0"),
    ("duplicate-pools", {"detector": {"pools": [dict(POOL, maxReplicaCount=2), dict(POOL, maxReplicaCount=2)]}}, "is used twice"),
    ("dashboard-label-value-not-string", {"metrics": {"grafanaDashboard": {"labelValue": 1}}}, "labelValue"),
    ("engine-cache-without-gpu-product", {"engineCache": {"enabled": True}}, "gpuProduct is required with engineCache.enabled"),
]


@pytest.mark.parametrize("label,values,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_values_are_refused(chart, label, values, message):
    with pytest.raises(helm.HelmError) as err:
        chart.render(merged(BASE, values), name="city", namespace="streetscope")
    assert message in str(err.value)


def test_keda_schema_refuses_a_non_string_trigger_value(chart):
    so = next(d for d in render(chart, BASE) if d["kind"] == "ScaledObject")
    schema = KEDA[("keda.sh/v1alpha1", "ScaledObject")]
    jsonschema.validate(so, schema)
    bad = copy.deepcopy(so)
    bad["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 100
    with pytest.raises(jsonschema.ValidationError, match="is not of type 'string'"):
        jsonschema.validate(bad, schema)
    bad = copy.deepcopy(so)
    bad["spec"]["maxReplicas"] = 3
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(bad, schema)
