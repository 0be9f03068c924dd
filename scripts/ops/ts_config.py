"""One TorchServe instance's config.properties: its ports, the project's file rendered with them
and absolute paths, and a rendered file read back (to attach to a running instance).

Precedence, as TorchServe applies it: this file < model-config.yaml < the management API.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

from scripts.registry import ROOT

BASE_CONFIG = ROOT / "config.properties"
LOG4J_CONFIG = ROOT / "log4j2.xml"
# allowed_urls that matches no URL: archives of the store are registered by name, which
# TorchServe never matches against allowed_urls.  A store-only pattern was bypassed by
# file://<store>/%2e%2e%2f<anywhere>.mar (Java decodes %2f after the match).
NO_URL = "(?!)"
APIS = ("inference", "management", "metrics")  # the HTTP APIs, each on its own port


@dataclass(frozen=True)
class Ports:
    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071
    worker: int = 9000  # first port of the workers' unix sockets (/tmp/.ts.sock.<port>)

    @classmethod
    def free(cls) -> "Ports":
        """Ports nobody listens on now, for a test instance beside others."""
        sockets = [socket.socket() for _ in fields(cls)]
        try:
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            return cls(*(sock.getsockname()[1] for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()

    def url(self, api: str, path: str = "") -> str:
        """http://127.0.0.1:<port of `api`><path>; `api` is one of APIS."""
        if api not in APIS:
            raise ValueError(f"no HTTP API {api!r}: one of {', '.join(APIS)}")
        return f"http://127.0.0.1:{getattr(self, api)}{path}"

    @classmethod
    def of(cls, properties: Mapping[str, str]) -> "Ports":
        """The ports a rendered config.properties names."""

        def port(key: str) -> int:
            return int(properties[key].rsplit(":", 1)[-1])

        return cls(port("inference_address"), port("management_address"),
                   port("metrics_address"), port("grpc_inference_port"),
                   port("grpc_management_port"), port("initial_worker_port"))  # fmt: skip


def parse_properties(text: str) -> dict[str, str]:
    """The key=value lines of a config.properties text (comments and blank lines skipped)."""
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def read_properties(path: Path) -> dict[str, str]:
    return parse_properties(path.read_text(encoding="utf-8"))


def write_properties(path: Path, properties: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()), "utf-8")
    return path


def instance_properties(
    base: Mapping[str, str],
    ports: Ports,
    model_store: Path,
    load_models: Mapping[str, str],
    log4j_config: Path,
    tmp_dir: Path,
) -> dict[str, str]:
    """`base` (the project's config.properties) with an instance's ports, absolute paths and
    the archive each model loads ({name: archive})."""
    return {
        **base,
        "inference_address": ports.url("inference"),
        "management_address": ports.url("management"),
        "metrics_address": ports.url("metrics"),
        "grpc_inference_port": str(ports.grpc_inference),
        "grpc_management_port": str(ports.grpc_management),
        "initial_worker_port": str(ports.worker),
        "model_store": str(model_store.resolve()),
        "allowed_urls": NO_URL,
        "load_models": ",".join(f"{name}={archive}" for name, archive in load_models.items()),
        "vmargs": " ".join([*jvm_flags(base.get("vmargs", "")),
                            f"-Dlog4j.configurationFile=file:{log4j_config}",
                            f"-Djava.io.tmpdir={tmp_dir}"]),  # fmt: skip
    }


def jvm_flags(vmargs: str) -> list[str]:
    """The JVM flags of a vmargs line (the heap cap: -Xmx, -XX:...) less the paths an instance
    renders itself (log4j configuration, java.io.tmpdir)."""
    paths = ("-Dlog4j.configurationFile=", "-Djava.io.tmpdir=")
    return [arg for arg in vmargs.split() if not arg.startswith(paths)]


def loaded_models(properties: Mapping[str, str]) -> tuple[str, ...]:
    """The model names of a rendered file's load_models (name=archive, ...)."""
    return tuple(entry.split("=", 1)[0] for entry in properties["load_models"].split(","))
