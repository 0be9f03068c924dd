"""handlers.worker: TorchServe's worker protocol read through a buffer decodes the same messages;
its per-batch log line is dropped, nothing else; nothing changes outside a worker."""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
import types
from typing import Iterator

import pytest
from ts.protocol import otf_message_handler as protocol

from handlers import worker

REQUESTS = [
    ("req-1", {"Content-Type": "application/json", "Authorization": "Bearer x" * 40},
     [("body", "application/json", json.dumps({"text": "정말 재밌다"}).encode())]),
    ("req-2", {"Content-Type": "text/plain; charset=utf-8"},
     [("body", "text/plain", "시간 아깝다".encode())]),
    ("req-3", {}, [("body", "application/octet-stream", b"\xff\x00" * 70_000)]),
]  # fmt: skip


def _field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def predict_message(requests: list) -> bytes:
    """A predict command as TorchServe's frontend frames it (what _retrieve_request reads)."""
    out = b"I"
    for request_id, headers, parameters in requests:
        out += _field(request_id.encode())
        for name, value in headers.items():
            out += _field(name.encode()) + _field(value.encode())
        out += struct.pack("!i", -1)
        for name, content_type, value in parameters:
            out += _field(name.encode()) + _field(content_type.encode()) + _field(value)
        out += struct.pack("!i", -1)
    return out + struct.pack("!i", -1)


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    frontend, worker_end = socket.socketpair()
    yield frontend, worker_end
    frontend.close()
    worker_end.close()


def decode_two(frontend: socket.socket, worker_end: socket.socket) -> list:
    """Two messages sent in one write, decoded one after the other as the worker loop does:
    (command, requests) each."""
    frontend.sendall(predict_message(REQUESTS) + predict_message(REQUESTS[:1]))
    return [protocol.retrieve_msg(worker_end), protocol.retrieve_msg(worker_end)]


def test_buffered_reads_decode_what_torchserve_decodes(connection, monkeypatch):
    expected = decode_two(*connection)
    monkeypatch.setattr(protocol, "_retrieve_buffer", worker.BufferedReads())
    assert decode_two(*connection) == expected
    (command, first), (_, second) = expected
    assert command == b"I" and [r["requestId"] for r in first] == [b"req-1", b"req-2", b"req-3"]
    assert first[0]["parameters"][0]["value"] == {"text": "정말 재밌다"} and len(second) == 1


def test_buffered_reads_exit_as_torchserve_does_when_the_frontend_is_gone(connection):
    frontend, worker_end = connection
    frontend.sendall(b"I" + struct.pack("!i", 5))
    frontend.close()
    read = worker.BufferedReads()
    assert read(worker_end, 1) == b"I"
    with pytest.raises(SystemExit) as exited:
        read(worker_end, 4 + 5)
    assert exited.value.code == 0


@pytest.fixture
def restored(monkeypatch) -> Iterator[logging.Logger]:
    """The root logger and the protocol module as they were, whatever tune_worker changed."""
    root = logging.getLogger()
    monkeypatch.setattr(protocol, "_retrieve_buffer", protocol._retrieve_buffer)
    filters = list(root.filters)
    yield root
    root.filters[:] = filters


def test_nothing_changes_outside_a_torchserve_worker(restored):
    original = protocol._retrieve_buffer
    assert not worker.in_torchserve_worker()
    worker.tune_worker()
    assert protocol._retrieve_buffer is original
    assert worker.not_per_batch_line not in restored.filters


def test_in_a_worker_only_the_per_batch_line_is_dropped(restored, monkeypatch, caplog):
    main = types.SimpleNamespace(__file__="/venv/site-packages/ts/model_service_worker.py")
    monkeypatch.setitem(sys.modules, "__main__", main)
    worker.tune_worker()
    worker.tune_worker()  # once per process, however many handlers a worker loads
    assert isinstance(protocol._retrieve_buffer, worker.BufferedReads)
    assert restored.filters.count(worker.not_per_batch_line) == 1
    caplog.set_level("INFO")
    logging.info(worker.PER_BATCH_LINE, 1700000000)
    logging.info("Frontend disconnected.")
    logging.getLogger("handlers.metrics").info("[METRICS]SentimentBatches.Count:1|#...")
    assert [r.getMessage() for r in caplog.records] == [
        "Frontend disconnected.", "[METRICS]SentimentBatches.Count:1|#..."]  # fmt: skip
