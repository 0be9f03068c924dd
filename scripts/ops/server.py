"""Start a TorchServe instance for this project, wait until its models are READY, stop it.

One code path for `make serve` / `make stop` and for the integration tests, so
the tests exercise what users run.  Each instance owns a run directory (its
rendered config, key file, logs and TMPDIR) and its ports, so several can run
side by side.

    python -m scripts.ops.server up        # build what is missing, start, wait for READY
    python -m scripts.ops.server stop
    python -m scripts.ops.server status
    python -m scripts.ops.server foreground   # systemd: TorchServe in the foreground (journal)

Keys expire (token_expiration_min): start() also starts the key renewer
(sentiment_client.renewer watch) as a detached process with its pid in run/renewer.pid,
logging to run/logs/renewer.log; stop() stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterator, Sequence

import requests

from scripts.nsmc import DataNotFoundError
from scripts.packaging.build_archive import build_archive, ensure_artifacts
from scripts.registry import DEFAULT_MODELS, DEFAULT_RUN_DIR, DEFAULT_STORE, MODELS, ROOT
from sentiment_client.keys import KeyFile, is_key_error

BASE_CONFIG = ROOT / "config.properties"
LOG4J_CONFIG = ROOT / "log4j2.xml"
# In the model store: {model: archive file} of the version each model serves by default, written
# when a default changes (scripts.ops.manage set-default, scripts.ops.rollout); a restart loads
# these.
DEFAULTS_FILE = "defaults.json"


class ServerError(RuntimeError):
    """TorchServe did not do what was asked; the message says what and where to look."""


@dataclass(frozen=True)
class Ports:
    inference: int = 8080
    management: int = 8081
    metrics: int = 8082
    grpc_inference: int = 7070
    grpc_management: int = 7071
    worker: int = 9000  # first port of the workers' unix sockets (/tmp/.ts.sock.<port>)

    @classmethod
    def free(cls) -> "Ports":
        """Ports nobody listens on now, for a test instance beside others."""
        sockets = [socket.socket() for _ in fields(cls)]
        try:
            for sock in sockets:
                sock.bind(("127.0.0.1", 0))
            return cls(*(sock.getsockname()[1] for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()


def parse_properties(text: str) -> dict[str, str]:
    """The key=value lines of a config.properties text (comments and blank lines skipped)."""
    pairs = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def read_properties(path: Path) -> dict[str, str]:
    return parse_properties(path.read_text(encoding="utf-8"))


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


@dataclass
class TorchServe:
    run_dir: Path = DEFAULT_RUN_DIR
    ports: Ports = field(default_factory=Ports)
    model_store: Path = DEFAULT_STORE
    models: Sequence[str] = DEFAULT_MODELS
    base_config: Path = BASE_CONFIG
    log4j_config: Path = LOG4J_CONFIG
    properties: dict[str, str] = field(default_factory=dict)  # over base_config's (tests)
    _key_file: KeyFile | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tmp_dir(self) -> Path:
        return self.run_dir / "tmp"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def config_path(self) -> Path:
        return self.run_dir / "config.properties"

    @classmethod
    def attach(cls, run_dir: Path = DEFAULT_RUN_DIR) -> "TorchServe":
        """The instance last started from `run_dir`: its ports, store and models as rendered."""
        config = run_dir / "config.properties"
        if not config.exists():
            return cls(run_dir=run_dir)
        props = read_properties(config)

        def port(key: str) -> int:
            return int(props[key].rsplit(":", 1)[-1])

        ports = Ports(
            port("inference_address"),
            port("management_address"),
            port("metrics_address"),
            port("grpc_inference_port"),
            port("grpc_management_port"),
            port("initial_worker_port"),
        )
        models = tuple(entry.split("=", 1)[0] for entry in props["load_models"].split(","))
        return cls(
            run_dir=run_dir, ports=ports, model_store=Path(props["model_store"]), models=models
        )

    def url(self, api: str, path: str = "") -> str:
        port = {"inference": self.ports.inference, "management": self.ports.management,
                "metrics": self.ports.metrics}[api]  # fmt: skip
        return f"http://127.0.0.1:{port}{path}"

    # ----------------------------------------------------------------- keys

    @property
    def key_file(self) -> KeyFile:
        """TorchServe's key file in the run dir, re-read whenever it changes (renewals)."""
        if self._key_file is None:
            self._key_file = KeyFile(self.run_dir / "key_file.json")
        return self._key_file

    def keys(self) -> dict[str, str]:
        """{"inference": key, "management": key, "API": key}, {} before TorchServe wrote them."""
        return dict(self.key_file.current().keys)

    def auth(self, api: str) -> dict[str, str]:
        """The Authorization header for `api` ("inference" or "management"); {} with auth off."""
        key = self.key_file.key(api)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def request(
        self, api: str, method: str, path: str, session: requests.Session | None = None, **kwargs
    ) -> requests.Response:
        """An HTTP call to `api` with its key, sent once more with the renewed key if TorchServe
        refused the one read (a renewal or restart between reading the file and the call)."""
        extra = kwargs.pop("headers", {})
        http = session or requests
        for attempt in (1, 2):
            key = self.key_file.key(api)
            headers = {**extra, **({"Authorization": f"Bearer {key}"} if key else {})}
            response = http.request(method, self.url(api, path), headers=headers, **kwargs)
            if attempt == 2 or not is_key_error(response.status_code, response.content):
                return response
            if self.key_file.refreshed(api, key) is None:
                return response
        return response

    # ----------------------------------------------------------------- key renewer

    @property
    def renewer_pid_file(self) -> Path:
        return self.run_dir / "renewer.pid"

    def renewer_pid(self) -> int | None:
        """The key renewer's PID if it is running, else None."""
        return running_pid(self.renewer_pid_file)

    def start_renewer(self) -> int:
        """Start `sentiment_client.renewer watch` for this instance, detached (own session): it
        renews the keys before they expire for as long as it runs (stop_renewer)."""
        if (pid := self.renewer_pid()) is not None:
            return pid
        self.log_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "sentiment_client.renewer", "watch",
                   "--key-file", str(self.run_dir / "key_file.json"),
                   "--management-url", self.url("management"),
                   "--pid-file", str(self.renewer_pid_file),
                   "--server-pid-file", str(self.tmp_dir / ".model_server.pid")]  # fmt: skip
        with open(self.log_dir / "renewer.log", "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=self._env(), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 10
        while self.renewer_pid() != process.pid and time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(f"the key renewer exited; see {self.log_dir / 'renewer.log'}")
            time.sleep(0.05)
        return process.pid

    def stop_renewer(self, timeout: float = 10) -> bool:
        """Stop the key renewer; False if none was running."""
        pid = self.renewer_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not exited(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            self.renewer_pid_file.unlink(missing_ok=True)
        return True

    # ----------------------------------------------------------------- default versions

    def _defaults(self) -> dict[str, str]:
        path = self.model_store / DEFAULTS_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def default_archive(self, name: str) -> str:
        """The archive a start loads for `name`: the last recorded default, else <name>.mar."""
        return self._defaults().get(name, f"{name}.mar")

    def record_default(self, name: str, archive: str) -> None:
        """Remember `archive` as the default of `name`, so that a restart serves it again."""
        defaults = {**self._defaults(), name: archive}
        path = self.model_store / DEFAULTS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(defaults, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a crash leaves the old or the new file, never half of one

    # ----------------------------------------------------------------- lifecycle

    def render_config(self) -> Path:
        """The project's config.properties with this instance's ports and absolute paths."""
        properties = read_properties(self.base_config)
        properties.update(
            inference_address=self.url("inference"),
            management_address=self.url("management"),
            metrics_address=self.url("metrics"),
            grpc_inference_port=str(self.ports.grpc_inference),
            grpc_management_port=str(self.ports.grpc_management),
            initial_worker_port=str(self.ports.worker),
            model_store=str(self.model_store.resolve()),
            allowed_urls=self.allowed_urls(),
            load_models=",".join(f"{name}={self.default_archive(name)}" for name in self.models),
            vmargs=f"-Dlog4j.configurationFile=file:{self.log4j_config} "
            f"-Djava.io.tmpdir={self.tmp_dir}",
        )
        properties.update(self.properties)
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in properties.items()), encoding="utf-8"
        )
        return self.config_path

    def allowed_urls(self) -> str:
        """No URL at all (a regex that matches nothing): archives of the store are registered by
        name, which TorchServe never matches against allowed_urls, so no URL is needed.

        A pattern for file URLs inside the store (`file://<store>/[^/]+`) was bypassed by
        `file://<store>/%2e%2e%2f<anywhere>.mar`: Java decodes `%2f` after the match.
        """
        return "(?!)"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            TMPDIR=str(self.tmp_dir),
            LOG_LOCATION=str(self.log_dir),
            METRICS_LOCATION=str(self.log_dir),
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        )
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
        return env

    def pid(self) -> int | None:
        """The frontend's PID if it is running, else None."""
        return running_pid(self.tmp_dir / ".model_server.pid")

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
        response = requests.get(
            self.url("management", f"/models/{name}"), headers=self.auth("management"), timeout=5
        )
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
        """Stop the instance and its key renewer, and wait until the JVM is gone; False if
        nothing was running."""
        renewer = self.stop_renewer()
        pid = self.pid()
        if pid is None:
            return renewer
        subprocess.run(["torchserve", "--stop"], env=self._env(), capture_output=True)
        if not exited(pid, timeout):
            os.kill(pid, signal.SIGKILL)
        return True


# --------------------------------------------------------------------------- CLI


def curl_example(server: TorchServe, model: str = "sentiment_fast") -> str:
    key_file = server.run_dir / "key_file.json"
    return (
        f"KEY=$(python3 -c \"import json;print(json.load(open('{key_file}'))['inference']['key'])\")\n"  # noqa: E501
        f"curl -s -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' \\\n"
        f"     {server.url('inference', f'/predictions/{model}')} \\\n"
        f'     --data-binary \'{{"text": "정말 재밌게 잘봤습니다!"}}\''
    )


def build_missing(server: TorchServe, data_dir: str | None = None) -> None:
    """Build the default archives the store lacks (a rolled-out version is never rebuilt)."""
    for name in server.models:
        if server.default_archive(name) != f"{name}.mar":  # a rolled-out version: never rebuilt
            continue
        if (server.model_store / f"{name}.mar").exists():
            continue
        build_archive(MODELS[name], ensure_artifacts(name, data_dir), server.model_store)


def up(server: TorchServe, data_dir: str | None = None) -> None:
    """Build whatever archive is missing, start TorchServe, wait until READY."""
    if server.pid() is not None:
        renewer = TorchServe.attach(server.run_dir).start_renewer()  # in case it had died
        print(f"TorchServe is already running from {server.run_dir} (pid {server.pid()}, key "
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
