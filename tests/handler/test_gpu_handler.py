"""The GPU handler check (benchmarks.gpu_handler): what a lent GPU machine would run, here
on the CPU, and the Context that puts the handler on the GPU."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks import gpu_handler
from handlers import bert_handler
from scripts.inprocess import make_context
from scripts.nsmc import TEST_FILE, read_labelled
from scripts.registry import MODELS
from tests.conftest import committed_bert_checkpoint


def test_without_a_gpu_only_the_cpu_row_is_measured(nsmc_dir: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    texts, labels = read_labelled(nsmc_dir / TEST_FILE, 64)
    rows = gpu_handler.measure(committed_bert_checkpoint(), texts, labels, batch_size=16)
    assert [row["setting"] for row in rows] == ["cpu fp32", "gpu fp32", "gpu fp16"]
    cpu, *gpu = rows
    assert cpu["device"] == "cpu" and cpu["texts_per_s"] > 0 and 0.6 < cpu["accuracy"] <= 1
    assert all(row == {"setting": row["setting"], "skipped": "no CUDA device visible"}
               for row in gpu)  # fmt: skip


def test_a_gpu_workers_context_puts_the_handler_on_that_gpu(monkeypatch):
    """gpu_id reaches the Context as TorchServe's GPU workers get it; the handler takes that
    device where CUDA is visible and the CPU where it is not."""
    config = MODELS["sentiment_bert"].config_file
    context = make_context("sentiment_bert", Path("."), config, gpu_id=0)
    assert context.system_properties["gpu_id"] == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bert_handler._device(context) == torch.device("cuda:0")
    assert bert_handler._device(make_context("sentiment_bert", Path("."), config)).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bert_handler._device(context).type == "cpu"
