"""Operating a running TorchServe: management CLI, rollout under traffic, failed rollout,
restart, metrics and gRPC.

The rollout tests get their own TorchServe (sentiment_fast only) because they change which
version serves; they run in file order: rollout -> failed rollout -> restart.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
import requests

from scripts.ops import grpc_client, manage
from scripts.ops import rollout as rollout_cli
from scripts.ops.manage import Management
from scripts.ops.rollout import archive_name, rollout
from scripts.ops.server import DEFAULTS_FILE, TorchServe
from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS
from tests.conftest import local_server
from tests.metrics import deltas, key, totals

MODEL = "sentiment_fast"
PROBE = "정말 재밌게 잘봤습니다! 배우들 연기도 좋고"
BOTH = pytest.mark.parametrize("model", list(MODELS))


def answer(server: TorchServe, text: str = PROBE, model: str = MODEL, version: str = "") -> dict:
    url = server.url("inference", f"/predictions/{model}" + (f"/{version}" if version else ""))
    headers = {**server.auth("inference"), "Content-Type": "text/plain"}
    response = requests.post(url, data=text.encode(), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- no server


# --------------------------------------------------------------------------- own server


@pytest.fixture(scope="module")
def ops_server(
    fast_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TorchServe]:
    """sentiment_fast 1.0 alone, in its own model store (rollouts add archives to it)."""
    store = tmp_path_factory.mktemp("ops_store")
    build_archive(MODELS[MODEL], fast_artifacts, store)
    # Started with the model API on (`make serve MODEL_API=on`): what keeps a rollout answering
    # throughout; with it off, the rollout restarts TorchServe (test_archives.py).
    with local_server(store, [MODEL], "ts-ops-", enable_model_api="true") as server:
        yield server


def cli(module, server: TorchServe, *args: str) -> int:
    return module.main(["--run-dir", str(server.run_dir), *args])


def test_manage_cli(ops_server: TorchServe, capsys):
    """Whichever version serves (1.0, or 2.0 once the module's rollout ran): asked, not assumed."""
    serving = Management(ops_server).describe(MODEL)[0]
    default, archive = serving["modelVersion"], serving["modelUrl"]
    assert cli(manage, ops_server, "list") == 0
    assert capsys.readouterr().out.split("\t")[:2] == [MODEL, f"default {default}"]
    assert cli(manage, ops_server, "describe", MODEL) == 0
    out = capsys.readouterr().out
    assert f"version {default} ({archive}) (default)" in out and "READY" in out
    assert "labels ['negative', 'positive']" in out and "test accuracy 0." in out
    assert cli(manage, ops_server, "scale", MODEL, "--min", "2", "--max", "2") == 0
    assert len(Management(ops_server).describe(MODEL)[0]["workers"]) == 2
    assert cli(manage, ops_server, "scale", MODEL, "--min", "1", "--max", "1") == 0
    capsys.readouterr()
    assert cli(manage, ops_server, "describe", "no_such_model") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "404" in err and err.count("\n") == 1


def test_manage_register_and_unregister_say_what_happened(
    ops_server: TorchServe, fast_artifacts: Path, capsys
):
    """register --workers N reports the workers that serve, not TorchServe's initial count;
    the default (named, or by omission) and the last version go only with --force."""
    management, extra = Management(ops_server), "sentiment_fast_manage.mar"
    build_archive(MODELS[MODEL], fast_artifacts, ops_server.model_store, "0.5",
                  extra.removesuffix(".mar"), model_name=MODEL)  # fmt: skip
    default = management.default_version(MODEL)
    try:
        assert cli(manage, ops_server, "register", extra, "--workers", "1") == 0
        out = capsys.readouterr().out
        # (a "[model API] ..." line may come first: scripts/ops/model_api.py says what it did)
        assert f"\n{MODEL} version 0.5 registered with 1 worker(s)" in f"\n{out}", out
        assert "initial workers" not in out
        assert len(management.describe(MODEL, "0.5")[0]["workers"]) == 1
        for named in ([default], []):
            assert cli(manage, ops_server, "unregister", MODEL, *named) == 1
            err = capsys.readouterr().err
            assert f"refused: {MODEL} {default} is the default" in err and "--force" in err
        assert cli(manage, ops_server, "unregister", MODEL, "0.5") == 0
    finally:
        if "0.5" in management.versions(MODEL):
            management.unregister(MODEL, "0.5")
        (ops_server.model_store / extra).unlink()
    assert management.versions(MODEL) == [default]
    assert cli(manage, ops_server, "unregister", MODEL, default) == 1
    assert "is its only version" in capsys.readouterr().err
    assert management.versions(MODEL) == [default]


@dataclass
class RolledOut:
    """What a rollout of sentiment_fast 1.0 -> 2.0 under four streaming clients left behind."""

    before: dict  # the probe's answer from 1.0
    after: dict  # ... and from 2.0
    done: Any  # scripts.ops.rollout's record
    seen: list[list[dict]]  # each client's answers, in order
    failures: list[str]


@pytest.fixture(scope="module")
def rolled_out(
    ops_server: TorchServe, nsmc_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> RolledOut:
    """The rollout itself, once per module: every test that needs version 2.0 serving asks for
    it, so none depends on another having run first."""
    before = answer(ops_server)
    stop = threading.Event()
    seen: list[list[dict]] = [[] for _ in range(4)]
    failures: list[str] = []

    def client(answers: list[dict]) -> None:
        url = ops_server.url("inference", f"/predictions/{MODEL}")
        headers = {**ops_server.auth("inference"), "Content-Type": "text/plain"}
        while not stop.is_set():
            try:
                response = requests.post(url, data=PROBE.encode(), headers=headers, timeout=30)
            except requests.RequestException as err:
                failures.append(repr(err))
                continue
            if response.status_code != 200:
                failures.append(f"{response.status_code} {response.text[:100]}")
            else:
                answers.append(response.json())

    threads = [threading.Thread(target=client, args=(answers,)) for answers in seen]
    for thread in threads:
        thread.start()
    try:
        # Trained on a different (smaller) slice than 1.0: the probe's probabilities differ.
        done = rollout(ops_server, MODEL, nsmc_dir, max_rows=3_000, min_accuracy=0.7,
                       smoke_rows=500, build_dir=tmp_path_factory.mktemp("rollout"))  # fmt: skip
        after = answer(ops_server)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    total = sum(map(len, seen)) + len(failures)
    print(f"rollout {done.seconds}; {total} requests during it, {len(failures)} failed")
    return RolledOut(before, after, done, seen, failures)


def test_rollout_under_traffic_fails_no_request_and_switches(
    ops_server: TorchServe, rolled_out: RolledOut
):
    """4 clients stream requests to the unversioned endpoint through a whole rollout."""
    before, after = rolled_out.before, rolled_out.after
    done, seen = rolled_out.done, rolled_out.seen
    assert rolled_out.failures == []
    assert (done.old_version, done.new_version) == ("1.0", "2.0")
    assert before != after
    assert answer(ops_server, version="2.0") == after
    for answers in seen:  # each client: old answers, then new ones, nothing else
        assert answers and all(a in (before, after) for a in answers)
        switch = answers.index(after) if after in answers else len(answers)
        assert all(a == before for a in answers[:switch])
        assert all(a == after for a in answers[switch:])
    assert any(before in answers for answers in seen), "no request was served by 1.0"
    management = Management(ops_server)
    assert management.versions(MODEL) == ["2.0"]
    custom = management.describe(MODEL, "2.0", customized=True)[0]["customizedMetadata"]
    assert custom["model_version"] == "2.0" and custom["train_rows"] == 3_000
    assert json.loads((ops_server.model_store / DEFAULTS_FILE).read_text()) == {
        MODEL: "sentiment_fast_v2.0.mar"  # build_archive --version 2.0's name, as in the docs
    }


def test_failed_rollout_leaves_old_version_serving(
    ops_server: TorchServe, rolled_out: RolledOut, nsmc_dir: Path, fast_artifacts: Path, capsys
):
    code = cli(
        rollout_cli,
        ops_server,
        MODEL,
        "--data-dir",
        str(nsmc_dir),
        "--model-dir",
        str(fast_artifacts),
        "--min-accuracy",
        "0.999",
        "--smoke-rows",
        "300",
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "rollout failed at step 'smoke test'" in err and "2.0 is still the default" in err
    assert "on the first 300 validation reviews of" in err and "ratings_test" not in err
    assert Management(ops_server).versions(MODEL) == ["2.0"]  # 3.0 was unregistered again
    assert not (ops_server.model_store / archive_name(MODEL, 3)).exists()
    assert answer(ops_server) == rolled_out.after


def test_restart_serves_the_rolled_out_version(ops_server: TorchServe, rolled_out: RolledOut):
    ops_server.stop()
    ops_server.start()
    ops_server.wait_ready(timeout=180)
    description = Management(ops_server).describe(MODEL, "all")
    assert [(d["modelVersion"], d["modelUrl"]) for d in description] == [
        ("2.0", "sentiment_fast_v2.0.mar")
    ]
    assert answer(ops_server) == rolled_out.after


# --------------------------------------------------------------------------- shared server


def test_metrics_show_frontend_and_handler_metrics(server: TorchServe):
    """Two requests (two texts, then an empty list): TorchServe's counters and the handler's
    move by exactly that much; the latency counters and histograms move at all."""
    headers = {**server.auth("inference"), "Content-Type": "application/json"}
    url = server.url("inference", f"/predictions/{MODEL}")
    before = totals(server)
    requests.post(url, data=json.dumps({"text": ["좋다", "별로"]}), headers=headers, timeout=30)
    requests.post(url, data=b'{"text": []}', headers=headers, timeout=30)
    exact = {
        key("ts_inference_requests_total", model_name=MODEL): 2,
        key("SentimentRequests", ModelName=MODEL): 2,
        key("SentimentTexts", ModelName=MODEL): 2,
        key("SentimentRejected", ModelName=MODEL, Reason="EmptyList"): 1,
    }
    moved = {
        key(name, model_name=MODEL): 1e-9
        for name in ("ts_inference_latency_microseconds", "ts_queue_latency_microseconds")
    } | {
        key(name, ModelName=MODEL): 1e-9
        for name in ("SentimentBatchSize_count", "SentimentPreprocessSeconds_count",
                     "SentimentInferenceSeconds_sum")
    }  # fmt: skip
    changes = deltas(server, before, {**exact, **moved})
    assert {k: changes[k] for k in exact} == exact
    assert all(changes[k] > 0 for k in moved), changes


@BOTH
def test_grpc_answers_as_rest_does(server: TorchServe, model: str):
    for body in (PROBE.encode(), json.dumps({"text": [PROBE, "최악의 영화"]}).encode()):
        over_grpc = grpc_client.predict(server, model, body)
        headers = {**server.auth("inference"), "Content-Type": "application/json"}
        if not body.startswith(b"{"):
            headers["Content-Type"] = "text/plain"
        url = server.url("inference", f"/predictions/{model}")
        over_rest = requests.post(url, data=body, headers=headers, timeout=30).json()
        assert over_grpc == over_rest


def test_grpc_cli_takes_short_and_registered_names(server: TorchServe, capsys):
    """One naming everywhere: sentiment_bert (canonical) and bert, as the `sentiment` CLI."""
    answers = []
    for model in ("sentiment_bert", "bert"):
        assert grpc_client.main([PROBE, "--model", model, "--run-dir", str(server.run_dir)]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1] and '"label"' in answers[0]


def test_grpc_without_key_is_refused(server: TorchServe):
    keyless = TorchServe(run_dir=server.run_dir / "nowhere", ports=server.ports)
    with pytest.raises(grpc.RpcError) as refused:
        grpc_client.predict(keyless, MODEL, PROBE.encode())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
