"""The TorchServe side of the contract: BaseHandler's steps wired to handlers.contract.

Each model's handler only says how to load its artifacts and how to turn a
list of cleaned texts into (p_negative, p_positive) rows; everything about
requests, batching, per-request errors, metrics and calibration lives here once.
The handlers' `predict_proba` stays the model's raw output; answers and
explanations report it through the calibration stored in metadata.json
(handlers/calibration.py), so every endpoint's confidence means the same thing.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from http import HTTPStatus
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from ts.metrics.dimension import Dimension
from ts.torch_handler.base_handler import BaseHandler

from handlers.artifacts import load_verified_metadata
from handlers.calibration import Calibration
from handlers.contract import (
    Batch,
    Explanation,
    Limits,
    ModelError,
    ParsedRequest,
    RequestError,
    TokenScore,
    decode_batch,
    encode_batch,
    join_batches,
    split_batch,
)
from handlers.metrics import BatchMetrics
from handlers.worker import tune_worker

logger = logging.getLogger(__name__)


class SentimentHandler(BaseHandler, ABC):
    """decode -> one model call for the whole batch -> unbatch -> encode.

    Should that call raise, each request is answered alone, so a text the model fails
    on costs only its own request a 500, not its batch-mates a 503.
    """

    #: files (besides metadata.json) that must be in the model dir, hash-checked before loading
    required_files: Sequence[str] = ()
    #: whether metadata.json should carry a fitted calibration (a missing one is logged)
    calibrated: bool = True

    def initialize(self, context: Any) -> None:
        config = (context.model_yaml_config or {}).get("handler", {}) or {}
        self.setup(context, Path(context.system_properties["model_dir"]), config)
        tune_worker()  # cheaper protocol reads and no per-batch log line (handlers/worker.py)

    def setup(self, context: Any, model_dir: Path, config: Mapping[str, Any]) -> None:
        """Verify and load the artifacts in `model_dir` with this `handler:` config section.

        Split from initialize so a composed handler (the cascade) loads each of its
        models from a sub-directory through this same hash-checked path.
        """
        self.context = context
        self.manifest = context.manifest
        self.limits = Limits.from_config(config)
        self.metadata = load_verified_metadata(model_dir, self.required_files)
        self.calibration = Calibration.from_metadata(self.metadata)
        if self.calibration.is_identity and self.calibrated:
            logger.warning("%s: no calibration in %s/metadata.json, so answers are raw "
                           "probabilities; see scripts/training/calibrate.py", context.model_name,
                           model_dir)  # fmt: skip
        self.load_model(model_dir, config, context)
        self.initialized = True
        logger.info("%s ready: %s", context.model_name, self.metadata.get("model"))

    def describe_handle(self) -> str:
        """`GET /models/<name>?customized=true`: what was trained, on what, and how well."""
        keys = ("model", "description", "labels", "label_source", "test_accuracy",
                "seed_baseline_accuracy", "train_rows", "train_file_sha256", "created_at",
                "preset", "versions", "calibration", "runtimes")  # fmt: skip
        described = {key: self.metadata[key] for key in keys if key in self.metadata}
        described["model_version"] = (self.manifest or {}).get("model", {}).get("modelVersion")
        return json.dumps(described)

    @abstractmethod
    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        """Load the model's artifacts from `model_dir`."""

    @abstractmethod
    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        """Cleaned texts -> one (p_negative, p_positive) row per text."""

    def explain_texts(self, texts: list[str]) -> list[Explanation]:
        """Cleaned texts -> the tokens that pushed each towards its label (`/explanations`)."""
        raise NotImplementedError(f"{type(self).__name__} does not explain its predictions")

    def decide(self, batch: Batch) -> None:
        """Fill the batch's answers (a composed handler also says which models decided)."""
        batch.probabilities = self.probabilities(batch.texts)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Calibrated (p_negative, p_positive) rows: what the answers report."""
        return self.calibration.apply(self.predict_proba(texts))

    def explanations(self, texts: list[str]) -> list[Explanation]:
        """explain_texts in the calibrated log-odds the answers report."""
        return self.calibrate_explanations(self.explain_texts(texts))

    def calibrate_explanations(self, explanations: list[Explanation]) -> list[Explanation]:
        """Raw explanations in calibrated log-odds.

        Calibration is affine in the log-odds, so scores scale by its slope and the
        base takes the rest: a sum rule that held for the raw log-odds still holds.
        """
        scale, shift = self.calibration.scale, self.calibration.shift
        return [
            Explanation(
                explanation.method,
                [TokenScore(t.token, scale * t.score, t.spans) for t in explanation.tokens],
                None if explanation.base is None else scale * explanation.base + shift,
            )
            for explanation in explanations
        ]

    def explain_decided(self, batch: Batch, wanted: list[bool]) -> list[Explanation]:
        """Explanations of the `wanted` texts of a batch that `decide` has already answered.

        A hook so a composed handler explains with the routing `decide` chose
        instead of running its models again.
        """
        return self.explanations([text for text, w in zip(batch.texts, wanted) if w])

    def _content_type(self, idx: int) -> str | None:
        """The body's content type (a per-parameter header), else the request's own header."""
        headers = self.context.get_all_request_header(idx)
        for parameter in ("body", "data"):
            if isinstance(headers.get(parameter), dict):
                return headers[parameter].get("content-type")
        for name, value in headers.items():
            if name.lower() == "content-type" and isinstance(value, str):
                return value
        return None

    def preprocess(self, data: list[Mapping[str, Any]]) -> Batch:
        started = time.perf_counter()
        content_types = [self._content_type(idx) for idx in range(len(data))]
        batch = decode_batch(data, self.limits, content_types)
        self._seconds = {"Preprocess": time.perf_counter() - started}
        return batch

    def _wants_explanation(self, batch: Batch) -> list[bool]:
        """Per text: did its request come to /explanations (TorchServe's "explain" header)?"""
        wanted = []
        for idx, request in enumerate(batch.requests):
            if not isinstance(request, ParsedRequest):
                continue
            flag = self.context.get_request_header(idx, "explain") == "True"
            wanted.extend([flag] * len(request.texts))
        return wanted

    def inference(self, batch: Batch, *args: Any, **kwargs: Any) -> Batch:
        started = time.perf_counter()
        if batch.texts:
            wanted = self._wants_explanation(batch)
            try:
                self.answer(batch, wanted)
            except Exception:  # raised, it would fail the whole batch with 503
                logger.exception("%s: a batch of %d requests failed; answering each alone",
                                 self.context.model_name, len(batch.requests))  # fmt: skip
                batch = self.answer_each(batch, wanted)
        self._seconds["Inference"] = time.perf_counter() - started
        return batch

    def answer(self, batch: Batch, wanted: list[bool]) -> None:
        """Every text's answer, and the explanations `wanted` (aligned with the texts)."""
        self.decide(batch)
        if any(wanted):
            explained = iter(self.explain_decided(batch, wanted))
            batch.explanations = [next(explained) if w else None for w in wanted]

    def answer_each(self, batch: Batch, wanted: list[bool]) -> Batch:
        """The batch's requests one at a time: one that fails again gets its own 500
        (ModelError), or the status of a RequestError raised for it, and only it; its
        batch-mates are answered."""
        parts = []
        for part, flags in split_batch(batch, wanted):
            if part.texts:
                try:
                    self.answer(part, flags)
                except RequestError as err:  # what this model cannot do, said as it is
                    part = Batch([err])
                except Exception as err:  # this request's own error response
                    logger.exception("%s: a request failed alone", self.context.model_name)
                    part = Batch([ModelError(err)])
            parts.append(part)
        return join_batches(parts)

    def explain_handle(self, data_preprocess: Batch, raw_data: Any) -> list[str]:
        """What BaseHandler.handle calls when the batch's *first* request is an explanation.

        TorchServe batches /predictions and /explanations requests together and
        looks only at request 0, so both paths go through the same per-request
        decision in `inference`: every request gets what it asked for.
        """
        return self.postprocess(self.inference(data_preprocess))

    def postprocess(self, batch: Batch) -> list[str]:
        responses = encode_batch(batch)
        for idx, response in enumerate(responses):
            self.context.set_response_content_type(idx, "application/json")
            if response.status != 200:
                phrase = HTTPStatus(response.status).phrase  # 400 Bad Request, 500 ...
                self.context.set_response_status(response.status, phrase, idx)
        self._record_metrics(batch)
        return [response.body for response in responses]

    def model_dimensions(self) -> list[Dimension]:
        """The dimensions of every metric this handler (or a composed one) records.

        The same for every version and metric: the frontend fixes a metric's label set when
        it first sees it, and drops later values with other labels (until it restarts).
        """
        return [Dimension("ModelName", self.context.model_name), Dimension("Level", "Model")]

    def _record_metrics(self, batch: Batch) -> None:
        """Counters whose ratios tell batch size and texts per request on /metrics, and
        histograms of batch size and of this handler's own time per batch (seconds): one
        record per batch (handlers/metrics.py says why)."""
        metrics = BatchMetrics(self.model_dimensions())
        self.count_batch(metrics, batch)
        metrics.add("SentimentBatchSize", len(batch.requests), histogram=True)
        for step, seconds in getattr(self, "_seconds", {}).items():
            metrics.add(f"Sentiment{step}Seconds", seconds, "s", histogram=True)
        metrics.add("SentimentBatches", 1)
        metrics.add("SentimentRequests", len(batch.requests))
        metrics.add("SentimentTexts", len(batch.texts))
        for error in batch.rejected:
            metrics.add("SentimentRejected", 1, extra=[Dimension("Reason", error.error_type)])
        metrics.emit()

    def count_batch(self, metrics: BatchMetrics, batch: Batch) -> None:
        """A model's own metrics of the batch (the cascade counts its escalations)."""
