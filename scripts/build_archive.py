"""Package a model's artifacts and the `handlers` package into model_store/<name>.mar.

The whole `handlers` package travels inside every archive (as a sub-directory
of the model dir, which TorchServe puts on sys.path), so the handler imports
`handlers.contract` exactly as the tests and training scripts do.

    python -m scripts.build_archive sentiment_fast --artifacts build/sentiment_fast
    python -m scripts.build_archive sentiment_fast --version 2.0   # -> sentiment_fast_v2.0.mar
    python -m scripts.build_archive sentiment     # the cascade: both models' artifacts

A version other than the default 1.0 gets its own file, `<model>_v<version>.mar`, holding
model name `<model>`: `scripts.manage register sentiment_fast_v2.0.mar` adds it beside the
serving version.  The command says which file it writes and what it replaces.

A composed model (the `sentiment` cascade) carries each component's staged
artifacts, built exactly as for the component's own archive, in a sub-directory
named after it; its artifacts directory holds one sub-directory (or link) per
component.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping, Sequence

from handlers.artifacts import METADATA_FILE, write_metadata
from handlers.contract import LABELS
from scripts.nsmc import resolve_data_dir

ROOT = Path(__file__).resolve().parent.parent
HANDLERS_DIR = ROOT / "handlers"
ARCHIVE_DIR = ROOT / "archive"
DEFAULT_STORE = ROOT / "model_store"
DEFAULT_VERSION = "1.0"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    handler: str  # file in handlers/
    default_artifacts: Path
    #: adds build-time artifacts to the staged copy (sentiment_bert: the ONNX export)
    prepare: Callable[[Path, Path], object] | None = None
    #: models whose artifacts a composed model carries, each in a sub-directory of its name
    components: tuple[str, ...] = ()

    @property
    def config_file(self) -> Path:
        return ARCHIVE_DIR / self.name / "model-config.yaml"


def _prepare_bert(stage: Path, source: Path) -> object:
    """A foreign checkpoint gets its manifest; every checkpoint its ONNX export."""
    from scripts.bert_checkpoint import ensure_manifest  # transformers: only for sentiment_bert
    from scripts.bert_onnx import export  # torch + onnx: imported only for sentiment_bert

    ensure_manifest(stage, str(source))
    return export(stage)


MODELS = {
    "sentiment_fast": ModelSpec("sentiment_fast", "fast_handler.py", ROOT / "build/sentiment_fast"),
    "sentiment_bert": ModelSpec(
        "sentiment_bert", "bert_handler.py", ROOT / "build/sentiment_bert", _prepare_bert
    ),
    "sentiment": ModelSpec(
        "sentiment", "cascade_handler.py", ROOT / "build/sentiment",
        components=("sentiment_fast", "sentiment_bert"),
    ),  # fmt: skip
}
# What a composed model's metadata.json repeats of each component's (describe, reports).
COMPONENT_KEYS = ("model", "description", "test_accuracy", "created_at", "calibration")
# The committed sentiment_bert checkpoint (produced by scripts/train_bert.py, see its
# metadata.json): training it takes over an hour on 2 cores, serving it must not.
BERT_CHECKPOINT = ARCHIVE_DIR / "sentiment_bert" / "checkpoint"


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
    """The model's trained directory: train sentiment_fast, take the committed BERT checkpoint."""
    spec = MODELS[name]
    if spec.components:
        sources = {part: ensure_artifacts(part, data_dir) for part in spec.components}
        return compose_artifacts(spec.default_artifacts, sources)
    artifacts = spec.default_artifacts
    if (artifacts / METADATA_FILE).exists():
        return artifacts
    if name == "sentiment_bert":
        if (BERT_CHECKPOINT / METADATA_FILE).exists():
            return BERT_CHECKPOINT
        from scripts.train_bert import train as train_bert

        print("no committed sentiment_bert checkpoint; training the cpu preset (~75 min) ...")
        train_bert(resolve_data_dir(data_dir), artifacts)
    else:
        from scripts.train_fast import train as train_fast

        print(f"training {name} ...")
        train_fast(resolve_data_dir(data_dir), artifacts)
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
) -> Path:
    """Write `<store>/<archive_name or spec.name>.mar` and return its path.

    The archive registers as `model_name` (default: the archive's name) unless told otherwise.
    `config_file` replaces the model's archive/<name>/model-config.yaml (benchmarks).
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
            _stage(spec, artifacts, stage)
        command = [
            _archiver(),
            "--model-name", model_name or archive_name,
            "--version", version,
            "--handler", str(HANDLERS_DIR / spec.handler),
            "--extra-files", str(stage),
            "--config-file", str(config_file or spec.config_file),
            "--export-path", str(export),
        ]  # fmt: skip
        subprocess.run(command, check=True)
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


def _stage(spec: ModelSpec, artifacts: Path, stage: Path) -> None:
    """Copy a model's artifacts into `stage` and add its build-time ones."""
    if not artifacts.is_dir():
        raise FileNotFoundError(f"no artifacts at {artifacts}; train the model first")
    stage.mkdir(parents=True, exist_ok=True)
    for item in artifacts.iterdir():
        if item.is_file():  # sub-directories are training state (work/), not artifacts
            shutil.copy2(item, stage / item.name)
    if spec.prepare is not None:
        spec.prepare(stage, artifacts.resolve())


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--artifacts", type=Path, help="trained model dir (default: build/<model>)")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE)
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help=f"model version; other than {DEFAULT_VERSION}: its own file "
                        "<model>_v<version>.mar")  # fmt: skip
    args = parser.parse_args(argv)
    name = versioned_name(args.model, args.version)
    print(describe_existing(args.store / f"{name}.mar"))
    artifacts = args.artifacts or ensure_artifacts(args.model, None)
    path = build_archive(MODELS[args.model], artifacts, args.store, args.version, name,
                         model_name=args.model)  # fmt: skip
    print(f"wrote {path}: {args.model} version {args.version}" + (
        "; a start (`make serve`) loads it" if args.version == DEFAULT_VERSION else
        f"; register it beside the serving version: `.venv/bin/python -m scripts.manage "
        f"register {path.name}`"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
