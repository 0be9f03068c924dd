"""Where things live, and which models the project serves: the one list every tool reads.

The bottom of the scripts' import graph (only the standard library and handlers.artifacts'
file names), so the server, the packager, the
benchmarks, the web page and the tests can all import it without paying for torch.  A model's
trainer and build step are named as `module:function` strings and resolved by `entry_point`
when needed, so the registry knows *how* artifacts are made without importing the code that
makes them (that code imports the registry).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from handlers.artifacts import METADATA_FILE

ROOT = Path(__file__).resolve().parent.parent
HANDLERS_DIR = ROOT / "handlers"
ARCHIVE_DIR = ROOT / "archive"  # <model>/model-config.yaml, the committed BERT checkpoint
BUILD_DIR = ROOT / "build"  # trained artifacts, <model>/ each (not committed)
DEFAULT_STORE = ROOT / "model_store"  # the .mar files TorchServe loads (not committed)
DEFAULT_RUN_DIR = ROOT / "run"  # a running server's config, logs and key file
# Produced by scripts/training/train_bert.py (see its metadata.json): training it takes over an
# hour on 2 cores, serving it must not.
BERT_CHECKPOINT = ARCHIVE_DIR / "sentiment_bert" / "checkpoint"


@dataclass(frozen=True)
class ModelSpec:
    """One served model: what it is called, which handler serves it and how it is made."""

    name: str  # registered name, endpoint /predictions/<name>
    alias: str  # short form the client, CLI and web page accept
    description: str
    handler: str  # file in handlers/
    #: "module:function(data_dir, out_dir)" that trains artifacts when none exist
    trainer: str | None = None
    #: committed artifacts used instead of training (the BERT checkpoint)
    committed: Path | None = None
    #: "module:function(stage, source)" adding build-time artifacts to the staged copy
    prepare: str | None = None
    #: models whose artifacts a composed model carries, each in a sub-directory of its name
    components: tuple[str, ...] = ()

    @property
    def config_file(self) -> Path:
        return ARCHIVE_DIR / self.name / "model-config.yaml"

    @property
    def default_artifacts(self) -> Path:
        return BUILD_DIR / self.name


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "sentiment_fast", "fast", "char n-gram Naive Bayes", "fast_handler.py",
            trainer="scripts.training.train_fast:train",
        ),
        ModelSpec(
            "sentiment_bert", "bert", "small BERT (distilled)", "bert_handler.py",
            trainer="scripts.training.train_bert:train", committed=BERT_CHECKPOINT,
            prepare="scripts.packaging.bert_onnx:prepare",
        ),
        ModelSpec(
            "sentiment", "cascade", "cascade: Naive Bayes, and BERT too where it is unsure",
            "cascade_handler.py", components=("sentiment_fast", "sentiment_bert"),
        ),
    )
}  # fmt: skip
#: what `make serve`, the image and the deploy manifests load, in this order
DEFAULT_MODELS: tuple[str, ...] = tuple(MODELS)
ALIASES: dict[str, str] = {spec.alias: spec.name for spec in MODELS.values()}


class NotTrainedError(FileNotFoundError):
    """A model has neither trained nor committed artifacts."""


def find_artifacts(name: str) -> Path:
    """Where `name`'s artifacts are: build/<model> if trained there, else its committed ones.

    Looks only; scripts.packaging.build_archive.ensure_artifacts trains what is missing."""
    spec = MODELS[name]
    for candidate in (spec.default_artifacts, spec.committed):
        if candidate is not None and (candidate / METADATA_FILE).exists():
            return candidate
    trainer = (spec.trainer or "").partition(":")[0]
    raise NotTrainedError(f"{name} has no artifacts in {spec.default_artifacts}: train it "
                          f"first (make serve does, or .venv/bin/python -m {trainer})")


def model_name(name_or_alias: str) -> str:
    """The registered name for a short form (`fast`); any other name is returned as given."""
    return ALIASES.get(name_or_alias, name_or_alias)


def entry_point(reference: str) -> Callable[..., Any]:
    """The function a registry entry names as "package.module:function"."""
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)
