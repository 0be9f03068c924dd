"""Keys that outlive their lifetime: the key file reader, the renewer, and the clients retrying.

The slow test runs a real TorchServe whose keys live one minute (token_expiration_min=1) for
more than three minutes of client traffic: every key in use expires several times over, and
nothing may fail.  The others check the reader on files written by hand, and the manual
rotation (`scripts.ops.manage rotate-keys`) against the same kind of server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
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
from sentiment_client.keys import KeyFile, Keys, parse_instant, renew_at
from tests.conftest import local_server

MODEL = "sentiment_fast"


def write_keys(path: Path, inference: str, expires: datetime, api: str = "api-key") -> None:
    instant = expires.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")  # Java's Instant.toString()
    path.write_text(json.dumps({
        "management": {"key": f"m-{inference}", "expiration time": instant},
        "inference": {"key": inference, "expiration time": instant},
        "API": {"key": api},
    }))  # fmt: skip


# ------------------------------------------------------------------ the key file, offline


def test_java_instants_parse_to_utc():
    parsed = parse_instant("2026-11-24T19:18:00.123456789Z")
    assert parsed == datetime(2026, 11, 24, 19, 18, 0, 123456, tzinfo=timezone.utc)
    assert parse_instant("2026-11-24T19:18:00Z").microsecond == 0


def test_key_file_is_read_again_when_it_changes(tmp_path: Path):
    path = tmp_path / "key_file.json"
    keys = KeyFile(path)
    assert keys.key("inference") is None  # no file: token authorization off
    expires = datetime.now(timezone.utc) + timedelta(minutes=10)
    write_keys(path, "key1", expires)
    assert keys.key("inference") == "key1"
    write_keys(path, "key2", expires + timedelta(minutes=1))
    assert keys.key("inference") == "key2"  # a new mtime: read again


def test_a_refused_key_forces_a_new_reading(tmp_path: Path):
    """Two writes in one mtime tick look the same to stat(); a refused key reads again."""
    path = tmp_path / "key_file.json"
    expires = datetime.now(timezone.utc) + timedelta(minutes=10)
    write_keys(path, "key1", expires)
    keys = KeyFile(path)
    assert keys.key("inference") == "key1"
    stat = path.stat()
    write_keys(path, "key2", expires)  # same size, same inode
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert keys.key("inference") == "key1"
    assert keys.refreshed("inference", "key1", wait=0.1) == "key2"
    assert keys.refreshed("inference", "key2", wait=0.1) is None  # unchanged: give up


def test_half_written_file_is_read_again(tmp_path: Path):
    path = tmp_path / "key_file.json"
    path.write_text('{"inference": {"key": "ab')  # TorchServe truncates, then writes
    timer = threading.Timer(0.2, write_keys, (path, "whole", datetime.now(timezone.utc)))
    timer.start()
    assert KeyFile(path).key("inference") == "whole"
    timer.join()


def test_renewal_is_due_at_half_the_lifetime(tmp_path: Path):
    path = tmp_path / "key_file.json"
    now = datetime.now(timezone.utc)
    write_keys(path, "k", now + timedelta(minutes=60))
    os.utime(path, (now.timestamp(), now.timestamp()))
    keys = KeyFile(path).current()
    assert abs(keys.lifetime() - 3600) < 1
    assert abs(renew_at(keys, "inference", keys.lifetime()) - (now.timestamp() + 1800)) < 1
    assert Keys().lifetime() is None


def test_missing_key_file_names_where_it_looked(tmp_path: Path):
    message = KeyFile(tmp_path / "nowhere" / "key_file.json").why_refused("inference")
    assert str(tmp_path / "nowhere" / "key_file.json") in message
    assert "--key-file" in message and "SENTIMENT_KEY_FILE" in message


def test_renewer_stops_with_the_server_it_watches(tmp_path: Path):
    """A test or `make serve` server killed without stop(): its renewer does not linger."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "server.pid").write_text(f"{gone.pid}\n")
    renewer = subprocess.Popen(
        [sys.executable, "-m", "sentiment_client.renewer", "watch", "--key-file",
         str(tmp_path / "key_file.json"), "--server-pid-file", str(tmp_path / "server.pid"),
         "--pid-file", str(tmp_path / "renewer.pid")],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, _ = renewer.communicate(timeout=30)
    assert renewer.returncode == 0 and "the server has gone" in out
    assert not (tmp_path / "renewer.pid").exists()


# ------------------------------------------------------------------ a real TorchServe


@pytest.fixture(scope="module")
def fast_store(fast_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("keys_store")
    build_archive(MODELS[MODEL], fast_artifacts, store)
    return store


@pytest.fixture
def short_keys(fast_store: Path) -> Iterator[TorchServe]:
    """sentiment_fast on a TorchServe whose keys expire one minute after they are issued."""
    with local_server(fast_store, [MODEL], "ts-keys-", token_expiration_min="1") as server:
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
def test_traffic_outlives_one_minute_keys(short_keys: TorchServe):
    """Over 3 minutes at ~4 requests/s: keys renewed at half-life, nothing refused."""
    server = short_keys
    first = server.keys()
    first_expiry = server.key_file.current().expires["inference"]
    client = SentimentClient(server.url("inference"), run_dir=server.run_dir, retries=0)
    management = Management(server)
    counts = {"requests": 0, "failures": 0, "management": 0, "health": 0, "unhealthy": 0}
    seen: set[str] = {first["inference"]}
    errors: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < 190:
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
    assert datetime.now(timezone.utc) > first_expiry + timedelta(minutes=1)  # outlived 2 keys
    assert renewals >= 2 and len(seen) >= 3
    assert counts["failures"] == 0 and counts["unhealthy"] == 0, errors[:5]
    assert counts["requests"] >= 3 * 60 * 2 and counts["health"] >= 4
    old = requests.get(server.url("inference", "/ping"), timeout=10,
                       headers={"Authorization": f"Bearer {first['inference']}"})  # fmt: skip
    assert old.status_code == 400  # the first key is long dead: the renewals carried the run
