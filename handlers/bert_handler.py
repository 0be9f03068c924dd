"""sentiment_bert: any Hugging Face sequence-classification checkpoint in the archive's model dir.

Loaded with the Auto* classes, so a checkpoint fine-tuned from a hub model
(`scripts/train_bert.py --init ...`) drops in unchanged.  Batches are padded
to their longest text, not to a fixed length.

Two runtimes for the same weights: ONNX Runtime (the default on CPU, when the
archive carries the `model.onnx` exported at build time: measured faster here)
and torch (on a GPU, with `runtime: torch`, or for archives without the
export).  `self.model` is always the torch model, loaded on first use when ONNX
serves, so code that needs gradients (explanations) has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from handlers.artifacts import BERT_FILES, BERT_ONNX_FILE
from handlers.contract import LABELS
from handlers.scoring import softmax
from handlers.sentiment_handler import SentimentHandler


def _device(context: Any) -> torch.device:
    gpu_id = context.system_properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


def _onnx_session(path: Path, threads: int) -> Any:
    """A CPU ONNX Runtime session with `threads` intra-op threads (workers share 2 cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class SentimentBertHandler(SentimentHandler):
    required_files = BERT_FILES

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        hf_logging.disable_progress_bar()
        # TorchServe leaves torch at one thread per core in every worker: on 2 cores that
        # oversubscribes as soon as two workers run.  ONNX Runtime gets the same count.
        threads = int(config.get("torch_threads", 1))
        torch.set_num_threads(threads)
        self.model_dir = model_dir
        self.device = _device(context)
        self.fp16 = bool(config.get("fp16", False))
        self.max_length = int(config.get("max_length", self.metadata.get("max_length", 128)))
        # CPU: groups of similar length waste less on padding; a GPU wants the whole batch.
        self.pad_group = int(config.get("pad_group", 4)) if self.device.type == "cpu" else 1 << 30
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._torch_model: torch.nn.Module | None = None
        # Columns in the contract's order, whatever order a checkpoint names its labels in;
        # unnamed labels (LABEL_0, LABEL_1) are taken as NSMC's 0 = negative, 1 = positive.
        id2label = AutoConfig.from_pretrained(model_dir).id2label
        named = {str(label).lower(): int(i) for i, label in id2label.items()}
        self.columns = [named.get(name, index) for index, name in enumerate(LABELS)]
        exported = BERT_ONNX_FILE in self.metadata.get("artifact_sha256", {})  # hash checked
        wanted = str(config.get("runtime", "onnx")).lower()
        if wanted not in ("onnx", "torch"):
            raise ValueError(f"handler.runtime must be onnx or torch, got {wanted!r}")
        self.session = None
        if wanted == "onnx" and exported and self.device.type == "cpu":
            self.session = _onnx_session(model_dir / BERT_ONNX_FILE, threads)
            self.onnx_inputs = [node.name for node in self.session.get_inputs()]
        else:
            self.model  # noqa: B018 -- load now: it serves every request
        self.runtime = "onnx" if self.session is not None else "torch"

    @property
    def model(self) -> torch.nn.Module:
        """The torch model: serves with runtime torch; loaded on first use otherwise."""
        if self._torch_model is None:
            model = AutoModelForSequenceClassification.from_pretrained(self.model_dir)
            if self.device.type == "cuda" and self.fp16:
                model = model.half()
            self._torch_model = model.to(self.device).eval()
        return self._torch_model

    @model.setter
    def model(self, model: torch.nn.Module | None) -> None:  # BaseHandler.__init__ sets None
        self._torch_model = model

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        """Texts sorted by length and run in groups of `pad_group`, padded per group.

        Reviews are mostly short (median 12 tokens, max 64 here): padding a batch of 16 to
        its longest text tripled the work on CPU.  Answers do not depend on the grouping.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = np.empty((len(texts), len(self.columns)), dtype=np.float32)
        for start in range(0, len(order), self.pad_group):
            group = order[start : start + self.pad_group]
            rows[group] = softmax(self._logits([texts[i] for i in group]))[:, self.columns]
        return rows

    def _logits(self, texts: list[str]) -> np.ndarray:
        if self.session is not None:
            encoded = self.tokenizer(texts, padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="np")  # fmt: skip
            feed = {name: encoded[name] for name in self.onnx_inputs}
            return self.session.run(["logits"], feed)[0]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)  # fmt: skip
        with torch.inference_mode():
            return self.model(**encoded).logits.float().cpu().numpy()
