"""The KServe storage tree (scripts/deploy/kserve_layout.py) served by a real TorchServe
started from its generated config.properties (ports rewritten, nothing else): KServe v1
answers, snapshot settings, and the readiness/health checks the manifests run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from scripts.deploy import kserve_layout
from scripts.ops import healthcheck
from scripts.ops.server import Ports, TorchServe, read_properties
from scripts.registry import DEFAULT_MODELS, ROOT

POSITIVE, NEGATIVE = "정말 감동적이고 최고였어요", "최악의 영화 시간 낭비"


@pytest.fixture(scope="module")
def kserve_tree(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kserve") / "v1"
    assert kserve_layout.main(["--out", str(out), "--store", str(model_store)]) == 0
    return out


def test_layout_tree(kserve_tree: Path, model_store: Path):
    files = sorted(str(p.relative_to(kserve_tree)) for p in kserve_tree.rglob("*") if p.is_file())
    assert files == ["config/config.properties"] + [
        f"model-store/{name}.mar" for name in sorted(DEFAULT_MODELS)
    ]
    for name in DEFAULT_MODELS:  # the same archives, byte for byte
        mar = f"{name}.mar"
        assert (kserve_tree / "model-store" / mar).read_bytes() == (model_store / mar).read_bytes()
    properties = read_properties(kserve_tree / "config" / "config.properties")
    assert properties["inference_address"].endswith(":8085")
    assert properties["management_address"] == "http://127.0.0.1:8086"
    assert properties["model_store"] == "/mnt/models/model-store"
    assert "service_envelope" not in properties and properties["enable_envvars_config"] == "false"
    assert properties["disable_token_authorization"] == "true"
    snapshot = json.loads(properties["model_snapshot"])
    assert snapshot["modelCount"] == len(DEFAULT_MODELS)
    assert set(snapshot["models"]) == set(DEFAULT_MODELS)
    for name, versions in snapshot["models"].items():
        config = yaml.safe_load((ROOT / "archive" / name / "model-config.yaml").read_text())
        (entry,) = versions.values()
        assert entry["marName"] == f"{name}.mar" and entry["defaultVersion"] is True
        for key in kserve_layout.SNAPSHOT_KEYS:
            assert entry[key] == config[key], (name, key)


def test_layout_without_archives_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert kserve_layout.main(["--out", str(tmp_path / "out"), "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no archive") and err.count("\n") == 1


@pytest.fixture(scope="module")
def kserve_server(kserve_tree: Path) -> Iterator[TorchServe]:
    """TorchServe from the generated config, as KServe's stock runtime would start it."""
    run_dir = Path(tempfile.mkdtemp(prefix="ts-deploy-"))
    server = kserve_layout.LocalKServe(run_dir=run_dir, ports=Ports.free(), tree=kserve_tree)
    # The stock runtime sets this; the generated config must make TorchServe ignore it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TS_SERVICE_ENVELOPE", "kserve")
        server.start()
    try:
        server.wait_ready(timeout=180)
        yield server
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def post_json(url: str, body: Any) -> requests.Response:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}  # no token: authorization is off for KServe
    return requests.post(url, data=data, headers=headers, timeout=60)


@pytest.mark.parametrize("model", DEFAULT_MODELS)
def test_kserve_v1_predict(kserve_server: TorchServe, model: str):
    body = {"instances": [POSITIVE, {"text": NEGATIVE}]}
    v1 = post_json(kserve_server.url("inference", f"/v1/models/{model}:predict"), body)
    assert v1.status_code == 200, v1.text
    predictions = v1.json()["predictions"]
    # KServe's wrapper (stock runtime) posts the same body to /predictions/<model>.
    wrapper = post_json(kserve_server.url("inference", f"/predictions/{model}"), body)
    assert wrapper.json() == v1.json()
    # The same model and contract as the plain endpoint: equal answers text by text.
    native = post_json(kserve_server.url("inference", f"/predictions/{model}"),
                       {"text": [POSITIVE, NEGATIVE]}).json()  # fmt: skip
    assert predictions == native
    if model == "sentiment_fast":  # the tiny test BERT is too little trained to be asked
        assert [p["label"] for p in predictions] == ["positive", "negative"]


def test_kserve_bad_instance_is_400(kserve_server: TorchServe):
    url = kserve_server.url("inference", "/v1/models/sentiment_fast:predict")
    response = post_json(url, {"instances": [POSITIVE, ""]})
    assert response.status_code == 400 and response.json()["type"] == "EmptyText"


def test_kserve_concurrent_requests_all_answered(kserve_server: TorchServe):
    """TorchServe's own kserve envelope failed every request here once batches formed (503)."""
    url = kserve_server.url("inference", "/v1/models/sentiment_fast:predict")
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: post_json(url, {"instances": [f"{POSITIVE} {i}"]}),
                                  range(48)))  # fmt: skip
    assert [r.status_code for r in responses] == [200] * 48
    assert all(len(r.json()["predictions"]) == 1 for r in responses)


def test_kserve_snapshot_settings_served(kserve_server: TorchServe, kserve_tree: Path):
    snapshot = json.loads(
        read_properties(kserve_tree / "config" / "config.properties")["model_snapshot"]
    )
    for name, versions in snapshot["models"].items():
        (entry,) = versions.values()
        described = requests.get(kserve_server.url("management", f"/models/{name}"), timeout=10)
        assert described.status_code == 200  # no key: token authorization is off
        for key in ("batchSize", "maxBatchDelay", "minWorkers", "maxWorkers"):
            assert described.json()[0][key] == entry[key]


def test_readiness_check_against_kserve_config(kserve_server: TorchServe, tmp_path: Path):
    args = ["--url", kserve_server.url("inference"), "--key-file", str(tmp_path / "none.json"),
            "--management-url", kserve_server.url("management")]  # fmt: skip
    assert healthcheck.main(args + ["--models", *DEFAULT_MODELS]) == 0
    assert healthcheck.main(args + ["--models", "no_such_model"]) == 1


def test_health_check_reads_the_key(server: TorchServe, tmp_path: Path):
    """Token authorization covers /ping: with the key file healthy, without it not."""
    args = ["--url", server.url("inference"), "--management-url", server.url("management")]
    key_file = str(server.run_dir / "key_file.json")
    assert healthcheck.main(args + ["--key-file", key_file, "--models", *DEFAULT_MODELS]) == 0
    assert healthcheck.main(args + ["--key-file", str(tmp_path / "missing.json")]) == 1
