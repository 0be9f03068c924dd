"""Average the weights of sentiment_bert checkpoints trained from one starting checkpoint.

    NSMC_DIR=../shared/nsmc .venv/bin/python -m scripts.training.soup \
        archive/sentiment_bert/checkpoint build/bert_a build/bert_b --out build/bert_soup

A greedy model soup (Wortsman et al. 2022): the ingredients, best first on the validation
split, join the average only when it does not lose validation accuracy. Runs that go on
from the same checkpoint (more distillation, other seeds, other transfer texts) end in
nearby weights whose average is better than each, and it costs nothing to serve: it is one
model of the same size. The test set is read only for the final figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from handlers.artifacts import BERT_FILES, METADATA_FILE, sha256_of, write_metadata
from handlers.bert_weights import load_classifier
from scripts.nsmc import ensure_files, read_labelled, resolve_data_dir, run_cli
from scripts.training.calibrate import calibrate
from scripts.training.train_bert import (
    accuracy_of,
    library_versions,
    manifest_summary,
    predict_proba,
)

WEIGHTS_FILE = "model.safetensors"
DEFAULT_OUT = Path("build/bert_soup")


class IncompatibleCheckpointsError(ValueError):
    """The checkpoints differ in tokenizer, labels or tensor shapes: no average is defined."""


class ValidationSeenError(ValueError):
    """An ingredient was trained on the validation split (or other data): the choice is unfair."""


@dataclass
class Ingredient:
    directory: Path
    weights: dict[str, torch.Tensor]
    manifest: dict  # its metadata.json
    validation_accuracy: float = 0.0


@dataclass
class Soup:
    model: object
    tokenizer: object
    kept: list[Ingredient]
    left_out: list[Ingredient]
    validation_accuracy: float


def load_ingredients(directories: Sequence[Path]) -> list[Ingredient]:
    """Each checkpoint's weights and manifest, read once for the checks, the averaging and
    the soup's own manifest."""
    return [
        Ingredient(Path(d), load_file(Path(d) / WEIGHTS_FILE),
                   json.loads((Path(d) / METADATA_FILE).read_text(encoding="utf-8")))
        for d in directories
    ]  # fmt: skip


def check_compatible(ingredients: Sequence[Ingredient]) -> None:
    """Same tokenizer, same labels, same tensors: the conditions for averaging at all."""
    first = ingredients[0]
    reference = _signature(first)
    for other in ingredients[1:]:
        for what, expected, found in zip(("tokenizer", "labels", "tensors"), reference,
                                         _signature(other)):  # fmt: skip
            if expected != found:
                raise IncompatibleCheckpointsError(
                    f"{other.directory} and {first.directory} differ in their {what}: only "
                    "checkpoints trained from one starting checkpoint can be averaged"
                )


def check_validation_held_out(ingredients: Sequence[Ingredient], train_file_sha256: str) -> None:
    """Each ingredient trained on the fit part of this very training file, so the validation
    split that picks the ingredients is unseen by all of them."""
    for ingredient in ingredients:
        directory, manifest = ingredient.directory, ingredient.manifest
        if (manifest.get("train_part"), manifest.get("train_file_sha256")) != (
            "fit", train_file_sha256
        ):
            raise ValidationSeenError(
                f"{directory} was not trained on the fit part of this training file "
                f"(train_part {manifest.get('train_part')!r}): the validation split cannot "
                "judge it fairly"
            )


def _signature(ingredient: Ingredient) -> tuple:
    config = json.loads((ingredient.directory / "config.json").read_text(encoding="utf-8"))
    tensors = {name: tuple(t.shape) for name, t in ingredient.weights.items()}
    return sha256_of(ingredient.directory / "tokenizer.json"), config.get("id2label"), tensors


def average(weights: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform mean of each floating-point tensor; integer buffers taken from the first."""
    return {
        name: (torch.stack([w[name].float() for w in weights]).mean(dim=0).to(tensor.dtype)
               if tensor.is_floating_point() else tensor)  # fmt: skip
        for name, tensor in weights[0].items()
    }


def greedy_soup(
    ingredients: Sequence[Ingredient], validation: tuple[list[str], list[int]], max_len: int
) -> Soup:
    """The averaged model with what it was made of and its validation accuracy
    (`ingredients` have passed `check_compatible`)."""
    tokenizer = AutoTokenizer.from_pretrained(ingredients[0].directory)
    model = load_classifier(ingredients[0].directory).eval()

    def score(weights: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(weights)  # strict: a missing tensor must fail
        with torch.no_grad():
            return accuracy_of(predict_proba(model, tokenizer, validation[0], max_len, "cpu"),
                               validation[1])  # fmt: skip

    for ingredient in ingredients:
        ingredient.validation_accuracy = score(ingredient.weights)
        print(f"{ingredient.directory}: validation {ingredient.validation_accuracy:.4f}",
              flush=True)  # fmt: skip
    ranked = sorted(ingredients, key=lambda i: i.validation_accuracy, reverse=True)
    kept, left_out, best = ranked[:1], [], ranked[0].validation_accuracy
    for candidate in ranked[1:]:
        accuracy = score(average([i.weights for i in kept + [candidate]]))
        verdict = "kept" if accuracy >= best else "left out"
        print(f"+ {candidate.directory}: validation {accuracy:.4f}, {verdict}", flush=True)
        if accuracy >= best:
            kept, best = kept + [candidate], accuracy
        else:
            left_out.append(candidate)
    model.load_state_dict(average([i.weights for i in kept]))
    return Soup(model, tokenizer, kept, left_out, best)


def make_soup(directories: Sequence[Path], data_dir: Path, out_dir: Path) -> dict:
    """Write the greedy soup of `directories` to `out_dir` with its manifest; return it."""
    started = time.monotonic()
    train_path, test_path = ensure_files(data_dir)
    validation = read_labelled(train_path, part="validation")
    test = read_labelled(test_path)
    train_file_sha256 = sha256_of(train_path)
    ingredients = load_ingredients(directories)
    check_compatible(ingredients)
    check_validation_held_out(ingredients, train_file_sha256)
    first = ingredients[0].manifest
    max_len = first.get("max_length", 64)
    soup = greedy_soup(ingredients, validation, max_len)
    with torch.no_grad():
        test_accuracy = accuracy_of(
            predict_proba(soup.model, soup.tokenizer, test[0], max_len, "cpu"), test[1]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    soup.model.save_pretrained(out_dir)
    soup.tokenizer.save_pretrained(out_dir)
    config = soup.model.config
    size = f"{config.num_hidden_layers} layers / hidden {config.hidden_size}"

    def record(ingredient: Ingredient) -> dict:
        return {"directory": str(ingredient.directory),
                "validation_accuracy": round(ingredient.validation_accuracy, 4),
                "manifest": manifest_summary(ingredient.manifest)}  # fmt: skip

    metadata = {
        "model": "sentiment_bert",
        "description": f"BERT {size}, the weight average of {len(soup.kept)} checkpoints trained "
        "from one starting checkpoint (greedy soup on the validation split)",
        "labels": first.get("labels"),
        "test_accuracy": round(test_accuracy, 4),
        "validation_accuracy": round(soup.validation_accuracy, 4),  # measured in the greedy pass
        "command": " ".join(["python -m scripts.training.soup", *map(str, directories)]),
        "ingredients": [record(i) for i in soup.kept],
        "left_out": [record(i) for i in soup.left_out],
        "preset": first.get("preset"),
        "max_length": max_len,
        "train_rows": first.get("train_rows"),
        "train_part": "fit",
        "validation_rows": len(validation[0]),
        "test_rows": len(test[0]),
        "train_file_sha256": train_file_sha256,
        "test_file_sha256": sha256_of(test_path),
        "training_seconds": round(time.monotonic() - started, 1),
        "versions": library_versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = write_metadata(out_dir, metadata, BERT_FILES)
    metadata["calibration"] = calibrate("sentiment_bert", out_dir, data_dir)
    print(f"soup of {len(soup.kept)}: validation {soup.validation_accuracy:.4f}, "
          f"test {test_accuracy:.4f}; wrote {out_dir}")  # fmt: skip
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", type=Path,
                        help="checkpoint directories trained from one starting checkpoint")
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    return run_cli(lambda: make_soup(args.checkpoints, resolve_data_dir(args.data_dir), args.out))


if __name__ == "__main__":
    sys.exit(main())
