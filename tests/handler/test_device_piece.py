"""A run packed for the GPU machine's transfer limits comes back whole, or is refused."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scripts.training import device_piece
from scripts.training.device_piece import PieceError, pack, pack_data, unpack


def _work_dir(root: Path) -> Path:
    work = root / "work"
    (work / "tokenizer").mkdir(parents=True)
    (work / "tokenizer" / "tokenizer.json").write_text('{"model": "wordpiece"}')
    (work / "pretrain_curve.jsonl").write_text('{"step": 3}\n')
    state = {"model": {"w": torch.arange(50_000.0)}, "optimizer": {"moments": torch.ones(50_000)},
             "schedule": {"last_epoch": 3}, "step": 3}  # fmt: skip
    torch.save(state, work / "pretrain.pt")
    return work


def test_pack_and_unpack_give_back_the_run_without_adams_moments(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(device_piece, "CHUNK_BYTES", 64 * 1024)  # several chunks
    chunks = pack(_work_dir(tmp_path), tmp_path / "out")
    assert len(chunks) > 1 and all(c.stat().st_size <= 64 * 1024 for c in chunks)
    names = unpack(tmp_path / "out", tmp_path / "back")
    assert {"tokenizer", "pretrain_curve.jsonl", "pretrain.pt"} <= set(names)
    state = torch.load(tmp_path / "back" / "pretrain.pt", weights_only=False)
    assert "optimizer" not in state and state["step"] == 3
    assert torch.equal(state["model"]["w"], torch.arange(50_000.0))
    assert (tmp_path / "back" / "tokenizer" / "tokenizer.json").read_text() == '{"model": "wordpiece"}'


def test_a_half_piece_carries_fp16_weights_that_resume_in_float32(tmp_path: Path):
    """--half: a masked LM's state is carried in fp16, the tied decoder stored once; loaded
    back, the model is float32, its weights within fp16 rounding of the saved ones and still
    tied."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(vocab_size=2000, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64)  # fmt: skip
    torch.manual_seed(0)
    model = BertForMaskedLM(config)
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"model": model.state_dict(), "optimizer": {}, "step": 7}, work / "pretrain.pt")
    sizes = {}
    for half in (False, True):
        out = tmp_path / f"out_{half}"
        pack(work, out, half=half)
        manifest = json.loads((out / "piece.json").read_text())
        sizes[half] = manifest["bytes"]
        assert manifest["weights"] == ("float16" if half else "float32")
    assert sizes[True] < 0.55 * sizes[False]  # the tied decoder is not stored a second time
    unpack(tmp_path / "out_True", tmp_path / "back")
    state = torch.load(tmp_path / "back" / "pretrain.pt", weights_only=False)
    resumed = BertForMaskedLM(config)
    resumed.load_state_dict(state["model"])
    for (name, saved), loaded in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert loaded.dtype == saved.dtype, name
        assert torch.allclose(loaded, saved.half().to(saved.dtype)), name
    embeddings = resumed.get_input_embeddings().weight
    assert resumed.get_output_embeddings().weight.data_ptr() == embeddings.data_ptr()
    assert state["step"] == 7 and "optimizer" not in state


def test_a_damaged_or_incomplete_piece_is_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(device_piece, "CHUNK_BYTES", 64 * 1024)
    chunks = pack(_work_dir(tmp_path), tmp_path / "out")
    data = bytearray(chunks[0].read_bytes())
    data[100] ^= 1
    chunks[0].write_bytes(bytes(data))
    with pytest.raises(PieceError, match="SHA-256"):
        unpack(tmp_path / "out", tmp_path / "back")
    chunks[-1].unlink()
    with pytest.raises(PieceError, match="missing chunks"):
        unpack(tmp_path / "out", tmp_path / "back")
    with pytest.raises(PieceError, match="no manifest"):
        unpack(tmp_path / "nothing", tmp_path / "back")
    assert device_piece.main(["unpack", str(tmp_path / "nothing"), str(tmp_path / "b")]) == 2


def test_data_travels_gzipped(tmp_path: Path):
    source = tmp_path / "nsmc"
    source.mkdir()
    for name in device_piece.DATA_FILES:
        (source / name).write_text(f"{name}\n" * 100)
    written = pack_data(source, tmp_path / "out")
    assert [gzip.decompress(p.read_bytes()).decode() for p in written] == [
        f"{name}\n" * 100 for name in device_piece.DATA_FILES
    ]
    # the device tool brings back only names of letters, digits, '.', '_' and '-'
    assert all(re.fullmatch(r"[\w.-]+", p.name) for p in written)


def test_the_worker_side_of_torchserve_travels_without_its_frontend(tmp_path: Path):
    """What the GPU handler check imports on a machine without TorchServe: the ts package,
    found first on PYTHONPATH, minus the Java frontend (the jar alone is ~45 MB)."""
    assert device_piece.main(["worker", str(tmp_path / "site")]) == 0
    site = tmp_path / "site"
    assert not (site / "ts" / "frontend").exists()
    code = "import ts, ts.torch_handler.base_handler, ts.context; print(ts.__file__)"
    found = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(site)},
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.strip().startswith(str(site))
    assert sum(p.stat().st_size for p in site.rglob("*") if p.is_file()) < 2 * 2**20
