"""deploy/kubernetes runs what docker-compose.yml runs: every manifest is valid against the
bundled schemas of a pinned Kubernetes version (offline: kubernetes-validate ships them and
resolves no remote reference), each service gets its compose environment, probes on its
port, and its secrets from the Secret `leadflow-secrets` only; the Job runs `db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
SECRET_EXAMPLE = KUBERNETES / "secret.example.yaml"
# The oldest Kubernetes the manifests promise to run on (deploy/README.md).
KUBERNETES_VERSION = "1.31.0"
SECRET = "leadflow-secrets"
# A variable holding one of these is a secret: it may come only from the Secret.
SECRET_WORDS = ("SECRET", "TOKEN", "PASSWORD", "DATABASE_URL")
# The compose values a cluster keeps (hosts and the replication of topics change).
KEPT_VALUES = ("LEADFLOW_ENV", "LEADFLOW_HOST", "LEADFLOW_CONFIG", "LEADFLOW_METRICS_PORT")
WORKLOADS = {
    "intake": "StatefulSet",
    "scoring": "Deployment",
    "router": "Deployment",
    "sla-monitor": "Deployment",
}
PORTS = {"intake": 8000, "scoring": 8001, "router": 8002, "sla-monitor": 8003}

Resource = dict[str, Any]


def manifest_files() -> list[Path]:
    """The files kustomization.yaml applies, in its order."""
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    return [KUBERNETES / name for name in kustomization["resources"]]


def resources() -> list[Resource]:
    found: list[Resource] = []
    for path in manifest_files():
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def find(kind: str, name: str) -> Resource:
    matches = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"one {kind} {name}, found {len(matches)}"
    return matches[0]


def compose_environment(service: str) -> dict[str, str]:
    """A compose service's environment (YAML merge keys resolved, not interpolated)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][service]["environment"]
    return {name: str(value) for name, value in environment.items()}


def compose_command(service: str) -> list[str]:
    """A compose service's command."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command: list[str] = compose["services"][service]["command"]
    return command


def container(workload: Resource) -> Resource:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: Resource = containers[0]
    return result


def environment(workload: Resource) -> dict[str, Resource]:
    """Each variable the container gets, with where it comes from: `{"value": ...}`,
    `{"secretKeyRef": ...}`, or `{"configMap": name}` for an envFrom ConfigMap's key."""
    spec = container(workload)
    variables: dict[str, Resource] = {}
    for source in spec.get("envFrom", []):
        assert "secretRef" not in source or source["secretRef"]["name"] == SECRET
        if "configMapRef" in source:
            config_map = find("ConfigMap", source["configMapRef"]["name"])
            for key, value in config_map["data"].items():
                variables[key] = {"configMap": config_map["metadata"]["name"], "value": value}
        if "secretRef" in source:
            for key in secret_example()["stringData"]:
                variables[key] = {"secretKeyRef": {"name": SECRET, "key": key}}
    for variable in spec.get("env", []):
        variables[variable["name"]] = variable.get("valueFrom") or {"value": variable["value"]}
    return variables


def secret_example() -> Resource:
    secret: Resource = yaml.safe_load(SECRET_EXAMPLE.read_text())
    return secret


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = {path.name for path in manifest_files()}
    present = {path.name for path in KUBERNETES.glob("*.yaml")}

    assert present - listed == {"kustomization.yaml", "secret.example.yaml"}
    assert listed <= present


@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_every_manifest_is_valid_for_the_pinned_kubernetes(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]

    assert documents
    for document in documents:
        # Strict: a misspelt or misplaced field is an error, not silently dropped.
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_misplaced_field() -> None:
    deployment = find("Deployment", "scoring")
    container(deployment)["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_secret_example_is_valid_and_holds_no_value() -> None:
    secret = secret_example()

    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert secret["metadata"]["name"] == SECRET
    assert all("CHANGE-ME" in value or value == "[]" for value in secret["stringData"].values())


@pytest.mark.parametrize(("service", "kind"), WORKLOADS.items())
def test_each_service_gets_its_compose_environment(service: str, kind: str) -> None:
    variables = environment(find(kind, service))
    needed = compose_environment(service)

    missing = needed.keys() - variables.keys()
    assert not missing, f"{service} lacks {sorted(missing)} (docker-compose.yml gives them)"
    for name in [*KEPT_VALUES, *(n for n in needed if n.endswith(("_PORT", "_SPOOL_DIR")))]:
        if name in needed and not name.startswith("LEADFLOW_SMTP"):
            assert variables[name]["value"] == needed[name], name


def test_the_migration_job_runs_db_upgrade_with_its_compose_environment() -> None:
    job = find("Job", "leadflow-migrate")
    spec = container(job)
    variables = environment(job)

    assert spec["args"] == compose_command("migrate") == ["db", "upgrade"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert compose_environment("migrate").keys() <= variables.keys()


@pytest.mark.parametrize(("service", "kind"), [*WORKLOADS.items(), ("leadflow-migrate", "Job")])
def test_secrets_come_only_from_the_secret(service: str, kind: str) -> None:
    workload = find(kind, service)
    keys = set(secret_example()["stringData"])

    for name, source in environment(workload).items():
        if any(word in name for word in SECRET_WORDS):
            assert "secretKeyRef" in source, f"{service}: {name} is not a secretKeyRef"
        if "secretKeyRef" in source:
            assert source["secretKeyRef"]["name"] == SECRET
            assert source["secretKeyRef"]["key"] in keys, f"secret.example.yaml lacks {name}"
    assert not [r for r in resources() if r["kind"] == "Secret"], "no Secret is applied"


@pytest.mark.parametrize(("service", "kind"), WORKLOADS.items())
def test_probes_ask_the_service_port(service: str, kind: str) -> None:
    spec = container(find(kind, service))
    ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
    probes = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}

    assert ports == {"http": PORTS[service], "metrics": 9100}
    assert spec["args"] == compose_command(service)
    for probe, path in probes.items():
        check = spec[probe]["httpGet"]
        assert check["path"] == path, probe
        assert ports.get(check["port"], check["port"]) == PORTS[service], probe


@pytest.mark.parametrize(("service", "kind"), WORKLOADS.items())
def test_pods_run_unprivileged_with_limits_and_are_scraped(service: str, kind: str) -> None:
    workload = find(kind, service)
    pod = workload["spec"]["template"]
    spec = container(workload)

    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"/tmp", "/app/config"} <= {mount["mountPath"] for mount in spec["volumeMounts"]}
    assert spec["resources"]["requests"]
    assert spec["resources"]["limits"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert (
        annotations["prometheus.io/port"] == compose_environment(service)["LEADFLOW_METRICS_PORT"]
    )
    pdb = find("PodDisruptionBudget", service)
    assert pdb["spec"]["selector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]


def test_the_intake_spool_is_a_volume_of_each_pod() -> None:
    intake = find("StatefulSet", "intake")
    claims = {claim["metadata"]["name"] for claim in intake["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in container(intake)["volumeMounts"]}

    assert claims == {"spool"}
    assert mounts["spool"] == compose_environment("intake")["LEADFLOW_INTAKE_SPOOL_DIR"]


@pytest.mark.parametrize("service", ["scoring", "router", "sla-monitor"])
def test_consumers_scale_on_cpu_up_to_the_partition_count(service: str) -> None:
    autoscaler = find("HorizontalPodAutoscaler", service)
    spec = autoscaler["spec"]

    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": service,
    }
    assert spec["maxReplicas"] <= 3, "beyond the topics' 3 partitions a consumer idles"
    assert spec["metrics"][0]["resource"]["name"] == "cpu"
    assert "replicas" not in find("Deployment", service)["spec"], "the autoscaler owns it"


def test_the_product_config_is_config_compose_yaml() -> None:
    config_map = find("ConfigMap", "leadflow-config")
    path = find("ConfigMap", "leadflow-infra")["data"]["LEADFLOW_CONFIG"]

    assert path == "/app/config/compose.yaml"
    assert config_map["data"]["compose.yaml"] == (ROOT / "config" / "compose.yaml").read_text()


def test_the_console_asks_the_router_and_scoring_services_with_a_secret_token() -> None:
    variables = environment(find("Deployment", "sla-monitor"))

    for name, variable in (
        ("router", "LEADFLOW_SLA_ROUTER_URL"),
        ("scoring", "LEADFLOW_SLA_SCORING_URL"),
    ):
        [port] = [p["port"] for p in find("Service", name)["spec"]["ports"] if p["name"] == "http"]
        assert variables[variable]["value"] == f"http://{name}:{port}", variable
    assert variables["LEADFLOW_SLA_SERVICE_TOKEN"]["secretKeyRef"]["name"] == SECRET
