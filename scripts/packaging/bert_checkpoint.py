"""Any Hugging Face sequence-classification checkpoint as sentiment_bert artifacts.

The handler loads only artifacts whose SHA-256 is recorded in metadata.json.
The project's own training script writes that manifest; a checkpoint made
elsewhere (a plain `save_pretrained` directory, e.g. fine-tuned from a hub
model) has none, so the build step writes one into its staged copy: where it
came from, its label order as the handler will read it, and the hashes.

The label order recorded is the one the handler serves by (handlers.contract reads
it): the config's id2label when its names are ones the project knows, else the order
stated with build_archive's `--labels`, which also overrides known names.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from handlers.artifacts import (
    BERT_FILES,
    BERT_WEIGHTS_FILE,
    METADATA_FILE,
    update_metadata,
    write_metadata,
)
from handlers.contract import LABELS_FLAG, checkpoint_labels, label_names

CONFIG_LABELS = "config.json id2label"  # label_source: the checkpoint's own names
STATED_LABELS = f"build_archive {LABELS_FLAG}"  # label_source: the order stated at build


class NotAClassifierError(ValueError):
    """The directory is not a two-label sequence-classification checkpoint."""


def label_order(
    id2label: Mapping[Any, str], stated: Sequence[str] | None = None
) -> tuple[list[str], str]:
    """Labels by output column and where that order came from: `stated` (--labels) wins.

    Names the project does not know raise UnknownLabelsError: a guess served a
    (pos, neg) checkpoint inverted.
    """
    if stated is None:
        return checkpoint_labels(id2label), CONFIG_LABELS
    if len(stated) != len(id2label):
        raise ValueError(f"{LABELS_FLAG} names {len(stated)} labels; the checkpoint has "
                         f"{len(id2label)} (index order, e.g. {LABELS_FLAG} negative,positive)")
    return label_names(stated), STATED_LABELS


def write_manifest(model_dir: Path, source: str, labels: Sequence[str] | None = None) -> dict:
    """metadata.json for a checkpoint that has none (the tokenizer saved as tokenizer.json).

    Written into `model_dir`, which must be a copy (the build's staging directory):
    the original checkpoint is never modified.  `labels`: the order stated at build.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    if len(config.id2label) != 2:
        raise NotAClassifierError(
            f"{source} has {len(config.id2label)} labels; sentiment_bert needs a two-label "
            "sequence-classification checkpoint (negative, positive)"
        )
    if not (model_dir / "tokenizer.json").exists():  # slow-tokenizer files only (vocab.txt)
        AutoTokenizer.from_pretrained(model_dir).save_pretrained(model_dir)
    if not (model_dir / BERT_WEIGHTS_FILE).exists():  # pytorch_model.bin (or .bin shards) only
        resave_as_safetensors(model_dir, AutoModelForSequenceClassification)
    order, label_source = label_order(config.id2label, labels)
    metadata = {
        "model": "sentiment_bert",
        "description": f"{config.model_type} checkpoint from {source} (manifest written at build)",
        "labels": order,
        "label_source": label_source,
        "source": source,
        "architectures": config.architectures,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return write_metadata(model_dir, metadata, BERT_FILES)


def resave_as_safetensors(model_dir: Path, model_class: Any) -> None:
    """Weights saved as pytorch_model.bin become model.safetensors, what the archive hashes and
    the handler loads (safetensors cannot run code when read; a .bin is a pickle); the .bin
    files leave the staging copy so the archive holds one copy of the weights."""
    model_class.from_pretrained(model_dir).save_pretrained(model_dir)
    for stale in model_dir.glob("pytorch_model*.bin*"):
        stale.unlink()


def ensure_manifest(model_dir: Path, source: str, labels: Sequence[str] | None = None) -> None:
    """Write the manifest of a foreign checkpoint; keep the project's own where it exists.

    An existing manifest gets the stated `labels` where given, and has its label order
    checked either way, so every archive refuses at build what the handler cannot read.
    """
    if not (model_dir / METADATA_FILE).exists():
        write_manifest(model_dir, source, labels)
    else:
        record_labels(model_dir, labels)


def record_labels(model_dir: Path, labels: Sequence[str] | None) -> dict:
    """The existing manifest's label order: stated, recorded at training, or the config's."""
    from transformers import AutoConfig

    metadata = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    id2label = AutoConfig.from_pretrained(model_dir).id2label
    if labels is None and "labels" in metadata:
        order = label_names(metadata["labels"])
        source = metadata.get("label_source", "metadata.json")
    else:
        order, source = label_order(id2label, labels)
    return update_metadata(model_dir, {"labels": order, "label_source": source})
