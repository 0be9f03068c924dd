"""The KServe v1 body (`{"instances": [...]}`) in the request contract, without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.contract import (
    MAX_TEXTS,
    Batch,
    Limits,
    RequestError,
    decode_batch,
    decode_request,
    encode_batch,
)


def test_kserve_instances_are_texts_or_text_objects():
    parsed = decode_request({"body": {"instances": ["좋다", {"text": " 싫다 "}]}}, Limits())
    assert parsed.texts == ["좋다", "싫다"] and parsed.kserve and parsed.is_list


@pytest.mark.parametrize(
    "instances,error_type",
    [
        ("좋다", "InvalidBody"),
        ([], "EmptyList"),
        (["좋다", None], "InvalidText"),
        ([{"review": "좋다"}], "MissingText"),
        ([{"text": 3}], "InvalidText"),
        (["  "], "EmptyText"),
        (["좋다"] * (MAX_TEXTS + 1), "TooManyTexts"),
    ],
    ids=["not a list", "empty", "null", "no text", "text number", "blank", "too many"],
)
def test_bad_kserve_instances_are_named(instances: Any, error_type: str):
    with pytest.raises(RequestError) as raised:
        decode_request({"body": {"instances": instances}}, Limits())
    assert raised.value.error_type == error_type


def test_kserve_answer_beside_other_requests_in_one_batch():
    batch: Batch = decode_batch(
        [{"body": {"instances": ["a", "b"]}}, {"body": {"text": "c"}}, {"body": {"instances": 1}}],
        Limits(),
    )
    batch.probabilities = [(0.9, 0.1), (0.2, 0.8), (0.3, 0.7)]
    first, second, third = encode_batch(batch)
    predictions = json.loads(first.body)["predictions"]
    assert [p["label"] for p in predictions] == ["negative", "positive"]
    assert json.loads(second.body)["label"] == "positive"
    assert third.status == 400 and json.loads(third.body)["type"] == "InvalidBody"
