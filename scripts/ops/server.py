"""Start a TorchServe instance for this project, wait until its models are READY, stop it.

One code path for `make serve` / `make stop` and for the integration tests, so
the tests exercise what users run.  Each instance owns a run directory (its
rendered config, key file, logs and TMPDIR) and its ports, so several can run
side by side.

    python -m scripts.ops.server up        # build what is missing, start, wait for READY
    python -m scripts.ops.server stop
    python -m scripts.ops.server status
    python -m scripts.ops.server foreground   # systemd: TorchServe in the foreground (journal)

`TorchServe` is the process lifecycle; what it renders, calls and records lives beside it:
ts_config (config.properties, ports), ts_keys (calls with the instance's keys, retried once
with a renewed key), ts_defaults (model_store/defaults.json) and ts_process (pid files,
stopping, the key renewer that start() starts and stop() stops).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import requests

from scripts.nsmc import DataNotFoundError
from scripts.ops.ts_config import (
    BASE_CONFIG,
    LOG4J_CONFIG,
    NO_URL,
    Ports,
    instance_properties,
    loaded_models,
    parse_properties,
    read_properties,
    write_properties,
)
from scripts.ops.ts_defaults import DEFAULTS_FILE, DefaultVersions
from scripts.ops.ts_keys import KeyedApi
from scripts.ops.ts_process import KeyRenewer, ServerError, running_pid, stop_process
from scripts.packaging.build_archive import build_archive, ensure_artifacts
from scripts.registry import DEFAULT_MODELS, DEFAULT_RUN_DIR, DEFAULT_STORE, MODELS, ROOT
from sentiment_client.keys import KeyFile

__all__ = [  # what other modules import from here, wherever it is defined
    "BASE_CONFIG", "DEFAULTS_FILE", "LOG4J_CONFIG", "Ports", "ServerError", "TorchServe",
    "build_missing", "main", "parse_properties", "read_properties", "status_line", "up",
]  # fmt: skip


@dataclass
class TorchServe:
    run_dir: Path = DEFAULT_RUN_DIR
    ports: Ports = field(default_factory=Ports)
    model_store: Path = DEFAULT_STORE
    models: Sequence[str] = DEFAULT_MODELS
    base_config: Path = BASE_CONFIG
    log4j_config: Path = LOG4J_CONFIG
    properties: dict[str, str] = field(default_factory=dict)  # over base_config's (tests)
    _api: KeyedApi | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tmp_dir(self) -> Path:
        return self.run_dir / "tmp"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.properties"

    @property
    def pid_file(self) -> Path:
        """Written by `torchserve --start` into its TMPDIR."""
        return self.tmp_dir / ".model_server.pid"

    @classmethod
    def attach(cls, run_dir: Path = DEFAULT_RUN_DIR) -> "TorchServe":
        """The instance last started from `run_dir`: its ports, store and models as rendered."""
        config = run_dir / "config.properties"
        if not config.exists():
            return cls(run_dir=run_dir)
        props = read_properties(config)
        return cls(run_dir=run_dir, ports=Ports.of(props), model_store=Path(props["model_store"]),
                   models=loaded_models(props))  # fmt: skip

    def url(self, api: str, path: str = "") -> str:
        return self.ports.url(api, path)

    # ----------------------------------------------------------------- keys (ts_keys)

    @property
    def api(self) -> KeyedApi:
        """HTTP calls with this instance's keys, re-read whenever the key file changes."""
        if self._api is None:
            self._api = KeyedApi(self.run_dir / "key_file.json", self.ports)
        return self._api

    @property
    def key_file(self) -> KeyFile:
        return self.api.key_file

    def keys(self) -> dict[str, str]:
        return self.api.keys()

    def auth(self, api: str) -> dict[str, str]:
        return self.api.auth(api)

    def request(
        self, api: str, method: str, path: str, session: requests.Session | None = None, **kwargs
    ) -> requests.Response:
        return self.api.request(api, method, path, session, **kwargs)

    # ----------------------------------------------------------------- key renewer (ts_process)

    @property
    def renewer(self) -> KeyRenewer:
        return KeyRenewer(self.run_dir, self.url("management"), self.pid_file)

    @property
    def renewer_pid_file(self) -> Path:
        return self.renewer.pid_file

    def renewer_pid(self) -> int | None:
        return self.renewer.pid()

    def start_renewer(self) -> int:
        return self.renewer.start(self._env())

    def stop_renewer(self, timeout: float = 10) -> bool:
        return self.renewer.stop(timeout)

    # ----------------------------------------------------------------- default versions

    @property
    def defaults(self) -> DefaultVersions:
        return DefaultVersions(self.model_store)

    def default_archive(self, name: str) -> str:
        return self.defaults.archive(name)

    def record_default(self, name: str, archive: str) -> None:
        self.defaults.record(name, archive)

    # ----------------------------------------------------------------- config (ts_config)

    def render_config(self) -> Path:
        """The project's config.properties with this instance's ports and absolute paths."""
        properties = instance_properties(
            read_properties(self.base_config), self.ports, self.model_store,
            {name: self.default_archive(name) for name in self.models},
            self.log4j_config, self.tmp_dir,
        )  # fmt: skip
        return write_properties(self.config_path, {**properties, **self.properties})

    def allowed_urls(self) -> str:
        """No URL at all (a regex that matches nothing): ts_config.NO_URL says why."""
        return NO_URL

    # ----------------------------------------------------------------- lifecycle

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TMPDIR=str(self.tmp_dir),
            LOG_LOCATION=str(self.log_dir),
            METRICS_LOCATION=str(self.log_dir),
        )
        # Workers import handlers/ from their archive: the checkout on PYTHONPATH would run
        # the working tree's code for every archive (a rollout of v2 would serve v1's code).
        paths = env.get("PYTHONPATH", "").split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p and Path(p).resolve() != ROOT)
        if not env["PYTHONPATH"]:
            del env["PYTHONPATH"]
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        return env

    def pid(self) -> int | None:
        """The frontend's PID if it is running, else None."""
        return running_pid(self.pid_file)

    def _command(self, *mode: str) -> list[str]:
        """The torchserve command line for this instance, its directories and config ready."""
        if (pid := self.pid()) is not None:
            raise ServerError(f"TorchServe is already running from {self.run_dir} (pid {pid})")
        archives = [self.default_archive(m) for m in self.models]
        missing = [a for a in archives if not (self.model_store / a).exists()]
        if missing:
            raise ServerError(f"no archive {', '.join(missing)} in {self.model_store}")
        for directory in (self.run_dir, self.tmp_dir, self.log_dir):
            directory.mkdir(parents=True, exist_ok=True)
        return ["torchserve", "--start", *mode, "--ncs", "--ts-config", str(self.render_config()),
                "--model-store", str(self.model_store.resolve())]  # fmt: skip

    def start(self) -> None:
        """Start TorchServe in the background, and the key renewer beside it."""
        command = self._command()
        # The JVM inherits these handles: a pipe would never reach EOF while it runs.
        console_log = self.log_dir / "console.log"
        with open(console_log, "ab") as console:
            result = subprocess.run(
                command, cwd=self.run_dir, env=self._env(), stdout=console, stderr=console
            )
        if result.returncode != 0:
            raise ServerError(f"torchserve --start failed ({result.returncode}); see {console_log}")
        self.start_renewer()

    def exec_foreground(self) -> None:
        """Become TorchServe in the foreground, logging to stdout (systemd's journal).  No
        renewer: the service manager runs it as its own unit (deploy/systemd/)."""
        command = self._command("--foreground")
        os.chdir(self.run_dir)  # TorchServe writes key_file.json here
        os.execvpe(command[0], command, self._env())

    def model_status(self, name: str) -> list[str]:
        """Worker statuses of the default version of `name` ([] while not registered)."""
        response = self.request("management", "GET", f"/models/{name}", timeout=5)
        if response.status_code != 200:
            return []
        return [worker.get("status", "") for worker in response.json()[0].get("workers", [])]

    def wait_ready(self, timeout: float = 120) -> float:
        """Block until every model has a READY worker (/ping turns healthy too early)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.pid() is None:  # start() returns after the PID file is written
                raise ServerError(f"TorchServe exited during start-up; see {self.log_dir}")
            try:
                if all("READY" in self.model_status(name) for name in self.models):
                    return time.monotonic() - started
            except (requests.RequestException, ValueError):
                pass  # not listening yet, or key_file.json half written
            time.sleep(0.5)
        raise ServerError(
            f"models {list(self.models)} not READY after {timeout:.0f}s; "
            f"see {self.log_dir / 'model_log.log'} and {self.log_dir / 'ts_log.log'}"
        )

    @contextmanager
    def running(self, timeout: float = 180) -> Iterator["TorchServe"]:
        """Start, wait until READY, and always stop again (tests and soak runs)."""
        self.start()
        try:
            self.wait_ready(timeout=timeout)
            yield self
        finally:
            self.stop()

    def stop(self, timeout: float = 30) -> bool:
        """Stop the instance and its key renewer, and wait until the JVM is gone (SIGKILL after
        `timeout` seconds); False if nothing was running."""
        renewer = self.stop_renewer()
        pid = self.pid()
        if pid is None:
            return renewer
        stop_process(pid, timeout, ask=self._ask_to_stop)
        return True

    def _ask_to_stop(self) -> None:
        """`torchserve --stop`: it signals the frontend and returns at once."""
        subprocess.run(["torchserve", "--stop"], env=self._env(), capture_output=True)


# --------------------------------------------------------------------------- CLI


def curl_example(server: TorchServe, model: str = "sentiment_fast") -> str:
    key_file = server.run_dir / "key_file.json"
    return (
        f"KEY=$(python3 -c \"import json;print(json.load(open('{key_file}'))['inference']['key'])\")\n"  # noqa: E501
        f"curl -s -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n"
        f"     {server.url('inference', f'/predictions/{model}')} \\\n"
        f'     --data-binary \'{{"text": "정말 재밌게 잘봤습니다!"}}\''
    )


def build_missing(server: TorchServe, data_dir: str | None = None) -> list[str]:
    """Build the default archives the store lacks (a rolled-out version is never rebuilt);
    the models built."""
    built = []
    for name in server.models:
        if server.default_archive(name) != f"{name}.mar":  # a rolled-out version: never rebuilt
            continue
        if (server.model_store / f"{name}.mar").exists():
            continue
        build_archive(MODELS[name], ensure_artifacts(name, data_dir), server.model_store)
        built.append(name)
    return built


def up(server: TorchServe, data_dir: str | None = None) -> None:
    """Build whatever archive is missing, start TorchServe, wait until READY."""
    if (pid := server.pid()) is not None:
        renewer = TorchServe.attach(server.run_dir).start_renewer()  # in case it had died
        print(f"TorchServe is already running from {server.run_dir} (pid {pid}, key "
              f"renewer pid {renewer}); `make stop` first to restart it.")  # fmt: skip
        return
    build_missing(server, data_dir)
    started = time.monotonic()
    server.start()
    server.wait_ready(timeout=900)
    print(f"TorchServe READY in {time.monotonic() - started:.1f}s "
          f"(inference {server.url('inference')}, management {server.url('management')}, "
          f"metrics {server.url('metrics')}/metrics). Try:\n{curl_example(server)}")  # fmt: skip


def status_line(server: TorchServe) -> str:
    """`make status`: TorchServe and its key renewer, and when the keys expire."""
    pid, renewer = server.pid(), server.renewer_pid()
    if pid is None:
        still = f" (a key renewer still runs, pid {renewer}: `make stop`)" if renewer else ""
        return f"TorchServe is not running from {server.run_dir}{still}"
    expires = sorted(server.key_file.current().expires.items())
    keys = "; ".join(f"{api} key expires {time:%Y-%m-%d %H:%M} UTC" for api, time in expires)
    watcher = f"key renewer pid {renewer}" if renewer else (
        "NO key renewer: the keys will expire (`make serve` starts it again)")  # fmt: skip
    return f"TorchServe running from {server.run_dir} (pid {pid}); {watcher}; {keys}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "stop", "status", "foreground"],
                        help="foreground: build what is missing, then become TorchServe "
                        "(systemd; no renewer)")  # fmt: skip
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--model-api", action="store_true", help="keep the model-registration "
                        "API on (zero-downtime rollouts); off by default")  # fmt: skip
    args = parser.parse_args(argv)
    on = {"enable_model_api": "true"} if args.model_api else {}
    server = TorchServe(run_dir=args.run_dir.resolve(), properties=on)
    try:
        if args.command == "up":
            up(server, args.data_dir)
        elif args.command == "foreground":
            build_missing(server, args.data_dir)
            server.exec_foreground()
        elif args.command == "stop":
            print("TorchServe stopped." if server.stop() else "TorchServe is not running.")
        else:
            print(status_line(server))
            return 0 if server.pid() else 1
    except (ServerError, DataNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
