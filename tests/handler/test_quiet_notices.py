"""`make serve`'s first run prints the project's own lines: the third-party notices it printed
(TorchServe's absent OpenVINO / TensorRT, onnxruntime's pre-processing advice, once per archive
holding BERT) are dropped, and nothing else those loggers say."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from handlers import TORCHSERVE_NOTICES
from scripts.packaging.bert_onnx import QUANTIZE_ADVICE, export, quantize_int8
from scripts.registry import ROOT

LOADS_A_HANDLER = """
import logging
import handlers.bert_handler  # imports TorchServe's base handler, as calibration does
logging.getLogger("ts.torch_handler.base_handler").warning("a real warning")
"""


def test_loading_a_handler_prints_no_torchserve_notice():
    result = subprocess.run([sys.executable, "-c", LOADS_A_HANDLER], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = result.stdout + result.stderr
    assert not [notice for notice in TORCHSERVE_NOTICES if notice in printed], printed
    assert "a real warning" in printed


def test_quantizing_logs_no_preprocessing_advice(
    random_bert_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    model_dir = tmp_path / "bert"
    shutil.copytree(random_bert_dir, model_dir)
    export(model_dir)
    with caplog.at_level(logging.INFO):
        quantize_int8(model_dir)
        logging.getLogger().warning("Please consider this real warning")
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if m.startswith(QUANTIZE_ADVICE)], messages
    assert "Please consider this real warning" in messages  # the filter is gone afterwards
