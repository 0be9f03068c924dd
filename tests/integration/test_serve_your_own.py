"""docs/models/serve-your-own.md's workflow, run as written: every command of its fenced blocks,
in order, on a tiny checkpoint against a real TorchServe.

Fine-tune (`train_bert --init`, tiny preset) -> pack as version 2.0 for one runtime ->
register beside 1.0 -> ask it on its own URL (the doc's curl) -> make it the default ->
roll back -> unregister.  The doc's paths, run dir and store are replaced with this test's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import pytest
import requests

from scripts.ops.manage import Management
from scripts.ops.server import TorchServe
from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS, ROOT
from tests.checkpoints import save_checkpoint
from tests.conftest import local_server
from tests.doc_commands import VENV_PYTHON, commands, words

DOC = ROOT / "docs" / "models" / "serve-your-own.md"
SECTION = "## The workflow, as commands"
MODEL = "sentiment_bert"


def workflow(scratch: Path) -> list[list[str]]:
    """The words of each command in the section's fenced blocks, in order (read by the
    documented-commands test's own reader, from the blocks alone: not the prose's commands)."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :].split("\n## ", 1)[0]
    blocks = scratch / "workflow_blocks.md"
    blocks.write_text("".join(re.findall(r"^```[a-z]*\n.*?^```\n", section, re.S | re.M)))
    return [words(line) for line in commands(blocks)]


def localised(argv: list[str], paths: dict[str, str], server: TorchServe) -> list[str]:
    """The doc's command on this test's checkpoint, output dir, store and run dir."""
    argv = [paths.get(word, word) for word in argv]
    module = argv[2]
    if module == "scripts.training.train_bert":
        return [*argv, "--preset", "tiny"]  # seconds, not the default preset's hour
    if module == "scripts.packaging.build_archive":
        return [*argv, "--store", str(server.model_store)]
    if module == "scripts.ops.manage":
        return [*argv[:3], "--run-dir", str(server.run_dir), *argv[3:]]
    raise AssertionError(f"no local form for {' '.join(argv)}")


def ask(argv: list[str], server: TorchServe) -> requests.Response:
    """What the doc's curl line sends, to this server's inference port."""
    url = next(word for word in argv if word.startswith("http"))
    body = argv[argv.index("--data-binary") + 1]
    headers = {**server.auth("inference"), "Content-Type": "application/json"}
    path = server.url("inference", urlparse(url).path)
    return requests.post(path, data=body.encode(), headers=headers, timeout=60)


@pytest.fixture(scope="module")
def serving(random_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A TorchServe serving sentiment_bert 1.0 (a tiny random BERT), as `make serve` would,
    with the model API on: versions side by side, as the doc's step 3 asks."""
    store = tmp_path_factory.mktemp("own_store")
    build_archive(MODELS[MODEL], random_bert_dir, store)
    with local_server(store, [MODEL], "ts-own-", enable_model_api="true") as server:
        yield server


def test_the_documented_workflow_runs_as_written(serving: TorchServe, nsmc_dir: Path, tmp_path):
    checkpoint = save_checkpoint("bert", tmp_path / "checkpoint")
    paths = {"/path/to/checkpoint": str(checkpoint), "build/my_bert": str(tmp_path / "my_bert")}
    env = {**os.environ, "NSMC_DIR": str(nsmc_dir)}
    management = Management(serving)
    defaults = []
    for argv in workflow(tmp_path):
        if argv[:1] == ["curl"]:
            answer = ask(argv, serving)
            assert answer.status_code == 200 and len(answer.json()) == 2, answer.text
        elif argv[:1] == [VENV_PYTHON]:
            command = localised(argv, paths, serving)
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=900)  # fmt: skip
            assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
            defaults.append(management.default_version(MODEL))
        else:  # the KEY=$(...) line: the key comes from the server's key file here
            assert argv[:1] == ["-c"], f"a documented command this test neither runs nor reads: {argv}"
    assert "2.0" in defaults, "the workflow makes the new version the default at some point"
    assert management.default_version(MODEL) == "1.0"
    assert sorted(management.versions(MODEL)) == ["1.0"]
