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
import re
import subprocess
from pathlib import Path

import pytest

from scripts.ops.manage import ManagementError, find_archive
from scripts.ops.rollout import archive_name
from scripts.packaging.build_archive import versioned_name
from scripts.registry import MODELS, ROOT
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


# --------------------------------------------------------------------------- archive names
# `--help` cannot tell that `manage register sentiment_fast_v2.mar` names a file no command
# writes (build_archive --version 2.0 writes sentiment_fast_v2.0.mar): the names are checked
# against the project's own naming functions, and registrations resolved in a store holding
# exactly what the documented commands build.

ARCHIVE = re.compile(r"\b((?:%s)[\w.]*?)\.mar\b" % "|".join(sorted(MODELS, key=len, reverse=True)))


def tool_argv(argv: list[str], module: str) -> list[str] | None:
    """The arguments of a documented `.venv/bin/python -m <module> ...`, else None."""
    return argv[3:] if argv[:3] == [VENV_PYTHON, "-m", module] else None


def written_archives() -> set[str]:
    """The archives the documented commands write: each model's default (make serve), each
    `build_archive <model> --version V` line's file, and what rollouts write (N.0)."""
    written = {f"{model}.mar" for model in MODELS}
    for _, _, argv in DOC_COMMANDS:
        args = tool_argv(argv, "scripts.packaging.build_archive")
        if args and "--version" in args:
            written.add(versioned_name(args[0], args[args.index("--version") + 1]) + ".mar")
    return written | {archive_name(model, n) for model in MODELS for n in range(2, 10)}


def test_every_archive_the_docs_name_is_one_a_command_writes():
    written = written_archives()
    named = {(path.relative_to(ROOT), f"{name}.mar") for path in DOCS
             for name in ARCHIVE.findall(path.read_text(encoding="utf-8"))}  # fmt: skip
    unknown = sorted(f"{path}: {name}" for path, name in named if name not in written)
    assert not unknown, f"no documented command writes these: {unknown}"


def test_documented_registrations_find_their_archive(tmp_path: Path):
    """`manage register X` and curl's `url=X` as written, against a store of what the
    documented commands build: the CLI's own lookup (find_archive) must find X."""
    for name in written_archives():
        (tmp_path / name).touch()
    registered = [(path, args[1]) for path, _, argv in DOC_COMMANDS
                  if (args := tool_argv(argv, "scripts.ops.manage")) and args[:1] == ["register"]]  # fmt: skip
    registered += [(path, url) for path, line, _ in DOC_COMMANDS
                   for url in re.findall(r"[?&]url=([^&\"' ]+)", line)]  # fmt: skip
    assert any(str(path) == "docs/operations.md" for path, _ in registered)
    for path, given in registered:
        try:
            find_archive(tmp_path, given)
        except ManagementError as err:
            pytest.fail(f"{path}: {given}: {err}")
