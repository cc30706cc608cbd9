"""Checks of everything that installs Wharf: the Helm chart, docker-compose.yml
and the Dockerfile, with the real tools that run here (no Docker engine, no
helm binary, no cluster):

- every YAML file parses and is yamllint-clean, rendered manifests included;
- values.yaml and ci/*.yaml validate against values.schema.json (with
  jsonschema and with Helm's own validator), and the schema refuses bad values;
- the chart lints and renders offline with helm-python-sdk (Helm 4 as a
  library) for several value sets, and every rendered object validates against
  the Kubernetes schemas of kubernetes-validate (the ServiceMonitor, a CRD,
  against its own schema below);
- the rendered objects fit together (selectors, ports, Secrets, volumes) and
  keep the security rules (non-root, read-only root filesystem);
- the wharf.toml and environment the chart and the compose file give Wharf are
  accepted by the real `wharf config`, without an unknown key or variable,
  the signing key the chart generates is one `wharf serve` signs with, and
  the replication credential key it generates is one `wharf serve` loads;
- every pod that seals or opens replication credentials (serving and
  worker) mounts the one credential key, which upgrades keep;
- docker-compose.yml validates against the compose specification's schema;
- the Dockerfile passes hadolint, builds with exactly the release command the
  tests check, and its build context holds what cargo needs with the same
  Cargo.lock (`cargo metadata --locked --offline`).

Run by scripts/test (tests/deploy/run). Outside CI a missing tool skips the
tests that need it; under CI (CI=true) it fails them.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "wharf"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
YAMLLINT_CONFIG = Path(__file__).with_name("yamllint.yaml")

# The one release build of the image; scripts/test builds the same package
# and binary, with the same --locked Cargo.lock, in the dev profile.
BUILD_COMMAND = "cargo build --release --locked -p wharf-gateway --bin wharf"
IMAGE_CMD = ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/wharf"]

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the
# newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.27.0", "1.37.0"]

IN_CI = os.environ.get("CI", "") in ("true", "1", "yes")


def need_module(name: str):
    try:
        return __import__(name)
    except ImportError:
        if IN_CI:
            pytest.fail(f"python module {name} is missing, and CI requires it (.ci/run installs it)")
        pytest.skip(f"python module {name} is not installed")


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed, and CI requires it (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return path


def wharf_bin() -> Path:
    path = Path(os.environ.get("WHARF_BIN", ROOT / "target" / "debug" / "wharf"))
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"{path} is missing: scripts/test builds it before these checks")
        pytest.skip(f"{path} is missing: run `cargo build -p wharf-gateway --bin wharf` first")
    return path


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without any Wharf setting, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WHARF_") and k not in ("DATABASE_URL", "AWS_ACCESS_KEY_ID",
                                                    "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    }
    env.update(extra)
    return env


def wharf_config(config_file: Path | None, env: dict[str, str], flags: list[str] = ()) -> dict[str, Any]:
    """`wharf config` as Wharf itself loads it: fails on any error or warning."""
    args = [str(wharf_bin()), "config", *flags]
    if config_file is not None:
        args += ["--config", str(config_file)]
    out = subprocess.run(args, env=clean_env(env), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"wharf config refused it:\n{out.stderr}"
    assert "warning" not in out.stderr, f"wharf config warned:\n{out.stderr}"
    return tomllib.loads(out.stdout)


# ---------------------------------------------------------------------------
# Value sets the chart is rendered with
# ---------------------------------------------------------------------------


def ha_values() -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / "ha-values.yaml").read_text())


VALUE_SETS: dict[str, dict[str, Any]] = {
    # `helm install wharf charts/wharf` with nothing set.
    "default": {},
    # charts/wharf/ci/ha-values.yaml, read at collection time below.
    "ha": {},
    # One replica on a volume, an external database given by URL, HTTPS in
    # the pod, metrics on the main port, every pod its own signing key.
    "single-external": {
        "postgresql": {"enabled": False},
        "database": {"url": "postgres://wharf:p%40ss@db.internal:5432/wharf?sslmode=require"},
        "admin": {"password": "Chart-Admin-1"},
        "externalURL": "https://wharf.internal",
        "tls": {"enabled": True, "existingSecret": "wharf-pod-tls"},
        "signingKey": {"generate": False},
        "metrics": {"port": 0, "serviceMonitor": {"enabled": True}},
        "migrations": {"initContainer": True},
        "storage": {"filesystem": {"persistence": {"existingClaim": "blobs", "size": "1Ti"}}},
        "ingress": {"enabled": True, "host": "wharf.internal", "tls": {"enabled": False}},
        "config": {"log": {"format": "text", "level": "info,wharf_registry=debug"},
                   "jobs": {"workers": 0}, "projects": {"defaultStorageLimit": 10737418240}},
    },
    # Three replicas sharing one ReadWriteMany volume (NFS, CephFS, EFS).
    "shared-volume": {
        "replicaCount": 3,
        "postgresql": {"enabled": False},
        "database": {"existingSecret": "wharf-db"},
        "storage": {"filesystem": {"persistence": {"accessModes": ["ReadWriteMany"],
                                                   "storageClass": "nfs"}}},
    },
    # Job-only pods beside HTTPS serving pods, under another name and
    # Service port: the workers reach the serving pods through the Service.
    "workers-tls": {
        "fullnameOverride": "registry",
        "replicaCount": 2,
        "postgresql": {"enabled": False},
        "database": {"existingSecret": "wharf-db"},
        "storage": {"type": "s3", "s3": {"bucket": "wharf", "region": "eu-west-1"}},
        "tls": {"enabled": True, "existingSecret": "wharf-pod-tls"},
        "service": {"port": 8443},
        "worker": {"enabled": True, "replicaCount": 3},
        "replication": {"proxyRecheckSecs": 60},
    },
    # Two replicas on MinIO with static keys given in values, no ingress.
    "s3-static-keys": {
        "replicaCount": 2,
        "storage": {"type": "s3", "s3": {
            "bucket": "wharf", "endpoint": "http://minio.storage.svc:9000", "region": "us-east-1",
            "pathStyle": True, "allowHttp": True, "prefix": "prod",
            "accessKeyId": "wharf", "secretAccessKey": "minio-secret"}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "service": {"type": "LoadBalancer"},
        "metrics": {"enabled": False},
    },
}
VALUE_SETS["ha"] = ha_values()


@pytest.fixture(scope="session")
def helm():
    return need_module("helm_python")


@pytest.fixture(scope="session")
def chart(helm):
    with helm.Chart.load(str(CHART)) as loaded:
        yield loaded


def render(chart, values: dict[str, Any], name: str = "wharf") -> list[dict[str, Any]]:
    rendered = chart.render(values=values, name=name, namespace="registry", is_install=True)
    objects = []
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template"] = template
                objects.append(doc)
    return objects


def by_kind(objects, kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects, kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def deployment_of(objects, component: str) -> dict[str, Any]:
    found = [d for d in by_kind(objects, "Deployment")
             if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    assert len(found) == 1, f"expected one {component} Deployment, got {len(found)}"
    return found[0]


def wharf_deployment(objects) -> dict[str, Any]:
    return deployment_of(objects, "registry")


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__template"}


# ---------------------------------------------------------------------------
# YAML, yamllint, the values schema
# ---------------------------------------------------------------------------


SOURCE_YAML = [COMPOSE, CHART / "Chart.yaml", CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]


@pytest.mark.parametrize("path", SOURCE_YAML, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path: Path):
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs and all(isinstance(d, dict) for d in docs)


def test_yamllint_is_clean_on_sources():
    need_tool("yamllint")
    out = subprocess.run(["yamllint", "--strict", "-c", str(YAMLLINT_CONFIG), *map(str, SOURCE_YAML)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_yamllint_is_clean_on_rendered_manifests(chart, tmp_path, name):
    need_tool("yamllint")
    rendered = chart.render(values=VALUE_SETS[name], name="wharf", namespace="registry")
    files = []
    for template, text in rendered.items():
        if template.endswith(".yaml") and text.strip():
            path = tmp_path / template.replace("/", "_")
            path.write_text(text.lstrip("\n"))
            files.append(str(path))
    out = subprocess.run(["yamllint", "--strict", "-c", str(YAMLLINT_CONFIG), *files],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def schema() -> dict[str, Any]:
    return json.loads((CHART / "values.schema.json").read_text())


def test_values_schema_is_a_valid_schema():
    jsonschema = need_module("jsonschema")
    jsonschema.Draft7Validator.check_schema(schema())


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_values_validate_against_the_schema(chart, name):
    jsonschema = need_module("jsonschema")
    merged = chart.merge_values(VALUE_SETS[name])
    jsonschema.Draft7Validator(schema()).validate(merged)
    chart.validate_schema(VALUE_SETS[name])


def test_values_yaml_alone_validates():
    jsonschema = need_module("jsonschema")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema()).validate(values)


@pytest.mark.parametrize("bad", [
    {"replicaCount": "3"},
    {"storage": {"type": "nfs"}},
    {"image": {"pullPolicy": "Sometimes"}},
    {"config": {"log": {"format": "xml"}}},
    {"config": {"jobs": {"workers": -1}}},
    {"config": {"projects": {"defaultStorageLimit": 0}}},
    {"database": {"url": "mysql://x"}},
    {"admin": {"password": "short"}},
    {"externalURL": "registry.example.com"},
    {"metrics": {"port": 8080}},
    {"replicas": 3},
    {"replication": {"proxyRecheckSecs": -1}},
    {"replication": {"proxyRecheckSecs": "300"}},
    {"replication": {"credentialKey": {"existingSecretKey": ""}}},
    {"replication": {"credentialKey": {"generate": False}}},
    {"replication": {"localURL": "http://wharf:80"}},
    {"worker": {"localURL": "wharf:80"}},
], ids=lambda v: json.dumps(v, sort_keys=True))
def test_the_schema_refuses_bad_values(chart, helm, bad):
    with pytest.raises(helm.HelmError):
        chart.validate_schema(bad)


# Maps handed to Kubernetes as they are: the README documents them whole.
WHOLE_MAPS = {"ingress.annotations", "resources", "postgresql.resources", "podSecurityContext",
              "securityContext"}


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    if isinstance(values, dict) and values and prefix not in WHOLE_MAPS:
        paths = []
        for key, value in values.items():
            paths += leaf_paths(value, f"{prefix}.{key}" if prefix else key)
        return paths
    return [prefix]


def test_every_value_is_in_the_readme():
    readme = (CHART / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in leaf_paths(values) if p not in documented]
    assert not missing, f"values missing from charts/wharf/README.md: {missing}"
    stale = sorted(p for p in documented if p not in leaf_paths(values))
    assert not stale, f"README documents values that do not exist: {stale}"


# ---------------------------------------------------------------------------
# Lint and render
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_chart_lints(helm, name):
    report = helm.lint(str(CHART), VALUE_SETS[name], strict=True, namespace="registry")
    assert report["errors"] == [], report
    # Severity 1 is informational ("icon is recommended"); 2 and 3 are
    # warnings and errors.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious, serious


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_rendered_objects_validate_against_kubernetes(chart, name, kube):
    kubernetes_validate = need_module("kubernetes_validate")
    objects = render(chart, VALUE_SETS[name])
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            # A CRD: kubernetes-validate has no schema for it; see
            # test_service_monitor_matches_its_crd.
            continue
        try:
            kubernetes_validate.validate(strip(obj), kube, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['__template']}: {obj['kind']} {obj['metadata']['name']} "
                        f"is not valid for Kubernetes {kube}: {e}")


# The part of the Prometheus Operator's ServiceMonitor CRD (monitoring.coreos.com/v1)
# the chart uses, with the CRD's own types and required fields.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {
                    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?"
                                     "(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?"
                                          "(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                        "tlsConfig": {"type": "object", "properties": {
                            "insecureSkipVerify": {"type": "boolean"}}},
                    }}},
            },
        },
    },
}


@pytest.mark.parametrize("name", ["ha", "single-external"])
def test_service_monitor_matches_its_crd(chart, name):
    jsonschema = need_module("jsonschema")
    objects = render(chart, VALUE_SETS[name])
    monitor = one(objects, "ServiceMonitor")
    jsonschema.validate(strip(monitor), SERVICE_MONITOR_SCHEMA)
    service = next(s for s in by_kind(objects, "Service")
                   if s["metadata"]["name"] == wharf_deployment(objects)["metadata"]["name"])
    labels = service["metadata"]["labels"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert labels.get(key) == value, f"the ServiceMonitor does not select the Service ({key})"
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"
    # Nothing but Wharf's own Service is selected (not the bundled PostgreSQL's).
    others = [s for s in by_kind(objects, "Service") if s is not service and all(
        s["metadata"].get("labels", {}).get(k) == v
        for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
    assert not others


def test_the_default_install_is_complete(chart):
    objects = render(chart, {})
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Secret", "Secret",
                            "Service", "Service", "ServiceAccount", "StatefulSet"]), kinds
    deployment = wharf_deployment(objects)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_the_ha_install_has_every_piece(chart):
    objects = render(chart, VALUE_SETS["ha"])
    deployment = wharf_deployment(objects)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] == 3
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "a PDB that blocks every drain"
    ingress = one(objects, "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["registry.example.com"],
                                       "secretName": "registry-example-com-tls"}]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    one(objects, "ServiceMonitor")
    assert not by_kind(objects, "StatefulSet"), "no bundled PostgreSQL with an external one"
    assert not by_kind(objects, "PersistentVolumeClaim"), "S3 storage needs no volume"
    # Every Secret is an existing one: the chart makes none.
    assert not by_kind(objects, "Secret")
    init = [c["name"] for c in deployment["spec"]["template"]["spec"]["initContainers"]]
    assert init == ["install-keys", "migrate"]


def test_job_only_pods_take_the_jobs_from_the_serving_pods(chart):
    objects = render(chart, VALUE_SETS["ha"])
    server, worker = wharf_deployment(objects), deployment_of(objects, "worker")
    assert worker["spec"]["replicas"] == 2
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["worker"]
    assert "WHARF_JOBS_WORKERS" not in container_env(objects, container)
    served = container_env(objects, server["spec"]["template"]["spec"]["containers"][0])
    assert served["WHARF_JOBS_WORKERS"] == "0", "serving pods must leave the jobs to the workers"
    # Nothing that routes traffic or counts serving pods selects the workers.
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    for obj in by_kind(objects, "Service") + by_kind(objects, "PodDisruptionBudget"):
        selector = obj["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert not all(pod_labels.get(k) == v for k, v in selector.items()), obj["metadata"]["name"]
    # The same configuration, database and signing key as the serving pods.
    assert container["volumeMounts"] == server["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    # Without them, the default install has no worker pods and serving pods run the jobs.
    default = render(chart, VALUE_SETS["default"])
    assert len(by_kind(default, "Deployment")) == 1
    served = container_env(default, pod_spec(default)["containers"][0])
    assert "WHARF_JOBS_WORKERS" not in served


@pytest.mark.parametrize("values, message", [
    ({"replicaCount": 2}, "needs storage.type=s3"),
    ({"replicaCount": 2, "storage": {"filesystem": {"persistence": {"enabled": False,
                                                                    "accessModes": ["ReadWriteMany"]}}}},
     "needs storage.type=s3"),
    ({"autoscaling": {"enabled": True}}, "needs storage.type=s3"),
    ({"storage": {"type": "s3"}}, "needs storage.s3.bucket"),
    ({"postgresql": {"enabled": False}}, "Wharf needs PostgreSQL"),
    ({"database": {"url": "postgres://x@y/z"}}, "turn it off"),
    ({"tls": {"enabled": True}}, "tls.existingSecret"),
    ({"worker": {"enabled": True}}, "worker.enabled runs jobs in pods of their own"),
    ({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}}, "needs metrics.enabled"),
], ids=lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else "")
def test_impossible_settings_are_refused_with_a_reason(chart, helm, values, message):
    with pytest.raises(helm.HelmError) as refused:
        chart.render(values=values, name="wharf", namespace="registry")
    assert message in str(refused.value)


# ---------------------------------------------------------------------------
# The rendered objects fit together
# ---------------------------------------------------------------------------


def pod_spec(objects) -> dict[str, Any]:
    return wharf_deployment(objects)["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_objects_refer_to_each_other_correctly(chart, name):
    values = VALUE_SETS[name]
    objects = render(chart, values)
    deployment = wharf_deployment(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for key, value in deployment["spec"]["selector"]["matchLabels"].items():
        assert pod_labels[key] == value
    services = {s["metadata"]["name"]: s for s in by_kind(objects, "Service")}
    service = services[deployment["metadata"]["name"]]
    for key, value in service["spec"]["selector"].items():
        assert pod_labels[key] == value, "the Service does not select the pods"
    spec = pod_spec(objects)
    container = spec["containers"][0]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in container_ports
    volumes = {v["name"]: v for v in spec["volumes"]}
    for c in spec["containers"] + spec.get("initContainers", []):
        for mount in c["volumeMounts"]:
            assert mount["name"] in volumes, f"{c['name']} mounts an undefined volume"
    # Secrets and ConfigMaps: those the chart renders, or the existing ones named in values.
    rendered_secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    existing = {v for v in [values.get("admin", {}).get("existingSecret"),
                            values.get("database", {}).get("existingSecret"),
                            values.get("storage", {}).get("s3", {}).get("existingSecret"),
                            values.get("signingKey", {}).get("existingSecret"),
                            values.get("replication", {}).get("credentialKey", {}).get("existingSecret"),
                            values.get("tls", {}).get("existingSecret")] if v}
    for c in spec["containers"] + spec.get("initContainers", []):
        for env in c.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                if ref["name"] in existing:
                    continue
                secret = rendered_secrets.get(ref["name"])
                assert secret, f"{env['name']} refers to a Secret nobody makes: {ref['name']}"
                keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
                assert ref["key"] in keys, f"{env['name']}: {ref['name']} has no key {ref['key']}"
    for volume in volumes.values():
        if "secret" in volume:
            name_ = volume["secret"]["secretName"]
            assert name_ in existing or name_ in rendered_secrets, name_
        if "configMap" in volume:
            assert volume["configMap"]["name"] in {c["metadata"]["name"] for c in by_kind(objects, "ConfigMap")}
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            claims = {p["metadata"]["name"] for p in by_kind(objects, "PersistentVolumeClaim")}
            assert claim in claims or claim == values.get("storage", {}).get("filesystem", {}).get(
                "persistence", {}).get("existingClaim"), claim
    for ingress in by_kind(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"]["name"] in {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        for key, value in pdb["spec"]["selector"]["matchLabels"].items():
            assert pod_labels[key] == value
    # The pod restarts when its configuration changes.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/config"])


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_pods_run_unprivileged_on_a_read_only_root(chart, name):
    objects = render(chart, VALUE_SETS[name])
    for workload in by_kind(objects, "Deployment") + by_kind(objects, "StatefulSet"):
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        mounted = set()
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
            mounted |= {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounted, "a read-only root needs a writable /tmp"
    spec = pod_spec(objects)
    container = spec["containers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/var/lib/wharf" in mounts, "data_dir must be writable"
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v2.0/ping"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v2.0/health"
    assert container["startupProbe"]["httpGet"]["path"] == "/api/v2.0/ping"
    shutdown = VALUE_SETS[name].get("config", {}).get("shutdownTimeoutSecs", 30)
    assert spec["terminationGracePeriodSeconds"] > shutdown + 5, "SIGKILL before the drain ends"


# ---------------------------------------------------------------------------
# What the chart and compose hand Wharf, through the real `wharf config`
# ---------------------------------------------------------------------------


def secret_value(objects, ref: dict[str, str]) -> str:
    for secret in by_kind(objects, "Secret"):
        if secret["metadata"]["name"] == ref["name"]:
            if ref["key"] in secret.get("stringData", {}):
                return secret["stringData"][ref["key"]]
            return base64.b64decode(secret["data"][ref["key"]]).decode()
    # An existing Secret of the value set: a stand-in of the right shape.
    if "password" in ref["key"]:
        return "Stand-in-Secret-1"
    if "url" in ref["key"]:
        return "postgres://wharf:x@db.internal:5432/wharf"
    return f"stand-in-{ref['key']}"


def container_env(objects, container: dict[str, Any]) -> dict[str, str]:
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = secret_value(objects, item["valueFrom"]["secretKeyRef"])
    return env


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_wharf_accepts_the_configuration_the_chart_renders(chart, tmp_path, name):
    values = VALUE_SETS[name]
    objects = render(chart, values)
    config_map = one(objects, "ConfigMap")
    config_file = tmp_path / "wharf.toml"
    config_file.write_text(config_map["data"]["wharf.toml"])
    container = pod_spec(objects)["containers"][0]
    env = container_env(objects, container)
    assert env.pop("WHARF_CONFIG") == "/etc/wharf/wharf.toml"
    assert any(m["mountPath"] == "/etc/wharf/wharf.toml" for m in container["volumeMounts"])
    config = wharf_config(config_file, env)

    assert config["listen"] == "0.0.0.0:8080"
    assert config["data_dir"] == "/var/lib/wharf"
    assert config["database"]["url"].startswith("postgres://")
    storage = values.get("storage", {})
    if storage.get("type") == "s3":
        assert config["storage"]["type"] == "s3"
        assert config["storage"]["bucket"] == storage["s3"]["bucket"]
        if storage["s3"].get("accessKeyId") or storage["s3"].get("existingSecret"):
            assert config["storage"]["secret_access_key"] == "REDACTED"
    else:
        assert config["storage"] == {"type": "filesystem", "root": "/var/lib/wharf/storage"}
    metrics = values.get("metrics", {})
    if metrics.get("enabled", True) and metrics.get("port", 9090):
        assert config["metrics"]["listen"] == f"0.0.0.0:{metrics.get('port', 9090)}"
    else:
        assert "listen" not in config.get("metrics", {})
    # The key every pod signs with: the copy the init container makes of the
    # shared one, or each pod's own in its data directory.
    shared = values.get("signingKey", {}).get("generate", True) or values.get("signingKey", {}).get(
        "existingSecret")
    installed = installed_keys(pod_spec(objects))
    if shared:
        assert config["auth"]["signing_key"] == "/run/wharf/token-signing-key.pem"
        assert config["auth"]["signing_key"] in installed
    else:
        assert config["auth"]["signing_key"] == "/var/lib/wharf/secrets/token-signing-key.pem"
        assert "/run/wharf/token-signing-key.pem" not in installed
    # The credential key is always the shared one, never a pod's own.
    assert config["replication"]["credential_key"] == "/run/wharf/replication-credential.key"
    assert config["replication"]["credential_key"] in installed
    assert config["replication"]["proxy_recheck_secs"] == values.get("replication", {}).get(
        "proxyRecheckSecs", 300)
    # Serving pods reach their own listener on loopback.
    assert "local_url" not in config["replication"]
    run = next(v for v in pod_spec(objects)["volumes"] if v["name"] == "run")
    assert run["emptyDir"]["medium"] == "Memory", "the keys stay off disk"
    if values.get("tls", {}).get("enabled"):
        assert config["tls"] == {"cert": "/etc/wharf/tls/tls.crt", "key": "/etc/wharf/tls/tls.key"}
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    if values.get("externalURL"):
        assert config["external_url"] == values["externalURL"]
    if name == "default":
        assert "external_url" not in config
    if name == "ha":
        assert config["external_url"] == "https://registry.example.com"
        assert config["auth"]["trusted_proxies"] == ["10.0.0.0/8"]
        assert config["database"]["max_connections"] == 20
    if name == "single-external":
        assert config["jobs"]["workers"] == 0
        assert config["projects"]["default_storage_limit"] == 10737418240
        assert config["log"] == {"format": "text", "level": "info,wharf_registry=debug"}
        assert config["auth"]["admin_password"] == "REDACTED"
        # The database URL's password is URL-encoded in values and stays so.
        assert config["database"]["url"] == "postgres://wharf:REDACTED@db.internal:5432/wharf?sslmode=require"


# ---------------------------------------------------------------------------
# The keys: one credential key for every pod, kept across upgrades
# ---------------------------------------------------------------------------

CREDENTIAL_KEY = "/run/wharf/replication-credential.key"


def installed_keys(spec: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What the install-keys init container puts in /run/wharf: destination
    path -> (Secret, key in it), followed through its mounts and volumes."""
    init = next(c for c in spec["initContainers"] if c["name"] == "install-keys")
    command = init["command"]
    assert command[:3] == ["install", "-m", "0600"], command
    *sources, target = command[3:]
    assert target == "/run/wharf/", "the copies go to the in-memory /run/wharf"
    mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert mounts.get("/run/wharf") == "run"
    volumes = {v["name"]: v for v in spec["volumes"]}
    keys = {}
    for source in sources:
        directory, _, file = source.rpartition("/")
        secret = volumes[mounts[directory]]["secret"]
        item = next(i for i in secret["items"] if i["path"] == file)
        keys[target + file] = (secret["secretName"], item["key"])
    return keys


def all_wharf_deployments(objects) -> list[dict[str, Any]]:
    return [d for d in by_kind(objects, "Deployment")
            if d["metadata"]["labels"].get("app.kubernetes.io/component") in ("registry", "worker")]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_pod_opens_credentials_with_the_one_key(chart, name):
    values = VALUE_SETS[name]
    objects = render(chart, values)
    deployments = all_wharf_deployments(objects)
    assert len(deployments) == (2 if values.get("worker", {}).get("enabled") else 1)
    refs = set()
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        refs.add(installed_keys(spec)[CREDENTIAL_KEY])
        # Wharf itself sees the copy, read-only.
        for container in spec["containers"]:
            run = next(m for m in container["volumeMounts"] if m["mountPath"] == "/run/wharf")
            assert run["name"] == "run" and run["readOnly"] is True
    assert len(refs) == 1, f"serving and worker pods mount different keys: {refs}"
    secret_name, key = refs.pop()
    existing = values.get("replication", {}).get("credentialKey", {}).get("existingSecret")
    secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    if existing:
        assert (secret_name, key) == (existing, values["replication"]["credentialKey"].get(
            "existingSecretKey", "replication-credential.key"))
        assert not any(n.endswith("-replication-key") for n in secrets), "a generated key beside the given one"
    else:
        secret = secrets[secret_name]
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", \
            "uninstall must not take the key the database's passwords are sealed with"
        # The file is what SecretKey::load_or_generate reads: standard base64
        # of 32 bytes.
        text = base64.b64decode(secret["data"][key]).decode()
        assert len(base64.b64decode(text, validate=True)) == 32


def test_an_existing_credential_key_secret_is_used_as_given(chart):
    values = {"replication": {"credentialKey": {"existingSecret": "dr-key", "existingSecretKey": "aes"}},
              "worker": {"enabled": True}, "storage": {"type": "s3", "s3": {"bucket": "b"}}}
    objects = render(chart, values)
    for deployment in all_wharf_deployments(objects):
        assert installed_keys(deployment["spec"]["template"]["spec"])[CREDENTIAL_KEY] == ("dr-key", "aes")
    assert not any(s["metadata"]["name"].endswith("-replication-key") for s in by_kind(objects, "Secret"))


# The generated Secrets, the key in them, and the lookup that finds the one
# of an earlier install.
GENERATED_KEYS = {
    "signing-key-secret.yaml": ("token-signing-key.pem", {}),
    "replication-key-secret.yaml": ("replication-credential.key", {}),
}
LOOKUP = 'lookup "v1" "Secret" .Release.Namespace $name'


@pytest.mark.parametrize("template", sorted(GENERATED_KEYS))
def test_generated_keys_are_kept_on_upgrade(helm, tmp_path, template):
    # Offline, `lookup` finds nothing. A copy of the chart whose lookup finds
    # a Secret of an earlier install shows what an upgrade renders.
    key, values = GENERATED_KEYS[template]
    source = (CHART / "templates" / template).read_text()
    assert source.count(LOOKUP) == 1, "the template no longer looks up its earlier Secret"
    earlier = base64.b64encode(base64.b64encode(os.urandom(32))).decode()
    copy = tmp_path / "wharf"
    shutil.copytree(CHART, copy)

    def upgrade(found: str) -> dict[str, Any]:
        (copy / "templates" / template).write_text(source.replace(LOOKUP, found))
        with helm.Chart.load(str(copy)) as upgraded:
            rendered = upgraded.render(values=values, name="wharf", namespace="registry", revision=2,
                                       is_upgrade=True)
        return yaml.safe_load(rendered[f"wharf/templates/{template}"])

    kept = upgrade(f'(dict "data" (dict "{key}" "{earlier}"))')
    assert kept["data"][key] == earlier
    assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Nothing found (a first install), or a Secret without the key: a fresh one.
    for found in ["dict", '(dict "data" (dict "other" "eA=="))']:
        fresh = upgrade(found)["data"][key]
        assert fresh != earlier and base64.b64decode(fresh)


@pytest.mark.parametrize("name", [n for n in sorted(VALUE_SETS) if VALUE_SETS[n].get("worker", {}).get("enabled")])
def test_worker_pods_replicate_through_the_service(chart, tmp_path, name):
    values = VALUE_SETS[name]
    objects = render(chart, values)
    server, worker = wharf_deployment(objects), deployment_of(objects, "worker")
    service = next(s for s in by_kind(objects, "Service") if s["metadata"]["name"] == server["metadata"]["name"])
    port = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    scheme = "https" if values.get("tls", {}).get("enabled") else "http"
    expected = f"{scheme}://{service['metadata']['name']}:{port['port']}"
    container = worker["spec"]["template"]["spec"]["containers"][0]
    env = container_env(objects, container)
    assert env["WHARF_REPLICATION_LOCAL_URL"] == expected
    # The Service leads to the serving pods' main listener.
    assert port["targetPort"] == "http"
    assert "WHARF_REPLICATION_LOCAL_URL" not in container_env(
        objects, server["spec"]["template"]["spec"]["containers"][0])
    # What `wharf worker` makes of its ConfigMap and environment.
    config_file = tmp_path / "wharf.toml"
    config_file.write_text(one(objects, "ConfigMap")["data"]["wharf.toml"])
    env.pop("WHARF_CONFIG")
    config = wharf_config(config_file, env)
    assert config["replication"]["local_url"] == expected
    assert config["replication"]["credential_key"] == CREDENTIAL_KEY
    # worker.localURL replaces it; extraEnv, later in the list, wins over both.
    overridden = render(chart, {**values, "worker": {**values["worker"], "localURL": "https://wharf.internal/"}})
    env = container_env(overridden, deployment_of(overridden, "worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["WHARF_REPLICATION_LOCAL_URL"] == "https://wharf.internal"
    with_extra = render(chart, {**values, "extraEnv": [
        {"name": "WHARF_REPLICATION_LOCAL_URL", "value": "http://elsewhere:80"}]})
    listed = [e for e in deployment_of(with_extra, "worker")["spec"]["template"]["spec"]["containers"][0]["env"]
              if e["name"] == "WHARF_REPLICATION_LOCAL_URL"]
    # Of two entries with one name, Kubernetes gives the container the last.
    assert [e["value"] for e in listed] == [expected, "http://elsewhere:80"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True, timeout=60)


@pytest.fixture
def database():
    """A fresh database on the PostgreSQL of DATABASE_URL, dropped after."""
    need_tool("psql")
    admin_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database = f"wharf_deploy_{os.getpid()}_{time.monotonic_ns()}"
    base, _, query = admin_url.partition("?")
    db_url = base.rsplit("/", 1)[0] + "/" + database + (f"?{query}" if query else "")
    try:
        psql(admin_url, f'CREATE DATABASE "{database}"')
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        if IN_CI:
            raise
        pytest.skip(f"no PostgreSQL at DATABASE_URL: {e}")
    yield db_url
    subprocess.run(["psql", admin_url, "-qAtc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
                   capture_output=True, timeout=60)


def install_key(secret: dict[str, Any], key: str, path: Path) -> bytes:
    """The file the install-keys init container makes of a Secret's key."""
    content = base64.b64decode(secret["data"][key])
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_bytes(content)
    path.chmod(0o600)
    return content


def test_wharf_uses_the_keys_the_chart_generates(chart, tmp_path, database):
    need_tool("openssl")
    objects = render(chart, {})
    secret = next(s for s in by_kind(objects, "Secret") if s["metadata"]["name"].endswith("-signing-key"))
    # Where the pod has them: in /run/wharf, apart from the data directory,
    # where Wharf would generate keys of its own.
    run, data = tmp_path / "run", tmp_path / "data"
    key = run / "token-signing-key.pem"
    install_key(secret, "token-signing-key.pem", key)
    spki = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
    kid = base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode()
    credential_secret = next(s for s in by_kind(objects, "Secret")
                             if s["metadata"]["name"].endswith("-replication-key"))
    credential_key = run / "replication-credential.key"
    sealing_key = install_key(credential_secret, "replication-credential.key", credential_key)
    credential_key.chmod(0o400)  # read-only suffices: it exists, so it is only read

    port = free_port()
    log = (tmp_path / "wharf.log").open("w")
    server = subprocess.Popen(
        [str(wharf_bin()), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)],
        env=clean_env({"DATABASE_URL": database, "WHARF_ADMIN_PASSWORD": "Deploy-Test-1",
                       "WHARF_AUTH_SIGNING_KEY": str(key),
                       "WHARF_REPLICATION_CREDENTIAL_KEY": str(credential_key),
                       "WHARF_LOG_LEVEL": "info"}),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "wharf.log").read_text()
            try:
                with urllib.request.urlopen(f"{base_url}/api/v2.0/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "wharf.log").read_text()
            time.sleep(0.2)
        request = urllib.request.Request(
            f"{base_url}/service/token?service=wharf-registry&scope=repository:library/app:pull")
        request.add_header("Authorization", "Basic " + base64.b64encode(b"admin:Deploy-Test-1").decode())
        with urllib.request.urlopen(request, timeout=10) as r:
            token = json.load(r)["token"]
        header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert header["alg"] == "ES256"
        assert header["kid"] == kid, "the token is not signed with the chart's key"
        # What the image's HEALTHCHECK runs.
        probe = subprocess.run([str(wharf_bin()), "probe", "--url", f"{base_url}/api/v2.0/health"],
                               env=clean_env({}), capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        log_text = (tmp_path / "wharf.log").read_text()
        assert "readable by other users" not in log_text
        # The chart's credential key was loaded as it is: not replaced, and
        # no key of this pod's own made beside it.
        assert credential_key.read_bytes() == sealing_key
        assert not (data / "secrets" / "replication-credential.key").exists()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.mark.parametrize("content", [base64.b64encode(os.urandom(16)), b"not base64 at all!"],
                         ids=["16 bytes", "not base64"])
def test_wharf_refuses_a_credential_key_it_cannot_use(tmp_path, database, content):
    # So a key the chart or an operator got wrong stops the pod at start,
    # rather than sealing nothing or generating another one.
    key = tmp_path / "run" / "replication-credential.key"
    key.parent.mkdir()
    key.write_bytes(content)
    key.chmod(0o600)
    out = subprocess.run(
        [str(wharf_bin()), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data")],
        env=clean_env({"DATABASE_URL": database, "WHARF_ADMIN_PASSWORD": "Deploy-Test-1",
                       "WHARF_REPLICATION_CREDENTIAL_KEY": str(key), "WHARF_LOG_FORMAT": "text"}),
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "replication.credential_key" in out.stderr, out.stderr
    assert key.read_bytes() == content


# ---------------------------------------------------------------------------
# docker-compose.yml
# ---------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and $$, as `docker compose` does it."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        current = env.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return current if current is not None else default
        return current or ""
    return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}", sub, value)


def test_compose_validates_against_the_compose_schema():
    check_jsonschema = need_tool("check-jsonschema")
    out = subprocess.run([check_jsonschema, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_brings_up_a_complete_installation():
    services = compose()["services"]
    assert set(services) == {"wharf", "postgres", "minio", "create-bucket"}
    declared_volumes = set(compose()["volumes"])
    for name, service in services.items():
        if name != "create-bucket":
            assert "healthcheck" in service, f"{name} has no health check"
            assert service.get("restart") == "unless-stopped"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in declared_volumes, f"{name}: undeclared volume {source}"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency]
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    wharf = services["wharf"]
    assert wharf["build"] == "."
    assert wharf["healthcheck"]["test"] == ["CMD", "wharf", "probe"]
    assert wharf["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                   "create-bucket": {"condition": "service_completed_successfully"}}
    assert wharf["volumes"] == ["wharf-data:/var/lib/wharf"]
    assert "8080" in interpolate(wharf["ports"][0], {})
    # The bucket job makes the bucket Wharf is configured with.
    job = services["create-bucket"]
    script = "\n".join(job["command"])
    assert "mc mb --ignore-existing" in script
    bucket_env = interpolate(job["environment"]["WHARF_S3_BUCKET"], {})
    assert bucket_env == interpolate(wharf["environment"]["WHARF_STORAGE_S3_BUCKET"], {})
    assert (interpolate(job["environment"]["WHARF_S3_SECRET_KEY"], {})
            == interpolate(wharf["environment"]["WHARF_STORAGE_S3_SECRET_ACCESS_KEY"], {}))
    # The database password is the same on both sides.
    password = interpolate(services["postgres"]["environment"]["POSTGRES_PASSWORD"], {})
    assert f":{password}@postgres:5432/" in interpolate(wharf["environment"]["WHARF_DATABASE_URL"], {})


@pytest.mark.parametrize("dotenv", [{}, {"WHARF_ADMIN_PASSWORD": "From-Dotenv-2", "WHARF_EXTERNAL_URL":
                                         "https://registry.example.com", "WHARF_S3_BUCKET": "blobs"}],
                         ids=["defaults", "dotenv"])
def test_wharf_accepts_the_compose_environment(dotenv):
    wharf = compose()["services"]["wharf"]
    env = {k: interpolate(str(v), dotenv) for k, v in wharf["environment"].items()}
    # With the image's own flags (compose gives no command).
    assert "command" not in wharf
    config = wharf_config(None, env, IMAGE_CMD[1:])
    # The keys are generated at first start on the data volume, so they
    # survive a re-created container: the credential key above all, which
    # opens the endpoint passwords stored in PostgreSQL.
    volume = next(v.split(":")[1] for v in wharf["volumes"] if v.startswith("wharf-data:"))
    assert config["data_dir"] == volume
    assert config["replication"]["credential_key"] == f"{volume}/secrets/replication-credential.key"
    assert config["auth"]["signing_key"] == f"{volume}/secrets/token-signing-key.pem"
    assert config["storage"]["type"] == "s3"
    assert config["storage"]["endpoint"] == "http://minio:9000"
    assert config["storage"]["path_style"] is True and config["storage"]["allow_http"] is True
    assert config["storage"]["bucket"] == dotenv.get("WHARF_S3_BUCKET", "wharf")
    assert config["database"]["url"] == "postgres://wharf:REDACTED@postgres:5432/wharf"
    assert config["auth"]["admin_password"] == "REDACTED"
    if "WHARF_EXTERNAL_URL" in dotenv:
        assert config["external_url"] == "https://registry.example.com"
    else:
        assert "external_url" not in config, "an empty WHARF_EXTERNAL_URL counts as unset"


# ---------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        current = ""
    return instructions


def test_the_dockerfile_passes_hadolint():
    hadolint = need_tool("hadolint")
    out = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_dockerfile_builds_and_runs_the_tested_binary():
    instructions = dockerfile_instructions()
    stages = [args for kw, args in instructions if kw == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build"), stages
    args = {a.split("=")[0]: a.split("=", 1)[1] for kw, a in instructions if kw == "ARG" and "=" in a}
    assert stages[0].startswith("rust:${RUST_VERSION}-${DEBIAN_RELEASE}")
    assert stages[1] == "debian:${DEBIAN_RELEASE}-slim", "build and run on the same Debian (glibc)"
    # The toolchain is at least the workspace's rust-version.
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    need = tuple(int(x) for x in workspace["workspace"]["package"]["rust-version"].split("."))
    have = tuple(int(x) for x in args["RUST_VERSION"].split("."))
    assert have >= need[:len(have)], f"rust {args['RUST_VERSION']} < rust-version {need}"

    runs = [a for kw, a in instructions if kw == "RUN"]
    builds = [r for r in runs if "cargo build" in r]
    assert len(builds) == 1 and BUILD_COMMAND in builds[0], builds
    assert "install -D -m 0755 target/release/wharf /out/wharf" in builds[0]
    final = instructions[[i for i, (kw, _) in enumerate(instructions) if kw == "FROM"][1]:]
    final_kw = {kw: a for kw, a in final}
    assert final_kw["COPY"] == "--from=build /out/wharf /usr/local/bin/wharf"
    user = final_kw["USER"].split(":")
    assert user[0].isdigit() and int(user[0]) != 0, "a numeric non-root user (runAsNonRoot checks it)"
    assert int(user[0]) == 10001, "the chart's runAsUser"
    assert final_kw["EXPOSE"] == "8080"
    assert json.loads(final_kw["VOLUME"]) == ["/var/lib/wharf"]
    assert final_kw["HEALTHCHECK"].endswith('CMD ["wharf", "probe"]')
    assert json.loads(final_kw["ENTRYPOINT"]) == ["wharf"]
    assert json.loads(final_kw["CMD"]) == IMAGE_CMD
    assert "ca-certificates" in final_kw["RUN"]

    # The binary has every subcommand the image, the chart and compose run.
    for sub in ["serve", "probe", "migrate", "check"]:
        out = subprocess.run([str(wharf_bin()), sub, "--help"], capture_output=True, text=True,
                             env=clean_env({}))
        assert out.returncode == 0, f"wharf {sub}: {out.stderr}"
    # Its flags parse as the image gives them.
    out = subprocess.run([str(wharf_bin()), "config", *IMAGE_CMD[1:]], capture_output=True, text=True,
                         env=clean_env({}))
    assert out.returncode == 0, out.stderr
    assert tomllib.loads(out.stdout)["listen"] == "0.0.0.0:8080"


def test_the_test_suite_builds_with_the_same_lock():
    script = (ROOT / "scripts" / "test").read_text()
    builds = [line for line in script.splitlines() if line.strip().startswith("cargo build")]
    assert builds and all("--locked" in b for b in builds), builds


def dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def ignored(rel: str, patterns: list[str]) -> bool:
    # Docker's rules: patterns are relative to the context root, the last
    # matching one wins, `!` re-includes; a match on a directory covers what
    # is under it.
    result = False
    parts = rel.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.strip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pat) or (pat.startswith("**/") and fnmatch.fnmatchcase(
                    prefix.split("/")[-1], pat[3:])):
                result = not negate
                break
    return result


def test_the_build_context_holds_what_cargo_needs(tmp_path):
    cargo = need_tool("cargo")
    patterns = dockerignore()
    context = tmp_path / "context"
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        rel_dir = "" if rel_dir == "." else rel_dir
        dirnames[:] = [d for d in dirnames if not ignored(f"{rel_dir}/{d}".lstrip("/"), patterns)]
        for f in filenames:
            rel = f"{rel_dir}/{f}".lstrip("/")
            if not ignored(rel, patterns):
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, context / rel)
    assert not (context / "target").exists() and not (context / ".git").exists()
    for needed in ["Cargo.toml", "Cargo.lock", "migrations", "crates/wharf-gateway/src/main.rs"]:
        assert (context / needed).exists(), f"the build context lacks {needed}"
    # --locked: fails if Cargo.lock does not match the manifests in the
    # context. Not --offline: metadata reads the crates of every platform,
    # not only those the test build fetched.
    out = subprocess.run([cargo, "metadata", "--locked", "--format-version", "1",
                          "--manifest-path", str(context / "Cargo.toml")],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")})
    assert out.returncode == 0, out.stderr
    metadata = json.loads(out.stdout)
    gateway = next(p for p in metadata["packages"] if p["name"] == "wharf-gateway")
    bins = [t for t in gateway["targets"] if "bin" in t["kind"]]
    assert [b["name"] for b in bins] == ["wharf"]
    # The sqlx::migrate! path of the binary resolves inside the context.
    migrations = sorted(p.name for p in (context / "migrations").glob("*.sql"))
    assert migrations == sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))


@pytest.mark.skipif(os.environ.get("WHARF_TEST_RELEASE_BUILD") != "1",
                    reason="the release build takes ~7 CPU-minutes cold; WHARF_TEST_RELEASE_BUILD=1 runs it")
def test_the_image_build_command_builds():
    out = subprocess.run(BUILD_COMMAND.split(), cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert (ROOT / "target" / "release" / "wharf").is_file()
