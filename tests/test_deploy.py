"""deploy/: the Kubernetes manifests validate offline against the Kubernetes schemas (the
`kubernetes-validate` package ships them), and the image, probes, ports and grace periods
agree with the runtime's settings and endpoints."""
from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from conftest import PETSTORE_ENV, ROOT

from brrt_actors import create_app
from brrt_actors.config import load_settings
from brrt_actors.entrypoints import server as server_module
from brrt_actors.testing import Client

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="not checked: the kubernetes-validate package (test extra) "
                                  "is not installed")

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
#: The oldest Kubernetes minor version the manifests are checked against (its schemas ship
#: with kubernetes-validate; `lifecycle`, `autoscaling/v2` and the rest are older).
KUBERNETES_VERSION = "1.30.0"


def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            found[(resource["kind"], resource["metadata"]["name"])] = resource
    return found


RESOURCES = _resources()


def _container(kind: str, name: str) -> dict[str, Any]:
    (container,) = RESOURCES[(kind, name)]["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def _env() -> dict[str, str]:
    data: dict[str, str] = RESOURCES[("ConfigMap", "brrt-env")]["data"]
    return data


@pytest.mark.parametrize("key", sorted(RESOURCES), ids=lambda key: f"{key[0]}/{key[1]}")
def test_manifest_is_valid_kubernetes(key: tuple[str, str]) -> None:
    kubernetes_validate.validate(RESOURCES[key], KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    broken = copy.deepcopy(RESOURCES[("Deployment", "brrt")])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_the_settings_load_and_listen_where_the_probes_look() -> None:
    env = _env()
    settings = load_settings(env)  # every BRRTR_* value is valid (a ConfigError otherwise)
    assert settings.host == "0.0.0.0"  # the default 127.0.0.1 is unreachable in a pod
    container = _container("Deployment", "brrt")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["http"] == settings.port
    assert {ref["configMapRef"]["name"] for ref in container["envFrom"]
            if "configMapRef" in ref} == {"brrt-env"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    annotations = RESOURCES[("Deployment", "brrt")]["spec"]["template"]["metadata"][
        "annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == settings.port
    assert annotations["prometheus.io/path"] == "/metrics"
    assert settings.metrics


def test_the_probed_paths_are_the_runtimes(apps: list[object]) -> None:
    app = create_app(ROOT / "specs" / "petstore.yaml", handlers=str(ROOT / "handlers"),
                     environ={**PETSTORE_ENV, **_env()})
    apps.append(app)
    client = Client(app)
    assert [client.get(path).status for path in ("/health", "/ready", "/metrics")] == [
        200, 200, 200]


def test_grace_periods_fit_the_drain() -> None:
    settings = load_settings(_env())
    pod = RESOURCES[("Deployment", "brrt")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause_s = float(command[1])
    # The kubelet counts the preStop pause in the grace period, then sends SIGTERM; the server
    # drains for shutdown_grace_s and takes its last second to kill what remains.
    needed = pause_s + settings.shutdown_grace_s + server_module._KILL_TIMEOUT_S
    assert pod["terminationGracePeriodSeconds"] >= needed + 2
    # Readiness notices a drain (503) before the drain is half over.
    probe = container["readinessProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] <= settings.shutdown_grace_s / 2


def test_the_service_and_autoscaler_reach_the_deployment() -> None:
    deployment = RESOURCES[("Deployment", "brrt")]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = RESOURCES[("Service", "brrt")]
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in _container("Deployment", "brrt")["ports"]}
    target = RESOURCES[("HorizontalPodAutoscaler", "brrt")]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "brrt")
    # CPU utilisation is measured against the request: the container must make one.
    assert _container("Deployment", "brrt")["resources"]["requests"]["cpu"]


def test_the_rate_limit_storage_is_the_redis_service() -> None:
    storage = urlsplit(load_settings(_env()).rate_limit.storage)
    service = RESOURCES[("Service", "brrt-redis")]
    assert storage.scheme == "redis" and storage.hostname == service["metadata"]["name"]
    assert storage.port in {port["port"] for port in service["spec"]["ports"]}
    assert service["spec"]["selector"].items() <= RESOURCES[("Deployment", "brrt-redis")][
        "spec"]["template"]["metadata"]["labels"].items()


def test_locust_runs_one_master_and_workers_against_the_service() -> None:
    master, worker = _container("Deployment", "locust-master"), _container(
        "Deployment", "locust-worker")
    assert RESOURCES[("Deployment", "locust-master")]["spec"]["replicas"] == 1
    assert RESOURCES[("Deployment", "locust-worker")]["spec"]["replicas"] >= 2
    locustfile = Path(master["args"][master["args"].index("-f") + 1]).name
    assert (ROOT / "locustfiles" / locustfile).exists()
    assert "--master" in master["args"] and "--worker" in worker["args"]
    host = master["args"][master["args"].index("--host") + 1]
    assert urlsplit(host).hostname == RESOURCES[("Service", "brrt")]["metadata"]["name"]
    master_host = worker["args"][worker["args"].index("--master-host") + 1]
    service = RESOURCES[("Service", master_host)]
    assert 5557 in {port["port"] for port in service["spec"]["ports"]}


def _dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_image_is_slim_unprivileged_and_serves_the_settings_port() -> None:
    instructions = _dockerfile()
    (base,) = [value for op, value in instructions if op == "FROM"]
    assert re.fullmatch(r"python:3\.\d+-slim", base)
    user = [value for op, value in instructions if op == "USER"][-1]
    assert user not in ("0", "root")
    env = dict(pair.split("=", 1) for op, value in instructions if op == "ENV"
               for pair in shlex.split(value))
    assert env["BRRTR_HOST"] == "0.0.0.0" and env["PORT"] == _env()["PORT"]
    assert [value for op, value in instructions if op == "EXPOSE"] == [env["PORT"]]
    entrypoint = yaml.safe_load(next(value for op, value in instructions if op == "ENTRYPOINT"))
    assert entrypoint == ["brrt", "serve"]
    command = yaml.safe_load([value for op, value in instructions if op == "CMD"][-1])
    assert (ROOT / command[0]).is_file()
    assert (ROOT / command[command.index("--handlers") + 1]).is_dir()
    assert (ROOT / command[command.index("--config") + 1]).is_file()
    for op, value in instructions:
        if op == "COPY":
            *sources, _ = value.split()
            assert all((ROOT / source).exists() for source in sources), value
    extras = next(value for op, value in instructions if op == "ARG"
                  and value.startswith("EXTRAS=")).split("=", 1)[1].split(",")
    declared = (ROOT / "setup.cfg").read_text()
    assert all(re.search(rf"^{extra} =$", declared, re.M) for extra in extras), extras
