"""The shell commands the Markdown docs show, as the documented-commands test
(tests/e2e/test_docs_commands.py) and the serve-your-own walk-through
(tests/integration/test_serve_your_own.py) read them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

VENV_PYTHON = ".venv/bin/python"


def commands(path: Path) -> list[str]:
    """Shell lines of the file's fenced blocks (continuations joined, prompts and comments
    cut), and Python commands quoted inline in its prose."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip().removeprefix("$ ")
            if line and not line.startswith("#"):
                found.append(line)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    found += re.findall(r"`((?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?python3? -m [^`]+)`", prose)
    return found


def words(line: str) -> list[str]:
    """The command's words, without leading VAR=value assignments and a trailing comment."""
    try:
        parts = shlex.split(line, comments=True)
    except ValueError:  # output or prose inside a block, not a command
        return []
    while parts and re.fullmatch(r"[A-Z_]+=\S*", parts[0]):
        parts = parts[1:]
    ends = [i for i, word in enumerate(parts) if word in ("|", ">", "&&", ";", "&", "||")]
    return parts[: ends[0]] if ends else parts
