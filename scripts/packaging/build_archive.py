"""Package a model's artifacts and the `handlers` package into model_store/<name>.mar.

The whole `handlers` package travels inside every archive (as a sub-directory
of the model dir, which TorchServe puts on sys.path), so the handler imports
`handlers.contract` exactly as the tests and training scripts do.

    python -m scripts.packaging.build_archive sentiment_fast --artifacts build/sentiment_fast
    python -m scripts.packaging.build_archive sentiment_fast --version 2.0  # a _v2.0.mar
    python -m scripts.packaging.build_archive sentiment     # the cascade: both models' artifacts
    python -m scripts.packaging.build_archive sentiment_bert --artifacts DIR --labels pos,neg
    python -m scripts.packaging.build_archive sentiment_bert --artifacts DIR --runtime onnx-int8

`--labels` states which checkpoint index is which label (index order), for a checkpoint
whose config names them in words the project does not read (the build refuses those),
or names them wrongly: it overrides the config, and metadata.json records the order used.

`--runtime` packs what one runtime serves from and makes it the archive's
`handler.runtime`: `torch` the weights (a GPU), `onnx` the fp32 export, `onnx-int8` its
int8 copy; tokenizer, config and metadata always.  Without it (what `make serve` builds)
the archive carries all three, served as model-config.yaml says: for a base-size
checkpoint three copies of the weights.

A version other than the default 1.0 gets its own file, `<model>_v<version>.mar`, holding
model name `<model>`: `scripts.ops.manage register sentiment_fast_v2.0.mar` adds it beside the
serving version.  The command says which file it writes and what it replaces.

A composed model (the `sentiment` cascade) carries each component's staged
artifacts, built exactly as for the component's own archive, in a sub-directory
named after it; its artifacts directory holds one sub-directory (or link) per
component.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from handlers.artifacts import METADATA_FILE, write_metadata
from handlers.bert_settings import RUNTIMES
from handlers.contract import LABELS, UnknownLabelsError
from scripts.nsmc import resolve_data_dir
from scripts.registry import (
    DEFAULT_STORE,
    HANDLERS_DIR,
    MODELS,
    ModelSpec,
    NotTrainedError,
    entry_point,
    find_artifacts,
)

DEFAULT_VERSION = "1.0"
# What a composed model's metadata.json repeats of each component's (describe, reports).
COMPONENT_KEYS = ("model", "description", "test_accuracy", "created_at", "calibration")


def compose_artifacts(out: Path, components: Mapping[str, Path]) -> Path:
    """A composed model's artifacts dir: one link per component to its artifacts dir."""
    out.mkdir(parents=True, exist_ok=True)
    for name, source in components.items():
        link = out / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source.resolve(), target_is_directory=True)
    return out


def ensure_artifacts(name: str, data_dir: str | None) -> Path:
    """The model's trained directory: build/<model> if trained, else its committed artifacts,
    else train them with the registry's trainer (a composed model: its components')."""
    spec = MODELS[name]
    if spec.components:
        sources = {part: ensure_artifacts(part, data_dir) for part in spec.components}
        return compose_artifacts(spec.default_artifacts, sources)
    try:
        return find_artifacts(name)
    except NotTrainedError:
        pass
    artifacts = spec.default_artifacts
    print(f"training {name} with {spec.trainer} (sentiment_bert: over an hour on 2 cores) ...")
    entry_point(spec.trainer)(resolve_data_dir(data_dir), artifacts)
    return artifacts


def _archiver() -> str:
    beside_python = Path(sys.executable).parent / "torch-model-archiver"
    return str(beside_python) if beside_python.exists() else "torch-model-archiver"


def build_archive(
    spec: ModelSpec,
    artifacts: Path | None = None,
    store: Path = DEFAULT_STORE,
    version: str = DEFAULT_VERSION,
    archive_name: str | None = None,
    config_file: Path | None = None,
    model_name: str | None = None,
    labels: Sequence[str] | None = None,
    runtime: str | None = None,
) -> Path:
    """Write `<store>/<archive_name or spec.name>.mar` and return its path.

    The archive registers as `model_name` (default: the archive's name) unless told otherwise.
    `config_file` replaces the model's archive/<name>/model-config.yaml (benchmarks).
    `labels`: each checkpoint index's label, overriding its config (models with a build step).
    `runtime`: the one runtime the archive packs and serves (None: all, as configured).
    """
    artifacts = artifacts or spec.default_artifacts
    store.mkdir(parents=True, exist_ok=True)
    archive_name = archive_name or spec.name
    with tempfile.TemporaryDirectory() as tmp:
        stage, export = Path(tmp) / "stage", Path(tmp) / "export"
        export.mkdir()
        shutil.copytree(
            HANDLERS_DIR, stage / "handlers", ignore=shutil.ignore_patterns("__pycache__")
        )
        if spec.components:
            _stage_composed(spec, artifacts, stage)
        else:
            _stage(spec, artifacts, stage, labels, runtime)
        config_file = config_file or spec.config_file
        if runtime is not None:
            config_file = with_runtime(config_file, runtime, Path(tmp) / "model-config.yaml")
        command = [
            _archiver(),
            "--model-name", model_name or archive_name,
            "--version", version,
            "--handler", str(HANDLERS_DIR / spec.handler),
            "--extra-files", str(stage),
            "--config-file", str(config_file),
            "--export-path", str(export),
        ]  # fmt: skip
        # The archiver stages into $TMPDIR/<model name>, deleting what is there: two builds of
        # one model at once (tests beside a build) took each other's files.  Its own TMPDIR.
        subprocess.run(command, check=True, env={**os.environ, "TMPDIR": tmp})
        # The archiver names the file after the model; the store may want another name.
        target = store / f"{archive_name}.mar"
        shutil.move(export / f"{model_name or archive_name}.mar", target)
    return target


def versioned_name(model: str, version: str) -> str:
    """The archive file name of `version`: today's <model> for 1.0, else <model>_v<version>."""
    return model if version == DEFAULT_VERSION else f"{model}_v{version}"


def manifest(archive: Path) -> dict:
    """The model section of a .mar's MAR-INF/MANIFEST.json (modelName, modelVersion, ...)."""
    with zipfile.ZipFile(archive) as mar:
        return json.loads(mar.read("MAR-INF/MANIFEST.json"))["model"]


def describe_existing(archive: Path) -> str:
    """One line on what writing `archive` does: a new file, or which one it replaces."""
    if not archive.exists():
        return f"writing {archive} (new)"
    built = datetime.fromtimestamp(archive.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    try:
        model = manifest(archive)
        what = f"{model['modelName']} version {model['modelVersion']}"
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        what = "an unreadable archive"
    return (f"replacing {archive} ({what}, built {built}); a registered copy keeps serving "
            "until it is registered again")  # fmt: skip


def with_runtime(config_file: Path, runtime: str, out: Path) -> Path:
    """A copy of model-config.yaml at `out` whose handler.runtime is `runtime`."""
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    config.setdefault("handler", {})["runtime"] = runtime
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def _stage(
    spec: ModelSpec,
    artifacts: Path,
    stage: Path,
    labels: Sequence[str] | None = None,
    runtime: str | None = None,
) -> None:
    """Copy a model's artifacts into `stage` and add its build-time ones."""
    if not artifacts.is_dir():
        raise FileNotFoundError(f"no artifacts at {artifacts}; train the model first")
    stage.mkdir(parents=True, exist_ok=True)
    for item in artifacts.iterdir():
        if item.is_file():  # sub-directories are training state (work/), not artifacts
            shutil.copy2(item, stage / item.name)
    if (labels, runtime) != (None, None) and spec.prepare is None:
        raise ValueError(f"{spec.name} has no build step that reads labels or a runtime")
    if spec.prepare is not None:
        stated = {key: value for key, value in (("labels", labels), ("runtime", runtime))
                  if value is not None}  # fmt: skip
        entry_point(spec.prepare)(stage, artifacts.resolve(), **stated)


def _stage_composed(spec: ModelSpec, artifacts: Path, stage: Path) -> None:
    """Each component staged as for its own archive, in its sub-directory; a metadata.json
    naming them on top (it lists no artifacts: each component's own one hash-checks its files)."""
    described = {}
    for part in spec.components:
        _stage(MODELS[part], artifacts / part, stage / part)
        metadata = json.loads((stage / part / METADATA_FILE).read_text(encoding="utf-8"))
        described[part] = {key: metadata[key] for key in COMPONENT_KEYS if key in metadata}
    write_metadata(stage, {"model": spec.name, "labels": list(LABELS),
                           "description": f"cascade of {' and '.join(spec.components)}",
                           "components": described}, [])  # fmt: skip


def _label_list(value: str) -> list[str]:
    """`--labels negative,positive` -> ["negative", "positive"] (read, not yet checked)."""
    return [name.strip() for name in value.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--artifacts", type=Path, help="trained model dir (default: build/<model>)")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help=f"model version; other than {DEFAULT_VERSION}: its own file "
                        "<model>_v<version>.mar")  # fmt: skip
    parser.add_argument("--labels", type=_label_list, metavar="LABEL,LABEL",
                        help="the checkpoint's labels in index order, e.g. negative,positive "
                        "(overrides its config.json; sentiment_bert)")  # fmt: skip
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="pack only what this runtime serves from and serve it (default: "
                        "all three, served as model-config.yaml says; sentiment_bert)")  # fmt: skip
    args = parser.parse_args(argv)
    for flag in ("labels", "runtime"):
        if getattr(args, flag) is not None and MODELS[args.model].prepare is None:
            parser.error(f"--{flag}: {args.model} is not built from a checkpoint")
    name = versioned_name(args.model, args.version)
    print(describe_existing(args.store / f"{name}.mar"))
    artifacts = args.artifacts or ensure_artifacts(args.model, None)
    try:
        path = build_archive(MODELS[args.model], artifacts, args.store, args.version, name,
                             model_name=args.model, labels=args.labels,
                             runtime=args.runtime)  # fmt: skip
    except UnknownLabelsError as err:
        parser.error(str(err))
    print(f"wrote {path}: {args.model} version {args.version}" + (
        "; a start (`make serve`) loads it" if args.version == DEFAULT_VERSION else
        f"; register it beside the serving version: `.venv/bin/python -m scripts.ops.manage "
        f"register {path.name}`"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
