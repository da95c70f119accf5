"""Writes (or checks) helm/streetscope/values.schema.json.

The chart's own keys are described here; the stage sections under `config.*`
take their schemas from docs/schemas/cluster-config.schema.json, which
`streetscope schema` generates from the Rust types, so the chart refuses a
misspelled detector or tracker setting at `helm install`, as the stage would at
start. Every object refuses unknown keys (additionalProperties: false).

    python tools/deploy/values_schema.py          # write
    python tools/deploy/values_schema.py --check  # exit 1 when the file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "helm/streetscope/values.schema.json"
CLUSTER = ROOT / "docs/schemas/cluster-config.schema.json"


def obj(props: dict, required: list[str] | None = None, desc: str | None = None) -> dict:
    o = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        o["required"] = required
    if desc:
        o["description"] = desc
    return o


def s(desc: str | None = None, **kw) -> dict:
    o = {"type": "string", **kw}
    if desc:
        o["description"] = desc
    return o


def i(desc: str | None = None, minimum: int | None = 0, **kw) -> dict:
    o = {"type": "integer", **kw}
    if minimum is not None:
        o["minimum"] = minimum
    if desc:
        o["description"] = desc
    return o


B = {"type": "boolean"}
# Kubernetes structures passed through as they are (validated by the API server,
# and in the tests by kubernetes-validate on the rendered objects).
K8S = {"type": "object", "description": "A Kubernetes structure, passed through as it is."}
K8S_LIST = {"type": "array", "items": {"type": "object"}}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
RESOURCES = obj(
    {"requests": {"type": "object"}, "limits": {"type": "object"}},
    desc="Container resources (requests, limits).",
)
PDB = obj({"maxUnavailable": {"type": ["integer", "string"]}}, ["maxUnavailable"])


def image(gpu: bool) -> dict:
    props = {
        "repository": s("Image repository.", minLength=1),
        "tag": s("Image tag; empty: the chart's appVersion."),
        "digest": s("Image digest (sha256:...); wins over the tag.", pattern=r"^(sha256:[0-9a-f]{64})?$"),
        "pullPolicy": s(enum=["Always", "IfNotPresent", "Never"]),
    }
    if gpu:
        props["tensorrtVersion"] = s("TensorRT version inside the GPU image (engine cache key).", minLength=1)
        props["onnxruntimeVersion"] = s("ONNX Runtime version inside the GPU image (engine cache key).", minLength=1)
    return obj(props, ["repository"])


def topic() -> dict:
    return obj(
        {
            "name": s("Topic name.", minLength=1),
            "partitions": i("Partitions.", minimum=1),
            "replication": i("Replication factor (3 in production).", minimum=1),
            "cleanupPolicy": s(enum=["delete", "compact"]),
            "retentionHours": i("Retention, hours.", minimum=1),
        },
        ["name", "partitions"],
    )


def scaling_common() -> dict:
    return {
        "lagThreshold": i("Frames of lag per replica KEDA aims for.", minimum=1),
        "activationLagThreshold": i("Lag above which a pool at zero is activated.", minimum=0),
        "pollingInterval": i("Seconds between KEDA's lag reads.", minimum=1),
        "cooldownPeriod": i("Seconds without activity before scaling to zero.", minimum=0),
    }


def pool() -> dict:
    return obj(
        {
            "name": s("Pool name (DNS label).", pattern=r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$"),
            "image": s("gpu: the GPU image; cpu: the CPU image.", enum=["gpu", "cpu"]),
            "providers": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": ["tensorrt", "cuda", "cpu"]},
            },
            "gpuResource": s(
                "GPU resource name: nvidia.com/gpu, nvidia.com/gpu.shared (time-slicing), nvidia.com/mig-<profile>; empty for CPU pools.",
                pattern=r"^([a-z0-9.-]+/[a-z0-9.-]+)?$",
            ),
            "gpuCount": i("GPUs (or slices) per detector.", minimum=1),
            "gpuProduct": s("GPU Feature Discovery's nvidia.com/gpu.product label of the pool's nodes."),
            "minReplicaCount": i(minimum=0),
            "maxReplicaCount": i(minimum=1),
            "scaleToZero": B,
            "resources": RESOURCES,
            "nodeSelector": STRMAP,
            "tolerations": K8S_LIST,
            "affinity": K8S,
        },
        ["name", "image", "providers", "minReplicaCount", "maxReplicaCount", "resources"],
    )


def build() -> dict:
    cluster = json.loads(CLUSTER.read_text())
    defs = cluster.get("$defs", {})
    section = {name: {"$ref": f"#/$defs/{ref.rsplit('/', 1)[-1]}"} for name, ref in (
        (k, v.get("$ref", "")) for k, v in cluster["properties"].items() if k != "kafka"
    ) if ref}
    config_props = dict(section)
    config_props.setdefault("registry", {"type": "object"})
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "streetscope chart values",
        "description": "Generated by tools/deploy/values_schema.py; the config.* sections come from docs/schemas/cluster-config.schema.json.",
        **obj(
            {
                "global": {"type": "object"},
                "image": image(False),
                "gpuImage": image(True),
                "imagePullSecrets": K8S_LIST,
                "kafka": obj(
                    {
                        "brokers": s("Bootstrap brokers, comma-separated host:port.", pattern=r"^([^,\s]+:[0-9]+(,[^,\s]+:[0-9]+)*)?$"),
                        "clientId": s(minLength=1),
                        "sessionTimeoutMs": i(minimum=1000),
                        "extra": STRMAP,
                        "security": obj(
                            {
                                "protocol": s(enum=["", "plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]),
                                "existingSecret": s("Secret with the CA, client key and SASL password."),
                                "tls": obj(
                                    {
                                        "enabled": B,
                                        "caKey": s(minLength=1),
                                        "certKey": s(),
                                        "keyKey": s(),
                                        "keyPasswordKey": s(),
                                        "verifyHostname": B,
                                    }
                                ),
                                "sasl": obj(
                                    {
                                        "enabled": B,
                                        "mechanism": s(enum=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
                                        "username": s(),
                                        "passwordKey": s(minLength=1),
                                    }
                                ),
                            }
                        ),
                        "groups": obj(
                            {k: s(minLength=1) for k in ("ingest", "detect", "aggregate")},
                            ["ingest", "detect", "aggregate"],
                        ),
                        "topics": obj(
                            {
                                k: topic()
                                for k in (
                                    "cameras",
                                    "intersections",
                                    "frames",
                                    "detections",
                                    "events",
                                    "counts",
                                    "alerts",
                                    "snapshots",
                                    "dlq",
                                )
                            }
                        ),
                    },
                    ["groups", "topics"],
                ),
                "config": obj(config_props, desc="Stage sections of cluster.toml (docs/configuration.md)."),
                "statusPort": i(minimum=1, maximum=65535),
                "podSecurityContext": K8S,
                "securityContext": K8S,
                "serviceAccount": obj({"create": B, "name": s(), "annotations": STRMAP}),
                "podLabels": STRMAP,
                "podAnnotations": STRMAP,
                "registry": obj(
                    {
                        "enabled": B,
                        "port": i(minimum=1, maximum=65535),
                        "tokens": obj({"existingSecret": s(), "tokensKey": s(minLength=1)}),
                        "service": obj({"type": s(enum=["ClusterIP", "NodePort", "LoadBalancer"])}),
                        "resources": RESOURCES,
                        "nodeSelector": STRMAP,
                        "tolerations": K8S_LIST,
                        "affinity": K8S,
                    }
                ),
                "ingest": obj(
                    {
                        "replicas": i(minimum=1),
                        "cameraCIDRs": {"type": "array", "items": s()},
                        "cameraPorts": {"type": "array", "items": i(minimum=1, maximum=65535)},
                        "resources": RESOURCES,
                        "pdb": PDB,
                        "nodeSelector": STRMAP,
                        "tolerations": K8S_LIST,
                        "affinity": K8S,
                    }
                ),
                "detector": obj(
                    {
                        "model": s("Model path inside the pod.", minLength=1),
                        "modelVolume": K8S,
                        "threads": i(minimum=0),
                        "autoscaling": obj(
                            {
                                **scaling_common(),
                                "offsetResetPolicy": s(enum=["earliest", "latest"]),
                                "fallback": obj(
                                    {"failureThreshold": i(minimum=1), "replicas": i(minimum=1)},
                                    ["failureThreshold", "replicas"],
                                ),
                                "behavior": K8S,
                            },
                            ["lagThreshold"],
                        ),
                        "pools": {"type": "array", "minItems": 1, "items": pool()},
                        "pdb": PDB,
                    },
                    ["pools"],
                ),
                "engineCache": obj(
                    {
                        "enabled": B,
                        "storageClassName": s(),
                        "accessModes": {"type": "array", "items": s(enum=["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce", "ReadWriteOncePod"])},
                        "size": s(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"),
                        "warmupInput": s(minLength=1),
                        "waitSeconds": i(minimum=5),
                    }
                ),
                "aggregator": obj(
                    {
                        "replicas": i(minimum=1),
                        "autoscaling": obj(
                            {
                                "enabled": B,
                                "minReplicaCount": i(minimum=1),
                                "maxReplicaCount": i(minimum=1),
                                **scaling_common(),
                            }
                        ),
                        "resources": RESOURCES,
                        "pdb": PDB,
                        "nodeSelector": STRMAP,
                        "tolerations": K8S_LIST,
                        "affinity": K8S,
                    }
                ),
                "topics": obj(
                    {"provision": B, "backoffLimit": i(minimum=0), "activeDeadlineSeconds": i(minimum=30)}
                ),
                "topologySpread": obj(
                    {
                        "enabled": B,
                        "maxSkew": i(minimum=1),
                        "zone": s(enum=["ScheduleAnyway", "DoNotSchedule"]),
                        "node": s(enum=["ScheduleAnyway", "DoNotSchedule"]),
                    }
                ),
                "networkPolicy": obj(
                    {
                        "enabled": B,
                        "kafkaCIDRs": {"type": "array", "items": s()},
                        "kafkaPorts": {"type": "array", "items": i(minimum=1, maximum=65535)},
                        "kedaNamespace": s(),
                        "monitoringNamespace": s(),
                        "registryClients": {"type": "array", "items": STRMAP},
                    }
                ),
                "metrics": obj(
                    {
                        "serviceMonitor": {"enum": ["auto", True, False]},
                        "interval": s(pattern=r"^[0-9]+(ms|s|m|h)$"),
                        "labels": STRMAP,
                        "grafanaDashboard": obj(
                            {
                                "enabled": B,
                                "label": s(
                                    "Label key Grafana's dashboard sidecar looks for.",
                                    pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
                                ),
                                "labelValue": s("Its value.", pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"),
                                "namespace": s(
                                    "Namespace of the dashboard ConfigMap; empty: the release's.",
                                    pattern=r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
                                ),
                                "annotations": STRMAP,
                            },
                            ["enabled", "label", "labelValue"],
                        ),
                    }
                ),
                "demoBroker": obj(
                    {
                        "enabled": B,
                        "image": image(False),
                        "storageLimit": s(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)?$"),
                        "resources": RESOURCES,
                    }
                ),
                "tests": obj({"enabled": B, "testTokenKey": s(minLength=1)}),
            },
            ["kafka", "detector"],
        ),
        "$defs": defs,
    }
    return schema


def main() -> int:
    text = json.dumps(build(), indent=2, sort_keys=False) + "\n"
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python tools/deploy/values_schema.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
