"""Calls to one instance's HTTP APIs with the keys TorchServe wrote into its run directory.

Keys change while a server runs (the key renewer, `manage rotate-keys`, a restart): a call
refused for its key is sent once more with the key that replaced it.
"""

from __future__ import annotations

from pathlib import Path

import requests

from scripts.ops.ts_config import Ports
from sentiment_client.keys import KeyFile, is_key_error


class KeyedApi:
    """The key file of one instance and HTTP calls made with its keys."""

    def __init__(self, key_file: Path, ports: Ports) -> None:
        self.key_file = KeyFile(key_file)
        self.ports = ports

    def keys(self) -> dict[str, str]:
        """{"inference": key, "management": key, "API": key}, {} before TorchServe wrote them."""
        return dict(self.key_file.current().keys)

    def auth(self, api: str) -> dict[str, str]:
        """The Authorization header for `api` ("inference" or "management"); {} with auth off."""
        return bearer(self.key_file.key(api))

    def request(
        self, api: str, method: str, path: str, session: requests.Session | None = None, **kwargs
    ) -> requests.Response:
        """An HTTP call to `api` with its key, sent once more with the renewed key if TorchServe
        refused the one read (a renewal or restart between reading the file and the call)."""
        headers = kwargs.pop("headers", {})
        http = session or requests
        url = self.ports.url(api, path)
        key = self.key_file.key(api)
        response = http.request(method, url, headers={**headers, **bearer(key)}, **kwargs)
        if not is_key_error(response.status_code, response.content):
            return response
        renewed = self.key_file.refreshed(api, key)
        if renewed is None:
            return response
        return http.request(method, url, headers={**headers, **bearer(renewed)}, **kwargs)


def bearer(key: str | None) -> dict[str, str]:
    """The Authorization header of `key`; {} for no key (token authorization off)."""
    return {"Authorization": f"Bearer {key}"} if key else {}
