"""Keys over time, without a server: the key-file reader, when renewal is due, the renewer's exit.

The same behaviour against a real TorchServe with 15-second keys: tests/integration/test_keys.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from scripts.registry import ROOT
from sentiment_client.keys import KeyFile, Keys, Renewer, parse_instant, renew_at


def write_keys(path: Path, inference: str, expires: datetime, api: str = "api-key") -> None:
    instant = expires.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")  # Java's Instant.toString()
    path.write_text(json.dumps({
        "management": {"key": f"m-{inference}", "expiration time": instant},
        "inference": {"key": inference, "expiration time": instant},
        "API": {"key": api},
    }))  # fmt: skip


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


def test_renewer_looks_again_within_a_second_while_there_is_no_key_file(tmp_path: Path):
    """TorchServe writes the file after the renewer starts; its first keys may be short-lived."""
    path = tmp_path / "key_file.json"
    renewer = Renewer(KeyFile(path), "http://127.0.0.1:9", poll=30.0, log=lambda _: None)
    assert renewer.step() <= 1.0
    write_keys(path, "key1", datetime.now(timezone.utc) + timedelta(hours=24))
    assert 25.0 < renewer.step() <= 30.0  # 12 h until renewal: the poll bounds the sleep


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
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    out, _ = renewer.communicate(timeout=30)
    assert renewer.returncode == 0 and "the server has gone" in out
    assert not (tmp_path / "renewer.pid").exists()
