"""The front proxy (nginx) of TorchServe's inference API: the image's docker/nginx.conf rendered
for a listen address, an upstream and a run directory, checked, started and stopped.

Only the contract's content types (JSON, text, octets) and bodies up to max_request_size reach
TorchServe; form-encoded and multipart bodies, which TorchServe hands to netty 4.1.53's form
decoder (CVE-2024-29025, docs/security-and-reliability.md), get 415 with a JSON error.  The image
starts it from docker/entrypoint.sh; this module is for the tests, benchmarks.form_flood, and
an optional proxy in front of `make serve` (`make proxy`, nginx in the foreground):

    .venv/bin/python -m scripts.deploy.proxy --run-dir run --listen 127.0.0.1:8088
    .venv/bin/python -m scripts.deploy.proxy --check       # render and `nginx -t` only
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from scripts.ops.server import Ports, read_properties
from scripts.registry import ROOT

TEMPLATE = ROOT / "docker" / "nginx.conf"
DEFAULT_LISTEN = "127.0.0.1:8088"
#: Content types TorchServe's frontend passes to netty's HttpPostRequestDecoder (read from
#: InferenceRequestHandler in the 0.12.0 jar: isMultipart, or the form-urlencoded mime type).
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The contract's request content types (docs/contract.md): what the proxy lets through.
CONTRACT_TYPES = ("application/json", "text/plain", "application/octet-stream")


class ProxyError(RuntimeError):
    """nginx is missing, refused the configuration or did not start; the message says which."""


def nginx_binary() -> str | None:
    """The nginx executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def render(listen: str, upstream: str, run_dir: Path, template: Path = TEMPLATE) -> str:
    """The template with its three placeholders filled (as docker/entrypoint.sh fills them)."""
    text = template.read_text(encoding="utf-8")
    for name, value in (("LISTEN", listen), ("UPSTREAM", upstream), ("RUN", str(run_dir))):
        text = text.replace(f"@{name}@", value)
    return text


def write_config(listen: str, upstream: str, run_dir: Path) -> Path:
    """run_dir/nginx.conf, and the temp directory nginx wants beside it."""
    (run_dir / "nginx-tmp").mkdir(parents=True, exist_ok=True)
    path = run_dir / "nginx.conf"
    text = render(listen, upstream, run_dir.resolve())
    if os.geteuid() == 0:
        # Started as root, nginx runs its worker as `nobody`, who cannot write the run dir:
        # a chunked body, spooled to nginx-tmp/, got 500 instead of 413.  The worker runs as
        # whoever runs the proxy, as TorchServe does (the image runs both as uid 1000).
        text = "user root;\n" + text
    path.write_text(text, encoding="utf-8")
    return path


def check_config(config: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on a rendered file (returncode 0 = valid); ProxyError without nginx."""
    nginx = nginx_binary()
    if nginx is None:
        raise ProxyError("nginx is not installed (apt-get install nginx-light)")
    return subprocess.run([nginx, "-t", "-e", "stderr", "-c", str(config)],
                          capture_output=True, text=True)  # fmt: skip


def foreground_command(config: Path) -> list[str]:
    """nginx serving `config` in the foreground, logging to stderr (tests, `make proxy`)."""
    return [nginx_binary() or "nginx", "-e", "stderr", "-c", str(config), "-g", "daemon off;"]


def listening(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Proxy:
    """nginx on 127.0.0.1:`port` in front of `upstream` (host:port), its files in `run_dir`
    (default: a temporary directory, removed when `running()` ends)."""

    upstream: str
    port: int = field(default_factory=lambda: Ports.free().inference)
    run_dir: Path | None = None
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)
    temporary: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.run_dir is None:
            self.run_dir, self.temporary = Path(tempfile.mkdtemp(prefix="nginx-")), True

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "") -> str:
        return f"http://{self.listen}{path}"

    def start(self, timeout: float = 10) -> None:
        config = write_config(self.listen, self.upstream, self.run_dir)
        checked = check_config(config)  # ProxyError when nginx is not installed
        if checked.returncode != 0:
            raise ProxyError(f"nginx refused {config}: {checked.stderr.strip()}")
        log = open(self.run_dir / "nginx.log", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(
            foreground_command(config), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        started = time.monotonic()
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                self.stop()
                raise ProxyError(f"nginx did not listen on {self.listen}; see "
                                 f"{self.run_dir / 'nginx.log'}")  # fmt: skip
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The master and its workers (for RSS)."""
        if self.process is None or self.process.poll() is not None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [self.process.pid, *map(int, children.read_text().split())]
        except OSError:
            return [self.process.pid]

    def stop(self, timeout: float = 10) -> None:
        """SIGQUIT (graceful), SIGKILL after `timeout`; the master's process group only."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGQUIT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    @contextmanager
    def running(self) -> Iterator["Proxy"]:
        self.start()
        try:
            yield self
        finally:
            self.stop()
            if self.temporary:
                shutil.rmtree(self.run_dir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, default=ROOT / "run",
                        help="the TorchServe to front (its config.properties names the port)")
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port (default %(default)s)")
    parser.add_argument("--check", action="store_true", help="render and `nginx -t` only")
    args = parser.parse_args(argv)
    config_file = args.run_dir / "config.properties"
    if args.check:
        upstream = "127.0.0.1:8080"
    elif config_file.exists():
        upstream = f"127.0.0.1:{Ports.of(read_properties(config_file)).inference}"
    else:
        print(f"error: no {config_file}: start TorchServe first (make serve)", file=sys.stderr)
        return 2
    proxy_dir = args.run_dir / "proxy"
    try:
        config = write_config(args.listen, upstream, proxy_dir.resolve())
        checked = check_config(config)
    except (ProxyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if checked.returncode != 0 or args.check:
        print(checked.stderr.strip(), file=sys.stderr)
        return checked.returncode
    print(f"proxy on http://{args.listen} -> TorchServe {upstream} (Ctrl-C stops it)")
    command = foreground_command(config)
    os.execv(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
