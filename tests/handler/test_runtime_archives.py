"""An archive per runtime (`build_archive --runtime`): only that runtime's model file, served.

Before: every sentiment_bert archive packed the fp32 weights, the ONNX export and its int8
copy; for a base-size checkpoint that is three copies of 110M parameters, whichever one is
served.  Now `--runtime torch|onnx|onnx-int8` packs the one it serves (and says so in the
archive's model-config.yaml); without the flag the archive is what it always was.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from handlers.artifacts import BERT_RUNTIME_FILES, METADATA_FILE, MissingArtifactError
from handlers.bert_settings import RUNTIMES
from scripts.inprocess import load_archive
from scripts.packaging import build_archive
from scripts.packaging.bert_onnx import TOLERANCE
from scripts.registry import MODELS
from tests.checkpoints import TEXTS, save_checkpoint
from tests.handler_context import make_context, run_batch

SPEC = MODELS["sentiment_bert"]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One archive per runtime from a bare checkpoint (it also carries a stray .bin), and
    the default archive, through the command line as a user runs it."""
    root = tmp_path_factory.mktemp("runtimes")
    checkpoint = save_checkpoint("bert", root / "checkpoint")
    (checkpoint / "training_args.bin").write_bytes(b"not weights the handler reads")
    built = {}
    for runtime in (*RUNTIMES, None):
        version = f"{len(built) + 2}.0"
        flags = [] if runtime is None else ["--runtime", runtime]
        argv = ["sentiment_bert", "--artifacts", str(checkpoint), "--store", str(root),
                "--version", version, *flags]  # fmt: skip
        assert build_archive.main(argv) == 0
        built[runtime or "default"] = root / f"sentiment_bert_v{version}.mar"
    return built


def packed(mar: Path) -> tuple[set[str], dict]:
    """The archive's top-level files and its model-config.yaml."""
    with zipfile.ZipFile(mar) as archive:
        names = {name for name in archive.namelist() if "/" not in name}
        return names, yaml.safe_load(archive.read("model-config.yaml"))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_archive_packs_its_runtime_alone_and_serves_it(archives, tmp_path, runtime):
    names, config = packed(archives[runtime])
    others = {BERT_RUNTIME_FILES[r] for r in RUNTIMES if r != runtime}
    assert BERT_RUNTIME_FILES[runtime] in names and not names & others
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", METADATA_FILE} <= names
    if runtime != "torch":
        assert not [name for name in names if name.endswith((".safetensors", ".bin"))]
    assert config["handler"]["runtime"] == runtime
    handler = load_archive(archives[runtime], tmp_path)
    assert handler.runtime == runtime and handler.metadata["runtimes"] == [runtime]
    assert set(handler.metadata["artifact_sha256"]) <= names


def test_every_runtime_answers_as_the_default_archive(archives, tmp_path):
    """fp32 ONNX and torch within the export's tolerance of the default archive; int8 near."""
    default = load_archive(archives["default"], tmp_path / "default")
    expected = np.asarray(default.predict_proba(TEXTS))
    for runtime in RUNTIMES:
        handler = load_archive(archives[runtime], tmp_path / runtime)
        difference = np.abs(np.asarray(handler.predict_proba(TEXTS)) - expected).max()
        assert difference <= (0.1 if runtime == "onnx-int8" else TOLERANCE), runtime


def test_the_default_archive_still_packs_all_three(archives):
    names, config = packed(archives["default"])
    assert set(BERT_RUNTIME_FILES.values()) <= names
    assert config["handler"]["runtime"] == yaml.safe_load(SPEC.config_file.read_text())[
        "handler"]["runtime"]  # fmt: skip


def test_asking_an_archive_for_a_runtime_it_does_not_pack_names_the_flag(archives, tmp_path):
    with pytest.raises(MissingArtifactError, match="--runtime torch") as refused:
        load_archive(archives["onnx-int8"], tmp_path, {"runtime": "torch"})
    assert "it packs runtime onnx-int8" in str(refused.value)


def test_explanations_without_weights_are_refused_per_request(archives, tmp_path):
    """An ONNX-only archive has no weights to take gradients of: the explanation request
    gets 501 and says why; the prediction batched with it is answered."""
    handler = load_archive(archives["onnx"], tmp_path)
    context = make_context("sentiment_bert", tmp_path, SPEC.config_file)
    handler.context = context
    request = ({"body": {"text": TEXTS[0]}}, "application/json")
    (explained, predicted) = run_batch(handler, context, [request, request], explain=[True, False])
    assert explained[0] == 501 and "--runtime torch" in json.loads(explained[1])["message"]
    assert predicted[0] == 200 and json.loads(predicted[1])["label"] in ("negative", "positive")


def test_runtime_is_refused_for_a_model_without_a_checkpoint(tmp_path, capsys):
    argv = ["sentiment_fast", "--runtime", "onnx", "--store", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        build_archive.main(argv)
    assert exited.value.code == 2 and "--runtime: sentiment_fast" in capsys.readouterr().err
