"""sentiment_bert on ONNX Runtime: the build-time export, parity with torch, and what it guards."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from benchmarks.onnx_parity import compare
from handlers.artifacts import BERT_ONNX_FILE, BERT_ONNX_INT8_FILE, TamperedArtifactError
from handlers.bert_handler import ONNX_FILES
from scripts.inprocess import load_archive, load_handler
from scripts.nsmc import TEST_FILE, read_labelled
from scripts.packaging.bert_onnx import TOLERANCE, export, quantize_int8
from scripts.registry import MODELS

SPEC = MODELS["sentiment_bert"]


@pytest.fixture(scope="module")
def exported(bert_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("bert_onnx")
    for item in bert_artifacts.iterdir():
        if item.is_file():
            shutil.copy2(item, model_dir / item.name)
    export(model_dir)
    quantize_int8(model_dir)
    return model_dir


def _load(model_dir: Path, **handler: object):
    config = {"batchSize": 16, "handler": {"max_length": 64, **handler}}
    return load_handler(SPEC.name, model_dir, SPEC.handler, config)


def test_onnx_matches_torch_on_test_sample(exported: Path, nsmc_dir: Path):
    """Every probability within 1e-4 of torch and no label changes, on 400 test reviews."""
    texts, labels = read_labelled(nsmc_dir / TEST_FILE, max_rows=400)
    result = compare(exported, texts, labels, batch_size=32)
    assert result["max_abs_diff"] <= TOLERANCE and result["within_tolerance"]
    assert result["label_disagreements"] == 0
    assert result["onnx_accuracy"] == result["torch_accuracy"]


def test_onnx_serves_by_default_and_torch_stays_available(exported: Path):
    """ONNX answers requests; the torch model (for gradients) loads on first use of .model."""
    handler = _load(exported)
    assert handler.runtime == "onnx" and handler._torch_model is None
    onnx_rows = handler.predict_proba(["정말 재밌다", "최악의 영화"])
    assert type(handler.model).__name__ == "BertForSequenceClassification"
    torch_handler = _load(exported, runtime="torch")
    assert torch_handler.runtime == "torch" and torch_handler.session is None
    torch_rows = torch_handler.predict_proba(["정말 재밌다", "최악의 영화"])
    assert abs(onnx_rows - torch_rows).max() <= TOLERANCE


def test_archive_carries_onnx_and_safetensors(model_store: Path, tmp_path: Path):
    """build_archive exports at build time; the weights stay for the torch runtime."""
    with zipfile.ZipFile(model_store / "sentiment_bert.mar") as archive:
        names = set(archive.namelist())
    assert {BERT_ONNX_FILE, BERT_ONNX_INT8_FILE, "model.safetensors"} <= names
    handler = load_archive(model_store / "sentiment_bert.mar", tmp_path / "unpacked")
    assert {BERT_ONNX_FILE, BERT_ONNX_INT8_FILE} <= set(handler.metadata["artifact_sha256"])


def test_int8_export_serves_close_to_torch(exported: Path, nsmc_dir: Path):
    """runtime onnx-int8 serves the quantized file: smaller, and near torch's answers.

    Not within the fp32 export's 1e-4 (int8 changes answers by design); its cost in accuracy
    over the whole test set is measured by `benchmarks.onnx_parity --int8`.
    """
    size = {name: (exported / name).stat().st_size for name in ONNX_FILES.values()}
    assert size[BERT_ONNX_INT8_FILE] < size[BERT_ONNX_FILE]
    texts, labels = read_labelled(nsmc_dir / TEST_FILE, max_rows=400)
    result = compare(exported, texts, labels, batch_size=32, onnx_runtime="onnx-int8")
    assert 0 < result["max_abs_diff"] < 0.2
    assert result["label_disagreements"] <= 8  # of 400
    handler = _load(exported, runtime="onnx-int8")
    assert handler.runtime == "onnx-int8" and handler.session is not None


def test_int8_answers_depend_on_batch_mates_only_slightly(exported: Path, nsmc_dir: Path):
    """Dynamic quantization scales activations per batch, so a text's answer moves a little with
    the texts padded beside it (why it is not the default); alone, it is the same every time."""
    texts, _ = read_labelled(nsmc_dir / TEST_FILE, max_rows=37)
    whole = _load(exported, runtime="onnx-int8", pad_group=1000).predict_proba(texts)
    alone = _load(exported, runtime="onnx-int8", pad_group=1)
    assert 0 < abs(alone.predict_proba(texts) - whole).max() < 0.05
    assert abs(alone.predict_proba(texts[::-1])[::-1] - alone.predict_proba(texts)).max() == 0


def test_runtime_without_its_export_falls_back_to_torch(bert_artifacts: Path, caplog):
    """A checkpoint without the exports (an old archive) still serves, on torch, and says so."""
    handler = _load(bert_artifacts, runtime="onnx-int8")
    assert handler.runtime == "torch" and handler.session is None
    assert BERT_ONNX_INT8_FILE in caplog.text


def test_changed_onnx_file_is_refused(exported: Path, tmp_path: Path):
    model_dir = tmp_path / "model"
    shutil.copytree(exported, model_dir)
    with open(model_dir / BERT_ONNX_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(TamperedArtifactError, match=BERT_ONNX_FILE):
        _load(model_dir)


def test_unknown_runtime_is_refused(exported: Path):
    with pytest.raises(ValueError, match="runtime must be one of onnx, onnx-int8, torch"):
        _load(exported, runtime="tensorrt")


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_length_groups_do_not_change_answers(exported: Path, nsmc_dir: Path, runtime: str):
    """A batch run as length-sorted groups answers each text, in order, as one padded batch."""
    texts, _ = read_labelled(nsmc_dir / TEST_FILE, max_rows=37)
    whole = _load(exported, runtime=runtime, pad_group=1000).predict_proba(texts)
    for group in (1, 4):
        grouped = _load(exported, runtime=runtime, pad_group=group).predict_proba(texts)
        assert abs(grouped - whole).max() <= 1e-5
