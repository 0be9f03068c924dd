"""Shared fixtures for every tier: NSMC data, small trained models, their archives, and a
real TorchServe on free ports.

Tiers are directories, each with its marker (`pytest -m unit`, ...): unit/ (no Java, no torch),
handler/ (TorchServe's real Context, in-process), integration/ (a real TorchServe), e2e/
(browser, deploy files, documented commands).  This file is imported by the unit tier too, so
the training code (torch, transformers) is imported inside the fixtures that train, never here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NoReturn, Sequence

import pytest

from scripts.nsmc import TEST_FILE, read_labelled, resolve_data_dir
from scripts.ops.server import Ports, TorchServe
from scripts.packaging.build_archive import build_archive, compose_artifacts
from scripts.registry import BERT_CHECKPOINT, MODELS, ROOT

TIERS = ("unit", "handler", "integration", "e2e")
pytest_plugins = ["pytester"]  # tests/unit/test_skips.py runs the skip summary in a run of its own


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the directory it lives in."""
    for item in items:
        tier = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def data_dir() -> Path:
    """NSMC data for tests: $NSMC_DIR, else ../shared/nsmc beside the checkout."""
    candidates = [resolve_data_dir(None), ROOT.parent / "shared" / "nsmc"]
    for candidate in candidates:
        if (candidate / "ratings_train.txt").exists():
            return candidate
    where = f"no NSMC data (ratings_train.txt) in {[str(c) for c in candidates]}"
    missing(where, "set NSMC_DIR to the directory holding the NSMC files (see README)")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, how: str, *, ci_has_it: bool = True) -> NoReturn:
    """Something a test needs is absent: skip and say how to get it; under CI (CI=true) fail,
    because there a skip would hide the check (.ci/run installs what it can).

    The one way a test skips (tests/unit/test_skips.py refuses any other), so that the run's
    last lines count every skip and its reason.  `ci_has_it=False`: something CI cannot provide
    either (the docker compose CLI plugin), skipped there too but still counted."""
    if in_ci() and ci_has_it:
        pytest.fail(f"{what}: CI must run every check; {how}", pytrace=False)
    pytest.skip(f"{what}; {how}" + ("" if ci_has_it else " (CI lacks it too)"))


def committed_bert_checkpoint() -> Path:
    """The committed sentiment_bert checkpoint `make serve` uses; a skip (CI: a fail) if absent."""
    if not (BERT_CHECKPOINT / "metadata.json").exists():
        where = BERT_CHECKPOINT.relative_to(ROOT)
        missing(f"no committed checkpoint in {where}", f"restore it: git checkout HEAD -- {where}")
    return BERT_CHECKPOINT


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped test gave (its longrepr is (path, line, "Skipped: reason"))."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def skip_summary(reasons: Sequence[str]) -> str:
    """One line: how many tests skipped and why, the commonest reason first."""
    if not reasons:
        return "no test skipped"
    counts = Counter(reasons).most_common()
    why = "; ".join(f"{count} x {reason}" for reason, count in counts)
    plural = "s" if len(reasons) > 1 else ""
    return f"{len(reasons)} test{plural} skipped: {why}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End a run by hand with what it did not check: a skip is easy to miss in a dotted line."""
    skipped = terminalreporter.stats.get("skipped", [])
    terminalreporter.write_line(skip_summary([skip_reason(report) for report in skipped]))


@pytest.fixture(scope="session")
def nsmc_dir() -> Path:
    return data_dir()


@pytest.fixture(scope="session")
def fast_artifacts(nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sentiment_fast trained on 20k rows: fast, and accurate enough to tell good from bad."""
    from scripts.training.train_fast import train

    out = tmp_path_factory.mktemp("fast_artifacts")
    train(nsmc_dir, out, max_rows=20_000)
    return out


@pytest.fixture(scope="session")
def bert_artifacts(nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset: the real tokenizer -> MLM -> fine-tune pipeline, in seconds."""
    from scripts.training.train_bert import train as train_bert

    out = tmp_path_factory.mktemp("bert_artifacts")
    train_bert(nsmc_dir, out, "--preset", "tiny")
    return out


@pytest.fixture(scope="session")
def random_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BERT checkpoint, as any save_pretrained directory looks."""
    from tests.checkpoints import random_bert

    return random_bert(tmp_path_factory.mktemp("random_bert"))


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


@pytest.fixture(scope="session")
def test_texts(nsmc_dir: Path) -> list[str]:
    """The first 80 reviews of the test file: real text for agreement checks."""
    return read_labelled(nsmc_dir / TEST_FILE, 80)[0]


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
