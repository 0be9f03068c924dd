"""Operate a running TorchServe through its management API: list, describe, register, scale,
set the default version, unregister, rotate the keys.

Registering needs TorchServe's model API, off by default (least privilege): `register` turns it
on for itself by a restart and off again (scripts/ops/model_api.py), which only works with
`--set-default` (a restart serves the defaults only), unless the server was started with it on
(`make serve MODEL_API=on`).

The management key is read from the key file TorchServe wrote into the run directory, and
the ports from the config rendered there, so the same commands work for `make serve` (run/)
and for any test instance (--run-dir).  TorchServe's errors come back as one line.

    python -m scripts.ops.manage list
    python -m scripts.ops.manage describe sentiment_fast
    python -m scripts.ops.manage register sentiment_fast_v2.0.mar --workers 1
    python -m scripts.ops.manage register sentiment_fast_v2.0.mar --set-default  # model API off
    python -m scripts.ops.manage scale sentiment_fast --min 2 --max 2
    python -m scripts.ops.manage set-default sentiment_fast 2.0   # also: roll back to 1.0
    python -m scripts.ops.manage unregister sentiment_fast 1.0    # the default or last: --force
    python -m scripts.ops.manage rotate-keys              # new inference and management keys now
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import requests

from scripts.ops.model_api import ModelApiError, model_api_enabled, registration_window
from scripts.ops.server import ServerError, TorchServe
from scripts.packaging.build_archive import manifest
from scripts.registry import DEFAULT_RUN_DIR
from sentiment_client.keys import APIS, KeyFileError, RenewError, renew


MODEL_API_OFF = ("TorchServe's model API is off on this server, as by default: `manage register "
                 "--set-default` and `rollout` turn it on for themselves; to keep it on, "
                 "`make stop && make serve MODEL_API=on`")


class ManagementError(RuntimeError):
    """TorchServe refused or could not be reached; the message is one line for the user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # TorchServe's HTTP status, None if it never answered


def find_archive(store: Path, given: str) -> Path:
    """The .mar `given` names: a file name in the model store (".mar" optional) or a path to a
    file inside it.  TorchServe would reduce a path to its file name and answer a missing or
    foreign file with a misleading 409, so this looks first and says where."""
    store = store.resolve()
    as_path = Path(given).expanduser()
    if as_path.is_absolute() or len(as_path.parts) > 1:
        candidates = [as_path.resolve()]
    else:
        candidates = [store / given] + ([] if given.endswith(".mar") else [store / f"{given}.mar"])
    for candidate in candidates:
        if candidate.is_file():
            if candidate.parent != store:
                raise ManagementError(
                    f"{candidate} is not in the model store {store}: TorchServe registers "
                    "archives from there only (copy it there, or build it with --store)"
                )
            return candidate
    present = ", ".join(sorted(p.name for p in store.glob("*.mar"))) or "no archives"
    looked = " and ".join(map(str, candidates))
    raise ManagementError(f"no archive {given!r}: looked for {looked}; the store has {present}")


def registration_url(store: Path, archive: Path) -> str:
    """The `url` to send for `archive`: its bare file name, checked to be a .mar file of the store.

    TorchServe matches only `file://` and `http(s)://` URLs against `allowed_urls`; anything
    else is taken as a path and never checked: a directory anywhere on the disk (`/tmp/x`, `.`,
    `x/` = the model store itself) is registered as a model, its handler code run.  So nothing
    but a plain archive name leaves this module, whatever the caller passed."""
    store = store.resolve()
    name = archive.name
    plain = name.endswith(".mar") and not name.startswith(".") and not set(name) & set("/\\:%")
    if not plain or archive.parent.resolve() != store or not (store / name).is_file():
        raise ManagementError(
            f"refused to register {str(archive)!r}: only a .mar file of the model store {store}, "
            "by its plain name, is ever sent to TorchServe"
        )
    return name


@dataclass
class Management:
    """The management API of one TorchServe instance (synchronous calls only)."""

    server: TorchServe
    timeout: float = 300  # registering a model waits for its workers

    def _call(self, method: str, path: str, **params: Any) -> Any:
        url = self.server.url("management", path)
        try:
            response = self.server.request(
                "management", method, path, params=params or None, timeout=self.timeout
            )
        except requests.ConnectionError:
            raise ManagementError(
                f"cannot reach TorchServe at {url} (not running? `make serve`)"
            ) from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            message = " ".join(str(message).split())  # one line
            if response.status_code == 405 and path.startswith("/models"):
                message += f" ({MODEL_API_OFF})"
            raise ManagementError(
                f"{method} {path}: {response.status_code} {message}", response.status_code
            )
        try:
            return response.json()
        except ValueError:
            return response.text

    def list_models(self) -> list[dict[str, str]]:
        """[{"modelName", "modelUrl"}] of every registered model (default versions)."""
        return self._call("GET", "/models", limit=1000)["models"]

    def describe(self, name: str, version: str | None = None, customized: bool = False) -> list:
        """One entry per version ("all"), or of `version`, or of the default version."""
        path = f"/models/{name}" + (f"/{version}" if version else "")
        return self._call("GET", path, **({"customized": "true"} if customized else {}))

    def versions(self, name: str) -> list[str]:
        return [entry["modelVersion"] for entry in self.describe(name, "all")]

    def default_version(self, name: str) -> str:
        return self.describe(name)[0]["modelVersion"]

    def identity(self, archive: str, name: str | None = None) -> tuple[Path, str, str]:
        """(the archive's path in the store, the model name it registers as, its version)."""
        path = find_archive(self.server.model_store, archive)
        packed = manifest(path)
        return path, name or packed["modelName"], packed["modelVersion"]

    def register(self, archive: str, name: str | None = None, workers: int | None = None) -> str:
        """Register a .mar of the model store and wait until its workers are up.

        TorchServe lets minWorkers in the archive's model-config.yaml override
        `initial_workers`, so asked-for workers are set afterwards with a synchronous scale.
        """
        path, name, version = self.identity(archive, name)
        try:
            registered = self.versions(name)
        except ManagementError as err:
            if err.status != 404:
                raise
            registered = []
        if version in registered:
            raise ManagementError(
                f"{name} version {version} is already registered ({path.name} holds version "
                f"{version}): build another with `.venv/bin/python -m "
                f"scripts.packaging.build_archive {name} --version <new>`, or unregister "
                f"{version} first"
            )
        url = registration_url(self.server.model_store, path)
        params = {"url": url, "model_name": name, "synchronous": "true"}
        if workers is not None:
            params["initial_workers"] = workers
        self._call("POST", "/models", **params)
        started = running = self.running_workers(name, version)
        if workers is not None and running != workers:
            self.scale(name, workers, workers, version)
            running = self.running_workers(name, version)
        registered = f"{name} version {version} registered with {running} worker(s)"
        if running == started:
            return registered
        # TorchServe's own status names the `started` workers: say both, the end state first
        return f"{registered} (model-config.yaml started {started}, scaled to {running})"

    def running_workers(self, name: str, version: str) -> int:
        return len(self.describe(name, version)[0]["workers"])

    def scale(self, name: str, min_workers: int, max_workers: int, version: str | None = None):
        path = f"/models/{name}" + (f"/{version}" if version else "")
        params = {"min_worker": min_workers, "max_worker": max_workers, "synchronous": "true"}
        return self._call("PUT", path, **params)["status"]

    def set_default(self, name: str, version: str) -> str:
        """Make `version` the default and record its archive, so that a restart serves it."""
        status = self._call("PUT", f"/models/{name}/{version}/set-default")["status"]
        archive = self.describe(name, version)[0]["modelUrl"]
        self.server.record_default(name, archive)
        return status

    def rotate_keys(self, apis: Sequence[str] = APIS) -> list[str]:
        """New inference and/or management keys now (the renewer does it on its own)."""
        done = []
        for api in apis:
            try:
                keys = renew(self.server.key_file, self.server.url("management"), api)
            except (RenewError, KeyFileError) as err:
                raise ManagementError(str(err)) from None
            done.append(f"new {api} key in {self.server.key_file.path}, "
                        f"expires {keys.expires[api]:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
        return done

    def unregister(self, name: str, version: str | None = None, force: bool = False) -> str:
        """Remove a version (None: the default one); the default or last one only with `force`,
        since /predictions/<name> would stop answering or answer from another version."""
        if not force:
            self.refuse_serving_version(name, version)
        path = f"/models/{name}" + (f"/{version}" if version else "")
        return self._call("DELETE", path)["status"]

    def refuse_serving_version(self, name: str, version: str | None) -> None:
        """ManagementError if `version` of `name` is its default or its last version."""
        default, versions = self.default_version(name), self.versions(name)
        version = version or default
        if version not in versions:
            return  # TorchServe answers that one with its own 404
        if len(versions) == 1:
            why = f"{name} {version} is its only version: /predictions/{name} would answer 404"
        elif version == default:
            why = (f"{name} {version} is the default, which /predictions/{name} answers from: "
                   "set-default another version first")  # fmt: skip
        else:
            return
        raise ManagementError(f"refused: {why}; pass --force to remove it anyway")


def summary(entry: dict[str, Any]) -> str:
    """A describe entry as a few readable lines."""
    workers = ", ".join(f"{w['id']} {w['status']} pid {w.get('pid')}" for w in entry["workers"])
    lines = [
        f"{entry['modelName']} version {entry['modelVersion']} ({entry['modelUrl']})",
        f"  workers {entry['minWorkers']}-{entry['maxWorkers']}: {workers or 'none'}",
        f"  batchSize {entry['batchSize']}, maxBatchDelay {entry['maxBatchDelay']} ms, "
        f"responseTimeout {entry.get('responseTimeout')} s",
    ]
    custom = entry.get("customizedMetadata")
    if isinstance(custom, str):  # TorchServe passes it through as a string when not JSON
        custom = json.loads(custom)
    if custom and "components" in custom:
        lines += composed(custom)
    elif custom:
        lines.append(f"  {trained(custom)}")
    return "\n".join(lines)


def trained(custom: dict[str, Any]) -> str:
    """One trained model's metadata: when, on what, how accurate on the test file."""
    return (f"trained {custom.get('created_at')}, labels {custom.get('labels')}, "
            f"test accuracy {custom.get('test_accuracy')}, "
            f"train data sha256 {str(custom.get('train_file_sha256'))[:12]}")  # fmt: skip


def composed(custom: dict[str, Any]) -> list[str]:
    """A composed model (the cascade) was never trained as one and has no single accuracy
    in its metadata: its settings, where its figures are, and each component's own line."""
    settings = ", ".join(f"{key} {custom[key]}" for key in ("threshold", "bert_weight")
                         if key in custom)  # fmt: skip
    lines = [f"  {custom.get('description', 'composed model')}: {settings or 'no settings'}; "
             "no single test accuracy (its figures: docs/models/cascade.md)"]  # fmt: skip
    lines += [f"    {name}: {trained(part)}" for name, part in custom["components"].items()]
    return lines


def register(
    management: Management, archive: str, name: str | None, workers: int | None, default: bool
) -> None:
    """`manage register`: inside a registration window (the model API on for this command only,
    unless the server runs with it on); with the API off, only as the new default, since
    turning it off again is a restart, which serves the defaults only."""
    if not default and not model_api_enabled(management.server):
        raise ManagementError(
            "the model API is off on this TorchServe (least privilege), and turning it on and off "
            "again is a restart that keeps only the default versions: pass --set-default to "
            "register this archive as the default, or `make stop && make serve MODEL_API=on` "
            "to keep versions side by side"
        )
    management.identity(archive, name)  # a missing or foreign archive: refused before any restart
    with registration_window(management.server) as server:
        live = Management(server, management.timeout)
        print(live.register(archive, name, workers))
        if default:
            _, name, version = live.identity(archive, name)
            print(live.set_default(name, version))


def run(management: Management, args: argparse.Namespace) -> None:
    if args.command == "list":
        for model in management.list_models():
            name = model["modelName"]
            print(
                f"{name}\tdefault {management.default_version(name)}\tversions "
                f"{', '.join(management.versions(name))}"
            )
    elif args.command == "describe":
        versions = management.versions(args.model) if args.version == "all" else [args.version]
        # TorchServe asks the handler for its metadata only when one version is named.
        entries = [management.describe(args.model, v, customized=True)[0] for v in versions]
        if args.json:
            print(json.dumps(entries, indent=2, ensure_ascii=False))
        else:
            default = management.default_version(args.model)
            for entry in entries:
                flag = " (default)" if entry["modelVersion"] == default else ""
                print(summary(entry).replace("\n", f"{flag}\n", 1))
    elif args.command == "register":
        register(management, args.archive, args.name, args.workers, args.set_default)
    elif args.command == "scale":
        print(management.scale(args.model, args.min, args.max, args.version))
    elif args.command == "set-default":
        print(management.set_default(args.model, args.version))
    elif args.command == "unregister":
        print(management.unregister(args.model, args.version, args.force))
    elif args.command == "rotate-keys":
        print("\n".join(management.rotate_keys(args.keys or APIS)))


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    main_parser.add_argument(
        "--run-dir",
        type=Path,
        default=DEFAULT_RUN_DIR,
        help="where TorchServe was started (key file, config); default run/",
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="models, default and registered versions")
    describe = commands.add_parser("describe", help="workers, batching, training metadata")
    describe.add_argument("model")
    describe.add_argument("version", nargs="?", default="all")
    describe.add_argument("--json", action="store_true", help="TorchServe's answer as is")
    register = commands.add_parser("register", help="a .mar from the model store")
    register.add_argument(
        "archive", help="file name in the model store (e.g. sentiment_fast_v2.0.mar, "
        "'.mar' optional) or a path to a file inside it"
    )
    register.add_argument("--name", help="model name (default: the archive's)")
    register.add_argument(
        "--workers", type=int, help="workers of the new version (default: model-config.yaml's)"
    )
    register.add_argument(
        "--set-default", action="store_true", help="make it the default too (needed while the "
        "model API is off: the command turns it on and off again by restarting TorchServe)"
    )
    scale = commands.add_parser("scale", help="set min/max workers and wait")
    scale.add_argument("model")
    scale.add_argument("--min", type=int, required=True)
    scale.add_argument("--max", type=int, required=True)
    scale.add_argument("--version")
    default = commands.add_parser("set-default", help="serve this version on /predictions/<m>")
    default.add_argument("model")
    default.add_argument("version")
    unregister = commands.add_parser("unregister", help="remove a version (or the model)")
    unregister.add_argument("model")
    unregister.add_argument("version", nargs="?", help="default: the default version")
    unregister.add_argument(
        "--force", action="store_true", help="also the default or the last version"
    )
    rotate = commands.add_parser(
        "rotate-keys", help="new inference/management keys now; the old ones stop working"
    )
    rotate.add_argument("keys", nargs="*", metavar="|".join(APIS), help="default: both")
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if set(getattr(args, "keys", None) or ()) - set(APIS):
        parser().error(f"rotate-keys takes {' and/or '.join(APIS)}")
    try:
        run(Management(TorchServe.attach(args.run_dir)), args)
    except (ManagementError, ModelApiError, ServerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
