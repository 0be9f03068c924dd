"""The `sentiment` command as a user runs it, for the client's unit and integration tests."""

from __future__ import annotations

import subprocess
import sys

from scripts.ops.server import TorchServe
from scripts.registry import ROOT


def sentiment(*args: str, server: TorchServe | None = None) -> subprocess.CompletedProcess:
    """Run the documented command; the key file is the one TorchServe wrote for this server."""
    options = []
    if server is not None:
        key_file = str(server.run_dir / "key_file.json")
        options = ["--url", server.url("inference"), "--key-file", key_file]
    command = [sys.executable, "-m", "sentiment_client", *args, *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
