"""SentimentClient: batches, the key file, safe retries and one-line errors.

Retries are limited to what cannot double-count or hide a caller's mistake:
a connection that was never made (nothing was sent), and TorchServe's 503/507
(no worker free, queue full: the request was not run).  A 4xx is never
retried, except once after a key mismatch when TorchServe has written new
keys since the client read them (a renewal or a restart; sentiment_client.keys).
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from sentiment_client.keys import KEY_ERROR, KeyFile, KeyFileError

DEFAULT_URL = "http://127.0.0.1:8080"
# The registry's short forms (scripts/registry.py ALIASES; a unit test keeps them equal): this
# package installs on its own, without the checkout.  cascade: sentiment_fast for every text,
# sentiment_bert too where fast is unsure.
MODEL_ALIASES = {"fast": "sentiment_fast", "bert": "sentiment_bert", "cascade": "sentiment"}
# handlers.contract.MAX_TEXTS, copied: this package installs without the checkout (and the
# handlers travel in the archives without it); tests/unit/test_layout.py keeps them equal.
MAX_TEXTS_PER_REQUEST = 256
RETRY_STATUSES = (503, 507)
AUTH_ERRORS = (KEY_ERROR,)  # TorchServe answers a wrong key with 400 or 401


class ClientError(RuntimeError):
    """Anything the caller should see as one line; `exit_code` is the CLI's."""

    exit_code = 3


class ConfigError(ClientError):
    """The caller's setup is wrong (a key file that cannot be read, bad arguments)."""

    exit_code = 2


class ServerUnavailable(ClientError):
    """TorchServe could not be reached, timed out, or kept failing (5xx) after retries."""

    exit_code = 3


class RequestRejected(ClientError):
    """TorchServe refused the request: unknown model, bad key, or input it will not take."""

    exit_code = 4

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"TorchServe answered {status} {error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.error_message = message

    @property
    def is_input_error(self) -> bool:
        """The texts were refused (the handler's 400), not the key or the model."""
        return self.status in (400, 413) and self.error_type not in AUTH_ERRORS

    def as_line(self, index: int) -> dict[str, Any]:
        """What predict_many yields in place of the refused text at `index` of its texts.

        The text was sent alone, so TorchServe named it "text"[0]; the message names its
        place among the caller's texts instead, and `index` gives it to programs.
        """
        message = self.error_message.replace('"text"[0]', f'"text"[{index}]', 1)
        return {"error": {"code": self.status, "type": self.error_type, "message": message,
                          "index": index}}  # fmt: skip


def model_name(model: str) -> str:
    """'fast' / 'bert' / 'cascade' -> the registered name; any other name as given."""
    return MODEL_ALIASES.get(model, model)


def strongest(tokens: Sequence[dict[str, Any]], k: int) -> tuple[list[dict], list[dict]]:
    """An explanation's k strongest tokens towards positive, and towards negative."""
    ranked = sorted(tokens, key=lambda t: t["score"], reverse=True)
    positive = [t for t in ranked[:k] if t["score"] > 0]
    negative = [t for t in ranked[::-1][:k] if t["score"] < 0]
    return positive, negative


def _never_sent(err: requests.RequestException) -> bool:
    """True when the connection itself failed, so the server cannot have seen the request."""
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = err.args[0] if err.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """(type, message) from TorchServe's JSON error body, or the raw text."""
    try:
        body = response.json()
        return str(body.get("type", response.reason)), str(body.get("message", body))
    except (ValueError, AttributeError):
        return response.reason or "Error", response.text.strip()[:300] or "(empty body)"


class SentimentClient:
    """Predictions and explanations from the project's TorchServe inference API."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        run_dir: str | os.PathLike | None = None,
        key: str | None = None,
        key_file: str | os.PathLike | None = None,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.25,
    ) -> None:
        """`key`, else the inference key in `key_file`, else in `<run_dir>/key_file.json`, else
        in run/key_file.json (sentiment_client.keys.default_key_files), re-read when it changes."""
        self.base_url = base_url.rstrip("/")
        if key_file is None and run_dir is not None:
            key_file = Path(run_dir) / "key_file.json"
        self.keys = KeyFile(key_file)
        self.key_file = self.keys.path
        self.fixed_key = key
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._local = threading.local()

    # ------------------------------------------------------------------ HTTP

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _key(self) -> str | None:
        try:
            return self.fixed_key or self.keys.key("inference")
        except KeyFileError as err:
            raise ConfigError(str(err)) from None

    def _post(self, path: str, texts: Sequence[str]) -> list[dict[str, Any]]:
        url = f"{self.base_url}{path}"
        body = json.dumps({"text": list(texts)}, ensure_ascii=False).encode("utf-8")
        reloaded, attempt = False, -1
        while True:  # `retries` retries of what was not run, plus one after a renewed key
            attempt += 1
            headers = {"Content-Type": "application/json"}
            if key := self._key():
                headers["Authorization"] = f"Bearer {key}"
            try:
                response = self._session().post(url, data=body, headers=headers,
                                                 timeout=self.timeout)  # fmt: skip
            except requests.RequestException as err:
                if _never_sent(err) and attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise ServerUnavailable(f"cannot reach TorchServe at {self.base_url}: "
                                        f"{type(err).__name__}") from None  # fmt: skip
            if response.status_code == 200:
                return response.json()
            error_type, message = _error_of(response)
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
                continue
            if error_type in AUTH_ERRORS and not (reloaded or self.fixed_key):
                reloaded = True  # renewed or restarted: retry once with the key that replaced it
                if self.keys.refreshed("inference", key) is not None:
                    attempt -= 1
                    continue
            if error_type in AUTH_ERRORS and not self.fixed_key:
                if not self.keys.current().keys:
                    raise ConfigError(self.keys.why_refused("inference"))
                message += f" ({self.keys.why_refused('inference')})"
            if response.status_code >= 500:
                raise ServerUnavailable(f"TorchServe answered {response.status_code} "
                                        f"{error_type}: {message}")  # fmt: skip
            raise RequestRejected(response.status_code, error_type, message)

    # ------------------------------------------------------------------ API

    def predict(self, texts: Sequence[str], model: str = "fast") -> list[dict[str, Any]]:
        """One prediction per text (at most MAX_TEXTS_PER_REQUEST), in order."""
        return self._post(f"/predictions/{model_name(model)}", texts)

    def explain(self, texts: Sequence[str], model: str = "fast") -> list[dict[str, Any]]:
        """Prediction plus scored tokens per text (TorchServe's explanations API)."""
        return self._post(f"/explanations/{model_name(model)}", texts)

    def predict_many(
        self,
        texts: Sequence[str],
        model: str = "fast",
        batch_size: int = MAX_TEXTS_PER_REQUEST,
        concurrency: int = 4,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Predictions for any number of texts, in order; a refused text yields {"error": ...}
        with its position in `texts` (`index`, and "text"[index] in the message).

        Texts are grouped by length within windows of 16 batches (BERT pads a
        batch to its longest text), and `concurrency` requests are in flight so
        TorchServe can batch them.  A batch refused for its input (400) is
        re-sent text by text, so one bad line costs only its own answer.
        """
        if not 1 <= batch_size <= MAX_TEXTS_PER_REQUEST:
            raise ValueError(f"batch_size must be 1..{MAX_TEXTS_PER_REQUEST}")
        window = batch_size * 16
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            for offset in range(0, len(texts), window):
                chunk = texts[offset : offset + window]
                order = sorted(range(len(chunk)), key=lambda i: len(chunk[i]))
                groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
                futures = [
                    pool.submit(self._predict_batch, [chunk[i] for i in group],
                                [offset + i for i in group], model)  # fmt: skip
                    for group in groups
                ]
                answers: list[dict[str, Any]] = [{}] * len(chunk)
                for group, future in zip(groups, futures):
                    for i, answer in zip(group, future.result()):
                        answers[i] = answer
                    if progress:
                        progress(len(group))
                yield from answers

    def _predict_batch(
        self, texts: Sequence[str], positions: Sequence[int], model: str
    ) -> list[dict[str, Any]]:
        """One request for `texts` (at `positions` of predict_many's texts); refused, each alone."""
        try:
            return self.predict(texts, model)
        except RequestRejected as err:
            if not err.is_input_error:
                raise
            if len(texts) == 1:
                return [err.as_line(positions[0])]
        answers = []
        for text, position in zip(texts, positions):  # which text(s) were refused; answer the rest
            try:
                answers.extend(self.predict([text], model))
            except RequestRejected as err:
                if not err.is_input_error:
                    raise
                answers.append(err.as_line(position))
        return answers
