"""`scripts.ops.manage` against TorchServe's management answers, scripted: refusing to remove
a serving version, saying how many workers a registration left, describing the cascade.

Against a real TorchServe: tests/integration/test_operate.py::test_manage_cli.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from scripts.ops import manage
from scripts.ops.manage import Management, ManagementError, summary

MODEL = "sentiment_fast"


@dataclass
class Scripted(Management):
    """One model's versions and workers; calls answered as TorchServe 0.12 answers them."""

    default: str = "1.0"
    workers: dict[str, int] = field(default_factory=lambda: {"1.0": 2})
    config_workers: int = 2  # the archive's model-config.yaml minWorkers wins on register
    deleted: list[str] = field(default_factory=list)

    def entry(self, version: str) -> dict[str, Any]:
        workers = [{"id": str(9000 + n), "status": "READY"} for n in range(self.workers[version])]
        return {"modelVersion": version, "workers": workers}

    def _call(self, method: str, path: str, **params: Any) -> Any:
        version = path.split("/")[3] if path.count("/") > 2 else self.default
        if method == "GET":
            versions = list(self.workers) if version == "all" else [version]
            return [self.entry(v) for v in versions]
        if method == "DELETE":
            self.deleted.append(version)
            return {"status": f'Model "{MODEL}" unregistered'}
        if method == "POST":
            self.workers["2.0"] = self.config_workers
            return {"status": f'Model "{MODEL}" Version: 2.0 registered with '
                              f"{self.config_workers} initial workers"}  # fmt: skip
        self.workers[version] = params["min_worker"]  # PUT: scale
        return {"status": "Workers updated"}


def scripted(tmp_path: Path, **state: Any) -> Scripted:
    return Scripted(SimpleNamespace(model_store=tmp_path), **state)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["1.0", None])
def test_unregister_refuses_the_last_version_without_force(tmp_path: Path, version):
    management = scripted(tmp_path)
    with pytest.raises(ManagementError, match="only version.*404.*--force"):
        management.unregister(MODEL, version)
    assert management.deleted == []
    management.unregister(MODEL, version, force=True)
    assert management.deleted == ["1.0"]


def test_unregister_refuses_the_default_but_not_another_version(tmp_path: Path):
    management = scripted(tmp_path, workers={"1.0": 1, "2.0": 1}, default="2.0")
    with pytest.raises(ManagementError, match="2.0 is the default.*set-default.*--force"):
        management.unregister(MODEL, "2.0")
    management.unregister(MODEL, "1.0")
    assert management.deleted == ["1.0"]


def test_register_with_workers_says_how_many_serve(tmp_path: Path, monkeypatch):
    (tmp_path / "sentiment_fast_v2.mar").touch()
    packed = {"modelName": MODEL, "modelVersion": "2.0"}
    monkeypatch.setattr(manage, "manifest", lambda path: packed)
    management = scripted(tmp_path)
    said = management.register("sentiment_fast_v2.mar", workers=1)
    assert management.workers["2.0"] == 1
    assert said.startswith(f"{MODEL} version 2.0 registered with 1 worker(s)")
    assert "started 2, scaled to 1" in said and "2 initial workers" not in said
    del management.workers["2.0"]
    assert management.register("sentiment_fast_v2.mar") == (
        f"{MODEL} version 2.0 registered with 2 worker(s)"
    )


# What TorchServe takes as a path and never checks against allowed_urls (issue 31): a directory
# anywhere (absolute, relative to its working directory, `x/` = the store itself), other schemes.
NOT_AN_ARCHIVE_NAME = ["/tmp", ".", "./", "x/", "adir", "adir/", "%2e", "%2e%2e%2fx.mar",
                       "../x.mar", "file:/tmp/x.mar", "file:///tmp/x.mar", "s3://bucket/x.mar",
                       "http://127.0.0.1:9/x.mar", "//127.0.0.1/x.mar", "\\\\host\\x.mar", ""]


@pytest.mark.parametrize("given", NOT_AN_ARCHIVE_NAME + ["STORE", "STORE/"])
def test_register_sends_nothing_but_an_archive_name_of_the_store(tmp_path: Path, given: str):
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "handler.py").touch()
    given = given.replace("STORE", str(tmp_path))
    management = scripted(tmp_path)
    with pytest.raises(ManagementError):
        management.register(given)
    assert "2.0" not in management.workers  # no POST reached the scripted TorchServe


@pytest.mark.parametrize("name", ["a:b.mar", "a%2fb.mar", ".hidden.mar", "model.tar.gz"])
def test_registration_url_refuses_odd_file_names_in_the_store(tmp_path: Path, name: str):
    (tmp_path / name).touch()
    with pytest.raises(ManagementError, match="only a .mar file of the model store"):
        manage.registration_url(tmp_path, tmp_path / name)
    (tmp_path / "ok.mar").touch()
    assert manage.registration_url(tmp_path, tmp_path / "ok.mar") == "ok.mar"


def trained(accuracy: float) -> dict[str, Any]:
    return {"created_at": "2026-11-22T05:38:36+00:00", "labels": ["negative", "positive"],
            "test_accuracy": accuracy, "train_file_sha256": "b3155d586b6f0123"}  # fmt: skip


def test_describe_of_the_cascade_shows_its_settings_and_its_models():
    """What SentimentCascadeHandler.describe_handle answers: no created_at or test_accuracy
    of its own, its settings, and each component's metadata."""
    custom = {"model": "sentiment", "description": "cascade of sentiment_fast and sentiment_bert",
              "labels": ["negative", "positive"], "model_version": "1.0", "threshold": 0.7,
              "bert_weight": 0.8, "components": {"sentiment_fast": trained(0.8752),
                                                 "sentiment_bert": trained(0.8807)}}  # fmt: skip
    entry = {"modelName": "sentiment", "modelVersion": "1.0", "modelUrl": "sentiment.mar",
             "minWorkers": 2, "maxWorkers": 2, "workers": [], "batchSize": 16,
             "maxBatchDelay": 2, "responseTimeout": 60, "customizedMetadata": custom}  # fmt: skip
    described = summary(entry)
    assert "None" not in described
    assert "threshold 0.7, bert_weight 0.8" in described and "docs/models/cascade.md" in described
    assert "    sentiment_fast: trained 2026-11-22" in described
    assert "sentiment_bert: trained" in described and "test accuracy 0.8807" in described


def test_describe_of_a_trained_model_is_one_metadata_line():
    entry = {"modelName": MODEL, "modelVersion": "1.0", "modelUrl": "sentiment_fast.mar",
             "minWorkers": 1, "maxWorkers": 1, "workers": [], "batchSize": 16,
             "maxBatchDelay": 1, "responseTimeout": 30,
             "customizedMetadata": trained(0.8752)}  # fmt: skip
    assert summary(entry).splitlines()[-1] == (
        "  trained 2026-11-22T05:38:36+00:00, labels ['negative', 'positive'], "
        "test accuracy 0.8752, train data sha256 b3155d586b6f"
    )
