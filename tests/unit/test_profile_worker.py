"""benchmarks.profile_worker: py-spy's raw stacks read and sorted into a request's path."""

from __future__ import annotations

from pathlib import Path

from benchmarks.profile_worker import categorize, read_raw

WORKER = "<module> (ts/model_service_worker.py:301);handle_connection (ts/model_service_worker.py"
STACKS = f"""{WORKER}:179);retrieve_msg (ts/protocol/otf_message_handler.py:33);BufferedReads.__call__ (handlers/worker.py:44) 50
{WORKER}:179);retrieve_msg (ts/protocol/otf_message_handler.py:37);_retrieve_request (ts/protocol/otf_message_handler.py:271) 20
{WORKER}:185);Service.predict (ts/service.py:135);SentimentHandler.inference (handlers/sentiment_handler.py:170);scorer.<locals>.predict_proba (handlers/scoring.py:92);check_array (sklearn/utils/validation.py:888) 7
{WORKER}:185);Service.predict (ts/service.py:135);SentimentHandler.inference (handlers/sentiment_handler.py:170);scorer.<locals>.predict_proba (handlers/scoring.py:92) 13
{WORKER}:185);Service.predict (ts/service.py:135);SentimentHandler.postprocess (handlers/sentiment_handler.py:220);SentimentHandler._record_metrics (handlers/sentiment_handler.py:245);BatchMetrics.emit (handlers/metrics.py:45) 4
{WORKER}:187) 6
"""  # fmt: skip


def test_samples_land_in_their_part_of_the_path(tmp_path: Path):
    raw = tmp_path / "worker-1.txt"
    raw.write_text(STACKS + "\n", encoding="utf-8")
    shares = categorize(read_raw(raw))
    assert shares == {
        "TorchServe: protocol, first read (waits for a batch)": 50,
        "TorchServe: protocol, decoding the batch": 20,
        "model: sklearn input checks": 7,
        "model: vectorize + score": 13,
        "handler: metrics": 4,
        "TorchServe: sending the response": 6,
    }
