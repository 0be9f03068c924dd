"""Keys that outlive their lifetime, against a real TorchServe.

The slow test runs a TorchServe whose keys live 15 seconds (token_expiration_min=0.25;
TorchServe reads the setting as a Double) for four lifetimes of client traffic: every key in
use expires several times over, and nothing may fail.  Renewal works in lifetimes (at half
of one), so a quarter-minute key tests what a day-long one does, in a minute.  The others
check the manual rotation (`scripts.ops.manage rotate-keys`) and a missing key file against
the same kind of server.  The reader itself:
tests/unit/test_key_file.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from scripts.ops import healthcheck, manage
from scripts.ops.manage import Management
from scripts.ops.server import TorchServe
from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS
from sentiment_client import SentimentClient
from sentiment_client.api import ConfigError
from tests.conftest import local_server

MODEL = "sentiment_fast"
KEY_LIFETIME_S = 15.0
TRAFFIC_S = 4 * KEY_LIFETIME_S


# ------------------------------------------------------------------ the key file, offline


# ------------------------------------------------------------------ a real TorchServe


@pytest.fixture(scope="module")
def fast_store(fast_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("keys_store")
    build_archive(MODELS[MODEL], fast_artifacts, store)
    return store


@pytest.fixture(scope="module")
def short_keys(fast_store: Path) -> Iterator[TorchServe]:
    """sentiment_fast on a TorchServe whose keys expire 15 s after they are issued."""
    lifetime_min = f"{KEY_LIFETIME_S / 60:g}"
    with local_server(fast_store, [MODEL], "ts-keys-", token_expiration_min=lifetime_min) as server:
        yield server


def health(server: TorchServe) -> int:
    return healthcheck.main(["--url", server.url("inference"), "--management-url",
                             server.url("management"), "--key-file",
                             str(server.run_dir / "key_file.json"), "--models", MODEL])  # fmt: skip


def test_manual_rotation_and_retry_after_a_refused_key(short_keys: TorchServe, capsys):
    server = short_keys
    client = SentimentClient(server.url("inference"), run_dir=server.run_dir)
    assert client.predict(["정말 재밌다"])[0]["label"] == "positive"
    before = server.keys()
    stat = (server.run_dir / "key_file.json").stat()
    assert manage.main(["--run-dir", str(server.run_dir), "rotate-keys"]) == 0
    assert "new inference key" in capsys.readouterr().out
    after = server.keys()
    assert after["inference"] != before["inference"]
    assert after["management"] != before["management"]
    old = requests.get(server.url("inference", "/ping"), timeout=10,
                       headers={"Authorization": f"Bearer {before['inference']}"})  # fmt: skip
    assert old.status_code == 400 and "InvalidKeyException" in old.text  # really replaced
    # The file's stat as before the rotation (a coarse mtime): only the refusal tells.
    os.utime(server.run_dir / "key_file.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert client.predict(["최악의 영화"])[0]["label"] == "negative"
    assert Management(server).list_models()[0]["modelName"] == MODEL
    assert health(server) == 0


def test_missing_key_file_is_a_usage_error(short_keys: TorchServe, tmp_path: Path):
    client = SentimentClient(short_keys.url("inference"), key_file=tmp_path / "key_file.json")
    with pytest.raises(ConfigError) as err:
        client.predict(["좋다"])
    assert str(tmp_path / "key_file.json") in str(err.value) and err.value.exit_code == 2


@pytest.mark.slow
def test_traffic_outlives_short_lived_keys(short_keys: TorchServe):
    """Four key lifetimes at ~4 requests/s: keys renewed at half-life, nothing refused."""
    server = short_keys
    first = server.keys()
    first_expiry = server.key_file.current().expires["inference"]
    client = SentimentClient(server.url("inference"), run_dir=server.run_dir, retries=0)
    management = Management(server)
    counts = {"requests": 0, "failures": 0, "management": 0, "health": 0, "unhealthy": 0}
    seen: set[str] = {first["inference"]}
    errors: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < TRAFFIC_S:
        tick = time.monotonic()
        try:
            assert client.predict(["정말 재밌게 잘봤습니다!"])[0]["label"] == "positive"
        except Exception as err:  # every failure is counted and shown, none stops the run
            counts["failures"] += 1
            errors.append(f"{time.monotonic() - started:.0f}s predict: {err}")
        counts["requests"] += 1
        seen.add(server.keys().get("inference", ""))
        if counts["requests"] % 20 == 0:
            try:
                management.describe(MODEL)
            except Exception as err:
                counts["failures"] += 1
                errors.append(f"{time.monotonic() - started:.0f}s management: {err}")
            counts["management"] += 1
        if counts["requests"] % 40 == 0:
            counts["health"] += 1
            counts["unhealthy"] += health(server) != 0
        time.sleep(max(0.0, 0.25 - (time.monotonic() - tick)))
    renewals = (server.log_dir / "renewer.log").read_text().count("renewed the inference key")
    print(f"\nkey renewal: {counts}, inference keys seen {len(seen)}, "
          f"renewer log: {renewals} inference renewals")  # fmt: skip
    assert time.time() > first_expiry.timestamp() + KEY_LIFETIME_S  # outlived 2 keys
    assert renewals >= 4 and len(seen) >= 5  # renewed at each half-life (~8 in the run)
    assert counts["failures"] == 0 and counts["unhealthy"] == 0, errors[:5]
    assert counts["requests"] >= TRAFFIC_S * 2 and counts["health"] >= 3
    old = requests.get(server.url("inference", "/ping"), timeout=10,
                       headers={"Authorization": f"Bearer {first['inference']}"})  # fmt: skip
    assert old.status_code == 400  # the first key is long dead: the renewals carried the run
