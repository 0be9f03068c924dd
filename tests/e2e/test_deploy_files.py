"""Deployment files, checked without a Docker engine or a cluster (docs/deploy.md).

- manifests: Kubernetes kinds against the schemas bundled in kubernetes-validate, KServe kinds
  against ../shared/schemas/kserve/ (read there, never copied), and against each other;
- container configs: the project's settings except addresses, paths and auth;
- Dockerfile and docker-compose.yml: parsed with BuildKit's parser / the compose-spec schema,
  linted with hadolint, and cross-checked against the repository (COPY sources, paths, ports).

The KServe tree served for real: tests/integration/test_kserve.py.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts.deploy import kserve_layout
from scripts.deploy.image_lock import SERVING_PACKAGES
from scripts.ops.server import TorchServe, parse_properties, read_properties
from scripts.registry import DEFAULT_MODELS, ROOT
from tests.conftest import missing
from tests.systemd_units import SERVER as SYSTEMD_SERVER

KSERVE_SCHEMAS = ROOT.parent / "shared" / "schemas" / "kserve"
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests are meant for


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.relative_to(ROOT)}:{doc['kind']}", doc)
        for path in sorted((ROOT / "deploy").rglob("*.yaml"))
        for doc in yaml_docs(path)
    ]


MANIFESTS = manifests()
KSERVE_KINDS = {"InferenceService", "ServingRuntime"}


def manifest(kind: str, file: str) -> dict[str, Any]:
    return next(doc for name, doc in MANIFESTS if name == f"{file}:{kind}")


# ------------------------------------------------------------------ contract: KServe v1 body


# ------------------------------------------------------------------ KServe storage tree


# ------------------------------------------------------------------ manifests


@pytest.mark.parametrize(
    "name,doc",
    [(n, d) for n, d in MANIFESTS if d["kind"] not in KSERVE_KINDS],
    ids=[n for n, d in MANIFESTS if d["kind"] not in KSERVE_KINDS],
)
def test_kubernetes_manifest_is_valid(name: str, doc: dict[str, Any]):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@functools.cache
def kserve_validator(kind: str, version: str) -> jsonschema.Draft7Validator:
    """The KServe CRD schema from ../shared (1.3 MB: loaded once per kind)."""
    schema_file = KSERVE_SCHEMAS / f"{kind.lower()}_{version}.json"
    return jsonschema.Draft7Validator(json.loads(schema_file.read_text(encoding="utf-8")))


@pytest.mark.parametrize(
    "name,doc",
    [(n, d) for n, d in MANIFESTS if d["kind"] in KSERVE_KINDS],
    ids=[n for n, d in MANIFESTS if d["kind"] in KSERVE_KINDS],
)
def test_kserve_manifest_is_valid(name: str, doc: dict[str, Any]):
    if not KSERVE_SCHEMAS.is_dir():
        missing(f"no KServe schemas at {KSERVE_SCHEMAS}", "put ../shared beside the checkout")
    kserve_validator(doc["kind"], doc["apiVersion"].split("/")[1]).validate(doc)


def test_validators_reject_a_typo():
    """The schemas are strict enough to matter: a misspelt field fails."""
    deployment = manifest("Deployment", "deploy/k8s/deployment.yaml")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    if KSERVE_SCHEMAS.is_dir():
        isvc = json.loads(
            json.dumps(manifest("InferenceService", "deploy/kserve/inferenceservice.yaml"))
        )
        isvc["spec"]["predictor"]["minReplica"] = 1
        with pytest.raises(jsonschema.ValidationError):
            kserve_validator("InferenceService", "v1beta1").validate(isvc)


def test_kserve_manifests_fit_the_layout():
    runtime = manifest("ServingRuntime", "deploy/kserve/servingruntime.yaml")
    isvc = manifest("InferenceService", "deploy/kserve/inferenceservice.yaml")
    canary = manifest("InferenceService", "deploy/kserve/inferenceservice-canary.yaml")
    properties = kserve_layout.kserve_properties({"models": {}})
    (container,) = runtime["spec"]["containers"]
    # The container port is the image's front proxy; TorchServe's inference is pod-local behind it.
    env = {item["name"]: item["value"] for item in container["env"]}
    assert container["ports"][0]["containerPort"] == int(env["PROXY_LISTEN"])
    assert properties["inference_address"] == f"http://{env['PROXY_UPSTREAM']}"
    assert properties["inference_address"].startswith("http://127.0.0.1:")
    assert f"--ts-config={kserve_layout.KSERVE_ROOT}/config/config.properties" in container["args"]
    assert f"--model-store={properties['model_store']}" in container["args"]
    probe = container["readinessProbe"]["exec"]["command"]
    assert f"--management-url={properties['management_address']}" in probe
    assert f"--url=http://127.0.0.1:{env['PROXY_LISTEN']}" in probe  # ready through the proxy
    for service in (isvc, canary):
        predictor = service["spec"]["predictor"]
        assert predictor["model"]["runtime"] == runtime["metadata"]["name"]
        assert predictor["model"]["protocolVersion"] in runtime["spec"]["protocolVersions"]
        assert predictor["minReplicas"] <= predictor["maxReplicas"]
    assert canary["metadata"]["name"] == isvc["metadata"]["name"]
    assert 0 < canary["spec"]["predictor"]["canaryTrafficPercent"] < 100
    assert canary["spec"]["predictor"]["model"]["storageUri"] != isvc["spec"]["predictor"][
        "model"]["storageUri"]  # fmt: skip


def test_kubernetes_manifests_fit_together():
    deployment = manifest("Deployment", "deploy/k8s/deployment.yaml")
    service = manifest("Service", "deploy/k8s/service.yaml")
    hpa = manifest("HorizontalPodAutoscaler", "deploy/k8s/hpa.yaml")
    config_map = manifest("ConfigMap", "deploy/k8s/configmap.yaml")
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs a request
    (mount,) = container["volumeMounts"]
    assert f"--ts-config={mount['mountPath']}/config.properties" in container["args"]
    assert pod["spec"]["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert pod["spec"]["securityContext"]["runAsUser"] == dockerfile_user()


def properties_of(text: str) -> dict[str, str]:
    """A config.properties embedded in a manifest, parsed as the server parses its file."""
    return parse_properties(text)


LOCATION_KEYS = {"inference_address", "management_address", "metrics_address", "model_store",
                 "load_models", "vmargs", "allowed_urls"}  # fmt: skip


def test_container_configs_keep_the_project_settings():
    """docker/ and deploy/k8s configs = config.properties except addresses, paths and auth."""
    project = read_properties(ROOT / "config.properties")
    container = read_properties(ROOT / "docker" / "config.properties")
    k8s = properties_of(
        manifest("ConfigMap", "deploy/k8s/configmap.yaml")["data"]["config.properties"]
    )
    for name, config, allowed in [
        ("docker", container, LOCATION_KEYS),
        ("k8s", k8s, LOCATION_KEYS | {"token_expiration_min", "disable_token_authorization",
                                      "enable_model_api", "allowed_urls"}),
    ]:  # fmt: skip
        differing = {k for k in project.keys() | config.keys() if project.get(k) != config.get(k)}
        assert differing <= allowed, (name, differing - allowed)
        assert config["load_models"] == ",".join(f"{m}={m}.mar" for m in DEFAULT_MODELS)
        assert config["model_store"] == "/home/model-server/model-store"
    assert k8s["management_address"].startswith("http://127.0.0.1:")


CONFIGS = ["config.properties (make serve, systemd)", "docker/config.properties (image, compose)",
           "deploy/k8s/configmap.yaml", "KServe (kserve_layout)"]  # fmt: skip


def every_config(run_dir: Path) -> dict[str, dict[str, str]]:
    """Each TorchServe config the project ships, as TorchServe will read it (CONFIGS' order)."""
    k8s = manifest("ConfigMap", "deploy/k8s/configmap.yaml")["data"]["config.properties"]
    rendered = read_properties(TorchServe(run_dir=run_dir).render_config())
    return {
        "config.properties (make serve, systemd)": rendered,
        "docker/config.properties (image, compose)": read_properties(
            ROOT / "docker" / "config.properties"),
        "deploy/k8s/configmap.yaml": properties_of(k8s),
        "KServe (kserve_layout)": kserve_layout.kserve_properties({"models": {}}),
    }  # fmt: skip


URLS = ["file:///home/model-server/model-store/sentiment_fast.mar", "file:///tmp/x.mar",
        "file:///home/model-server/model-store/%2e%2e%2f%2e%2e%2ftmp%2fx.mar",
        "https://example.org/x.mar", "http://127.0.0.1/x.mar", "FILE:///x.mar"]  # fmt: skip


@pytest.mark.parametrize("name", CONFIGS)
def test_nothing_can_be_registered_by_default(name: str, tmp_path: Path):
    """The model API is off (only `manage register` / `rollout` turn it on, by a restart);
    archives of the store are registered by name, so `allowed_urls` matches no URL at all
    (TorchServe compiles each comma-separated entry case-insensitively and full-matches it), and
    the workflow API, which 0.12 cannot switch off, has a store that does not exist."""
    config = every_config(tmp_path)[name]
    assert config["enable_model_api"] == "false"
    patterns = [re.compile(p, re.IGNORECASE) for p in config["allowed_urls"].split(",")]
    assert not [url for url in URLS if any(p.fullmatch(url) for p in patterns)]
    assert config["workflow_store"] == "no-workflow-store"  # relative to TorchServe's cwd: run/
    assert not (ROOT / "run" / config["workflow_store"]).exists()


# ------------------------------------------------------------------ Dockerfile


def parse(path: Path) -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(path)))


def stages(commands: list[dockerfile.Command]) -> dict[str, list[dockerfile.Command]]:
    """Stage name -> its commands (FROM included)."""
    result: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] = []
    for command in commands:
        if command.cmd == "FROM":
            current = [command]
            name = command.value[2] if len(command.value) == 3 else f"#{len(result)}"
            result[name.lower()] = current
        elif current:
            current.append(command)
    return result


def global_args(commands: list[dockerfile.Command]) -> dict[str, str]:
    before_from = commands[: next(i for i, c in enumerate(commands) if c.cmd == "FROM")]
    return dict(c.value[0].split("=", 1) for c in before_from if c.cmd == "ARG")


def dockerfile_user() -> int:
    users = [c for c in stages(parse(ROOT / "Dockerfile"))["runtime"] if c.cmd == "USER"]
    return int(users[-1].value[0].split(":")[0])


def test_dockerfile_stages_and_variants():
    commands = parse(ROOT / "Dockerfile")
    found = stages(commands)
    assert list(found)[-1] == "runtime"  # what a plain `docker build .` produces
    assert {"nsmc", "build", "base-cpu", "base-gpu"} <= set(found)
    args = global_args(commands)
    assert args["VARIANT"] == "cpu"
    runtime_from = found["runtime"][0].value[0]
    for variant in ("cpu", "gpu"):  # both values of the build argument name a stage here
        assert runtime_from.replace("${VARIANT}", variant) in found
    assert "cuda" in found["base-gpu"][0].value[0] and "runtime" in found["base-gpu"][0].value[0]
    # BASE: the official image by default; `make image` names a local one here (docs/deploy.md)
    assert found["base-cpu"][0].value[0] == found["build"][0].value[0] == "${BASE}"
    assert args["BASE"].startswith("python:3.11") and args["BASE"].endswith("-slim-bookworm")
    for name, stage in found.items():
        image = stage[0].value[0].replace("${BASE}", args["BASE"])
        if image == "scratch" or "${" in image:  # empty, or one of this file's stages
            continue
        tag = image.partition(":")[2]
        assert tag and tag != "latest" and any(ch.isdigit() for ch in tag), (name, image)


def test_image_server_cannot_write_what_it_loads():
    """uid 1000 owns run/ and logs/ only: no home of its own (which would own /home/model-server
    and let it rename the model store away), no COPY --chown, no other directory handed over."""
    runtime = stages(parse(ROOT / "Dockerfile"))["runtime"]
    text = " ".join(c.original for c in runtime if c.cmd == "RUN")
    useradd = text[text.index("useradd"):]
    assert "--no-create-home" in useradd and "--create-home" not in useradd.replace("--no-", "")
    assert "--home-dir /home/model-server/run" in useradd
    assert not [c.original for c in runtime if c.cmd == "COPY" and any(
        f.startswith("--chown") for f in c.flags)]  # fmt: skip
    handed = re.findall(r"install -d -o model-server -g model-server ([^&]+)", text)
    assert [part.split() for part in handed] == [["run", "logs"]]


def test_systemd_server_writes_its_run_directory_only():
    service = SYSTEMD_SERVER["Service"]
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ReadWritePaths"].split() == ["-/opt/nsmc-sentiment/run"]
    assert service["User"] not in ("root", "0")


def listener_ports(*apis: str) -> set[int]:
    """The container ports of TorchServe's listeners in docker/config.properties."""
    container = read_properties(ROOT / "docker" / "config.properties")
    return {int(container[f"{api}_address"].rsplit(":", 1)[1]) for api in apis}


def image_env() -> dict[str, str]:
    """The runtime stage's ENV (key=value form)."""
    runtime = stages(parse(ROOT / "Dockerfile"))["runtime"]
    pairs = [v for c in runtime if c.cmd == "ENV" for v in c.value]
    return dict(zip(pairs[::2], pairs[1::2]))


def test_image_exposes_no_management_port():
    """The management API (the key that scales, and with the model API on, registers) is not
    published by default: EXPOSE names the front proxy (inference) and metrics only."""
    runtime = stages(parse(ROOT / "Dockerfile"))["runtime"]
    (expose,) = [c for c in runtime if c.cmd == "EXPOSE"]
    proxy = int(image_env()["PROXY_LISTEN"])
    assert {int(port) for port in expose.value} == {proxy} | listener_ports("metrics")


def test_inference_is_reached_through_the_proxy_only():
    """Every container config binds TorchServe's inference listener to 127.0.0.1, where the
    image's front proxy (docker/entrypoint.sh, docker/nginx.conf) forwards to it; the container
    port clients reach is the proxy's (CVE-2024-29025: no form body for netty's decoder)."""
    env = image_env()
    docker = read_properties(ROOT / "docker" / "config.properties")
    assert docker["inference_address"] == f"http://{env['PROXY_UPSTREAM']}"
    k8s = properties_of(
        manifest("ConfigMap", "deploy/k8s/configmap.yaml")["data"]["config.properties"])  # fmt: skip
    assert k8s["inference_address"] == docker["inference_address"]
    (container,) = manifest("Deployment", "deploy/k8s/deployment.yaml")["spec"]["template"][
        "spec"]["containers"]  # fmt: skip
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["inference"] == int(env["PROXY_LISTEN"])
    assert "PROXY" not in {item["name"] for item in container.get("env", [])}  # never off
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    published = {int(str(p).rsplit(":", 1)[1]) for p in compose["services"]["torchserve"]["ports"]}
    assert int(env["PROXY_LISTEN"]) in published
    assert int(docker["inference_address"].rsplit(":", 1)[1]) not in published
    script = (ROOT / "docker" / "entrypoint.sh").read_text(encoding="utf-8")
    for placeholder in set(re.findall(r"@[A-Z]+@", (ROOT / "docker" / "nginx.conf").read_text())):
        assert f"s|{placeholder}|" in script  # the entrypoint fills every placeholder


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_caps_the_frontend_heap(name: str, tmp_path: Path):
    """The JVM's heap and direct memory are capped alike everywhere (docs/security/form-flood.md),
    and an OutOfMemoryError fails a request, never the whole server (no ExitOnOutOfMemoryError)."""
    project = read_properties(ROOT / "config.properties")["vmargs"].split()
    flags = [arg for arg in project if arg.startswith(("-Xmx", "-XX:MaxDirectMemorySize="))]
    assert len(flags) == 2
    vmargs = every_config(tmp_path)[name]["vmargs"].split()
    assert [arg for arg in vmargs if arg.startswith(("-Xm", "-XX:"))] == flags
    assert not [arg for arg in vmargs if "OnOutOfMemoryError" in arg]


def test_runtime_stage_is_non_root_with_healthcheck():
    runtime = stages(parse(ROOT / "Dockerfile"))["runtime"]
    assert dockerfile_user() >= 1000
    (health,) = [c for c in runtime if c.cmd == "HEALTHCHECK"]
    assert "healthcheck.py" in health.original
    copied = " ".join(c.original for c in runtime if c.cmd == "COPY")
    assert "scripts/ops/healthcheck.py" in copied and "docker/config.properties" in copied
    assert "sentiment_client/" in copied  # the health check and the renewer import it
    (entrypoint,) = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    script = (ROOT / "docker" / "entrypoint.sh").read_text(encoding="utf-8")
    assert entrypoint.value[-1].endswith("/entrypoint.sh") and "docker/entrypoint.sh" in copied
    assert "sentiment_client.renewer watch" in script and 'exec "$@"' in script
    (cmd,) = [c for c in runtime if c.cmd == "CMD"]
    assert cmd.value[0] == "torchserve" and "--foreground" in cmd.value
    assert "/home/model-server/config.properties" in cmd.value
    apt = " ".join(c.original for c in stages(parse(ROOT / "Dockerfile"))["base-cpu"])
    assert "openjdk-17-jre-headless" in apt


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `**/` any directories, `*` and `?` in one."""
    regex, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex, i = regex + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            regex, i = regex + ".*", i + 2
        else:
            regex += {"*": "[^/]*", "?": "[^/]"}.get(pattern[i], re.escape(pattern[i]))
            i += 1
    return re.compile(regex)


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


OUT_OF_CONTEXT = (".venv/bin/python", "build/sentiment_fast/model.joblib", ".git/HEAD",
                  "model_store/sentiment_fast.mar", "run/key_file.json", "data/nsmc/x.txt",
                  "tests/e2e/test_deploy_files.py", "scripts/deploy/image_test.py",
                  "handlers/__pycache__/text.cpython-311.pyc")  # fmt: skip
IN_CONTEXT = ("handlers/contract.py", "scripts/packaging/build_archive.py", "log4j2.xml",
              "archive/sentiment_bert/checkpoint/model.safetensors",
              "docker/config.properties")  # fmt: skip


def test_dockerignore_keeps_the_context_small():
    patterns = dockerignore_patterns()
    for excluded in OUT_OF_CONTEXT:
        assert dockerignored(excluded, patterns), excluded
    for included in IN_CONTEXT:
        assert not dockerignored(included, patterns), included


@pytest.mark.parametrize("path", ["Dockerfile", "docker/web.Dockerfile"])
def test_copy_sources_exist_in_the_context(path: str):
    patterns = dockerignore_patterns()
    missing = []
    for command in parse(ROOT / path):
        if command.cmd != "COPY" or any(f.startswith("--from") for f in command.flags):
            continue
        for source in command.value[:-1]:
            if not (ROOT / source).exists():
                missing.append(source)
            assert not dockerignored(source, patterns), f"{source} is .dockerignored"
    assert not missing


def hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_is_clean():
    if hadolint() is None:
        missing("hadolint not installed", "pip install -r requirements-dev.txt")
    files = [str(ROOT / "Dockerfile"), str(ROOT / "docker" / "web.Dockerfile")]
    result = subprocess.run([hadolint(), "--failure-threshold", "info", *files],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_pins_satisfy_requirements():
    pins = {}
    for line in (ROOT / "docker" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    assert {canonicalize_name(p) for p in SERVING_PACKAGES} <= pins.keys()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name in pins:
                assert requirement.specifier.contains(pins[name], prereleases=True), line


# ------------------------------------------------------------------ docker-compose


def compose_schema() -> dict[str, Any]:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_file_matches_the_compose_spec(path: str):
    (doc,) = yaml_docs(ROOT / path)
    jsonschema.validate(doc, compose_schema(), cls=jsonschema.Draft7Validator)


def test_compose_services():
    (compose,) = yaml_docs(ROOT / "docker-compose.yml")
    services = compose["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)  # loopback unless proxied
        assert service["restart"] and service["deploy"]["resources"]["limits"], name
    torchserve = services["torchserve"]
    assert torchserve["build"]["context"] == "."
    assert "healthcheck.py" in " ".join(torchserve["healthcheck"]["test"])
    targets = {volume.split(":")[1] for volume in torchserve["volumes"]}
    assert targets == {"/home/model-server/run", "/home/model-server/logs",
                       "/home/model-server/model-store"}  # fmt: skip
    published = {int(port.split(":")[2]) for port in torchserve["ports"]}
    # the proxy (inference) and metrics; management stays inside
    assert published == {int(image_env()["PROXY_LISTEN"])} | listener_ports("metrics")
    web = services["web"]
    assert web["profiles"] == ["web"]  # `docker compose up` alone does not need web/
    assert any(v.startswith("ts-run:") and v.endswith(":ro") for v in web["volumes"])
    assert web["depends_on"]["torchserve"]["condition"] == "service_healthy"


def docker_compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    return None


def test_docker_compose_config_accepts_the_files():
    """Docker Compose's own parser and interpolation, where its CLI is installed (no engine)."""
    command = docker_compose()
    if command is None:
        missing("no docker compose CLI here", "install Docker's compose plugin", ci_has_it=False)
    files = ["-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml"]
    result = subprocess.run([*command, *files, "--profile", "web", "config", "--quiet"],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
