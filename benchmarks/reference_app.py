"""The baseline TorchServe has to beat: the seed tutorials' FastAPI app around the same model.

Written the way the tutorials do it (model loaded once at import, one
pydantic-validated POST endpoint, uvicorn with 2 workers), serving the same
sentiment_fast artifact with the same text cleaning, model call and answer
shape, so the benchmark compares serving stacks and not models.  Started by benchmarks/bench.py:

    REFERENCE_MODEL_DIR=build/sentiment_fast uvicorn benchmarks.reference_app:app \
        --host 127.0.0.1 --port 8000 --workers 2 --no-access-log
"""

from __future__ import annotations

import asyncio.base_events
import os
import socket
from pathlib import Path

import joblib
from fastapi import FastAPI
from pydantic import BaseModel

from handlers.artifacts import FAST_MODEL_FILE, load_verified_metadata
from handlers.contract import encode_prediction
from handlers.scoring import scorer
from handlers.text import clean_text


def _nodelay_on_every_tcp_socket(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# The seed setup's hidden trap: with --workers, uvicorn's shared socket has proto 0, so
# asyncio skips TCP_NODELAY on accepted connections; headers and body go out in two writes
# and the body waits for the client's delayed ACK (~40 ms per request at low concurrency).
# REFERENCE_NODELAY=1 measures the app with that fixed, so TorchServe is compared with both.
if os.environ.get("REFERENCE_NODELAY") == "1":
    asyncio.base_events._set_nodelay = _nodelay_on_every_tcp_socket

MODEL_DIR = Path(os.environ.get("REFERENCE_MODEL_DIR", "build/sentiment_fast"))
load_verified_metadata(MODEL_DIR, [FAST_MODEL_FILE])  # joblib runs code: check the hash first
model = joblib.load(MODEL_DIR / FAST_MODEL_FILE)
predict_proba = scorer(model)  # the handler's own model call: only serving differs
app = FastAPI(title="sentiment reference app")


class Review(BaseModel):
    text: str


@app.post("/predict")
def predict(review: Review) -> dict:
    return encode_prediction(predict_proba([clean_text(review.text)])[0])
