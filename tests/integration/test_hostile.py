"""Malformed and hostile bodies against both endpoints of the session TorchServe.

Every body of tests/cases.py (BAD_HTTP_BODIES + HOSTILE_HTTP_BODIES) is sent together with
good requests, so they usually share a TorchServe batch.  Each must get its own 4xx JSON
error naming the problem (or, for legal text, a normal answer), never a 5xx; the good
requests keep their 200 and their answer; the worker is the same process afterwards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from scripts.ops.server import TorchServe
from scripts.registry import MODELS
from tests.cases import ANSWERED, BAD_HTTP_BODIES, HOSTILE_HTTP_BODIES, TOO_LARGE
from tests.served import describe, predict

CASES = BAD_HTTP_BODIES + HOSTILE_HTTP_BODIES
GOOD_TEXT = "정말 감동적이고 최고였어요"
GOOD_ALONGSIDE = 3  # good requests sent at the same time as each hostile one


@pytest.fixture(scope="module")
def reference(server: TorchServe) -> dict[str, dict]:
    """Each model's answer to GOOD_TEXT sent alone."""
    answers = {}
    for model in MODELS:
        response = predict(server, GOOD_TEXT.encode(), "text/plain", model)
        assert response.status_code == 200, response.text
        answers[model] = response.json()
    return answers


def test_table_is_large_and_unique():
    assert len(CASES) >= 30
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("case_id,body,content_type,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_body(server: TorchServe, reference, model, case_id, body, content_type, expected):
    pids_before = [worker["pid"] for worker in describe(server, model)["workers"]]
    plan = [(body, content_type)] + [(GOOD_TEXT.encode(), "text/plain")] * GOOD_ALONGSIDE
    with ThreadPoolExecutor(max_workers=len(plan)) as pool:
        hostile, *good = pool.map(lambda item: predict(server, *item, model=model), plan)

    if expected == TOO_LARGE:  # the frontend refuses it before any worker sees it
        assert hostile.status_code == 413, hostile.text
    elif expected == ANSWERED:
        assert hostile.status_code == 200, hostile.text
        answer = hostile.json()
        assert answer["label"] in ("negative", "positive") and 0.5 <= answer["confidence"] <= 1
    else:
        assert hostile.status_code == 400, hostile.text
        assert hostile.headers["Content-Type"].startswith("application/json")
        error = hostile.json()
        assert error["code"] == 400 and error["type"] == expected and error["message"]

    for response in good:
        assert response.status_code == 200, response.text
        for label, p in response.json()["probabilities"].items():
            assert p == pytest.approx(reference[model]["probabilities"][label], abs=1e-5)
    workers = describe(server, model)["workers"]
    assert [worker["pid"] for worker in workers] == pids_before, "the worker was restarted"
    assert {worker["status"] for worker in workers} == {"READY"}
