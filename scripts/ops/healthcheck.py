"""Container health/readiness check: /ping is Healthy and, if asked, the models have READY workers.

Token authorization covers /ping too (400 InvalidKeyException without the key), so a plain
`curl /ping` calls a healthy server unhealthy; the keys are read from TorchServe's key file
(none there = authorization off), again after a refusal (the renewer may just have renewed
them). /ping turns Healthy before the models can answer, so readiness (`--models`) also asks
the management API for a READY worker of each model.  Images run this file on its own,
outside the `scripts` package, with sentiment_client/ beside it (standard library only).

    python -m scripts.ops.healthcheck --key-file run/key_file.json --models sentiment_fast
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from sentiment_client.keys import KeyFile, KeyFileError, is_key_error

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_MANAGEMENT_URL = "http://127.0.0.1:8081"
DEFAULT_KEY_FILE = "key_file.json"  # TorchServe writes it into the directory it starts in


class CheckFailed(RuntimeError):
    """Not healthy or not ready; the message says which endpoint and why."""


def get_json(url: str, keys: KeyFile, api: str, timeout: float) -> Any:
    """GET `url` with the `api` key; once more with the new key if TorchServe refused it."""
    for attempt in (1, 2):
        try:
            key = keys.key(api)
        except KeyFileError as err:
            raise CheckFailed(str(err)) from None
        request = urllib.request.Request(url)
        if key:
            request.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            if not is_key_error(err.code, err.read()):
                raise CheckFailed(f"{url} answered {err.code}") from None
            if attempt == 2 or keys.refreshed(api, key) is None:
                raise CheckFailed(f"{url} refused the key: {keys.why_refused(api)}") from None
        except (OSError, ValueError) as err:
            raise CheckFailed(f"{url} unreachable or unreadable ({err})") from None


def check(
    url: str,
    key_file: Path,
    models: Sequence[str] = (),
    management_url: str = DEFAULT_MANAGEMENT_URL,
    timeout: float = 5,
) -> str:
    """A one-line summary if healthy (and every model READY); CheckFailed otherwise."""
    keys = KeyFile(key_file)
    status = get_json(f"{url}/ping", keys, "inference", timeout).get("status")
    if status != "Healthy":
        raise CheckFailed(f"{url}/ping: {status}")
    for model in models:
        described = get_json(f"{management_url}/models/{model}", keys, "management", timeout)
        try:
            workers = [worker.get("status") for worker in described[0].get("workers", [])]
        except (LookupError, AttributeError, TypeError):
            raise CheckFailed(f"{model}: unexpected description {described!r:.200}") from None
        if "READY" not in workers:
            raise CheckFailed(f"{model}: no READY worker ({workers or 'none'})")
    return f"{url}: Healthy" + (f"; READY: {', '.join(models)}" if models else "")


def main(argv: Sequence[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=env("TS_INFERENCE_URL", DEFAULT_URL))
    parser.add_argument(
        "--management-url", default=env("TS_MANAGEMENT_URL", DEFAULT_MANAGEMENT_URL)
    )
    parser.add_argument("--key-file", type=Path, default=Path(env("TS_KEY_FILE", DEFAULT_KEY_FILE)))
    parser.add_argument("--models", nargs="*", default=env("TS_READY_MODELS", "").split())
    parser.add_argument("--timeout", type=float, default=5)
    args = parser.parse_args(argv)
    try:
        print(check(args.url, args.key_file, args.models, args.management_url, args.timeout))
    except CheckFailed as err:
        print(f"unhealthy: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
