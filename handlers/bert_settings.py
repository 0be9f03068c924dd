"""sentiment_bert's `handler:` settings (model-config.yaml), typed and checked at load, and
the token limit a checkpoint allows (what `max_length` is cut to).

A module of its own: TorchServe refuses a handler file that defines more than one class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from handlers.artifacts import BERT_RUNTIME_FILES

# transformers' "no limit" for a tokenizer is 1e30; a real one is a few thousand tokens at most
SANE_TOKENIZER_LIMIT = 1 << 20
# Architectures whose position ids start after the padding index (RoBERTa's
# create_position_ids_from_input_ids): a text has max_position_embeddings - (pad + 1) tokens.
PADDED_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text",
                    "roberta-prelayernorm", "longformer", "xmod", "ibert", "markuplm")  # fmt: skip
EXPLAIN_METHODS = ("gradient_x_input", "integrated_gradients")  # methods of SentimentBertHandler
# onnx: the fp32 export; onnx-int8: its dynamic int8 quantization; torch: the weights themselves
RUNTIMES = tuple(BERT_RUNTIME_FILES)


@dataclass(frozen=True)
class BertSettings:
    """The `handler:` section of sentiment_bert's model-config.yaml, typed and checked at load.

    A wrong value fails the worker's start with its name, not a request later.
    """

    torch_threads: int = 1  # TorchServe leaves one thread per core in every worker
    fp16: bool = False  # GPU workers only
    max_length: int | None = None  # tokens; None: the checkpoint's metadata (else 128)
    pad_group: int = 4  # CPU: texts per length-sorted padding group
    runtime: str = "onnx"
    explain_method: str = "gradient_x_input"
    ig_steps: int = 20

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "BertSettings":
        config = config or {}

        def integer(name: str) -> int | None:
            value = config.get(name, getattr(cls, name))
            try:
                return None if value is None else int(value)
            except (TypeError, ValueError):
                raise ValueError(f"handler.{name} must be a whole number, got {value!r}") from None

        settings = cls(
            torch_threads=integer("torch_threads"),
            fp16=config.get("fp16", cls.fp16),
            max_length=integer("max_length"),
            pad_group=integer("pad_group"),
            runtime=str(config.get("runtime", cls.runtime)).lower(),
            explain_method=str(config.get("explain_method", cls.explain_method)),
            ig_steps=integer("ig_steps"),
        )
        if settings.runtime not in RUNTIMES:
            raise ValueError(f"handler.runtime must be one of {', '.join(RUNTIMES)}, "
                             f"got {settings.runtime!r}")  # fmt: skip
        if settings.explain_method not in EXPLAIN_METHODS:
            raise ValueError(f"handler.explain_method must be one of {EXPLAIN_METHODS}, "
                             f"got {settings.explain_method!r}")  # fmt: skip
        if not isinstance(settings.fp16, bool):
            raise ValueError(f"handler.fp16 must be true or false, got {settings.fp16!r}")
        return settings


def position_limit(config: Any, tokenizer: Any) -> int | None:
    """The most tokens the checkpoint can embed, or None when it states no limit.

    Longer input fails inside the model (an index past its position table), so a
    configured max_length above this must be cut to it, not trusted.
    """
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit <= SANE_TOKENIZER_LIMIT:
        limits.append(tokenizer_limit)
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions - position_offset(config))
    return min(limits, default=None)


def position_offset(config: Any) -> int:
    """Position ids a text cannot use: RoBERTa's family counts from padding_idx + 1."""
    if getattr(config, "model_type", None) not in PADDED_POSITIONS:
        return 0
    pad = getattr(config, "pad_token_id", None)
    return (1 if pad is None else int(pad)) + 1
