"""The model-registration API (POST/DELETE /models) is off unless a command needs it.

TorchServe reads `enable_model_api` once, at start: turning it on or off is a restart.  The
commands that register (`manage register`, `rollout`) open a window: a TorchServe started
without it is restarted with it on, the command runs, and it is restarted with it off again
(serving the recorded defaults, model_store/defaults.json); each step says so.  A TorchServe
started with it on (`make serve MODEL_API=on`: zero-downtime rollouts) is left as it is.

Only a TorchServe started by `scripts.ops.server up` (its key renewer's pid file is in the run
directory) can be restarted from here; a service manager's (systemd, a container) cannot.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

from scripts.ops.server import ServerError, TorchServe, read_properties

KEY = "enable_model_api"


class ModelApiError(RuntimeError):
    """The model API is off and cannot be turned on from here; the message says what to do."""


def model_api_properties(enabled: bool) -> dict[str, str]:
    """The override that starts a TorchServe with the model API on or off."""
    return {KEY: "true" if enabled else "false"}


def model_api_enabled(server: TorchServe) -> bool:
    """Whether the running instance was started with the model API (its rendered config)."""
    if not server.config_path.exists():
        return False
    return read_properties(server.config_path).get(KEY, "false").lower() == "true"


def restarted(server: TorchServe, enabled: bool, timeout: float = 900) -> TorchServe:
    """The same instance (run dir, ports, store, models, every rendered setting) stopped and
    started again with the model API on or off; it serves the recorded defaults."""
    carried = read_properties(server.config_path)
    carried.pop("load_models", None)  # rendered again from defaults.json
    carried.update(model_api_properties(enabled))
    again = replace(server, properties=carried)
    server.stop()
    again.start()
    again.wait_ready(timeout=timeout)
    return again


def ensure_restartable(server: TorchServe) -> None:
    """ModelApiError unless this module may restart `server` (started by `server up`)."""
    if server.pid() is None:
        raise ModelApiError(f"TorchServe is not running from {server.run_dir} (`make serve`)")
    if server.renewer_pid() is None:
        raise ModelApiError(
            f"the model API is off on the TorchServe of {server.run_dir}, and a service manager "
            "runs it (no key renewer of `make serve` beside it), so this command cannot restart "
            "it: stop the service and run `make serve MODEL_API=on` for the registration, or "
            "ship the new archive as the default (docs/deploy.md)"
        )


@contextmanager
def registration_window(
    server: TorchServe, log: Callable[[str], None] = print
) -> Iterator[TorchServe]:
    """Yield `server` with the model API on; turn it off again afterwards if it was off."""
    if model_api_enabled(server):
        log("[model API] on already (TorchServe was started with it): left on")
        yield server
        return
    ensure_restartable(server)
    log("[model API] off (least privilege): restarting TorchServe with it on for this command; "
        "its models answer again once READY")  # fmt: skip
    try:
        opened = restarted(server, True)
    except ServerError as err:
        raise ModelApiError(f"could not restart with the model API on: {err}") from None
    try:
        yield opened
    finally:
        log("[model API] turning it off again: restarting TorchServe (it serves the defaults)")
        restarted(opened, False)
        log("[model API] off")
