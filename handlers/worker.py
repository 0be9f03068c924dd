"""Cheaper plumbing for the TorchServe 0.12 worker process a handler is loaded into.

py-spy on a served sentiment_fast worker at c=32 (docs/performance/tuning.md run I): besides
the model, 12.8 % of the worker's busy time went to reading the frontend's messages, one
`recv()` per field (about 30 per request: id, every HTTP header, the body), and 2.9 % to
one INFO line per batch ("Backend received inference at: ...") that the frontend only copies
into model_log.log.  Both are TorchServe's own code (`ts.protocol.otf_message_handler`);
`tune_worker` changes them for this process alone, once its model is loaded.  TorchServe
0.12 is its last release, so these internals no longer move.
"""

from __future__ import annotations

import logging
import socket
import sys

from ts.protocol import otf_message_handler as protocol

READ_SIZE = 1 << 16  # a batch of 16 reviews with their headers is ~10 KB
PER_BATCH_LINE = "Backend received inference at: %d"  # otf_message_handler.retrieve_msg


def in_torchserve_worker() -> bool:
    """Whether this process is TorchServe's Python worker (not a test or an in-process load)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None) or ""
    return main.replace("\\", "/").endswith("ts/model_service_worker.py")


class BufferedReads:
    """`_retrieve_buffer(conn, length)` served from large `recv()`s: the same bytes in the
    same order, about one system call per batch instead of one per field."""

    def __init__(self) -> None:
        self.conn: socket.socket | None = None
        self.data = bytearray()

    def __call__(self, conn: socket.socket, length: int) -> bytearray:
        if conn is not self.conn:  # the worker's one connection to the frontend
            self.conn, self.data = conn, bytearray()
        data = self.data
        while len(data) < length:
            packet = conn.recv(max(READ_SIZE, length - len(data)))
            if not packet:  # what TorchServe's own reader does
                logging.info("Frontend disconnected.")
                sys.exit(0)
            data += packet
        chunk = data[:length]
        del data[:length]  # O(1) from the front of a bytearray
        return chunk


def not_per_batch_line(record: logging.LogRecord) -> bool:
    """A root-logger filter: False for TorchServe's per-batch "received inference" line."""
    return record.msg != PER_BATCH_LINE


def tune_worker() -> None:
    """Buffer the protocol's reads and drop the per-batch log line, in TorchServe's worker only."""
    if not in_torchserve_worker():
        return
    if not isinstance(protocol._retrieve_buffer, BufferedReads):
        protocol._retrieve_buffer = BufferedReads()
    root = logging.getLogger()  # filters of a logger see only the records logged on it
    if not_per_batch_line not in root.filters:
        root.addFilter(not_per_batch_line)
