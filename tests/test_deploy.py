"""The deployment files: valid for their tools, and naming only what the code has.

No Docker engine and no cluster here: docker-compose.yml is checked with
Debian's ``docker-compose config`` (when installed; .ci/run installs it) and
always against the compose-spec JSON schema that check-jsonschema ships; the
Kubernetes manifests with kubernetes-validate's offline schemas. Then every
command, variable, port and probe path they name is checked against the CLI,
the settings and the app's routes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cli import _parser as cli_parser
from settings import Settings
from tasks.worker_http import PATHS as WORKER_PATHS

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SETTINGS = {name.upper() for name in Settings.model_fields}
# Variables only docker-compose.yml reads (listed in .env.example too).
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "API_HOST", "API_PORT", "WORKER_PROCESSES"}
APP_SERVICES = {"migrate", "api", "worker", "provider-sim"}
IMAGE_UID = 10001
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def _interpolate(text: str) -> str:
    """Compose's ``${NAME:-default}``, with nothing set: every default."""
    return _VARIABLE.sub(lambda match: match["default"] or "", text)


def _compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(_interpolate(_compose_text()))
    return document


def _parses(command: list[str]) -> None:
    """The command is ``mailings`` with a subcommand and options the CLI knows."""
    assert command[0] == "mailings", command
    try:
        cli_parser().parse_args(command[1:])
    except (SystemExit, argparse.ArgumentError):  # an unknown command or option
        pytest.fail(f"the CLI does not accept {command}")


def _app_routes() -> set[str]:
    from graphql_api.app import create_app

    return {getattr(route, "path", "") for route in create_app().routes}


# --- Compose ------------------------------------------------------------------------------


def _docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "--project-directory", str(ROOT), "-f", "docker-compose.yml", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="Debian's docker-compose is not installed (apt-get install docker-compose; "
    ".ci/run installs it)",
)
def test_docker_compose_config() -> None:
    checked = _docker_compose("config", "--quiet")
    assert checked.returncode == 0, checked.stderr
    services = _docker_compose("--profile", "demo", "config", "--services")
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {"postgres", "redis", *APP_SERVICES}


def test_compose_file_matches_the_compose_spec() -> None:
    spec_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    spec = json.loads(spec_file.read_text())
    validator = jsonschema.validators.validator_for(spec)(spec)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_compose_services_commands_and_health() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    for name in APP_SERVICES:
        _parses(services[name]["command"])
        assert services[name]["image"] == "mailings:latest"
        assert services[name]["build"] == "."
    for name in ("postgres", "redis", "api", "worker", "provider-sim"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("postgres", "redis", "api", "worker", "provider-sim"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert services["provider-sim"]["profiles"] == ["demo"]
    assert all("profiles" not in services[name] for name in services if name != "provider-sim")
    # The API listens where its port mapping and its health check look.
    api = services["api"]
    port = api["command"][api["command"].index("--port") + 1]
    # Published on loopback only unless .env says otherwise (an open API by default).
    assert api["ports"] == [f"127.0.0.1:8000:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
    assert "/readyz" in _app_routes()
    # The worker serves its probes where its health check looks, on every interface.
    worker = services["worker"]
    environment = worker["environment"]
    assert environment["WORKER_METRICS_HOST"] == "0.0.0.0"
    port = environment["WORKER_METRICS_PORT"]
    assert worker["expose"] == [port]
    assert f"127.0.0.1:{port}/readyz" in " ".join(worker["healthcheck"]["test"])
    assert "/readyz" in WORKER_PATHS
    sim = services["provider-sim"]
    assert sim["command"][sim["command"].index("--port") + 1] == "8001"
    assert services["worker"]["environment"]["PROVIDER_URL"] == "http://provider-sim:8001"


def test_compose_passes_every_setting_and_only_settings() -> None:
    services = _compose()["services"]
    for name in APP_SERVICES:
        assert set(services[name]["environment"]) == SETTINGS, name
    referenced = {match["name"] for match in _VARIABLE.finditer(_compose_text())}
    assert referenced <= SETTINGS | COMPOSE_ONLY, referenced - SETTINGS - COMPOSE_ONLY
    assert referenced >= COMPOSE_ONLY
    # What the app services get by default is valid configuration.
    defaults = {key: value for key, value in services["api"]["environment"].items() if value}
    settings = Settings(**{key.lower(): value for key, value in defaults.items()})
    assert settings.is_postgres
    assert settings.redis_url == "redis://redis:6379/0"


def test_env_example_lists_every_setting() -> None:
    listed = re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M)
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    assert set(listed) == SETTINGS | COMPOSE_ONLY


# --- The image ----------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_dockerfile_installs_the_runtime_lock_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(rf"^USER {IMAGE_UID}:{IMAGE_UID}$", final_stage, re.M)
    assert f"--uid {IMAGE_UID}" in final_stage
    assert "pip install --no-compile --require-hashes -r requirements.prod.lock" in dockerfile
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = set(re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M))
    sources = {source for line in copied for source in line.split()}
    setuptools = project["tool"]["setuptools"]
    for module in setuptools["py-modules"]:
        assert f"{module}.py" in sources, module
    for pattern in setuptools["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in sources, pattern
    cmd = json.loads(re.findall(r"^CMD (.+)$", dockerfile, re.M)[-1])
    _parses(cmd)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored  # secrets never reach the build context


def test_the_runtime_lock_is_the_dev_lock_without_dev_tools() -> None:
    everything = _pins(ROOT / "requirements.lock")
    runtime = _pins(ROOT / "requirements.prod.lock")
    assert {name: everything.get(name) for name in runtime} == runtime
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {_name(dependency) for dependency in project["dependencies"]} <= set(runtime)
    assert not {"pytest", "mypy", "ruff", "hypothesis", "schemathesis"} & set(runtime)


# --- Kubernetes ---------------------------------------------------------------------------


def _manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def _kinds() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _manifests()}


@pytest.mark.parametrize("version", ["1.29.0", "1.33.0"])
def test_kubernetes_manifests_are_valid(version: str) -> None:
    kinds = []
    for filename, document in _manifests():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{filename} {document['kind']}: {error.message}")
        kinds.append(document["kind"])
    assert sorted(kinds) == sorted(
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Job",
            "Deployment",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "Ingress",
            "HorizontalPodAutoscaler",
        ]
    )


def test_kustomization_names_every_manifest_but_the_secret_and_the_job() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk - {"secret.example.yaml", "migrate-job.yaml"}
    images = {container_image for container_image in _images()}
    assert {f"{image['name']}:{image['newTag']}" for image in kustomization["images"]} == images


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for (kind, name), document in _kinds().items():
        if kind in ("Deployment", "Job"):
            yield name, document["spec"]["template"]["spec"]


def _images() -> set[str]:
    return {c["image"] for _, pod in _pod_specs() for c in pod["containers"]}


def test_kubernetes_commands_settings_and_security() -> None:
    kinds = _kinds()
    config = kinds[("ConfigMap", "mailings")]["data"]
    secret = kinds[("Secret", "mailings")]["stringData"]
    assert set(config) <= SETTINGS, set(config) - SETTINGS
    assert set(secret) <= SETTINGS, set(secret) - SETTINGS
    assert {"DATABASE_URL", "REDIS_URL", "API_TOKEN", "PROVIDER_TOKEN"} <= set(secret)
    Settings(**{key.lower(): value for key, value in {**config, **secret}.items() if value})
    assert len(_images()) == 1
    for name, pod in _pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID, name
        for container in pod["containers"]:
            _parses(container["command"])
            refs = {
                next(iter(source)): next(iter(source.values()))["name"]
                for source in container["envFrom"]
            }
            assert refs == {"configMapRef": "mailings", "secretRef": "mailings"}, name
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}, name
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_kubernetes_api_probes_service_and_ingress() -> None:
    kinds = _kinds()
    api = kinds[("Deployment", "mailings-api")]
    pod = api["spec"]["template"]
    container = pod["spec"]["containers"][0]
    port = int(container["command"][container["command"].index("--port") + 1])
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    routes = _app_routes()
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in routes
        assert probe["port"] == "http"
    service = kinds[("Service", "mailings-api")]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert api["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    ingress = kinds[("Ingress", "mailings-api")]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "mailings-api", "port": {"name": "http"}}
    annotations = ingress["metadata"]["annotations"]
    # WebSockets (mailingProgress) stay open far longer than nginx's default 60 s.
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    limit = annotations["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(limit.rstrip("m")) * 1024 * 1024 >= Settings().max_body_bytes


def test_kubernetes_worker_autoscaling_and_migration() -> None:
    kinds = _kinds()
    worker = kinds[("Deployment", "mailings-worker")]
    hpa = kinds[("HorizontalPodAutoscaler", "mailings-worker")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "mailings-worker",
    }
    assert 1 <= hpa["minReplicas"] <= worker["spec"]["replicas"] <= hpa["maxReplicas"]
    worker_pod = worker["spec"]["template"]["spec"]
    # A worker finishes its requests in flight within Huey's 30 s shutdown timeout.
    assert worker_pod["terminationGracePeriodSeconds"] > 30
    job = kinds[("Job", "mailings-migrate")]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["mailings", "migrate"]
    assert job["restartPolicy"] == "Never"


def test_kubernetes_worker_probes_and_scrape_annotations() -> None:
    kinds = _kinds()
    pod = kinds[("Deployment", "mailings-worker")]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["WORKER_METRICS_HOST"] == "0.0.0.0"
    port = int(env["WORKER_METRICS_PORT"])
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["startupProbe"]["path"] == probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    for probe in probes.values():
        assert probe["path"] in WORKER_PATHS
        assert probe["port"] == "metrics"
    # A stuck worker restarts within about 30 s.
    liveness = container["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] <= 30
    # Prometheus finds every worker pod and every API pod.
    api = kinds[("Deployment", "mailings-api")]["spec"]["template"]
    api_container = api["spec"]["containers"][0]
    api_port = api_container["command"][api_container["command"].index("--port") + 1]
    for template, scrape_port, paths in (
        (pod, str(port), WORKER_PATHS),
        (api, api_port, _app_routes()),
    ):
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == scrape_port
        assert annotations["prometheus.io/path"] in paths


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_builds_the_kustomization() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(K8S)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    documents = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    workers = [d for d in documents if d["metadata"]["name"] == "mailings-worker"]
    assert {d["kind"] for d in workers} == {"Deployment", "HorizontalPodAutoscaler"}
