"""TorchServe's key file, the one source of truth for its keys, and the renewer that keeps them.

TorchServe 0.12 writes `key_file.json` into the directory it starts in:

    {"management": {"key": ..., "expiration time": "2026-11-24T19:18:00.123Z"},
     "inference":  {"key": ..., "expiration time": ...},
     "API":        {"key": ...}}

The inference and management keys expire after `token_expiration_min`; the API key never
expires but changes at every start.  Only the API key renews the others:
`POST /token?type=inference|management` on the management port makes the old key invalid at
once and rewrites the file in place (not atomically: a reader can catch it half written).  So
every reader here re-reads the file when it changed or when TorchServe refused its key, and
retries once; the renewer (`watch`) renews each key when half its lifetime is left.

Standard library only (the image's health check imports it); the command line is
sentiment_client/renewer.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

KEY_FILE_NAME = "key_file.json"
APIS = ("inference", "management")
KEY_ERROR = "InvalidKeyException"  # TorchServe's error type for a wrong, expired or missing key
CHECKOUT = Path(__file__).resolve().parent.parent


class KeyFileError(RuntimeError):
    """The key file exists but cannot be used, or a key was refused and the file cannot help."""


class RenewError(RuntimeError):
    """TorchServe did not renew a key (not running, wrong API key, auth off)."""


def default_key_files() -> list[Path]:
    """Where a client looks without --key-file: ./run (where `make serve` starts TorchServe),
    then the run/ of the checkout this package lives in, so commands work from anywhere."""
    candidates = [Path.cwd() / "run" / KEY_FILE_NAME, CHECKOUT / "run" / KEY_FILE_NAME]
    return list(dict.fromkeys(path.resolve() for path in candidates))


def find_key_file(given: str | os.PathLike | None = None) -> Path:
    """`given`, else the first default that exists, else the first default (to name it)."""
    if given:
        return Path(given).expanduser().resolve()
    candidates = default_key_files()
    return next((path for path in candidates if path.exists()), candidates[0])


def parse_instant(text: str) -> datetime:
    """Java's Instant.toString() ('...T19:18:00.123456789Z') as an aware UTC datetime."""
    stamp, _, fraction = text.rstrip("Z").partition(".")
    parsed = datetime.fromisoformat(stamp).replace(tzinfo=timezone.utc)
    micros = int((fraction + "000000")[:6]) if fraction else 0
    return parsed.replace(microsecond=micros)


def is_key_error(status: int, body: bytes | str) -> bool:
    """True if TorchServe refused the key (it answers 400, some versions 401)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return status in (400, 401) and KEY_ERROR in text[:500]


@dataclass(frozen=True)
class Keys:
    """One reading of the key file: the keys, their expiry, and when the file was written."""

    keys: dict[str, str] = field(default_factory=dict)  # "inference", "management", "API"
    expires: dict[str, datetime] = field(default_factory=dict)
    written: float = 0.0  # the file's mtime (epoch seconds)

    def get(self, api: str) -> str | None:
        return self.keys.get(api)

    def lifetime(self) -> float | None:
        """token_expiration_min in seconds, as the file shows it: the key issued when the file
        was last written expires one lifetime later (the other may be older, never newer)."""
        spans = [expiry.timestamp() - self.written for expiry in self.expires.values()]
        return max(spans) if spans else None


class KeyFile:
    """A key file read again whenever it changes on disk; safe to share between threads."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = find_key_file(path)
        self.explicit = path is not None
        self._lock = threading.Lock()
        self._signature: tuple | None = None
        self._keys = Keys()

    def _stat(self) -> tuple | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise KeyFileError(f"cannot read the TorchServe key file {self.path}: {err}") from None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _load(self, signature: tuple) -> Keys:
        """Parse the file; a half-written file (TorchServe rewrites it in place) is read again."""
        for _ in range(20):
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                keys = {api: str(entry["key"]) for api, entry in data.items()}
                expires = {
                    api: parse_instant(entry["expiration time"])
                    for api, entry in data.items()
                    if "expiration time" in entry
                }
                return Keys(keys, expires, signature[1] / 1e9)
            except FileNotFoundError:
                return Keys()
            except (ValueError, KeyError, TypeError, AttributeError):
                time.sleep(0.05)  # caught between truncate and write
                signature = self._stat() or signature
            except OSError as err:
                raise KeyFileError(
                    f"cannot read the TorchServe key file {self.path}: {err}"
                ) from None
        raise KeyFileError(f"{self.path} is not a TorchServe key file (no keys in it)")

    def current(self, force: bool = False) -> Keys:
        """The keys as the file holds them now: one stat per call, parsed when it changed (or
        when `force`d: two writes within one mtime tick can leave the stat unchanged)."""
        with self._lock:
            signature = self._stat()
            if signature is None:
                self._signature, self._keys = None, Keys()
            elif force or signature != self._signature:
                self._keys = self._load(signature)
                self._signature = signature
            return self._keys

    def key(self, api: str) -> str | None:
        """The `api` key, or None without a key file (token authorization off)."""
        return self.current().get(api)

    def refreshed(self, api: str, rejected: str | None, wait: float = 2.0) -> str | None:
        """After TorchServe refused `rejected`: the key that replaced it, else None.

        TorchServe switches to the new key a moment before it writes the file, so an
        unchanged file is watched for up to `wait` seconds before giving up.
        """
        deadline = time.monotonic() + wait
        while True:
            fresh = self.current(force=True).get(api)
            if fresh is not None and fresh != rejected:
                return fresh
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def why_refused(self, api: str) -> str:
        """What to tell a user whose `api` key TorchServe refused, and the file cannot mend."""
        keys = self.current()
        if not keys.keys:
            looked = [self.path] if self.explicit else default_key_files()
            return (
                f"no TorchServe key file at {' or '.join(map(str, looked))}; TorchServe writes "
                f"{KEY_FILE_NAME} into the directory it starts in (run/ for `make serve`): "
                "point at it with --key-file or $SENTIMENT_KEY_FILE"
            )
        expiry = keys.expires.get(api)
        if expiry is not None and expiry <= datetime.now(timezone.utc):
            return (
                f"the {api} key in {self.path} expired at {expiry:%Y-%m-%d %H:%M:%S} UTC and "
                "was not renewed: is the key renewer running? (`make serve` starts it; "
                "renew now with `.venv/bin/python -m scripts.ops.manage rotate-keys`)"
            )
        return (
            f"the {api} key in {self.path} is not the running TorchServe's: was it started "
            "from another directory, or is this the wrong key file?"
        )


# --------------------------------------------------------------------------- renewal


def renew(key_file: KeyFile, management_url: str, api: str, timeout: float = 10) -> Keys:
    """Ask TorchServe for a new `api` key with the file's API key; the file it rewrote."""
    before = key_file.current()
    api_key = before.get("API")
    if api_key is None:
        raise RenewError(f"no API key in {key_file.path} (TorchServe not started, or auth off)")
    request = urllib.request.Request(
        f"{management_url.rstrip('/')}/token?type={api}",
        method="POST",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as err:
        raise RenewError(f"renewing the {api} key: {management_url} answered {err.code} "
                         f"{err.read()[:200].decode('utf-8', 'replace')}") from None  # fmt: skip
    except OSError as err:
        raise RenewError(f"renewing the {api} key: cannot reach {management_url} ({err})") from None
    if key_file.refreshed(api, before.get(api), wait=5.0) is None:
        raise RenewError(f"TorchServe answered, but {key_file.path} holds no new {api} key")
    return key_file.current()


def renew_at(keys: Keys, api: str, lifetime: float) -> float:
    """Epoch second at which to renew `api`: when half its lifetime is left.

    Half rather than "a minute before": it leaves hours for a renewer that was down at 24 h
    keys, and still works for 15-second test keys.
    """
    return keys.expires[api].timestamp() - lifetime / 2


@dataclass
class Renewer:
    """Keeps both keys of one TorchServe valid; survives TorchServe restarts and outages."""

    key_file: KeyFile
    management_url: str
    poll: float = 30.0  # longest sleep: how soon a restart's new keys are noticed
    log: Callable[[str], None] = print
    first_poll: float = 1.0  # sleep while there is no key file: TorchServe is starting
    renewed: int = 0
    _last_error: str = ""

    def step(self) -> float:
        """Renew what is due; seconds until the next thing is due (or the next poll)."""
        keys = self.key_file.current()
        if not keys.expires:  # no key file yet (starting), or token authorization is off
            # not `poll`: the first keys may live less than a poll (measured: 15 s test keys
            # expired before a renewer started beside TorchServe looked again)
            return min(self.poll, self.first_poll)
        for api in APIS:
            if api in keys.expires and renew_at(keys, api, keys.lifetime() or 60) <= time.time():
                keys = renew(self.key_file, self.management_url, api)
                self.renewed += 1
                self.log(f"renewed the {api} key; it expires {keys.expires[api]:%Y-%m-%d %H:%M:%S} "
                         f"UTC (lifetime {(keys.lifetime() or 0) / 60:.1f} min)")  # fmt: skip
        due = min(renew_at(keys, api, keys.lifetime() or 60) for api in keys.expires)
        return max(0.5, min(self.poll, due - time.time()))

    def run(self, stop: threading.Event) -> None:
        """Renew until `stop` is set; failures are logged once each and retried."""
        self.log(f"watching {self.key_file.path} (TorchServe management {self.management_url})")
        while not stop.is_set():
            try:
                wait = self.step()
                self._last_error = ""
            except (RenewError, KeyFileError) as err:
                if str(err) != self._last_error:
                    self.log(f"cannot renew yet: {err}")
                self._last_error, wait = str(err), min(self.poll, 5.0)
            stop.wait(wait)
