"""HTTPS on the stages' status endpoints from one switch (statusTls.enabled):
the chart renders [status.tls] into cluster.toml with files from the mounted
Secret, the kubelet's probes use scheme HTTPS, and the Prometheus Operator
scrapes https with the CA and server name. Off (the default), all of it stays
plain HTTP. Rendered by Helm's Go SDK as test_chart.py does."""

from __future__ import annotations

from pathlib import PurePosixPath

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
from test_chart import BASE, CHART, CLUSTER_SCHEMA, KUBE_VERSION, by_name, config_of, kind, merged, pod_specs, render

STAGES = ("ingest", "detect", "aggregate")
TLS = {"statusTls": {"enabled": True, "existingSecret": "status-cert"}, "metrics": {"serviceMonitor": True}}


def stage_pods(docs: list[dict]) -> list[tuple[str, dict, dict]]:
    """(name, pod spec, stage container) of every stage pod (ingest, detector pools, aggregator)."""
    out = []
    for name, pod in pod_specs(docs):
        for c in pod["containers"]:
            if c.get("args") and c["args"][0] in STAGES:
                out.append((name, pod, c))
    assert {c["args"][0] for _, _, c in out} == set(STAGES), [n for n, _, _ in out]
    return out


def stage_endpoint(docs: list[dict]) -> dict:
    sm = by_name(docs, "ServiceMonitor", "city-streetscope-stages")
    (endpoint,) = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("status", "/metrics")
    return endpoint


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def test_tls_on_serves_https_and_probes_and_scrapes_follow(chart):
    values = merged(BASE, TLS, {"config": {"status": {"max_connections": 32}}})
    chart.validate_schema(values)
    docs = render(chart, values)
    for name, pod, c in stage_pods(docs):
        cfg = config_of(docs, pod)
        # The section the stages read, against the schema generated from the Rust types.
        jsonschema.validate(cfg["status"], dict(CLUSTER_SCHEMA["properties"]["status"], **{"$defs": CLUSTER_SCHEMA["$defs"]}))
        # The limits set in config.status stay; the switch adds the files.
        assert cfg["status"]["max_connections"] == 32, name
        tls = cfg["status"]["tls"]
        # The files the stage reads are the Secret's keys, where the Secret is mounted.
        vol = next(v for v in pod["volumes"] if v["name"] == "status-tls")
        assert vol["secret"]["secretName"] == "status-cert", name
        mount = next(m for m in c["volumeMounts"] if m["name"] == "status-tls")
        assert mount["readOnly"] is True
        keys = {i["path"]: i["key"] for i in vol["secret"]["items"]}
        for file, key in ((tls["cert_file"], "tls.crt"), (tls["key_file"], "tls.key")):
            p = PurePosixPath(file)
            assert str(p.parent) == mount["mountPath"], f"{name}: {file} outside the mount"
            assert keys.get(p.name) == key, f"{name}: {file} is not the Secret's {key}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["scheme"] == "HTTPS", f"{name}: {probe}"
            assert c[probe]["httpGet"]["port"] == "status"
    endpoint = stage_endpoint(docs)
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": "city-streetscope-metrics.streetscope.svc",
        "ca": {"secret": {"name": "status-cert", "key": "ca.crt"}},
    }
    # The registry serves no status endpoint: its probes and scrape are untouched.
    reg = by_name(docs, "Deployment", "city-streetscope-registry")["spec"]["template"]["spec"]
    assert all(m["name"] != "status-tls" for m in reg["containers"][0]["volumeMounts"])
    assert reg["containers"][0]["livenessProbe"]["httpGet"].get("scheme", "HTTP") == "HTTP"
    registry_sm = by_name(docs, "ServiceMonitor", "city-streetscope-registry")
    assert "scheme" not in registry_sm["spec"]["endpoints"][0]
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job", "Pod", "ConfigMap", "Service"):
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)


def test_tls_off_stays_plain_http(chart):
    docs = render(chart, merged(BASE, {"metrics": {"serviceMonitor": True}}))
    for name, pod, c in stage_pods(docs):
        assert "tls" not in config_of(docs, pod).get("status", {}), name
        assert all(v["name"] != "status-tls" for v in pod["volumes"]), name
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["scheme"] == "HTTP", f"{name}: {probe}"
    endpoint = stage_endpoint(docs)
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint


def test_without_a_ca_the_scrape_does_not_verify_and_a_server_name_is_kept(chart):
    values = merged(BASE, TLS, {"statusTls": {"caKey": "", "serverName": "metrics.city.example"}})
    chart.validate_schema(values)
    endpoint = stage_endpoint(render(chart, values))
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {"serverName": "metrics.city.example", "insecureSkipVerify": True}


def test_status_tls_changes_roll_the_stages(chart):
    """The status section is in cluster.toml, whose checksum rolls the pods."""
    plain = render(chart, BASE)
    tls = render(chart, merged(BASE, TLS))
    for d in kind(tls, "Deployment"):
        if d["metadata"]["labels"]["app.kubernetes.io/component"] in ("ingest", "detector", "aggregator"):
            before = by_name(plain, "Deployment", d["metadata"]["name"])
            a = d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            b = before["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            assert a != b, d["metadata"]["name"]


REFUSED = [
    ("no-secret", {"statusTls": {"enabled": True}}, "statusTls.existingSecret is required"),
    (
        "tls-by-hand",
        {"config": {"status": {"tls": {"cert_file": "/x.crt", "key_file": "/x.key"}}}},
        "config.status.tls: set statusTls.enabled",
    ),
    ("unknown-key", {"statusTls": {"enabled": True, "existingSecret": "s", "ca": "x"}}, "additional properties 'ca' not allowed"),
]


@pytest.mark.parametrize("label,values,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_status_tls_values_are_refused(chart, label, values, message):
    with pytest.raises(helm.HelmError) as err:
        chart.render(merged(BASE, values), name="city", namespace="streetscope")
    assert message in str(err.value)

