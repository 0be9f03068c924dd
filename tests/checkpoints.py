"""Tiny randomly initialised checkpoints of several architectures, as `save_pretrained` leaves them.

No metadata.json: this is what a checkpoint made outside the project looks like.
Weights are random; what matters is that the served answers equal transformers'
own on the same texts, whatever the architecture, tokenizer outputs or label order.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertTokenizer,
    DistilBertConfig,
    ElectraConfig,
    RobertaConfig,
)

from handlers.artifacts import BERT_FILES, write_metadata
from scripts.training.train_bert import SPECIAL_TOKENS, train_tokenizer

TEXTS = ["정말 재밌게 잘봤습니다", "최악의 영화 ㅋㅋ", "그냥 그래요", "배우들 연기가 좋다", "시간 아까움"]
SIZE = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64)

ARCHITECTURES = ("bert", "electra", "distilbert", "roberta")


def _standard_wordpiece(out: Path) -> BertTokenizer:
    """A standard BERT tokenizer (it returns token_type_ids, as klue/bert-base's does)."""
    chars = sorted(set("".join(TEXTS)) - {" "})
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + chars + [f"##{c}" for c in chars])}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=False, strip_accents=False)
    tokenizer.save_pretrained(out)
    return tokenizer


def save_checkpoint(arch: str, out: Path, reverse_labels: bool = False) -> Path:
    """A random two-label classifier of `arch` with its tokenizer, saved to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if arch in ("bert", "electra", "distilbert"):
        tokenizer = _standard_wordpiece(out)
    else:  # the project's own WordPiece (no token_type_ids) under a RoBERTa body
        tokenizer = train_tokenizer(TEXTS * 10, 120, out)
    labels = ["positive", "negative"] if reverse_labels else ["negative", "positive"]
    common = dict(vocab_size=len(tokenizer), num_labels=2, id2label=dict(enumerate(labels)),
                  label2id={label: i for i, label in enumerate(labels)},
                  pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    if arch == "bert":
        config = BertConfig(num_hidden_layers=1, max_position_embeddings=64, **SIZE, **common)
    elif arch == "electra":
        config = ElectraConfig(num_hidden_layers=1, embedding_size=16, max_position_embeddings=64,
                               **SIZE, **common)  # fmt: skip
    elif arch == "distilbert":
        config = DistilBertConfig(n_layers=1, dim=32, n_heads=2, hidden_dim=64,
                                  max_position_embeddings=64, **common)  # fmt: skip
    elif arch == "roberta":
        config = RobertaConfig(num_hidden_layers=1, max_position_embeddings=72, **SIZE, **common)
    else:
        raise ValueError(f"unknown architecture {arch}")
    AutoModelForSequenceClassification.from_config(config).save_pretrained(out)
    return out


def random_bert(out: Path, max_position_embeddings: int = 64) -> Path:
    """A tiny random BERT on the project's own WordPiece, with the manifest the handler checks
    (no labels in it: the config's unnamed LABEL_0 / LABEL_1 are read)."""
    tokenizer = train_tokenizer(["정말 재밌다", "최악의 영화", "그냥 그래요 ㅋㅋ"] * 20, 200, out)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=max_position_embeddings,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(out)
    write_metadata(out, {"model": "random", "max_length": 32}, BERT_FILES)
    return out
