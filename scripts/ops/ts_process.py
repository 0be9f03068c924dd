"""Processes that belong to an instance and outlive the command that started them: finding them
by pid file, stopping them (politely, then SIGKILL), and the key renewer beside TorchServe.

Keys expire (token_expiration_min): `sentiment_client.renewer watch` renews them before they
do, as a detached process with its pid in <run dir>/renewer.pid, logging to
<run dir>/logs/renewer.log; it stops by itself once TorchServe's pid file names no process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from scripts.registry import ROOT


class ServerError(RuntimeError):
    """TorchServe did not do what was asked; the message says what and where to look."""


def running_pid(pid_file: Path) -> int | None:
    """The PID in `pid_file` if that process is alive, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def exited(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `pid` to exit; False if it still runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:  # reap it if it is our child (tests): a zombie still answers kill(pid, 0)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return False


def stop_process(pid: int, timeout: float, ask: Callable[[], object] | None = None) -> bool:
    """Ask `pid` to stop (`ask`, else SIGTERM) and wait up to `timeout` seconds; SIGKILL it if
    it still runs then.  True if it had to be killed."""
    if ask is None:
        os.kill(pid, signal.SIGTERM)
    else:
        ask()
    if exited(pid, timeout):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it went between the last look and the kill
        return False
    exited(pid, 5)  # reap it, where it is our child
    return True


@dataclass(frozen=True)
class KeyRenewer:
    """The key renewer of the instance whose run directory is `run_dir`."""

    run_dir: Path
    management_url: str
    server_pid_file: Path  # it stops by itself once this names no running process

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "renewer.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "logs" / "renewer.log"

    def pid(self) -> int | None:
        """The renewer's PID if it is running, else None."""
        return running_pid(self.pid_file)

    def start(self, env: Mapping[str, str]) -> int:
        """Start it detached (its own session), unless it runs already; its PID."""
        if (pid := self.pid()) is not None:
            return pid
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "sentiment_client.renewer", "watch",
                   "--key-file", str(self.run_dir / "key_file.json"),
                   "--management-url", self.management_url,
                   "--pid-file", str(self.pid_file),
                   "--server-pid-file", str(self.server_pid_file)]  # fmt: skip
        with open(self.log, "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, start_new_session=True)  # fmt: skip
        self._wait_for_pid_file(process)
        return process.pid

    def _wait_for_pid_file(self, process: subprocess.Popen, timeout: float = 10) -> None:
        """Until the renewer has written its pid file (so `pid()` finds it); it may exit first."""
        deadline = time.monotonic() + timeout
        while self.pid() != process.pid and time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"the key renewer exited; see {self.log}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10) -> bool:
        """Stop it; False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        if stop_process(pid, timeout):
            self.pid_file.unlink(missing_ok=True)  # killed: it could not remove its own
        return True
