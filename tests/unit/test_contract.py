"""The request/response contract, without TorchServe or a model."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.contract import (
    Batch,
    Limits,
    ModelError,
    ParsedRequest,
    RequestError,
    UnknownLabelsError,
    checkpoint_labels,
    columns_of,
    decode_batch,
    decode_request,
    encode_batch,
    encode_prediction,
    join_batches,
    split_batch,
)
from handlers.text import clean_text
from tests.cases import BAD_REQUESTS, GOOD_REQUESTS

LIMITS = Limits()


@pytest.mark.parametrize(
    "case_id,request_,content_type,error_type", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request_is_named(case_id, request_, content_type, error_type):
    with pytest.raises(RequestError) as raised:
        decode_request(request_, LIMITS, content_type)
    assert raised.value.error_type == error_type
    body = json.loads(raised.value.to_json())
    assert body["code"] == 400 and body["type"] == error_type and body["message"]


@pytest.mark.parametrize(
    "case_id,request_,content_type,is_list,count", GOOD_REQUESTS, ids=[c[0] for c in GOOD_REQUESTS]
)
def test_good_request_is_decoded(case_id, request_, content_type, is_list, count):
    parsed = decode_request(request_, LIMITS, content_type)
    assert parsed.is_list is is_list
    assert len(parsed.texts) == count
    assert all(text == clean_text(text) and text for text in parsed.texts)


def test_form_encoded_error_names_the_header():
    with pytest.raises(RequestError) as raised:
        decode_request({"text": "좋다"}, LIMITS, None)
    assert "Content-Type: application/json" in raised.value.message


def test_limits_come_from_config():
    limits = Limits.from_config({"max_texts": 2, "max_text_chars": 5})
    with pytest.raises(RequestError, match="limit is 2"):
        decode_request({"body": {"text": ["a", "b", "c"]}}, limits)
    with pytest.raises(RequestError, match="limit is 5"):
        decode_request({"body": "abcdef"}, limits)


def test_clean_text_matches_seed_rules():
    assert clean_text("  재밌\u0000다\ufffd \t\n 최고 ") == "재밌다 최고"
    assert clean_text("lone \ud800 surrogate") == "lone surrogate"
    assert clean_text("정상 텍스트") == "정상 텍스트"


def test_encode_prediction_shape():
    answer = encode_prediction((0.2, 0.8))
    assert answer == {
        "label": "positive",
        "confidence": 0.8,
        "probabilities": {"negative": 0.2, "positive": 0.8},
    }
    assert encode_prediction((0.9, 0.1))["label"] == "negative"


def test_batch_keeps_order_and_isolates_errors():
    requests = [
        {"body": {"text": ["a", "b"]}},
        {"body": {"text": 5}},
        {"body": "c"},
    ]
    batch = decode_batch(requests, LIMITS)
    assert batch.texts == ["a", "b", "c"]
    batch.probabilities = [(0.9, 0.1), (0.3, 0.7), (0.4, 0.6)]
    responses = encode_batch(batch)
    assert [r.status for r in responses] == [200, 400, 200]
    first = json.loads(responses[0].body)
    assert [p["label"] for p in first] == ["negative", "positive"]
    assert json.loads(responses[1].body)["type"] == "InvalidText"
    assert json.loads(responses[2].body)["probabilities"]["positive"] == 0.6


def test_encode_batch_refuses_a_short_model_output():
    batch = Batch(
        requests=[ParsedRequest(["a", "b"], True)], texts=["a", "b"], probabilities=[(0.5, 0.5)]
    )
    with pytest.raises(ValueError, match="1 rows for 2 texts"):
        encode_batch(batch)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=200).map(bytearray),
    st.text(max_size=200),
    json_values,
    st.fixed_dictionaries({"text": json_values}),
    st.fixed_dictionaries({"text": st.lists(st.text(max_size=30), max_size=5)}),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "text/plain",
        "application/octet-stream",
        "application/json; charset=utf-8",
    ]
)


@settings(max_examples=400, deadline=None)
@given(body=bodies, content_type=content_types)
def test_parser_never_fails_unexpectedly(body, content_type):
    """Any body either decodes to clean, non-empty texts within limits, or is a named 400."""
    try:
        parsed = decode_request({"body": body}, LIMITS, content_type)
    except RequestError as err:
        assert err.code == 400 and err.error_type and err.message
        json.loads(err.to_json())
        return
    assert 1 <= len(parsed.texts) <= LIMITS.max_texts
    for text in parsed.texts:
        assert text and text == clean_text(text)
        text.encode("utf-8")  # no lone surrogates reach a model


# Any code point, surrogates, controls and format characters included: what a hostile client
# can put in a JSON string ("\ud800") or a raw body.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)


def _outcome(request: dict, content_type: str | None) -> list[str] | str:
    """The cleaned texts, or the error type."""
    try:
        return decode_request(request, LIMITS, content_type).texts
    except RequestError as err:
        return err.error_type


@settings(max_examples=300, deadline=None)
@given(text=any_text)
def test_every_form_of_one_text_decodes_alike(text):
    """Raw text, JSON (parsed by TorchServe or by us, with a BOM or a charset) and a one-item
    list give the same cleaned text, or the same error."""
    as_json = json.dumps({"text": text}).encode()  # ensure_ascii: lone surrogates as \\udxxx
    forms = [
        ({"body": {"text": text}}, "application/json"),
        ({"body": bytearray(as_json)}, "application/json; charset=utf-8"),
        ({"body": b"\xef\xbb\xbf" + as_json}, "application/json"),
        ({"body": bytearray(as_json)}, "application/octet-stream"),  # sniffed as JSON
    ]
    if text and not any("\ud800" <= char <= "\udfff" for char in text):
        forms.append(({"body": text}, "text/plain"))  # raw UTF-8 cannot carry surrogates
    forms.append(({"body": {"text": [text]}}, "application/json"))
    outcomes = [_outcome(request, content_type) for request, content_type in forms]
    assert all(outcome == outcomes[0] for outcome in outcomes), outcomes
    if isinstance(outcomes[0], list):
        assert outcomes[0] == [clean_text(text)]


non_objects = json_values.filter(lambda value: not isinstance(value, dict))


@settings(max_examples=200, deadline=None)
@given(value=non_objects)
def test_json_that_is_not_an_object_is_refused(value):
    """Declared JSON must be an object, whether TorchServe parsed it or we did."""
    raw = json.dumps(value).encode()
    for request, content_type in [
        ({"body": value}, "application/json"),
        ({"body": bytearray(raw)}, "application/json; charset=utf-8"),
    ]:
        with pytest.raises(RequestError) as raised:
            decode_request(request, LIMITS, content_type)
        assert raised.value.error_type == "InvalidBody", raised.value.message


SYNONYMS = [("neg", "pos"), ("NEGATIVE", "Positive"), ("0", "1"), ("LABEL_0", "LABEL_1"),
            ("부정", "긍정"), (" Neg ", "POS")]  # fmt: skip


@pytest.mark.parametrize("negative,positive", SYNONYMS)
def test_known_label_names_are_read_in_either_order(negative, positive):
    """A checkpoint's column names, whichever common words and order, as LABELS by column."""
    assert checkpoint_labels({0: negative, 1: positive}) == ["negative", "positive"]
    assert checkpoint_labels({"0": positive, "1": negative}) == ["positive", "negative"]
    assert columns_of(checkpoint_labels({"0": positive, "1": negative})) == [1, 0]


@pytest.mark.parametrize("names", [("bad", "good"), ("neg", "neg"), ("pos", "LABEL_1"),
                                   ("negative", "positive", "neutral")])  # fmt: skip
def test_unknown_or_ambiguous_label_names_are_refused_with_the_flag(names):
    """Refused, never guessed: the message names what was found and how to state the order."""
    with pytest.raises(UnknownLabelsError) as raised:
        checkpoint_labels(dict(enumerate(names)))
    message = str(raised.value)
    assert str(list(names)) in message and "--labels negative,positive" in message


def test_a_batch_split_per_request_and_joined_again_encodes_the_same():
    """The per-request fallback's round trip: same responses, a failed part only its own."""
    requests = [{"body": {"text": "좋다"}}, {"body": {"txt": "x"}},
                {"body": {"text": ["별로", "최고"]}}, {"body": "그냥"}]  # fmt: skip
    batch = decode_batch(requests, LIMITS, ["application/json"] * 3 + ["text/plain"])
    rows = [[0.1 * i, 1 - 0.1 * i] for i in range(len(batch.texts))]
    batch.probabilities = rows
    parts = split_batch(batch, [False, True, False, True])
    assert [(len(part.requests), part.texts, flags) for part, flags in parts] == [
        (1, ["좋다"], [False]), (1, [], []), (1, ["별로", "최고"], [True, False]), (1, ["그냥"], [True])
    ]
    offset = 0
    for part, _ in parts:
        part.probabilities = rows[offset : offset + len(part.texts)]
        offset += len(part.texts)
    assert encode_batch(join_batches([part for part, _ in parts])) == encode_batch(batch)
    parts[2] = (Batch([ModelError(RuntimeError("boom"))]), [])
    responses = encode_batch(join_batches([part for part, _ in parts]))
    assert [r.status for r in responses] == [200, 400, 500, 200]
    assert responses[3] == encode_batch(batch)[3]
    assert json.loads(responses[2].body)["type"] == "ModelError"
