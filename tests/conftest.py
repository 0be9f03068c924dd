"""Shared fixtures: small trained models, their archives, and a real TorchServe on free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import pytest
from transformers import BertConfig, BertForSequenceClassification

from handlers.artifacts import BERT_FILES, write_metadata
from scripts.nsmc import resolve_data_dir
from scripts.ops.server import Ports, TorchServe
from scripts.packaging.build_archive import build_archive, compose_artifacts
from scripts.registry import MODELS
from scripts.training.train_bert import train as train_bert
from scripts.training.train_bert import train_tokenizer
from scripts.training.train_fast import train

ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """NSMC data for tests: $NSMC_DIR, else ../shared/nsmc beside the checkout."""
    candidates = [resolve_data_dir(None), ROOT.parent / "shared" / "nsmc"]
    for candidate in candidates:
        if (candidate / "ratings_train.txt").exists():
            return candidate
    where = f"no NSMC data (ratings_train.txt) in {[str(c) for c in candidates]}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{where}: CI must run the whole suite; set NSMC_DIR", pytrace=False)
    pytest.skip(f"{where}; set NSMC_DIR to the directory holding the NSMC files (see README)")


@pytest.fixture(scope="session")
def nsmc_dir() -> Path:
    return data_dir()


@pytest.fixture(scope="session")
def fast_artifacts(nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sentiment_fast trained on 20k rows: fast, and accurate enough to tell good from bad."""
    out = tmp_path_factory.mktemp("fast_artifacts")
    train(nsmc_dir, out, max_rows=20_000)
    return out


@pytest.fixture(scope="session")
def bert_artifacts(nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset: the real tokenizer -> MLM -> fine-tune pipeline, in seconds."""
    out = tmp_path_factory.mktemp("bert_artifacts")
    train_bert(nsmc_dir, out, "tiny")
    return out


@pytest.fixture(scope="session")
def random_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT checkpoint, as any save_pretrained directory looks."""
    out = tmp_path_factory.mktemp("random_bert")
    tokenizer = train_tokenizer(["정말 재밌다", "최악의 영화", "그냥 그래요 ㅋㅋ"] * 20, 200, out)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(out)
    write_metadata(out, {"model": "random", "max_length": 32}, BERT_FILES)
    return out


@pytest.fixture(scope="session")
def model_store(
    fast_artifacts: Path, bert_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    store = tmp_path_factory.mktemp("model_store")
    build_archive(MODELS["sentiment_fast"], fast_artifacts, store)
    build_archive(MODELS["sentiment_bert"], bert_artifacts, store)
    both = {"sentiment_fast": fast_artifacts, "sentiment_bert": bert_artifacts}
    cascade = compose_artifacts(tmp_path_factory.mktemp("cascade_artifacts"), both)
    build_archive(MODELS["sentiment"], cascade, store)
    return store


@contextmanager
def local_server(
    model_store: Path, models: Sequence[str], prefix: str, **properties: str
) -> Iterator[TorchServe]:
    """A real TorchServe on free ports with its own run dir and TMPDIR; always stopped.
    `properties` go over config.properties' (e.g. token_expiration_min="1")."""
    # A short path: worker unix sockets live under it and must stay under 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix=prefix))
    instance = TorchServe(run_dir=run_dir, ports=Ports.free(), model_store=model_store,
                          models=tuple(models), properties=properties)  # fmt: skip
    try:
        with instance.running(timeout=180):
            yield instance
    finally:
        if not os.environ.get("KEEP_TS_RUN_DIR"):
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server(model_store: Path) -> Iterator[TorchServe]:
    """All three models, shared by the integration tests (worker-killing tests start their own)."""
    with local_server(model_store, tuple(MODELS), "ts-test-") as instance:
        yield instance
