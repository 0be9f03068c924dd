"""Train sentiment_bert offline: WordPiece -> masked-LM pre-training -> fine-tuning -> distillation.

The model hub is unreachable here, so the default builds a small BERT from the
project's own data; in-domain pre-training on the unlabeled reviews is what
makes a small model competitive.  The last stage distils an ensemble of n-gram
models and the fine-tuned BERT into the BERT, over the unlabeled reviews
(`scripts/training/teachers.py` says why).  With a hub (or a local checkpoint), `--init`
skips the first two stages and fine-tunes any Hugging Face sequence-
classification checkpoint instead:

    python -m scripts.training.train_bert --out build/sentiment_bert    # cpu-4x128, over an hour
    python -m scripts.training.train_bert --teacher <better dir>        # its BERT member
    python -m scripts.training.train_bert --init klue/bert-base --preset gpu      # needs the hub
    python -m scripts.training.train_bert --init /path/to/saved/checkpoint
    python -m scripts.training.train_bert --init <fine-tuned dir> --finetune-epochs 0  # distil
    python -m scripts.training.train_bert --init <dir> --finetune-epochs 0 --stack-layers 4
    python -m scripts.training.train_bert --init <small dir> --finetune-epochs 0 --teacher <big dir>
    python -m scripts.training.train_bert --init <dir> --finetune-epochs 0 --widen

Every stage checkpoints into `<out>/work/` and a rerun resumes from there.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tokenizers
import torch
import transformers
from tokenizers import BertWordPieceTokenizer
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from handlers.artifacts import BERT_FILES, sha256_of, write_metadata
from handlers.contract import LABELS, label_columns
from handlers.text import clean_text
from scripts.nsmc import (
    UNLABELED_FILE,
    ensure_files,
    read_labelled,
    resolve_data_dir,
    run_cli,
)
from scripts.training import teachers
from scripts.training.calibrate import calibrate
from scripts.training.loop import (
    StageStopped,
    batches,
    encode,
    pad,
    run_steps,
    stage_minutes,
    stop_after,
)
from scripts.training.pretraining import (
    OBJECTIVES,
    PROBE_TRAIN_ROWS,
    SPECIAL_TOKENS,
    Probe,
    pretrain,
    read_curve,
)

DEFAULT_OUT = Path("build/sentiment_bert")
STOPPED_EXIT = 3  # --stop-after-minutes ran out: state saved, the same command resumes
# WordPiece turns a whole word into [UNK] when one of its characters is outside the alphabet.
# The trainer's default alphabet (the 1,000 most frequent characters) left out Hangul syllables
# such as 꽝, 뿔 (개뿔) and 퉁 (짝퉁): 15 % of the test reviews lost a word, often the one that
# carried the sentiment. The reviews have 4.2k distinct characters; the 3,000 most frequent
# are every character seen more than once.
ALPHABET_LIMIT = 3000


@dataclass(frozen=True)
class Preset:
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    max_len: int
    pretrain_steps: int
    pretrain_batch: int
    finetune_epochs: float
    finetune_batch: int
    pretrain_lr: float = 5e-4
    finetune_lr: float = 1e-4
    distill_epochs: float = 0.0
    distill_batch: int = 64
    distill_lr: float = 2e-4
    max_train_rows: int | None = None
    max_pretrain_texts: int | None = None
    # 0 keeps each stage's historical batch order (seeds 1, 2, 3), so recorded commands
    # reproduce; another value gives a run its own order (diverse members for a soup)
    order_seed: int = 0
    # pre-training objective (scripts/training/pretraining.py): "mlm" or "electra"
    objective: str = "mlm"
    mask_rate: float = 0.15
    generator_ratio: float = 0.25  # ELECTRA's generator width / the discriminator's
    disc_weight: float = 50.0  # ELECTRA's weight on the discriminator's loss
    probe_every: int = 0  # pre-training steps between points of the probe curve (0: end only)

    def stage_seed(self, stage: int) -> int:
        """The batch-order seed of stage 1 (pretrain), 2 (finetune) or 3 (distill)."""
        return stage + 3 * self.order_seed


# 2 layers / 128, ~30 min of pre-training + ~15 min fine-tuning on 2 cores, then one
# distillation epoch over the unlabeled reviews
CPU = Preset(12000, 128, 2, 2, 64, 10000, 64, 2, 32, distill_epochs=1)

PRESETS = {
    # seconds on 2 cores; proves the pipeline end to end, accuracy is not the point
    "tiny": Preset(
        2000,
        32,
        1,
        2,
        48,
        20,
        32,
        2,
        32,
        pretrain_lr=2e-3,
        finetune_lr=2e-3,
        distill_epochs=1,
        distill_lr=1e-3,
        max_train_rows=4000,
        max_pretrain_texts=4000,
        probe_every=10,
    ),
    "cpu": CPU,
    # `cpu` with a 32k vocabulary, the same cost per token when served (a bigger
    # embedding lookup), more whole words and fewer fragments of misspelt or unspaced ones
    "cpu-32k": dataclasses.replace(CPU, vocab_size=32000),
    # the served size (4 layers / 128) pre-trained as such, not stacked from 2 layers: 2.4x
    # the masked-LM sequences of `cpu` (24k steps x 64, ~2.4 passes over the reviews), then
    # 2 fine-tuning and 2 distillation epochs. The default: 69 min on 2 cores (AMD EPYC,
    # 2026-11-30; earlier machines of this kind served 2.7x slower); resumes from work/
    "cpu-4x128": dataclasses.replace(
        CPU, vocab_size=32000, layers=4, pretrain_steps=24000, distill_epochs=2, probe_every=3000
    ),
    # the same size pre-trained by replaced-token detection (ELECTRA): a generator of a
    # quarter the width, 20 % masked, at a higher peak rate; the same 24k steps x 64 as
    # cpu-4x128's masked LM (the two objectives compared at equal compute), the probe curve
    # every 3k steps. Hours on 2 cores, resumable mid-stage over several days.
    "cpu-4x128-electra": dataclasses.replace(
        CPU, vocab_size=32000, layers=4, pretrain_steps=24000, distill_epochs=2,
        objective="electra", mask_rate=0.2, pretrain_lr=1e-3, probe_every=3000,
    ),  # fmt: skip
    # a CPU student with 4x the capacity of `cpu` (4 layers / 256): pre-training over ~0.8
    # epochs of the reviews, one fine-tuning epoch, then 3 distillation epochs. Hours on 2
    # cores: every stage resumes from <out>/work/, so it may run over several sessions.
    "cpu-4x256": Preset(
        12000, 256, 4, 4, 64, 4000, 128, 1, 32, pretrain_lr=5e-4, finetune_lr=1e-4,
        distill_epochs=3, distill_batch=64, distill_lr=2e-4,
    ),  # fmt: skip
    # for a GPU: a 6-layer/384 encoder, longer pre-training
    "gpu": Preset(
        24000, 384, 6, 6, 96, 40000, 256, 3, 64, pretrain_lr=3e-4, finetune_lr=5e-5,
        distill_epochs=1, distill_batch=128, distill_lr=5e-5,
    ),  # fmt: skip
}
DEFAULT_PRESET = "cpu-4x128"  # the committed checkpoint's recipe


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- data


def read_unlabeled(path: Path, limit: int | None) -> list[str]:
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            text = clean_text(line)
            if text:
                texts.append(text)
            if limit is not None and len(texts) >= limit:
                break
    return texts


def train_tokenizer(
    texts: Sequence[str], vocab_size: int, out_dir: Path
) -> PreTrainedTokenizerFast:
    """WordPiece on NSMC text. No lowercasing or accent stripping: both break Hangul into jamo."""
    wordpiece = BertWordPieceTokenizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    wordpiece.train_from_iterator(
        texts, vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, limit_alphabet=ALPHABET_LIMIT
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def finetune(model, tokenizer, train_set, preset: Preset, work_dir: Path, device) -> None:
    ids = encode(tokenizer, train_set[0], preset.max_len)
    labels = torch.tensor(train_set[1])
    order = batches([len(i) for i in ids], preset.finetune_batch, seed=preset.stage_seed(2))
    steps = math.ceil(preset.finetune_epochs * len(ids) / preset.finetune_batch)

    def step_loss(_: int) -> torch.Tensor:
        index = next(order)
        batch_ids, attention = pad([ids[i] for i in index], tokenizer.pad_token_id)
        out = model(input_ids=batch_ids.to(device), attention_mask=attention.to(device),
                    labels=labels[index].to(device))  # fmt: skip
        return out.loss

    if steps:
        run_steps(model, step_loss, steps, preset.finetune_lr, work_dir, "finetune",
                  order=order)  # fmt: skip


def bert_member(model, tokenizer, max_len: int, device) -> teachers.Predict:
    """The teacher ensemble's BERT member: probabilities with columns in LABELS order,
    whatever order the checkpoint names its labels in."""
    columns = label_columns(model.config.id2label)
    return lambda texts: predict_proba(model, tokenizer, texts, max_len, device)[:, columns]


def bert_teacher(checkpoint: str, max_len: int, device) -> teachers.Predict:
    """A separate BERT member (`--teacher`), e.g. a larger model trained on a GPU, whose
    knowledge a CPU-sized student is distilled from."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).to(device).eval()
    return bert_member(model, tokenizer, max_len, device)


def teacher_probabilities(
    load_bert: Callable[[], teachers.Predict], train_set, transfer: Sequence[str],
    test_texts: Sequence[str], work_dir: Path, validation_texts: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher ensemble's probabilities (n-gram teachers + the BERT member `load_bert`
    returns) on the transfer set and (for the record) the validation and test sets.

    The BERT member is loaded only when the labels are not cached: a resumed run does not
    need the teacher checkpoint (nor the hub, for a hub id) again."""
    cache = work_dir / "teacher.npz"
    if cache.exists():  # resuming
        saved = np.load(cache)
        return saved["transfer"], saved["validation"], saved["test"]
    print(f"fitting n-gram teachers, labelling {len(transfer):,} unlabeled reviews ...", flush=True)
    ensemble = teachers.fit_ngram_teachers(*train_set) + [load_bert()]
    transfer_p = teachers.ensemble_proba(ensemble, transfer)
    validation_p = teachers.ensemble_proba(ensemble, validation_texts)
    test_p = teachers.ensemble_proba(ensemble, test_texts)
    np.savez(cache, transfer=transfer_p, validation=validation_p, test=test_p)
    return transfer_p, validation_p, test_p


def distill(
    model, tokenizer, train_set, transfer: Sequence[str], targets: np.ndarray, preset: Preset,
    work_dir: Path, device, validation=None,
) -> None:
    """Soft cross-entropy against the teachers (transfer set) and the gold labels (training set).

    With a `validation` set, its accuracy is measured at every epoch's end and appended to
    `<work>/distill_validation.jsonl`, so the number of epochs is chosen without the test set.
    """
    texts = list(train_set[0]) + list(transfer)
    soft = torch.from_numpy(np.concatenate([np.eye(2, dtype=np.float32)[train_set[1]], targets]))
    ids = encode(tokenizer, texts, preset.max_len)
    order = batches([len(i) for i in ids], preset.distill_batch, seed=preset.stage_seed(3))
    steps = math.ceil(preset.distill_epochs * len(ids) / preset.distill_batch)

    def step_loss(_: int) -> torch.Tensor:
        index = next(order)
        batch_ids, attention = pad([ids[i] for i in index], tokenizer.pad_token_id)
        logits = model(input_ids=batch_ids.to(device), attention_mask=attention.to(device)).logits
        return -(soft[index].to(device) * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

    per_epoch = math.ceil(len(ids) / preset.distill_batch)

    def validate(step: int, _seconds: float) -> None:
        if validation is None or ((step + 1) % per_epoch and step + 1 != steps):
            return
        model.eval()
        proba = predict_proba(model, tokenizer, validation[0], preset.max_len, device)
        record = {"step": step + 1, "epoch": round((step + 1) / per_epoch, 3),
                  "validation_accuracy": round(accuracy_of(proba, validation[1]), 4)}  # fmt: skip
        print(f"\ndistill {record}", flush=True)
        with open(work_dir / "distill_validation.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")

    run_steps(model, step_loss, steps, preset.distill_lr, work_dir, "distill", validate, order)


def stack_layers(model, layers: int):
    """Deepen a trained encoder by repeating its layers (progressive stacking, Gong et al. 2019).

    The 2-layer student underfits (91 % on its own training rows, 87 % on validation): it
    lacks capacity, not data. Pre-training a deeper one from scratch takes hours on 2 cores;
    a copy of the trained layers on top starts from what they already know, and the
    distillation that follows trains the deeper model.  Layers 0..n-1 become 0..n-1, 0..n-1, ...
    """
    encoder = model.base_model.encoder
    trained = len(encoder.layer)
    if layers <= trained:
        raise ValueError(f"--stack-layers {layers}: the model already has {trained} layers")
    encoder.layer = torch.nn.ModuleList(
        copy.deepcopy(encoder.layer[i % trained]) for i in range(layers)
    )
    model.config.num_hidden_layers = layers
    return model


def widen_hidden(model, noise: float = 1e-3):
    """Double the hidden size, attention heads and feed-forward width without changing what
    the model computes (Net2WiderNet, Chen et al. 2016), so distillation starts from what the
    narrow model knows.

    The 4 x 128 student agrees with its teachers on 96 % of its own training texts, so it
    looked short of capacity; widened, it fits those texts better but not new ones
    (docs/models/sentiment_bert.md).  Every unit is copied once, so
    LayerNorm sees the same mean and variance; a Linear layer whose inputs doubled takes half
    of each weight; the copied heads attend exactly like the originals.  `noise` (relative to
    each weight's spread) breaks the copies' symmetry.
    """
    config = copy.deepcopy(model.config)
    config.hidden_size *= 2
    config.num_attention_heads *= 2
    config.intermediate_size *= 2
    wide = type(model)(config)
    narrow = model.state_dict()
    linear_weights = {f"{name}.weight" for name, module in wide.named_modules()
                      if isinstance(module, torch.nn.Linear)}  # fmt: skip
    state = {}
    for key, target in wide.state_dict().items():
        value = narrow[key]
        for dim, (small, large) in enumerate(zip(value.shape, target.shape)):
            if large == 2 * small:
                value = torch.cat([value, value], dim=dim)
            elif large != small:
                raise ValueError(f"{key}: cannot widen {tuple(narrow[key].shape)} to "
                                 f"{tuple(target.shape)}")  # fmt: skip
        if key in linear_weights and value.shape[1] == 2 * narrow[key].shape[1]:
            value = value / 2 + noise * value.std() * torch.randn_like(value)
        state[key] = value
    wide.load_state_dict(state)
    return wide


@torch.inference_mode()
def predict_proba(
    model, tokenizer, texts: Sequence[str], max_len: int, device, batch_size: int = 256
) -> np.ndarray:
    """Softmax probabilities, length-sorted batches for speed, returned in input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 2), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        encoded = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                            max_length=max_len, return_tensors="pt").to(device)  # fmt: skip
        out[index] = torch.softmax(model(**encoded).logits.float(), dim=-1).cpu().numpy()
    return out


# --------------------------------------------------------------------------- pipeline


def read_unlabeled_required(data_dir: Path, limit: int | None) -> list[str]:
    path = data_dir / UNLABELED_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} (one review per line) is needed for pre-training and distillation "
            "(with --init, --distill-epochs 0 skips distillation)"
        )
    return read_unlabeled(path, limit)


def accuracy_of(probabilities: np.ndarray, labels: Sequence[int]) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == np.asarray(labels)))


def library_versions() -> dict[str, str]:
    """What a sentiment_bert checkpoint was made with, for its manifest."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }


def init_record(init: str) -> dict | None:
    """What the starting checkpoint says of itself (its own manifest), when it is a local one.

    Its own `init_metadata` is kept too, so a chain of runs stays traceable to the first.
    """
    path = Path(init) / "metadata.json"
    if not path.exists():
        return None
    return manifest_summary(json.loads(path.read_text()))


def manifest_summary(saved: dict) -> dict:
    """The part of a checkpoint's manifest another checkpoint's manifest records about it."""
    keys = ("model", "description", "command", "test_accuracy", "created_at", "init_metadata")
    return {key: saved[key] for key in keys if key in saved}


def train(
    data_dir: Path,
    out_dir: Path,
    preset_name: str = DEFAULT_PRESET,
    init: str | None = None,
    seed: int = 42,
    overrides: dict | None = None,
    stack_to: int | None = None,
    teacher: str | None = None,
    widen: bool = False,
    augment: int = 0,
) -> dict:
    """Build the model directory (save_pretrained + metadata.json) and return the metadata.

    `overrides` replaces preset fields (e.g. {"finetune_epochs": 0} to only distil an
    already fine-tuned `init` checkpoint). `stack_to`: deepen the model to that many layers
    (`stack_layers`) after the teachers have labelled the transfer set, before distillation.
    `teacher`: the checkpoint (dir or hub id) that is the ensemble's BERT member instead of
    the model being trained. `widen`: double its hidden size (`widen_hidden`), also after the
    teachers' labelling. `augment`: add that many word-dropout copies of each transfer text
    (`teachers.word_dropout_copies`), labelled by the teachers like the rest.
    """
    hf_logging.disable_progress_bar()
    seed_everything(seed)
    overrides = overrides or {}
    preset = dataclasses.replace(PRESETS[preset_name], **overrides)
    # each acts on the distillation stage; without it, it would be recorded and do nothing
    distillation_flags = {"--stack-layers": stack_to, "--teacher": teacher, "--widen": widen,
                          "--augment": augment}  # fmt: skip
    for flag, value in distillation_flags.items():
        if value and preset.distill_epochs <= 0:
            raise ValueError(f"{flag} needs distillation (--distill-epochs > 0)")
    if augment < 0:
        raise ValueError(f"--augment takes a number of copies (>= 0), not {augment}")
    device = pick_device()
    work_dir = out_dir / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    train_path, test_path = ensure_files(data_dir)
    # Training rows outside the validation split; the split judges every stage, the test set
    # only the final model.
    train_set = read_labelled(train_path, preset.max_train_rows, part="fit")
    validation_set = read_labelled(train_path, preset.max_train_rows, part="validation")
    test_set = read_labelled(test_path)
    started = time.monotonic()
    print(f"device {device}, preset {preset_name}: {asdict(preset)}")
    limit = preset.max_pretrain_texts
    needs_unlabeled = not init or preset.distill_epochs > 0
    unlabeled = read_unlabeled_required(data_dir, limit) if needs_unlabeled else []

    if init:
        tokenizer = AutoTokenizer.from_pretrained(init)
        model = AutoModelForSequenceClassification.from_pretrained(
            init, num_labels=2, id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)}, ignore_mismatched_sizes=True,
        )  # fmt: skip
        pretrain_texts = 0
    else:
        corpus = unlabeled + train_set[0][:limit]
        pretrain_texts = len(corpus)
        tokenizer_dir = work_dir / "tokenizer"
        if (tokenizer_dir / "tokenizer.json").exists():  # resuming
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:
            tokenizer = train_tokenizer(corpus, preset.vocab_size, tokenizer_dir)
        probe = Probe(tuple(part[:PROBE_TRAIN_ROWS] for part in train_set), validation_set)
        encoder_dir = pretrain(tokenizer, corpus, preset, work_dir, device, probe)
        model = AutoModelForSequenceClassification.from_pretrained(
            encoder_dir, num_labels=2, id2label=dict(enumerate(LABELS)),
            label2id={label: i for i, label in enumerate(LABELS)},
        )  # fmt: skip
    model.to(device)
    finetune(model, tokenizer, train_set, preset, work_dir, device)

    def validation_accuracy() -> float:
        proba = predict_proba(model, tokenizer, validation_set[0], preset.max_len, device)
        return accuracy_of(proba, validation_set[1])

    probabilities = predict_proba(model, tokenizer, test_set[0], preset.max_len, device)
    scores: dict[str, float] = {}
    transfer: list[str] = []
    if preset.distill_epochs > 0:
        scores["finetuned_test_accuracy"] = accuracy_of(probabilities, test_set[1])
        scores["finetuned_validation_accuracy"] = validation_accuracy()
        labelled = train_set[0] + validation_set[0]
        transfer = teachers.transfer_set(unlabeled, labelled, test_set[0])
        if augment:  # variants equal to a labelled or test text are left out too
            variants = teachers.word_dropout_copies(transfer, augment, seed=seed)
            transfer = teachers.transfer_set(transfer + variants, labelled, test_set[0])
        load_bert = (partial(bert_teacher, teacher, preset.max_len, device) if teacher else
                     partial(bert_member, model, tokenizer, preset.max_len, device))  # fmt: skip
        targets, teacher_validation, teacher_test = teacher_probabilities(
            load_bert, train_set, transfer, test_set[0], work_dir, validation_set[0]
        )
        scores["teacher_validation_accuracy"] = accuracy_of(teacher_validation, validation_set[1])
        scores["teacher_test_accuracy"] = accuracy_of(teacher_test, test_set[1])
        print(f"fine-tuned {scores['finetuned_test_accuracy']:.4f}, teachers "
              f"{scores['teacher_test_accuracy']:.4f}; distilling", flush=True)  # fmt: skip
        if stack_to:
            model = stack_layers(model, stack_to)
        if widen:
            model = widen_hidden(model).to(device)
        distill(model, tokenizer, train_set, transfer, targets, preset, work_dir, device,
                validation_set)  # fmt: skip
        probabilities = predict_proba(model, tokenizer, test_set[0], preset.max_len, device)
    accuracy = accuracy_of(probabilities, test_set[1])
    scores["validation_accuracy"] = validation_accuracy()

    model.to("cpu").save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    flags = [f"--preset {preset_name}", f"--seed {seed}"] + ([f"--init {init}"] if init else [])
    flags += [f"--{key.replace('_', '-')} {value}" for key, value in overrides.items()]
    flags += [f"--stack-layers {stack_to}"] if stack_to else []
    flags += [f"--teacher {teacher}"] if teacher else []
    flags += ["--widen"] if widen else []
    flags += [f"--augment {augment}"] if augment else []
    objective = {"mlm": "MLM", "electra": "ELECTRA (replaced-token detection)"}[preset.objective]
    origin = f"fine-tuned from {init}" if init else f"WordPiece + {objective} pre-training on NSMC text"
    if preset.distill_epochs > 0:
        origin += ", distilled from an n-gram + BERT ensemble on unlabeled reviews"
    if teacher:
        origin += f" (BERT teacher: {teacher})"
    if stack_to:
        origin += f" (its layers stacked to {stack_to} before distillation)"
    if widen:
        origin += " (widened to twice its hidden size before distillation)"
    if augment:
        origin += f" (plus {augment} word-dropout copies of each unlabeled review)"
    size = f"{model.config.num_hidden_layers} layers / hidden {model.config.hidden_size}"
    metadata = {
        "model": "sentiment_bert",
        "description": f"BERT {size}, {origin}",
        "labels": list(LABELS),
        "test_accuracy": round(accuracy, 4),
        **{key: round(value, 4) for key, value in scores.items()},
        "preset": preset_name,
        "preset_settings": asdict(preset),
        "init": init,
        "init_metadata": init_record(init) if init else None,
        "teacher": teacher,
        "teacher_metadata": init_record(teacher) if teacher else None,
        "seed": seed,
        "command": " ".join(["python -m scripts.training.train_bert", *flags]),
        "max_length": preset.max_len,
        "train_rows": len(train_set[0]),
        "train_part": "fit",  # the training file minus its validation split
        "validation_rows": len(validation_set[0]),
        "test_rows": len(test_set[0]),
        "pretrain_texts": pretrain_texts,
        "pretrain_curve": read_curve(work_dir),
        "stage_minutes": stage_minutes(work_dir, ("pretrain", "finetune", "distill")),
        "transfer_texts": len(transfer),
        "augment_copies": augment,
        "train_file_sha256": sha256_of(train_path),
        "test_file_sha256": sha256_of(test_path),
        "training_seconds": round(time.monotonic() - started, 1),
        "device": str(device),
        "versions": library_versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = write_metadata(out_dir, metadata, BERT_FILES)
    # Fitted on the validation split: unseen only once training leaves that split out.
    metadata["calibration"] = calibrate("sentiment_bert", out_dir, data_dir)
    seconds = metadata["training_seconds"]
    print(f"sentiment_bert test accuracy {accuracy:.4f} after {seconds}s; wrote {out_dir}")
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    parser.add_argument("--init", help="HF model id or local checkpoint dir to fine-tune instead")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--finetune-epochs", type=float, help="override the preset (0: skip)")
    parser.add_argument("--distill-epochs", type=float, help="override the preset (0: skip)")
    parser.add_argument("--order-seed", type=int,
                        help="batch order of every stage (default 0: the historical order)")
    parser.add_argument("--objective", choices=OBJECTIVES,
                        help="pre-training objective (default: the preset's)")
    parser.add_argument("--stop-after-minutes", type=float, metavar="M",
                        help="save the running stage's state after M minutes and exit 3; "
                        "the same command resumes (a GPU piece, a run cut to a session)")
    parser.add_argument("--stack-layers", type=int, metavar="N",
                        help="deepen the model to N layers before distillation (stack_layers)")
    parser.add_argument("--teacher", help="checkpoint dir or HF id: the teacher ensemble's BERT "
                        "member instead of the model being trained (e.g. a larger one)")
    parser.add_argument("--widen", action="store_true",
                        help="double the hidden size before distillation (widen_hidden)")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="add N word-dropout copies of each unlabeled review to the "
                        "transfer set (teachers.word_dropout_copies)")
    args = parser.parse_args(argv)
    overrides = {
        key: getattr(args, key)
        for key in ("finetune_epochs", "distill_epochs", "order_seed", "objective")
        if getattr(args, key) is not None
    }
    stop_after(args.stop_after_minutes)
    try:
        return run_cli(
            lambda: train(
                resolve_data_dir(args.data_dir), args.out, args.preset, args.init, args.seed,
                overrides, args.stack_layers, args.teacher, args.widen, args.augment,
            )  # fmt: skip
        )
    except StageStopped as stopped:
        print(stopped, file=sys.stderr)
        return STOPPED_EXIT


if __name__ == "__main__":
    sys.exit(main())
