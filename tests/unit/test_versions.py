"""Version numbers and recorded defaults for rollouts and restarts, without a server."""

from __future__ import annotations

from pathlib import Path

from scripts.ops.rollout import archive_name, next_version
from scripts.ops.server import Ports, TorchServe
from scripts.packaging.build_archive import versioned_name

MODEL = "sentiment_fast"


def test_next_version_is_above_registered_versions_and_built_archives(tmp_path: Path):
    assert next_version(["1.0"], tmp_path, MODEL) == 2
    assert next_version(["3.0", "10.0", "2.0"], tmp_path, MODEL) == 11
    for name in ("sentiment_fast_v4.mar", "sentiment_fast_vx.mar", "sentiment_bert_v9.mar"):
        (tmp_path / name).touch()
    assert next_version(["1.0"], tmp_path, MODEL) == 5
    (tmp_path / archive_name(MODEL, 7)).touch()  # what rollouts write now
    assert next_version(["1.0"], tmp_path, MODEL) == 8


def test_a_rollouts_archive_is_named_as_build_archive_names_its_version():
    """One naming scheme: `rollout` and `build_archive --version 2.0` write the same file."""
    assert archive_name(MODEL, 2) == versioned_name(MODEL, "2.0") + ".mar"
    assert archive_name(MODEL, 2) == "sentiment_fast_v2.0.mar"


def test_attach_and_recorded_defaults_drive_the_next_start(tmp_path: Path):
    store = tmp_path / "store"
    store.mkdir()
    server = TorchServe(
        run_dir=tmp_path / "run",
        ports=Ports.free(),
        model_store=store,
        models=("sentiment_fast", "sentiment_bert"),
    )
    server.run_dir.mkdir()
    assert "load_models=sentiment_fast=sentiment_fast.mar," in server.render_config().read_text()
    server.record_default("sentiment_fast", "sentiment_fast_v3.mar")
    config = server.render_config().read_text()
    assert (
        "load_models=sentiment_fast=sentiment_fast_v3.mar,sentiment_bert=sentiment_bert.mar"
        in config
    )
    attached = TorchServe.attach(server.run_dir)
    assert (attached.ports, attached.models) == (server.ports, server.models)
    assert attached.model_store == store.resolve()
