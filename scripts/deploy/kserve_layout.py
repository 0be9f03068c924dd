"""Lay out a KServe storage tree (config/config.properties + model-store/*.mar) from model_store/.

KServe's TorchServe runtime mounts the InferenceService's storageUri at /mnt/models and starts
`torchserve --ts-config=/mnt/models/config/config.properties` with
`--model-store=/mnt/models/model-store`; its wrapper on :8080 forwards KServe requests to
TorchServe on 127.0.0.1:8085 and polls the management API for READY workers, without a token.
The project's runtime (deploy/kserve/servingruntime.yaml) puts the image's front proxy on :8080
instead.
The same .mar files as everywhere else go in unchanged; only the config differs.

KServe v1 protocol only, and no TorchServe `service_envelope`: the handlers answer
`{"instances": [...]}` themselves (handlers/contract.py). TorchServe 0.12's kserve/kservev2
envelopes read only the first request of a batch, so with dynamic batching every concurrent
request failed with 503 (measured); without them batching works as it does outside KServe.

    python -m scripts.deploy.kserve_layout --out build/kserve
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from scripts.ops.server import TorchServe, read_properties
from scripts.ops.ts_config import BASE_CONFIG, jvm_flags
from scripts.registry import DEFAULT_MODELS, DEFAULT_STORE

KSERVE_ROOT = "/mnt/models"
IMAGE_LOG4J = "/home/model-server/log4j2.xml"
#: Settings of the model snapshot, read from each archive's model-config.yaml.
SNAPSHOT_KEYS = ("minWorkers", "maxWorkers", "batchSize", "maxBatchDelay", "responseTimeout")
SNAPSHOT_DEFAULTS = {"minWorkers": 1, "maxWorkers": 1, "batchSize": 1, "maxBatchDelay": 100,
                     "responseTimeout": 120}  # fmt: skip


class LayoutError(RuntimeError):
    """The model store cannot be laid out; the message says what is missing."""


def archive_settings(mar: Path) -> dict[str, Any]:
    """Name, version and batch/worker settings of one .mar, from its manifest and model-config."""
    try:
        with zipfile.ZipFile(mar) as archive:
            manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))["model"]
            config_name = manifest.get("configFile")
            config = yaml.safe_load(archive.read(config_name)) if config_name else {}
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as err:
        raise LayoutError(f"{mar} is not a readable model archive ({err})") from None
    settings = {key: int((config or {}).get(key, SNAPSHOT_DEFAULTS[key])) for key in SNAPSHOT_KEYS}
    return {"name": manifest["modelName"], "version": manifest["modelVersion"], **settings}


def model_snapshot(archives: Mapping[str, Path]) -> dict[str, Any]:
    """TorchServe's startup snapshot: every model, its .mar and its batch settings."""
    models = {}
    for name, mar in archives.items():
        settings = archive_settings(mar)
        entry = {"defaultVersion": True, "marName": mar.name}
        entry.update({key: settings[key] for key in SNAPSHOT_KEYS})
        models[name] = {settings["version"]: entry}
    return {"name": "startup.cfg", "modelCount": len(models), "models": models}


def kserve_properties(snapshot: Mapping[str, Any]) -> dict[str, str]:
    """config.properties for KServe (ports and paths from KServe's TorchServe docs).

    - inference on 127.0.0.1:8085, pod-local: deploy/kserve/servingruntime.yaml runs the
      image's front proxy (docker/nginx.conf: only the contract's content types, CVE-2024-29025)
      on the container port 8080 in front of it; KServe's wrapper (stock runtime) runs in the
      same container and forwards to it there;
    - management on 127.0.0.1:8086: pod-local only (the wrapper polls it for READY workers),
      never reachable from other pods;
    - token authorization off: the wrapper and KServe's clients send no TorchServe token.
      Authenticate at KServe's ingress instead;
    - environment overrides off: KServe's stock runtime sets TS_SERVICE_ENVELOPE=kserve, whose
      envelope breaks batching (module docstring); the handlers speak KServe v1 themselves;
    - no model registration over HTTP: model API off, no URL allowed, no workflow store
      (config.properties says why); metrics for Prometheus on :8082.
    """
    return {
        "inference_address": "http://127.0.0.1:8085",
        "management_address": "http://127.0.0.1:8086",
        "metrics_address": "http://0.0.0.0:8082",
        "grpc_inference_address": "127.0.0.1",
        "grpc_management_address": "127.0.0.1",
        "grpc_inference_port": "7070",
        "grpc_management_port": "7071",
        "enable_envvars_config": "false",
        "disable_token_authorization": "true",
        "enable_model_api": "false",
        "allowed_urls": "(?!)",
        "workflow_store": "no-workflow-store",
        "install_py_dep_per_model": "false",
        "metrics_mode": "prometheus",
        "model_metrics_auto_detect": "true",
        "max_request_size": "1048576",
        "max_response_size": "10485760",
        "model_store": f"{KSERVE_ROOT}/model-store",
        "model_snapshot": json.dumps(snapshot, separators=(",", ":")),
        # The heap cap of config.properties, and the image's quiet logging (Dockerfile); a
        # missing file only means TorchServe's default.
        "vmargs": " ".join([*jvm_flags(read_properties(BASE_CONFIG)["vmargs"]),
                            f"-Dlog4j.configurationFile=file:{IMAGE_LOG4J}"]),  # fmt: skip
    }


def write_properties(path: Path, properties: Mapping[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by scripts/deploy/kserve_layout.py for KServe's TorchServe runtime.\n"
    path.write_text(header + "".join(f"{k}={v}\n" for k, v in properties.items()), "utf-8")
    return path


def store_archive(store: Path, name: str) -> Path:
    """<name>.mar, else the one versioned <name>_v<version>.mar (`build_archive --version`)."""
    plain = store / f"{name}.mar"
    if plain.exists():
        return plain
    versioned = sorted(store.glob(f"{name}_v*.mar"))
    if len(versioned) == 1:
        return versioned[0]
    several = f" but several versions ({', '.join(p.name for p in versioned)})" if versioned else ""
    raise LayoutError(f"no archive {plain}{several}; build it with `.venv/bin/python -m "
                      "scripts.packaging.build_archive <model>` (or `make archive`)")


def layout(
    out: Path,
    store: Path = DEFAULT_STORE,
    models: Sequence[str] = DEFAULT_MODELS,
) -> Path:
    """Write `out/config/config.properties` and copy `out/model-store/<model>.mar`; return out."""
    archives = {name: store_archive(store, name) for name in models}
    model_store = out / "model-store"
    if model_store.exists():
        shutil.rmtree(model_store)  # a stale .mar would be served by nobody but still uploaded
    model_store.mkdir(parents=True)
    for mar in archives.values():
        shutil.copy2(mar, model_store / mar.name)
    copied = {name: model_store / mar.name for name, mar in archives.items()}
    write_properties(out / "config" / "config.properties",
                     kserve_properties(model_snapshot(copied)))  # fmt: skip
    return out


@dataclass
class LocalKServe(TorchServe):
    """A laid-out tree served by a local TorchServe as KServe's runtime serves it, on other ports.

    Only addresses and paths are rewritten; the snapshot (which models, their batch settings),
    token authorization and environment overrides stay as generated, so what answers here is
    what the pod's TorchServe answers.
    """

    tree: Path = Path("build/kserve")

    def __post_init__(self) -> None:
        self.model_store = self.tree / "model-store"
        self.base_config = self.tree / "config" / "config.properties"
        self.models = tuple(
            json.loads(read_properties(self.base_config)["model_snapshot"])["models"]
        )

    def render_config(self) -> Path:
        """The server's rendering (ports, paths), minus its load_models: the snapshot decides."""
        properties = read_properties(super().render_config())
        del properties["load_models"]
        return write_properties(self.config_path, properties)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="tree to upload as storageUri")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    args = parser.parse_args(argv)
    try:
        out = layout(args.out, args.store, args.models)
    except LayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out}/config/config.properties and {out}/model-store/ "
          f"({', '.join(args.models)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
