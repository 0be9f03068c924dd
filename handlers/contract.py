"""The request/response contract of every sentiment model, in one place.

A request body is raw UTF-8 text, JSON ``{"text": "..."}`` or JSON
``{"text": ["...", ...]}``.  A single text is answered with one prediction
object, a list with a list of them in input order.  The same body sent to
``/explanations/<model>`` is answered the same way with explanation objects:
the prediction plus the tokens (n-grams, word pieces) that drove it, with
signed scores and character spans a page can colour.  A KServe v1 body
``{"instances": ["..." or {"text": "..."}, ...]}`` is answered
``{"predictions": [...]}``, so KServe's TorchServe runtime needs no envelope
(TorchServe's own envelopes handle one request per batch and break batching).
Anything else is the caller's mistake: it gets a 400 with
``{"code", "type", "message"}`` for that request only, so the rest of its
TorchServe batch is still answered.  A request the model itself fails on gets a 500
in the same form, for that request only (the handler answers the batch's requests one
by one when the whole batch raises).  A composed model (the ``sentiment``
cascade) adds ``"models"`` to each answer: the models that decided that text.

Decoding and encoding here are pure functions of the request (no TorchServe
import), so they are unit-tested and property-tested without a server; the
handlers only add the model call in between (decode -> batch -> predict ->
unbatch -> encode).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from handlers.text import clean_text

LABELS = ("negative", "positive")
JSON_CONTENT_TYPE = "application/json"
SEND_HINT = (
    "send raw text with -H 'Content-Type: text/plain; charset=utf-8' "
    "or JSON {\"text\": ...} with -H 'Content-Type: application/json'"
)


# What checkpoints call their two classes (case-insensitive), as LABELS names.  LABEL_0 / 0
# are unnamed classes: taken as NSMC's 0 = negative, 1 = positive.
LABEL_SYNONYMS = {
    **dict.fromkeys(("negative", "neg", "0", "label_0", "부정"), "negative"),
    **dict.fromkeys(("positive", "pos", "1", "label_1", "긍정"), "positive"),
}
LABELS_FLAG = "--labels"  # scripts.packaging.build_archive: states each checkpoint index's label


class UnknownLabelsError(ValueError):
    """A checkpoint's label names say nothing certain about which column is which.

    Guessing served a (pos, neg) checkpoint inverted without a word, so its order
    must be stated instead, and the message says how.
    """

    def __init__(self, found: Sequence[str]) -> None:
        known = "/".join(sorted(set(LABEL_SYNONYMS)))
        super().__init__(
            f"cannot tell which label is which from the checkpoint's labels {list(found)} "
            f"(index 0, 1; names read: {known}); state them in index order with "
            f"`{LABELS_FLAG} negative,positive` (or `{LABELS_FLAG} positive,negative`)"
        )
        self.found = list(found)


def label_names(names: Sequence[Any]) -> list[str]:
    """Each column's name as one of LABELS, in column order; UnknownLabelsError if not both."""
    read = [LABEL_SYNONYMS.get(str(name).strip().lower()) for name in names]
    if sorted(label or "" for label in read) != sorted(LABELS):
        raise UnknownLabelsError([str(name) for name in names])
    return read


def checkpoint_labels(id2label: Mapping[Any, str]) -> list[str]:
    """A checkpoint config's id2label as LABELS names by column (keys may be "0" or 0)."""
    return label_names([id2label[key] for key in sorted(id2label, key=int)])


def columns_of(labels: Sequence[str]) -> list[int]:
    """Where each of LABELS sits in the logits of a model whose columns are `labels`."""
    return [list(labels).index(name) for name in LABELS]


def label_columns(id2label: Mapping[Any, str]) -> list[int]:
    """Where each of LABELS sits in a checkpoint's logits, whatever order it names them in."""
    return columns_of(checkpoint_labels(id2label))


#: texts per request: the `max_texts` of every archive's model-config.yaml, and the client's
#: batch size (sentiment_client.api keeps a copy, as it installs without the checkout; a unit
#: test keeps all of them equal to this one)
MAX_TEXTS = 256


@dataclass(frozen=True)
class Limits:
    """Per-request input limits; set in each archive's model-config.yaml (`handler:`)."""

    max_texts: int = MAX_TEXTS
    max_text_chars: int = 2000

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "Limits":
        config = config or {}
        return cls(
            max_texts=int(config.get("max_texts", cls.max_texts)),
            max_text_chars=int(config.get("max_text_chars", cls.max_text_chars)),
        )


class RequestError(ValueError):
    """A request the caller must fix; answered with `code` and a JSON body."""

    def __init__(self, error_type: str, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.error_type = error_type
        self.message = message

    def to_json(self) -> str:
        return json.dumps({"code": self.code, "type": self.error_type, "message": self.message})


class ModelError(RequestError):
    """The model raised on this request's texts: not the caller's to fix (500), but answered
    for this request alone, so its batch-mates still get their answers."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(
            "ModelError",
            f"the model failed on this request ({type(error).__name__}); the other requests "
            "batched with it were answered; the worker's log has the details",
            code=500,
        )


@dataclass
class ParsedRequest:
    """The cleaned texts of one request and whether the caller sent a list."""

    texts: list[str]
    is_list: bool
    kserve: bool = False  # a KServe v1 body: answered {"predictions": [...]}


@dataclass(frozen=True)
class TokenScore:
    """One token's (or n-gram's) signed push towards "positive" (> 0) or "negative" (< 0).

    `spans` are its [start, end) character offsets in the cleaned text the
    explanation returns, so a page can colour the text itself.
    """

    token: str
    score: float
    spans: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Explanation:
    """Why a model decided: `method` names how scores were computed (and so their unit).

    `base` is the log-odds of "positive" the scores start from where the method
    has a sum rule (base + all scores = the text's log-odds), else None.
    """

    method: str
    tokens: Sequence[TokenScore]
    base: float | None = None


@dataclass
class Batch:
    """One TorchServe batch: each request parsed or rejected, texts flattened for one model call.

    `explanations` is aligned with `texts`: None where the request only asked for a prediction.
    `models`, when a composed model fills it, is aligned with `texts` too: who decided each.
    """

    requests: list[ParsedRequest | RequestError]
    texts: list[str] = field(default_factory=list)
    probabilities: Sequence[Sequence[float]] = ()
    explanations: Sequence[Explanation | None] = ()
    models: Sequence[Sequence[str]] = ()

    @property
    def rejected(self) -> list[RequestError]:
        return [r for r in self.requests if isinstance(r, RequestError)]


@dataclass(frozen=True)
class Response:
    status: int
    body: str


# --------------------------------------------------------------------------- decode


FORM_CONTENT_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _body_of(request: Mapping[str, Any], content_type: str | None) -> Any:
    """TorchServe puts the body under "body" (or "data"); form fields become top-level keys.

    A review posted form-encoded (plain `curl -d`) arrives with no usable
    field at all, so it is refused with the header to send instead of guessed at.
    """
    for key in ("body", "data"):
        if key in request:
            return request[key]
    if request or (content_type or "").lower().startswith(FORM_CONTENT_TYPES):
        raise RequestError(
            "FormEncodedBody",
            "the body arrived form-encoded (what plain `curl -d` sends), so its text was lost; "
            + SEND_HINT,
        )
    raise RequestError("EmptyBody", "the request body is empty; " + SEND_HINT)


def _decode_bytes(raw: bytes | bytearray) -> str:
    try:  # utf-8-sig: a leading byte-order mark (Notepad, PowerShell) is not part of the text
        return bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RequestError(
            "InvalidUTF8", f"the body is not valid UTF-8 (byte {err.start}: {err.reason})"
        ) from None


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise RequestError("InvalidJSON", "the JSON body is nested too deeply") from None
    except json.JSONDecodeError as err:
        raise RequestError("InvalidJSON", f"the body is not valid JSON: {err}") from None
    except ValueError:  # Python refuses integers of over 4,300 digits
        raise RequestError("InvalidJSON", "a number in the JSON body has too many digits") from None


def _payload(body: Any, content_type: str | None) -> tuple[Any, bool]:
    """The body as TorchServe parsed it, or as we parse it where TorchServe gave up; is it JSON?

    TorchServe hands over bytes when its own JSON or UTF-8 decoding failed, or
    for content types it does not decode (octet-stream, JSON with a charset).
    A str is raw text, unless the request declared JSON: then it was a JSON
    string (`"..."`), which is not an object either.
    """
    declared_json = (content_type or "").split(";")[0].strip().lower() == JSON_CONTENT_TYPE
    if not isinstance(body, (bytes, bytearray)):
        return body, declared_json or not isinstance(body, str)
    text = _decode_bytes(body)
    if declared_json:
        return _parse_json(text), True
    if text.lstrip().startswith("{"):
        try:  # JSON sent without its content type (e.g. curl --data-binary)
            return _parse_json(text), True
        except RequestError:
            pass  # a review that happens to start with "{"
    return text, False


def _check_text(text: Any, limits: Limits, where: str) -> str:
    if not isinstance(text, str):
        raise RequestError("InvalidText", f"{where} must be a string, got {_json_type(text)}")
    if len(text) > limits.max_text_chars:
        raise RequestError(
            "TextTooLong",
            f"{where} has {len(text)} characters; the limit is {limits.max_text_chars}",
        )
    cleaned = clean_text(text)
    if not cleaned:
        raise RequestError("EmptyText", f"{where} is empty or only whitespace/control characters")
    return cleaned


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             type(None): "null"}  # fmt: skip
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def decode_request(
    request: Mapping[str, Any], limits: Limits, content_type: str | None = None
) -> ParsedRequest:
    """One TorchServe request dict -> its cleaned texts, or RequestError saying what is wrong."""
    payload, is_json = _payload(_body_of(request, content_type), content_type)
    if isinstance(payload, str) and not is_json:
        if not payload:
            raise RequestError("EmptyBody", "the request body is empty; " + SEND_HINT)
        return ParsedRequest([_check_text(payload, limits, "the text")], is_list=False)
    if not isinstance(payload, dict):
        raise RequestError(
            "InvalidBody",
            f'the JSON body must be an object like {{"text": ...}}, got {_json_type(payload)}',
        )
    if "instances" in payload and "text" not in payload:
        return _decode_instances(payload["instances"], limits)
    if "text" not in payload:
        raise RequestError("MissingText", 'the JSON object has no "text" field')
    text = payload["text"]
    if not isinstance(text, list):
        return ParsedRequest([_check_text(text, limits, '"text"')], is_list=False)
    if not text:
        raise RequestError("EmptyList", '"text" is an empty list')
    if len(text) > limits.max_texts:
        raise RequestError(
            "TooManyTexts", f'"text" has {len(text)} items; the limit is {limits.max_texts}'
        )
    return ParsedRequest(
        [_check_text(item, limits, f'"text"[{i}]') for i, item in enumerate(text)], is_list=True
    )


def _decode_instances(instances: Any, limits: Limits) -> ParsedRequest:
    """KServe v1 ``"instances"``: each one a text or ``{"text": text}``; one bad one fails all."""
    if not isinstance(instances, list):
        raise RequestError(
            "InvalidBody", f'"instances" must be a list, got {_json_type(instances)}'
        )
    if not instances:
        raise RequestError("EmptyList", '"instances" is an empty list')
    if len(instances) > limits.max_texts:
        raise RequestError(
            "TooManyTexts",
            f'"instances" has {len(instances)} items; the limit is {limits.max_texts}',
        )
    texts = []
    for i, instance in enumerate(instances):
        where = f'"instances"[{i}]'
        if isinstance(instance, dict):
            if "text" not in instance:
                raise RequestError("MissingText", f'{where} has no "text" field')
            instance, where = instance["text"], f'{where}["text"]'
        texts.append(_check_text(instance, limits, where))
    return ParsedRequest(texts, is_list=True, kserve=True)


def decode_batch(
    requests: Sequence[Mapping[str, Any]],
    limits: Limits,
    content_types: Sequence[str | None] | None = None,
) -> Batch:
    """Decode every request of a batch; a bad one is kept as its error, never raised."""
    content_types = content_types or [None] * len(requests)
    batch = Batch(requests=[])
    for request, content_type in zip(requests, content_types):
        try:
            parsed = decode_request(request, limits, content_type)
        except RequestError as err:
            batch.requests.append(err)
            continue
        batch.requests.append(parsed)
        batch.texts.extend(parsed.texts)
    return batch


def split_batch(batch: Batch, wanted: Sequence[bool]) -> list[tuple[Batch, list[bool]]]:
    """One batch per request, each with its texts' explanation flags (aligned with `texts`).

    What the handler answers one by one when the whole batch failed.
    """
    parts, offset = [], 0
    for request in batch.requests:
        texts = [] if isinstance(request, RequestError) else list(request.texts)
        parts.append((Batch([request], texts), list(wanted[offset : offset + len(texts)])))
        offset += len(texts)
    return parts


def join_batches(parts: Sequence[Batch]) -> Batch:
    """split_batch's parts, answered (or replaced by their error), as one batch again."""

    def aligned(values: Sequence[Any], part: Batch) -> list[Any]:
        return list(values) or [None] * len(part.texts)

    joined = Batch([r for part in parts for r in part.requests],
                   [t for part in parts for t in part.texts])  # fmt: skip
    joined.probabilities = [row for part in parts for row in part.probabilities]
    if any(part.explanations for part in parts):
        joined.explanations = [e for part in parts for e in aligned(part.explanations, part)]
    if any(part.models for part in parts):
        joined.models = [m for part in parts for m in aligned(part.models, part)]
    return joined


# --------------------------------------------------------------------------- encode


def encode_prediction(
    probabilities: Sequence[float], models: Sequence[str] | None = None
) -> dict[str, Any]:
    """(p_negative, p_positive) -> the answer for one text; `models`: who decided it (cascade)."""
    p_negative, p_positive = (float(p) for p in probabilities)
    winner = 1 if p_positive > p_negative else 0
    answer = {
        "label": LABELS[winner],
        "confidence": round(max(p_negative, p_positive), 6),
        "probabilities": {"negative": round(p_negative, 6), "positive": round(p_positive, 6)},
    }
    if models is not None:
        answer["models"] = list(models)
    return answer


def encode_explanation(
    probabilities: Sequence[float],
    text: str,
    explanation: Explanation,
    models: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The prediction for one text plus its scored tokens (the /explanations answer)."""
    tokens = [
        {"token": t.token, "score": round(float(t.score), 6), "spans": [list(s) for s in t.spans]}
        for t in explanation.tokens
    ]
    base = None if explanation.base is None else round(float(explanation.base), 6)
    return {**encode_prediction(probabilities, models), "text": text,
            "method": explanation.method, "base": base, "tokens": tokens}  # fmt: skip


def encode_batch(batch: Batch) -> list[Response]:
    """Exactly one response per request, in order, slicing the flat model output back apart."""
    if len(batch.probabilities) != len(batch.texts):
        raise ValueError(
            f"model returned {len(batch.probabilities)} rows for {len(batch.texts)} texts"
        )
    for name, aligned in (("explanations", batch.explanations), ("models", batch.models)):
        if aligned and len(aligned) != len(batch.texts):
            raise ValueError(f"{len(aligned)} {name} for {len(batch.texts)} texts")
    responses = []
    offset = 0
    for request in batch.requests:
        if isinstance(request, RequestError):
            responses.append(Response(request.code, request.to_json()))
            continue
        end = offset + len(request.texts)
        rows = batch.probabilities[offset:end]
        explanations = batch.explanations[offset:end] or [None] * len(rows)
        models = batch.models[offset:end] or [None] * len(rows)
        offset = end
        predictions = [
            encode_prediction(row, who) if why is None else encode_explanation(row, text, why, who)
            for row, text, why, who in zip(rows, request.texts, explanations, models)
        ]
        body: Any = predictions if request.is_list else predictions[0]
        if request.kserve:
            body = {"predictions": predictions}
        responses.append(Response(200, json.dumps(body)))
    return responses
