"""sentiment_bert: any Hugging Face sequence-classification checkpoint in the archive's model dir.

Loaded with the Auto* classes, so a checkpoint fine-tuned from a hub model
(`scripts/train_bert.py --init ...`) drops in unchanged.  Batches are padded
to their longest text, not to a fixed length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from handlers.artifacts import BERT_FILES
from handlers.contract import LABELS
from handlers.sentiment_handler import SentimentHandler


def _device(context: Any) -> torch.device:
    gpu_id = context.system_properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class SentimentBertHandler(SentimentHandler):
    required_files = BERT_FILES

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        hf_logging.disable_progress_bar()
        # TorchServe leaves torch at one thread per core in every worker: on 2 cores that
        # oversubscribes as soon as two workers run.
        torch.set_num_threads(int(config.get("torch_threads", 1)))
        self.device = _device(context)
        self.max_length = int(config.get("max_length", self.metadata.get("max_length", 128)))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        if self.device.type == "cuda" and config.get("fp16", False):
            model = model.half()
        self.model = model.to(self.device).eval()
        # Columns in the contract's order, whatever order a checkpoint names its labels in;
        # unnamed labels (LABEL_0, LABEL_1) are taken as NSMC's 0 = negative, 1 = positive.
        named = {str(label).lower(): int(i) for i, label in self.model.config.id2label.items()}
        self.columns = [named.get(name, index) for index, name in enumerate(LABELS)]

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)  # fmt: skip
        with torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.columns].cpu().numpy()
