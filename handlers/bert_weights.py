"""How sentiment_bert's weights are loaded: in float32, whatever dtype they were saved in.

A module of its own so that what imports the settings alone (build_archive) does not import
torch and transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel


def load_classifier(source: str | Path, **kwargs: Any) -> PreTrainedModel:
    """The checkpoint's classifier in float32, however its weights are stored.

    transformers 5 loads weights in the dtype they were saved in, and hub checkpoints are
    often saved in fp16 or bf16: as stored they ran several times slower on this CPU
    (docs/performance/half_precision.md), an fp16 ONNX export failed to load
    (LayerNormalization bound to float and float16), and fine-tuning would update
    half-precision weights.  A GPU worker halves the float32 model itself when `fp16` is set.
    """
    return AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32,
                                                              **kwargs)  # fmt: skip
