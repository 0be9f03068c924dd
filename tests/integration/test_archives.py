"""Versioned archives and registration: `build_archive --version`, `manage register`.

A second version gets its own file in the model store, registers beside the first by file
name or path, and the workers asked for are the workers it gets (model-config.yaml's
minWorkers would otherwise win).  Wrong names and paths are answered with where the command
looked, not with TorchServe's 409.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from scripts.ops import manage
from scripts.ops.manage import Management, ManagementError, find_archive
from scripts.ops.server import TorchServe
from scripts.packaging import build_archive
from scripts.packaging.build_archive import manifest
from scripts.registry import MODELS
from tests.conftest import local_server

MODEL = "sentiment_fast"


@pytest.fixture(scope="module")
def store(fast_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default archive, plus version 2.0 built the way the docs say."""
    store = tmp_path_factory.mktemp("versions_store")
    build_archive.build_archive(MODELS[MODEL], fast_artifacts, store)
    argv = [MODEL, "--version", "2.0", "--artifacts", str(fast_artifacts), "--store", str(store)]
    assert build_archive.main(argv) == 0
    return store


def test_a_version_gets_its_own_file_and_says_what_it_replaces(
    store: Path, fast_artifacts: Path, capsys
):
    assert manifest(store / f"{MODEL}.mar")["modelVersion"] == "1.0"
    second = manifest(store / f"{MODEL}_v2.0.mar")
    assert (second["modelName"], second["modelVersion"]) == (MODEL, "2.0")
    argv = [MODEL, "--version", "2.0", "--artifacts", str(fast_artifacts), "--store", str(store)]
    capsys.readouterr()
    assert build_archive.main(argv) == 0
    out = capsys.readouterr().out
    assert f"replacing {store / f'{MODEL}_v2.0.mar'} ({MODEL} version 2.0" in out
    assert f"scripts.ops.manage register {MODEL}_v2.0.mar" in out


def test_archive_names_and_paths_resolve_inside_the_store(store: Path, tmp_path: Path):
    expected = (store / f"{MODEL}_v2.0.mar").resolve()
    assert find_archive(store, f"{MODEL}_v2.0.mar") == expected
    assert find_archive(store, f"{MODEL}_v2.0") == expected
    assert find_archive(store, str(expected)) == expected
    with pytest.raises(ManagementError) as missing:
        find_archive(store, f"{MODEL}_v9.mar")
    assert str(store.resolve() / f"{MODEL}_v9.mar") in str(missing.value)
    assert f"{MODEL}_v2.0.mar" in str(missing.value)  # what is there instead
    outside = tmp_path / "elsewhere.mar"
    outside.write_bytes(b"")
    with pytest.raises(ManagementError, match="not in the model store"):
        find_archive(store, str(outside))


@pytest.fixture(scope="module")
def version_server(store: Path) -> Iterator[TorchServe]:
    """Started with the model API on: versions side by side (`make serve MODEL_API=on`)."""
    with local_server(store, [MODEL], "ts-vers-", enable_model_api="true") as server:
        yield server


def test_register_a_second_version_with_the_workers_asked(version_server: TorchServe, capsys):
    run_dir = str(version_server.run_dir)
    assert manage.main(["--run-dir", run_dir, "register", f"{MODEL}_v2.0", "--workers", "1"]) == 0
    assert "version 2.0 registered with 1 worker(s)" in capsys.readouterr().out
    management = Management(version_server)
    assert sorted(management.versions(MODEL)) == ["1.0", "2.0"]
    assert len(management.describe(MODEL, "2.0")[0]["workers"]) == 1  # minWorkers is 2
    assert management.default_version(MODEL) == "1.0"
    # Again: what is wrong, not TorchServe's 409 about version 1.0.
    assert manage.main(["--run-dir", run_dir, "register", f"{MODEL}_v2.0.mar"]) == 1
    assert "version 2.0 is already registered" in capsys.readouterr().err
    assert manage.main(["--run-dir", run_dir, "register", "no_such.mar"]) == 1
    assert "looked for" in capsys.readouterr().err
    assert management.unregister(MODEL, "2.0")


def test_register_as_default_turns_the_model_api_on_and_off_again(store: Path, capsys):
    """The default config (model API off): `register` alone is refused before any restart;
    `register --set-default` restarts TorchServe with the API on, registers, makes the version
    the default, and restarts it with the API off: the new version serves, registering is
    refused again (405)."""
    with local_server(store, [MODEL], "ts-off-") as server:
        run_dir = str(server.run_dir)
        first = server.pid()
        try:
            assert manage.main(["--run-dir", run_dir, "register", f"{MODEL}_v2.0"]) == 1
            assert "--set-default" in capsys.readouterr().err and server.pid() == first
            argv = ["--run-dir", run_dir, "register", f"{MODEL}_v2.0", "--set-default"]
            assert manage.main(argv) == 0
            out = capsys.readouterr().out
            assert "restarting TorchServe with it on" in out and "[model API] off" in out, out
            assert server.pid() != first
            assert Management(server).versions(MODEL) == ["2.0"]  # the default, restarted
            refused = server.request("management", "POST", "/models",
                                     params={"url": f"{MODEL}.mar"}, timeout=30)  # fmt: skip
            assert refused.status_code == 405, refused.text
        finally:
            (store / "defaults.json").unlink(missing_ok=True)  # the store as the module had it
