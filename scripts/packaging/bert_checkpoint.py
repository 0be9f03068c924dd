"""Any Hugging Face sequence-classification checkpoint as sentiment_bert artifacts.

The handler loads only artifacts whose SHA-256 is recorded in metadata.json.
The project's own training script writes that manifest; a checkpoint made
elsewhere (a plain `save_pretrained` directory, e.g. fine-tuned from a hub
model) has none, so the build step writes one into its staged copy: where it
came from, its label order as the handler will read it, and the hashes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from handlers.artifacts import BERT_FILES, METADATA_FILE, write_metadata
from handlers.contract import LABELS


class NotAClassifierError(ValueError):
    """The directory is not a two-label sequence-classification checkpoint."""


def label_order(id2label: dict) -> list[str]:
    """Labels by output column: the checkpoint's names, or NSMC's order when they are unnamed."""
    names = [str(id2label[key]).lower() for key in sorted(id2label, key=int)]
    if sorted(names) == sorted(LABELS):
        return names
    return list(LABELS)  # LABEL_0 / LABEL_1: taken as NSMC's 0 = negative, 1 = positive


def write_manifest(model_dir: Path, source: str) -> dict:
    """metadata.json for a checkpoint that has none (the tokenizer saved as tokenizer.json).

    Written into `model_dir`, which must be a copy (the build's staging directory):
    the original checkpoint is never modified.
    """
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    if len(config.id2label) != 2:
        raise NotAClassifierError(
            f"{source} has {len(config.id2label)} labels; sentiment_bert needs a two-label "
            "sequence-classification checkpoint (negative, positive)"
        )
    if not (model_dir / "tokenizer.json").exists():  # slow-tokenizer files only (vocab.txt)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(model_dir)
    metadata = {
        "model": "sentiment_bert",
        "description": f"{config.model_type} checkpoint from {source} (manifest written at build)",
        "labels": label_order(config.id2label),
        "source": source,
        "architectures": config.architectures,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return write_metadata(model_dir, metadata, BERT_FILES)


def ensure_manifest(model_dir: Path, source: str) -> None:
    """Write the manifest of a foreign checkpoint; keep the project's own where it exists."""
    if not (model_dir / METADATA_FILE).exists():
        write_manifest(model_dir, source)
