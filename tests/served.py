"""Requests to a served model that several integration modules send: one place, so that no
test module imports another (which would also collect its tests twice under another name)."""

from __future__ import annotations

import requests

from scripts.ops.server import TorchServe


def predict(
    server: TorchServe, body: bytes, content_type: str | None, model: str = "sentiment_fast"
) -> requests.Response:
    """POST `body` to /predictions/<model> with the inference key, as a client sends it."""
    headers = server.auth("inference")
    if content_type:
        headers["Content-Type"] = content_type
    url = server.url("inference", f"/predictions/{model}")
    return requests.post(url, data=body, headers=headers, timeout=30)


def describe(server: TorchServe, model: str) -> dict:
    """The management API's description of `model`'s default version (workers, queue, batching)."""
    response = server.request("management", "GET", f"/models/{model}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()[0]
