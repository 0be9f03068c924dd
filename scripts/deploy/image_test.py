"""`make image-test`: run the built image here and check what no static check can: that its
entrypoint starts TorchServe, every model turns READY, answers the README's request and
refuses a bad one, as the unprivileged user, with a model store that user cannot write, and
with the management port left unpublished; and that its front proxy (docker/nginx.conf) answers
the README's request but refuses a form-encoded or multipart body (415) and one over
max_request_size (413) with a JSON error, so no form body reaches TorchServe (CVE-2024-29025).

No container runtime works here (podman: cgroups), so the image runs with
`buildah run --isolation chroot`: its own root file system, user and working directory, this
machine's network.  Its config.properties is used as shipped except the listeners, moved to
free ports of 127.0.0.1 (others' servers use 8080-8082 here), and the proxy's listen address and
upstream with them (PROXY_LISTEN, PROXY_UPSTREAM); the key file, the process table and the
files are read through the container's mount.  Every inference request goes through the proxy.

    .venv/bin/python -m scripts.deploy.image_test            # after `make image`
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import requests
import yaml

from scripts.deploy.image import IMAGE, output
from scripts.deploy.proxy import FORM_TYPES
from scripts.ops.healthcheck import CheckFailed, check
from scripts.ops.server import Ports, parse_properties
from scripts.registry import DEFAULT_MODELS, ROOT

HOME = Path("/home/model-server")
TEST_CONFIG = "/tmp/image-test.properties"
README_TEXTS = ["정말 재밌게 잘봤습니다!", "시간 아깝다"]
README_LABELS = ["positive", "negative"]
MANAGEMENT_PORT = 8081  # docker/config.properties' management listener inside the image


class ImageCheckFailed(AssertionError):
    """The image did not do what the deployment promises; the message says what."""


@dataclass
class Container:
    """A running image: its buildah container, mounted root, process and listeners."""

    name: str
    root: Path
    process: subprocess.Popen
    ports: Ports
    log: Path
    proxy: int  # the front proxy's port, in front of ports.inference

    def url(self, port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{port}{path}"

    @property
    def key_file(self) -> Path:
        return self.root / HOME.relative_to("/") / "run" / "key_file.json"


# ------------------------------------------------------------------ the image's settings


def image_config(image: str = IMAGE) -> dict[str, Any]:
    """The image's Docker config (User, Env, ExposedPorts, Entrypoint, Cmd, ...)."""
    inspected = json.loads(output(["buildah", "inspect", "--type", "image", image]))
    return inspected["Docker"]["config"]


def moved_properties(shipped: str, ports: Ports) -> str:
    """The image's config.properties with only its listeners moved to 127.0.0.1:<free port>."""
    moved = {
        "inference_address": f"http://127.0.0.1:{ports.inference}",
        "management_address": f"http://127.0.0.1:{ports.management}",
        "metrics_address": f"http://127.0.0.1:{ports.metrics}",
        "grpc_inference_port": str(ports.grpc_inference),
        "grpc_management_port": str(ports.grpc_management),
    }
    properties = {**parse_properties(shipped), **moved}
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def server_command(config: dict[str, Any]) -> list[str]:
    """The image's ENTRYPOINT + CMD, with the test config in place of the shipped one."""
    command = [*config["Entrypoint"], *config["Cmd"]]
    where = command.index("--ts-config") + 1
    return [*command[:where], TEST_CONFIG, *command[where + 1 :]]


def listener_env(ports: Ports, proxy: int) -> dict[str, str]:
    """Where the entrypoint's key renewer, its proxy and the HEALTHCHECK find the moved
    listeners (the HEALTHCHECK's inference requests go through the proxy, as in the image)."""
    return {"TS_INFERENCE_URL": f"http://127.0.0.1:{proxy}",
            "TS_MANAGEMENT_URL": f"http://127.0.0.1:{ports.management}",
            "PROXY_LISTEN": f"127.0.0.1:{proxy}",
            "PROXY_UPSTREAM": f"127.0.0.1:{ports.inference}"}  # fmt: skip


# ------------------------------------------------------------------ start, wait, stop


def run_command(name: str, command: Sequence[str], env: dict[str, str]) -> list[str]:
    """`buildah run`: as the image's user, in its working directory, with `env` added."""
    env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
    return ["buildah", "run", "--isolation", "chroot", *env_args, name, "--", *command]


def buildah_run(name: str, command: Sequence[str],
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:  # fmt: skip
    """A short command in the container, its output captured."""
    return subprocess.run(run_command(name, command, env or {}), capture_output=True, text=True)


def start(image: str, config: dict[str, Any],
          log: Path = ROOT / "build" / "image-test.log") -> Container:  # fmt: skip
    """A container of `image`, its entrypoint started with the test config."""
    name = output(["buildah", "from", image])
    try:
        return launch(name, Path(output(["buildah", "mount", name])), config, log)
    except BaseException:
        subprocess.run(["buildah", "rm", name], capture_output=True)  # nothing runs in it yet
        raise


def launch(name: str, root: Path, config: dict[str, Any], log: Path) -> Container:
    """Write the test config into the container's root and start its entrypoint."""
    ports, proxy = Ports.free(), Ports.free().inference
    shipped = (root / HOME.relative_to("/") / "config.properties").read_text(encoding="utf-8")
    (root / TEST_CONFIG.lstrip("/")).write_text(moved_properties(shipped, ports), encoding="utf-8")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = run_command(name, server_command(config), listener_env(ports, proxy))
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return Container(name, root, process, ports, log, proxy)


def wait_ready(container: Container, models: Sequence[str], timeout: float) -> float:
    """Seconds until every model has a READY worker (the HEALTHCHECK's own test)."""
    started = time.monotonic()
    last = "not started"
    while time.monotonic() - started < timeout:
        if container.process.poll() is not None:
            raise ImageCheckFailed(f"the entrypoint exited ({container.process.returncode}); "
                                   f"see {container.log}")  # fmt: skip
        try:
            check(container.url(container.proxy), container.key_file, models,
                  container.url(container.ports.management))  # fmt: skip
            return time.monotonic() - started
        except CheckFailed as err:
            last = str(err)
        time.sleep(1)
    raise ImageCheckFailed(f"not READY after {timeout:.0f}s ({last}); see {container.log}")


def parents() -> dict[int, int]:
    """pid -> parent pid, for every process now."""
    table = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue  # exited meanwhile
        ppid = next((line.split()[1] for line in lines if line.startswith("PPid:")), "0")
        table[int(status.parent.name)] = int(ppid)
    return table


def container_pids(container: Container) -> list[int]:
    """The processes inside the container: descendants of `buildah run` whose root is not the
    host's (buildah runs them chrooted into a bind mount of its own under /var/tmp)."""
    table, found, frontier = parents(), [], [container.process.pid]
    while frontier:
        children = [pid for pid, parent in table.items() if parent in frontier]
        found += children
        frontier = children
    return [pid for pid in found if chrooted(pid)]


def chrooted(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/root") != "/"
    except OSError:
        return False


def stop(container: Container, timeout: float = 30) -> None:
    """Stop the entrypoint and everything it started, then remove the container."""
    inside = container_pids(container)
    try:
        os.killpg(container.process.pid, signal.SIGTERM)
        container.process.wait(timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(container.process.pid, signal.SIGKILL)
        container.process.wait()
    for pid in inside:  # a worker that left the process group
        if chrooted(pid):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["buildah", "umount", container.name], capture_output=True)
    subprocess.run(["buildah", "rm", container.name], capture_output=True)


# ------------------------------------------------------------------ the checks


def check_answers(container: Container, model: str) -> None:
    """The README's request answered in order, and a bad one refused with the contract's 400."""
    key = json.loads(container.key_file.read_text(encoding="utf-8"))["inference"]["key"]
    url = container.url(container.proxy, f"/predictions/{model}")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    good = requests.post(url, json={"text": README_TEXTS}, headers=headers, timeout=60)
    labels = [answer.get("label") for answer in good.json()] if good.ok else good.text
    if labels != README_LABELS:
        raise ImageCheckFailed(f"{model}: README request answered {good.status_code} {labels}")
    bad = requests.post(url, json={"text": 5}, headers=headers, timeout=60)
    if bad.status_code != 400 or bad.json().get("type") != "InvalidText":
        raise ImageCheckFailed(f"{model}: bad request answered {bad.status_code} {bad.text:.200}")


def process_uids(container: Container) -> dict[int, str]:
    """uid -> a command line, for each process inside the container."""
    uids = {}
    for pid in container_pids(container):
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        uids[uid] = cmdline.decode(errors="replace")[:120]
    return uids


def check_user(container: Container, config: dict[str, Any]) -> str:
    """TorchServe, its workers and the renewer all run as the image's numeric, non-root USER."""
    user = int(config["User"].split(":")[0])
    uids = process_uids(container)
    if user == 0 or set(uids) != {user}:
        raise ImageCheckFailed(f"USER {config['User']}, processes run as {uids}")
    return f"uid {user} ({len(container_pids(container))} processes)"


WRITABLE_PROBE = ("cd /home/model-server && for p in . model-store model-store/*.mar "
                  "config.properties log4j2.xml healthcheck.py entrypoint.sh; "
                  "do if test -w \"$p\"; then echo \"$p\"; fi; done")  # fmt: skip


TAMPER = "touch /home/model-server/model-store/x || mv /home/model-server/model-store /tmp/ms"


def check_store_read_only(container: Container) -> None:
    """As the server's user, no archive, no store, no config and no parent directory that
    would let it swap them (touch and rename both tried)."""
    writable = buildah_run(container.name, ["sh", "-c", WRITABLE_PROBE]).stdout.split()
    attempt = buildah_run(container.name, ["sh", "-c", TAMPER])
    if writable or attempt.returncode == 0:
        raise ImageCheckFailed(f"writable by the server's user: {writable or 'model-store'}")


def check_healthcheck(container: Container) -> None:
    """The image's HEALTHCHECK command, as Docker would run it, says healthy."""
    result = buildah_run(container.name, ["python", str(HOME / "healthcheck.py")],
                         env=listener_env(container.ports, container.proxy))  # fmt: skip
    if result.returncode != 0:
        raise ImageCheckFailed(f"HEALTHCHECK: {result.stdout}{result.stderr}")


FORM_BODIES = {FORM_TYPES[0]: "&".join(["a=1"] * 1000).encode(),
               f"{FORM_TYPES[1]}; boundary=X": (b'--X\r\nContent-Disposition: form-data; '
                                                b'name="text"\r\n\r\ngood\r\n--X--\r\n')}


def check_proxy(container: Container, model: str = DEFAULT_MODELS[0]) -> None:
    """The proxy answers form-encoded and multipart bodies 415 and a body over
    max_request_size 413 itself, each with a JSON error, and TorchServe never sees them: its
    own inference listener answers a form body with the handler's 400 FormEncodedBody."""
    key = json.loads(container.key_file.read_text(encoding="utf-8"))["inference"]["key"]
    path = f"/predictions/{model}"
    auth = {"Authorization": f"Bearer {key}"}
    for content_type, body in FORM_BODIES.items():
        headers = {**auth, "Content-Type": content_type}
        refused = requests.post(container.url(container.proxy, path), data=body,
                                headers=headers, timeout=60)  # fmt: skip
        if refused.status_code != 415 or refused.json().get("type") != "UnsupportedMediaType":
            raise ImageCheckFailed(f"proxy: {content_type} answered {refused.status_code} "
                                   f"{refused.text:.200}")  # fmt: skip
    direct = requests.post(container.url(container.ports.inference, path),
                           data=FORM_BODIES[FORM_TYPES[0]],
                           headers={**auth, "Content-Type": FORM_TYPES[0]}, timeout=60)  # fmt: skip
    if direct.status_code != 400:  # the comparison: TorchServe itself decodes it
        raise ImageCheckFailed(f"TorchServe answered a form body {direct.status_code}")
    size = int(parse_properties((container.root / TEST_CONFIG.lstrip("/")).read_text(
        encoding="utf-8"))["max_request_size"])  # fmt: skip
    large = requests.post(container.url(container.proxy, path), data=b"a" * (size + 1),
                          headers={**auth, "Content-Type": "text/plain"}, timeout=60)  # fmt: skip
    if large.status_code != 413 or large.json().get("type") != "RequestTooLarge":
        raise ImageCheckFailed(f"proxy: a body over {size} bytes answered {large.status_code}")


def published_ports(config: dict[str, Any]) -> set[int]:
    """The image's EXPOSE and the container ports docker-compose.yml publishes."""
    exposed = {int(port.split("/")[0]) for port in config.get("ExposedPorts") or {}}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    ports = compose["services"]["torchserve"].get("ports", [])
    return exposed | {int(str(port).rsplit(":", 1)[1]) for port in ports}


def check_management_unpublished(config: dict[str, Any]) -> None:
    if MANAGEMENT_PORT in published_ports(config):
        raise ImageCheckFailed(f"management port {MANAGEMENT_PORT} is published by default")


def run_checks(image: str = IMAGE, timeout: float = 600) -> dict[str, Any]:
    """Start the image, check everything, always stop it; what was measured."""
    config = image_config(image)
    check_management_unpublished(config)
    started = time.monotonic()
    container = start(image, config)
    try:
        ready_s = wait_ready(container, DEFAULT_MODELS, timeout)
        for model in DEFAULT_MODELS:
            check_answers(container, model)
        check_proxy(container)
        user = check_user(container, config)
        check_store_read_only(container)
        check_healthcheck(container)
    finally:
        stop(container)
    return {"ready_s": ready_s, "user": user, "checked_s": time.monotonic() - started}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default=IMAGE)
    parser.add_argument("--timeout", type=float, default=600, help="seconds to READY")
    args = parser.parse_args(argv)
    try:
        result = run_checks(args.image, args.timeout)
    except ImageCheckFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    print(f"{args.image}: READY {result['ready_s']:.0f}s after start; {', '.join(DEFAULT_MODELS)}"
          f" answered and refused a bad request through the proxy, which refused form and"
          f" multipart bodies (415) and an oversized one (413) with JSON; runs as"
          f" {result['user']}, model store not writable, management port unpublished,"
          f" HEALTHCHECK healthy")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
