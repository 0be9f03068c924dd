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
    python -m scripts.training.train_bert --teacher <dir>,self          # two BERT members
    python -m scripts.training.train_bert --init klue/bert-base --preset gpu      # needs the hub
    python -m scripts.training.train_bert --init /path/to/saved/checkpoint
    python -m scripts.training.train_bert --init <fine-tuned dir> --finetune-epochs 0  # distil
    python -m scripts.training.train_bert --init <dir> --finetune-epochs 0 --stack-layers 4
    python -m scripts.training.train_bert --init <small dir> --finetune-epochs 0 --teacher <big dir>
    python -m scripts.training.train_bert --init <dir> --finetune-epochs 0 --widen
    python -m scripts.training.train_bert --pretrain-from build/bert_long/work --pretrain-steps 24000

Every stage checkpoints into `<out>/work/` and a rerun resumes from there, in the middle of a
stage too.  `run_stages` runs one function per stage (prepare, build_encoder, fine_tune,
label_transfer, grow, distil, evaluate, save, write_manifest) over one `Run` holding the run's
state; the manifest's command is read back from what argparse parsed (`recorded_command`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import platform
import random
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
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
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from handlers.artifacts import BERT_FILES, sha256_of, write_metadata
from handlers.bert_weights import load_classifier
from handlers.contract import LABELS, label_columns
from handlers.text import clean_text
from scripts.nsmc import (
    UNLABELED_FILE,
    Labelled,
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
    Origin,
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
    # cpu-4x128 with 4x the masked-LM compute (96k steps x 64, ~9.5 passes over the reviews,
    # the rate decaying over all of them): the probe said the 24k run was still rising fast.
    # About 6 h of pre-training on one core, resumable mid-stage across sessions.
    "cpu-4x128-long": dataclasses.replace(
        CPU, vocab_size=32000, layers=4, pretrain_steps=96000, distill_epochs=2, probe_every=6000
    ),
    # a teacher, not a served model (so free of the serving floor): 6 layers / 256, 2.6x the
    # parameters of cpu-4x128, 48k masked-LM steps x 64 (2.5 steps/s on 2 threads: ~5.3 h,
    # resumable across sessions). The 4 x 128 student ends at its teachers' level, and the best
    # teachers so far were NB-SVM plus a model of the student's own size. It ends fine-tuned:
    # beside NB-SVM, bert_more's fine-tuned state made the better member (validation 88.42 %)
    # than the same run distilled (88.27 %), and distilling this size would cost ~1.6 h more (3x
    # the 33 min of 4 x 128: 1.90 against 5.67 steps/s, 2 threads, 64 x 20 tokens, measured here).
    "cpu-6x256-teacher": dataclasses.replace(
        CPU, vocab_size=32000, hidden=256, layers=6, heads=4, pretrain_steps=48000,
        distill_epochs=0, probe_every=6000,
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
    model = load_classifier(checkpoint).to(device).eval()
    return bert_member(model, tokenizer, max_len, device)


class TeacherCacheError(ValueError):
    """`<work>/teacher.npz` holds the labels of other teachers than the command names."""


def teacher_probabilities(
    load_berts: dict[str, Callable[[], teachers.Predict]], train_set, transfer: Sequence[str],
    test_texts: Sequence[str], work_dir: Path, validation_texts: Sequence[str] = (),
    ngram_members: Sequence[str] = teachers.DEFAULT_NGRAM_TEACHERS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The teacher ensemble's probabilities (n-gram teachers + the BERT members `load_berts`
    names and loads) on the transfer set and (for the record) the validation and test sets.

    The BERT members are loaded only when the labels are not cached: a resumed run does not
    need the teacher checkpoints (nor the hub, for a hub id) again. The cache records the
    members' names, so a rerun that names other teachers is refused, not taught old labels."""
    cache = work_dir / "teacher.npz"
    members = [*ngram_members, *load_berts]
    if cache.exists():  # resuming
        saved = np.load(cache)
        if "members" in saved and saved["members"].tolist() != members:  # older caches: none
            raise TeacherCacheError(
                f"{cache} holds the labels of {saved['members'].tolist()}, not of {members}: "
                "rerun with those teachers, or delete it to label with these")  # fmt: skip
        return saved["transfer"], saved["validation"], saved["test"]
    print(f"fitting n-gram teachers, labelling {len(transfer):,} unlabeled reviews ...", flush=True)
    ensemble = teachers.fit_ngram_teachers(*train_set, ngram_members)
    ensemble += [load() for load in load_berts.values()]
    transfer_p = teachers.ensemble_proba(ensemble, transfer)
    validation_p = teachers.ensemble_proba(ensemble, validation_texts)
    test_p = teachers.ensemble_proba(ensemble, test_texts)
    np.savez(cache, transfer=transfer_p, validation=validation_p, test=test_p,
             members=np.array(members))  # fmt: skip
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


# --------------------------------------------------------------------------- the command

# Where a run reads and writes, how long this sitting lasts and on how many threads: not what
# the model is, so not part of the command its manifest records.
NOT_RECORDED = ("data_dir", "out", "stop_after_minutes", "threads")
# In `--teacher`, the model being trained (fine-tuned, before distillation) as a BERT member.
SELF = "self"
# Recorded even at their defaults: a default may change later, a checkpoint's recipe may not.
ALWAYS_RECORDED = ("preset", "seed")
# Options that replace a field of the preset (same name).
PRESET_OVERRIDES = ("finetune_epochs", "distill_epochs", "order_seed", "objective",
                    "pretrain_steps", "pretrain_lr")
MODULE = "scripts.training.train_bert"


def build_parser() -> argparse.ArgumentParser:
    """The command's options: main() parses them, train() too (so a run started from Python
    records the command a shell would have run), recorded_command() reads their defaults."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--init", help="HF model id or local checkpoint dir to fine-tune instead")
    parser.add_argument("--finetune-epochs", type=float, help="override the preset (0: skip)")
    parser.add_argument("--distill-epochs", type=float, help="override the preset (0: skip)")
    parser.add_argument("--order-seed", type=int,
                        help="batch order of every stage (default 0: the historical order)")
    parser.add_argument("--objective", choices=OBJECTIVES,
                        help="pre-training objective (default: the preset's)")
    parser.add_argument("--pretrain-from", type=Path, metavar="WORK_DIR",
                        help="an earlier run's work dir: masked-LM pre-training continues from "
                        "its encoder and tokenizer, with a fresh warm-up and decay over "
                        "--pretrain-steps more steps, its batch stream going on where it stopped")
    parser.add_argument("--pretrain-steps", type=int, help="override the preset")
    parser.add_argument("--pretrain-lr", type=float, help="override the preset (peak rate)")
    parser.add_argument("--stop-after-minutes", type=float, metavar="M",
                        help="save the running stage's state after M minutes and exit 3; "
                        "the same command resumes (a GPU piece, a run cut to a session)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads (default: one per core); 1 for each of two runs "
                        "side by side, which otherwise oversubscribe the cores")
    parser.add_argument("--stack-layers", type=int, metavar="N",
                        help="deepen the model to N layers before distillation (stack_layers)")
    parser.add_argument("--teacher", help="comma-separated checkpoint dirs or HF ids: the teacher "
                        f"ensemble's BERT members instead of the model being trained ('{SELF}' "
                        "names it), e.g. a larger one")
    parser.add_argument("--ngram-teachers", type=ngram_teachers,
                        default=",".join(teachers.DEFAULT_NGRAM_TEACHERS),
                        help="comma-separated n-gram members of the teacher ensemble, from "
                        f"{', '.join(teachers.NGRAM_TEACHERS)} (default: %(default)s)")
    parser.add_argument("--widen", action="store_true",
                        help="double the hidden size before distillation (widen_hidden)")
    parser.add_argument("--augment", type=int, default=0, metavar="N",
                        help="add N word-dropout copies of each unlabeled review to the "
                        "transfer set (teachers.word_dropout_copies)")
    return parser


def bert_teachers(args: argparse.Namespace) -> list[str]:
    """The BERT members of the teacher ensemble: `--teacher`'s, else the model being trained."""
    return args.teacher.split(",") if args.teacher else [SELF]


def ngram_teachers(value: str) -> str:
    """`--ngram-teachers`, checked when parsed: a misspelt member must not surface hours later,
    at the teacher stage."""
    try:
        teachers.check_members(value.split(",") if value else [])
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r}: {err}") from None
    return value


def _word(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def recorded_command(args: argparse.Namespace) -> str:
    """The command that remakes this model, read from what argparse parsed: each option not at
    its default (preset and seed always), in the parser's order, quoted for a shell."""
    parser = build_parser()
    words = ["python", "-m", MODULE]
    for dest, value in vars(args).items():
        if dest in NOT_RECORDED or (value == parser.get_default(dest)
                                    and dest not in ALWAYS_RECORDED):  # fmt: skip
            continue
        flag = "--" + dest.replace("_", "-")
        words += [flag] if value is True else [flag, _word(value)]
    return shlex.join(words)


# --------------------------------------------------------------------------- the run


@dataclass
class Run:
    """One run's state, handed from stage to stage: what was asked, where it reads and writes,
    the data, the model as it stands and the figures measured so far. The stages keep their
    resumable state in `work_dir` (loop.run_steps), so a rerun of the command continues."""

    args: argparse.Namespace
    preset: Preset
    command: str
    data_dir: Path
    device: torch.device
    train_path: Path
    test_path: Path
    train_set: Labelled
    validation_set: Labelled
    test_set: Labelled
    unlabeled: list[str]
    started: float
    origin: Origin | None = None  # `--pretrain-from`: where pre-training goes on from
    tokenizer: PreTrainedTokenizerFast | None = None
    model: PreTrainedModel | None = None
    pretrain_texts: int = 0
    transfer: list[str] = field(default_factory=list)
    targets: np.ndarray | None = None  # the teachers' probabilities on `transfer`
    test_probabilities: np.ndarray | None = None
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        return Path(self.args.out)

    @property
    def work_dir(self) -> Path:
        return self.out_dir / "work"

    @property
    def distilling(self) -> bool:
        return self.preset.distill_epochs > 0

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return predict_proba(self.model, self.tokenizer, texts, self.preset.max_len, self.device)

    def validation_accuracy(self) -> float:
        return accuracy_of(self.predict(self.validation_set[0]), self.validation_set[1])


def preset_of(args: argparse.Namespace) -> Preset:
    """The named preset with the fields the command overrides."""
    overrides = {key: getattr(args, key) for key in PRESET_OVERRIDES
                 if getattr(args, key) is not None}  # fmt: skip
    return dataclasses.replace(PRESETS[args.preset], **overrides)


def check(args: argparse.Namespace, preset: Preset) -> None:
    """Refuse flags that would be recorded and do nothing, before any file is written."""
    distillation_flags = {"--stack-layers": args.stack_layers, "--teacher": args.teacher,
                          "--widen": args.widen, "--augment": args.augment}  # fmt: skip
    for flag, value in distillation_flags.items():
        if value and preset.distill_epochs <= 0:
            raise ValueError(f"{flag} needs distillation (--distill-epochs > 0)")
    members = bert_teachers(args)
    if "" in members or len(set(members)) < len(members):
        raise ValueError(f"--teacher takes distinct comma-separated members, not {args.teacher!r}")
    if args.augment < 0:
        raise ValueError(f"--augment takes a number of copies (>= 0), not {args.augment}")
    if args.pretrain_from and args.init:
        raise ValueError("--pretrain-from continues pre-training, which --init skips: one of them")


def prepare(args: argparse.Namespace) -> Run:
    """Check the flags, seed, make the work dir and read the data: the fit rows train, the
    validation split judges every stage, the test set only the final model."""
    hf_logging.disable_progress_bar()
    seed_everything(args.seed)
    preset = preset_of(args)
    check(args, preset)
    work_dir = Path(args.out) / "work"
    origin = Origin.of_run(work_dir, args.pretrain_from, preset) if args.pretrain_from else None
    device = pick_device()
    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = resolve_data_dir(args.data_dir)
    train_path, test_path = ensure_files(data_dir)
    train_set = read_labelled(train_path, preset.max_train_rows, part="fit")
    validation_set = read_labelled(train_path, preset.max_train_rows, part="validation")
    test_set = read_labelled(test_path)
    started = time.monotonic()
    print(f"device {device}, preset {args.preset}: {asdict(preset)}")
    needs_unlabeled = not args.init or preset.distill_epochs > 0
    unlabeled = (read_unlabeled_required(data_dir, preset.max_pretrain_texts)
                 if needs_unlabeled else [])  # fmt: skip
    return Run(args, preset, recorded_command(args), data_dir, device, train_path, test_path,
               train_set, validation_set, test_set, unlabeled, started, origin)  # fmt: skip


def classifier(source: str | Path, **kwargs) -> PreTrainedModel:
    """A two-label classifier in the contract's label order, from a checkpoint or an encoder,
    in float32 (a hub checkpoint saved in half precision must not be fine-tuned in it)."""
    return load_classifier(
        source, num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, **kwargs,
    )  # fmt: skip


def build_encoder(run: Run) -> None:
    """The model fine-tuning starts from: the `--init` checkpoint, else a WordPiece tokenizer
    and an encoder pre-trained on the reviews (`<work>/tokenizer`, `<work>/pretrain.pt`)."""
    if run.args.init:
        run.tokenizer = AutoTokenizer.from_pretrained(run.args.init)
        run.model = classifier(run.args.init, ignore_mismatched_sizes=True)
    else:
        limit = run.preset.max_pretrain_texts
        corpus = run.unlabeled + run.train_set[0][:limit]
        run.pretrain_texts = len(corpus)
        tokenizer_dir = run.work_dir / "tokenizer"
        if (tokenizer_dir / "tokenizer.json").exists():  # resuming
            run.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:
            run.tokenizer = train_tokenizer(corpus, run.preset.vocab_size, tokenizer_dir)
        probe = Probe(tuple(part[:PROBE_TRAIN_ROWS] for part in run.train_set), run.validation_set)
        encoder_dir = pretrain(run.tokenizer, corpus, run.preset, run.work_dir, run.device, probe,
                               run.origin)  # fmt: skip
        run.model = classifier(encoder_dir)
    run.model.to(run.device)


def fine_tune(run: Run) -> None:
    """Fine-tune on the fit rows (`<work>/finetune.pt`); score the test set, which is the final
    figure when no distillation follows."""
    finetune(run.model, run.tokenizer, run.train_set, run.preset, run.work_dir, run.device)
    run.test_probabilities = run.predict(run.test_set[0])


def label_transfer(run: Run) -> None:
    """Record the fine-tuned model's figures, build the transfer set (the unlabeled reviews,
    plus `--augment` copies) and have the teachers label it (`<work>/teacher.npz`)."""
    args, test_texts, validation = run.args, run.test_set[0], run.validation_set
    run.scores["finetuned_test_accuracy"] = accuracy_of(run.test_probabilities, run.test_set[1])
    run.scores["finetuned_validation_accuracy"] = run.validation_accuracy()
    labelled = run.train_set[0] + validation[0]
    transfer = teachers.transfer_set(run.unlabeled, labelled, test_texts)
    if args.augment:  # variants equal to a labelled or test text are left out too
        variants = teachers.word_dropout_copies(transfer, args.augment, seed=args.seed)
        transfer = teachers.transfer_set(transfer + variants, labelled, test_texts)
    max_len, device = run.preset.max_len, run.device
    load_berts = {member: partial(bert_member, run.model, run.tokenizer, max_len, device)
                  if member == SELF else partial(bert_teacher, member, max_len, device)
                  for member in bert_teachers(args)}  # fmt: skip
    run.targets, teacher_validation, teacher_test = teacher_probabilities(
        load_berts, run.train_set, transfer, test_texts, run.work_dir, validation[0],
        ngram_members=args.ngram_teachers.split(","),
    )
    run.transfer = transfer
    run.scores["teacher_validation_accuracy"] = accuracy_of(teacher_validation, validation[1])
    run.scores["teacher_test_accuracy"] = accuracy_of(teacher_test, run.test_set[1])
    print(f"fine-tuned {run.scores['finetuned_test_accuracy']:.4f}, teachers "
          f"{run.scores['teacher_test_accuracy']:.4f}; distilling", flush=True)  # fmt: skip


def grow(run: Run) -> None:
    """`--stack-layers` and `--widen`: a larger student, after the teachers' labelling (the
    fine-tuned model is their BERT member) and before the distillation that trains it."""
    if run.args.stack_layers:
        run.model = stack_layers(run.model, run.args.stack_layers)
    if run.args.widen:
        run.model = widen_hidden(run.model).to(run.device)


def distil(run: Run) -> None:
    """Distil the teachers' labels into the model (`<work>/distill.pt`); score the test set."""
    distill(run.model, run.tokenizer, run.train_set, run.transfer, run.targets, run.preset,
            run.work_dir, run.device, run.validation_set)  # fmt: skip
    run.test_probabilities = run.predict(run.test_set[0])


def evaluate(run: Run) -> float:
    """The final model's test accuracy (returned, for the manifest) and its validation accuracy
    (in `run.scores`)."""
    run.scores["validation_accuracy"] = run.validation_accuracy()
    return accuracy_of(run.test_probabilities, run.test_set[1])


def save(run: Run) -> None:
    """The servable directory: weights and tokenizer (save_pretrained), on the CPU."""
    run.model.to("cpu").save_pretrained(run.out_dir)
    run.tokenizer.save_pretrained(run.out_dir)


def description(run: Run) -> str:
    """How the model was made, in words, for its manifest."""
    args = run.args
    objectives = {"mlm": "MLM", "electra": "ELECTRA (replaced-token detection)"}
    objective = objectives[run.preset.objective]
    origin = (f"fine-tuned from {args.init}" if args.init else
              f"WordPiece + {objective} pre-training on NSMC text")  # fmt: skip
    if args.pretrain_from:
        origin += f" (continued from {args.pretrain_from}'s encoder)"
    if run.distilling:
        origin += ", distilled from an n-gram + BERT ensemble on unlabeled reviews"
    if args.teacher:
        members = ["itself" if m == SELF else m for m in bert_teachers(args)]
        origin += f" (BERT teacher{'s' * (len(members) > 1)}: {', '.join(members)})"
    if args.stack_layers:
        origin += f" (its layers stacked to {args.stack_layers} before distillation)"
    if args.widen:
        origin += " (widened to twice its hidden size before distillation)"
    if args.augment:
        origin += f" (plus {args.augment} word-dropout copies of each unlabeled review)"
    config = run.model.config
    return f"BERT {config.num_hidden_layers} layers / hidden {config.hidden_size}, {origin}"


def write_manifest(run: Run, test_accuracy: float) -> dict:
    """metadata.json (figures, recipe, data and artifact hashes), then the calibration fitted on
    the validation split: unseen, since training leaves that split out."""
    args, work_dir = run.args, run.work_dir
    metadata = {
        "model": "sentiment_bert",
        "description": description(run),
        "labels": list(LABELS),
        "test_accuracy": round(test_accuracy, 4),
        **{key: round(value, 4) for key, value in run.scores.items()},
        "preset": args.preset,
        "preset_settings": asdict(run.preset),
        "init": args.init,
        "init_metadata": init_record(args.init) if args.init else None,
        "teacher": args.teacher,
        "teacher_metadata": ({member: init_record(member) for member in bert_teachers(args)
                              if member != SELF} if args.teacher else None),  # fmt: skip
        "seed": args.seed,
        "command": run.command,
        "max_length": run.preset.max_len,
        "train_rows": len(run.train_set[0]),
        "train_part": "fit",  # the training file minus its validation split
        "validation_rows": len(run.validation_set[0]),
        "test_rows": len(run.test_set[0]),
        "pretrain_texts": run.pretrain_texts,
        "pretrain_from": str(args.pretrain_from) if args.pretrain_from else None,
        "pretrain_curve": read_curve(work_dir),
        "stage_minutes": stage_minutes(work_dir, ("pretrain", "finetune", "distill")),
        "transfer_texts": len(run.transfer),
        "augment_copies": args.augment,
        "train_file_sha256": sha256_of(run.train_path),
        "test_file_sha256": sha256_of(run.test_path),
        "training_seconds": round(time.monotonic() - run.started, 1),
        "device": str(run.device),
        "versions": library_versions(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = write_metadata(run.out_dir, metadata, BERT_FILES)
    metadata["calibration"] = calibrate("sentiment_bert", run.out_dir, run.data_dir)
    return metadata


def run_stages(args: argparse.Namespace) -> dict:
    """Every stage in order; returns the manifest. Each stage resumes from `<out>/work/`."""
    run = prepare(args)
    build_encoder(run)
    fine_tune(run)
    if run.distilling:
        label_transfer(run)
        grow(run)
        distil(run)
    test_accuracy = evaluate(run)
    save(run)
    metadata = write_manifest(run, test_accuracy)
    seconds = metadata["training_seconds"]
    print(f"sentiment_bert test accuracy {test_accuracy:.4f} after {seconds}s; wrote {run.out_dir}")
    return metadata


def train(data_dir: Path, out_dir: Path, *flags: str) -> dict:
    """Build the model directory (save_pretrained + metadata.json) and return the metadata.

    `flags` are the command's own options (e.g. "--preset", "tiny", "--distill-epochs", "0"),
    parsed by its parser: a run started from Python is the run and the recorded command a
    shell would give. The registry calls it as `train(data_dir, out_dir)` (the defaults).
    """
    args = build_parser().parse_args([*flags, "--data-dir", str(data_dir), "--out", str(out_dir)])
    return run_stages(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_after(args.stop_after_minutes)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return run_cli(lambda: run_stages(args))
    except StageStopped as stopped:
        print(stopped, file=sys.stderr)
        return STOPPED_EXIT


if __name__ == "__main__":
    sys.exit(main())
