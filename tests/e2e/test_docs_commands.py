"""Every command in README.md and docs/ runs as written after the README's set-up.

Commands are taken from the fenced code blocks.  Project commands must go through the
venv (`.venv/bin/python -m ...`) or make: a bare `python -m scripts.ops.grpc_client` fails with
"No module named 'grpc'" on a machine whose python is not the venv's.  Each distinct
`.venv/bin/python -m ...` line runs with `--help` appended (argparse prints the help of the
sub-command it reached, so a missing module, sub-command or invalid option fails here), and
each make target must exist (`make -n`).  Other tools (curl, docker, kubectl) are not run.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from scripts.registry import ROOT
from tests.doc_commands import VENV_PYTHON, commands, words

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOC_COMMANDS = [(path.relative_to(ROOT), line, words(line)) for path in DOCS
                for line in commands(path)]  # fmt: skip


def test_no_command_needs_a_python_other_than_the_venvs():
    bare = [f"{path}: {line}" for path, line, argv in DOC_COMMANDS
            if argv[:1] in (["python"], ["python3"]) and "-m" in argv[1:2]]  # fmt: skip
    assert not bare, "use .venv/bin/python (or a make target):\n" + "\n".join(bare)


PYTHON_COMMANDS = sorted({tuple(argv) for _, _, argv in DOC_COMMANDS if argv[:1] == [VENV_PYTHON]})
# One interpreter runs every command's --help (heavy imports such as torch load once):
# {"argv": [...]} lines in, {"code": exit status, "out": stdout} lines out.
RUNNER = """
import contextlib, io, json, runpy, sys
for line in sys.stdin:
    argv = json.loads(line)
    out = io.StringIO()
    sys.argv = [argv[0], *argv[1:], "--help"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException as err:
        code, out = 1, io.StringIO(repr(err))
    print(json.dumps({"code": code, "out": out.getvalue()[:3000]}), flush=True)
"""


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, ...], dict]:
    lines = "".join(json.dumps(list(argv[2:])) + "\n" for argv in PYTHON_COMMANDS)
    result = subprocess.run([str(ROOT / VENV_PYTHON), "-c", RUNNER], input=lines, cwd=ROOT,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == len(PYTHON_COMMANDS), result.stderr[-2000:]
    return dict(zip(PYTHON_COMMANDS, answers))


@pytest.mark.parametrize("argv", PYTHON_COMMANDS, ids=lambda argv: " ".join(argv[2:5]))
def test_python_command_runs(argv: tuple[str, ...], helps: dict):
    answer = helps[argv]
    assert answer["code"] == 0 and "usage:" in answer["out"], answer["out"]


MAKE_TARGETS = sorted({argv[1] for _, _, argv in DOC_COMMANDS if argv[:1] == ["make"]})


@pytest.mark.parametrize("target", MAKE_TARGETS)
def test_make_target_exists(target: str):
    result = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_docs_have_commands_to_check():
    assert len(PYTHON_COMMANDS) >= 20 and {"serve", "test"} <= set(MAKE_TARGETS)
