"""In-domain pre-training of sentiment_bert's encoder: masked-LM (BERT) or replaced-token
detection (ELECTRA), with a linear probe that draws the accuracy-versus-compute curve.

ELECTRA (Clark et al. 2020) trains a small generator as a masked LM and the encoder we keep
as a discriminator that tells, for every token, whether the generator replaced it.  The
discriminator learns from every token instead of the 15 % that are masked, which is what
helps most at small sizes.  The discriminator here *is* a `BertModel`, so what the later
stages, the ONNX export and the handler see is the same BERT as with masked-LM.

The probe (logistic regression on the frozen encoder's mean-pooled states, fitted on a slice
of the fit rows and scored on the validation split) is cheap enough to run every few
thousand steps; its figures go to `<work>/pretrain_curve.jsonl`.  It ranks encoders by what
pre-training gave them; the fine-tuned accuracy is the final word.

Masked-LM pre-training can also continue an earlier run (`Origin`): its encoder, tokenizer and
place in the batch stream, with a fresh warm-up and decay over the new steps, so compute can
be added to a finished run instead of starting over (its schedule has already decayed to 0).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import BertConfig, BertForMaskedLM, BertModel, ElectraConfig, ElectraForMaskedLM

from scripts.training.loop import batches, encode, pad, run_steps, skip

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
OBJECTIVES = ("mlm", "electra")
CURVE_FILE = "pretrain_curve.jsonl"
# a continued run's origin, recorded in its own work dir when it starts: a resumed run (on a
# machine where the earlier run's directory did not survive) needs only its own state
ORIGIN_FILE = "pretrain_origin.json"
PROBE_TRAIN_ROWS = 20_000


@dataclass(frozen=True)
class Probe:
    """Texts and labels the linear probe fits on and scores on (the validation split)."""

    fit: tuple[Sequence[str], Sequence[int]]
    validation: tuple[Sequence[str], Sequence[int]]


@dataclass(frozen=True)
class Origin:
    """Where a continued pre-training starts: the last point of an earlier run's curve (its
    steps, sequences, tokens and minutes, which the new points count on from) and its encoder
    (`<work>/mlm`, a BertForMaskedLM with its head) and tokenizer."""

    work_dir: Path
    step: int = 0
    sequences: int = 0
    tokens: int = 0
    minutes: float = 0.0

    @classmethod
    def of_run(cls, work_dir: Path, source: Path, preset) -> "Origin":
        """The origin of the run in `work_dir` that continues `source`: as recorded when the run
        started (`ORIGIN_FILE`), else read from `source` and checked against `preset` now (a
        ValueError before any file is written), then its tokenizer copied (its embeddings are
        indexed by that vocabulary) and the record written."""
        record = work_dir / ORIGIN_FILE
        if record.exists():
            fields = json.loads(record.read_text(encoding="utf-8"))
            return cls(**{**fields, "work_dir": Path(fields["work_dir"])})
        origin = cls.read(source)
        origin.check(preset)
        work_dir.mkdir(parents=True, exist_ok=True)
        tokenizer_dir = work_dir / "tokenizer"
        if not (tokenizer_dir / "tokenizer.json").exists():
            shutil.copytree(source / "tokenizer", tokenizer_dir, dirs_exist_ok=True)
        fields = {**origin.__dict__, "work_dir": str(source)}
        record.write_text(json.dumps(fields) + "\n", encoding="utf-8")
        return origin

    @classmethod
    def read(cls, work_dir: Path) -> "Origin":
        """The earlier run's finished masked-LM pre-training, or a ValueError that says what is
        missing (before any file of the new run is written)."""
        curve = read_curve(work_dir)
        missing = [name for name in ("mlm/config.json", "tokenizer/tokenizer.json")
                   if not (work_dir / name).exists()]  # fmt: skip
        if missing or not curve:
            raise ValueError(f"{work_dir} is not a finished masked-LM pre-training: it lacks "
                             f"{', '.join(missing or [CURVE_FILE])}")  # fmt: skip
        last = curve[-1]
        return cls(work_dir, last["step"], last["sequences"], last["tokens"], last["minutes"])

    def check(self, preset) -> None:
        """The encoder must be the preset's size: the later stages and the manifest read it."""
        config = BertConfig.from_pretrained(self.work_dir / "mlm")
        have = (config.hidden_size, config.num_hidden_layers, config.num_attention_heads)
        want = (preset.hidden, preset.layers, preset.heads)
        if preset.objective != "mlm" or have != want:
            raise ValueError(f"{self.work_dir}: continues masked-LM pre-training of hidden/layers/"
                             f"heads {have}; the preset asks {preset.objective} of {want}")


def mask_tokens(
    ids: torch.Tensor, tokenizer, rate: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's dynamic masking: `rate` of real tokens; of those 80 % [MASK], 10 % random, 10 % kept."""
    labels = ids.clone()
    special = ids <= max(tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS))
    chosen = (torch.rand(ids.shape) < rate) & ~special
    labels[~chosen] = -100
    inputs = ids.clone()
    replace = chosen & (torch.rand(ids.shape) < 0.8)
    inputs[replace] = tokenizer.mask_token_id
    randomize = chosen & ~replace & (torch.rand(ids.shape) < 0.5)
    inputs[randomize] = torch.randint(len(SPECIAL_TOKENS), len(tokenizer), (int(randomize.sum()),))
    return inputs, labels


def bert_config(tokenizer, preset) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer), hidden_size=preset.hidden, num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads, intermediate_size=4 * preset.hidden,
        max_position_embeddings=max(128, preset.max_len), pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


def generator_config(tokenizer, preset) -> ElectraConfig:
    """ELECTRA's generator: `generator_ratio` of the discriminator's width, same depth, and
    embeddings of the discriminator's size (they are shared)."""
    width = max(16, int(preset.hidden * preset.generator_ratio))
    return ElectraConfig(
        vocab_size=len(tokenizer), embedding_size=preset.hidden, hidden_size=width,
        num_hidden_layers=preset.layers, num_attention_heads=max(1, width // 64),
        intermediate_size=4 * width, max_position_embeddings=max(128, preset.max_len),
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip


@torch.no_grad()
def sample(logits: torch.Tensor) -> torch.Tensor:
    """One token per row from softmax(logits), by inverse CDF: one uniform per row instead
    of the one exponential per vocabulary entry `torch.multinomial` draws (a quarter of an
    ELECTRA step's time with 32k entries)."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    draws = torch.rand(len(cdf), 1, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, draws).squeeze(-1).clamp(max=logits.shape[-1] - 1)


class Electra(torch.nn.Module):
    """Generator + discriminator with shared token embeddings, trained as one module."""

    def __init__(self, tokenizer, preset) -> None:
        super().__init__()
        self.discriminator = BertModel(bert_config(tokenizer, preset), add_pooling_layer=False)
        hidden = preset.hidden
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)
        )
        self.generator = ElectraForMaskedLM(generator_config(tokenizer, preset))
        shared = self.discriminator.embeddings.word_embeddings
        self.generator.electra.embeddings.word_embeddings = shared
        self.generator.generator_lm_head.weight = shared.weight
        self.disc_weight = preset.disc_weight

    def loss(self, ids: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor,
             attention: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """Generator MLM loss + `disc_weight` x the discriminator's per-token BCE."""
        masked = labels != -100
        states = self.generator.electra(input_ids=inputs, attention_mask=attention)
        logits = self.generator.generator_lm_head(
            self.generator.generator_predictions(states.last_hidden_state[masked])
        )
        generator_loss = torch.nn.functional.cross_entropy(logits, labels[masked])
        sampled = sample(logits)
        corrupted = ids.clone()
        corrupted[masked] = sampled
        replaced = (corrupted != ids).float()
        hidden = self.discriminator(input_ids=corrupted, attention_mask=attention)
        scores = self.head(hidden.last_hidden_state).squeeze(-1)
        real = attention.bool()
        disc_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            scores[real], replaced[real]
        )
        return generator_loss + self.disc_weight * disc_loss


@torch.inference_mode()
def pooled_states(encoder, tokenizer, texts: Sequence[str], max_len: int,
                  batch_size: int = 256) -> np.ndarray:  # fmt: skip
    """Mean of the encoder's last hidden states over each text's real tokens."""
    was_training = encoder.training
    encoder.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        encoded = tokenizer([texts[i] for i in index], padding=True, truncation=True,
                            max_length=max_len, return_tensors="pt").to(encoder.device)  # fmt: skip
        states = encoder(input_ids=encoded["input_ids"],
                         attention_mask=encoded["attention_mask"]).last_hidden_state
        weights = encoded["attention_mask"].unsqueeze(-1).float()
        out[index] = ((states * weights).sum(1) / weights.sum(1)).float().cpu().numpy()
    encoder.train(was_training)
    return out


def probe_accuracy(encoder, tokenizer, probe: Probe, max_len: int) -> float:
    """Validation accuracy of a logistic regression on the frozen encoder's pooled states."""
    features = pooled_states(encoder, tokenizer, probe.fit[0], max_len)
    classifier = LogisticRegression(C=1.0, max_iter=2000).fit(features, probe.fit[1])
    validation = pooled_states(encoder, tokenizer, probe.validation[0], max_len)
    return float(np.mean(classifier.predict(validation) == np.asarray(probe.validation[1])))


def saved_encoder(work_dir: Path) -> Path | None:
    """The encoder a run's pre-training saved (`<work>/mlm` or `<work>/electra`, as `pretrain`
    names it by objective); None while pre-training is still running."""
    return next((work_dir / objective for objective in OBJECTIVES
                 if (work_dir / objective / "config.json").exists()), None)  # fmt: skip


def encoder_size(layers: int, hidden: int) -> str:
    """How the curve and its report name an encoder's size, e.g. "4 x 128"."""
    return f"{layers} x {hidden}"


def curve_recorder(encoder, tokenizer, preset, probe: Probe | None, work_dir: Path,
                   tokens_per_step: float, origin: Origin):  # fmt: skip
    """An `after_step` hook: every `preset.probe_every` steps (and at the end) append
    step, sequences, tokens, minutes, objective, encoder size and probe accuracy to the curve
    file, counted on from `origin` when the run continues an earlier one."""

    def record(step: int, seconds: float) -> None:
        done = step + 1
        due = preset.probe_every and done % preset.probe_every == 0
        if probe is None or not (due or done == preset.pretrain_steps):
            return
        entry = {
            "objective": preset.objective, "encoder": encoder_size(preset.layers, preset.hidden),
            "step": origin.step + done,
            "sequences": origin.sequences + done * preset.pretrain_batch,
            "tokens": origin.tokens + round(done * tokens_per_step),
            "minutes": round(origin.minutes + seconds / 60, 1),
            "probe_validation_accuracy": round(probe_accuracy(encoder, tokenizer, probe,
                                                              preset.max_len), 4),
        }  # fmt: skip
        print(f"\npretrain {entry}", flush=True)
        with open(work_dir / CURVE_FILE, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    return record


def read_curve(work_dir: Path) -> list[dict]:
    """The curve's records, one per step (a step recorded twice by a resumed run: the last)."""
    path = work_dir / CURVE_FILE
    if not path.exists():
        return []
    records = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        records[entry["step"]] = entry
    return [records[step] for step in sorted(records)]


def pretrain(tokenizer, texts: Sequence[str], preset, work_dir: Path, device,
             probe: Probe | None = None, origin: Origin | None = None) -> Path:  # fmt: skip
    """Pre-train with `preset.objective`, from scratch or on from `origin` (its batches skipped:
    the stream goes on where that run stopped); returns the directory of the encoder (a BERT)."""
    if preset.objective not in OBJECTIVES:
        raise ValueError(f"objective {preset.objective!r}: one of {', '.join(OBJECTIVES)}")
    ids = encode(tokenizer, texts, preset.max_len)
    order = batches([len(i) for i in ids], preset.pretrain_batch, seed=preset.stage_seed(1))
    tokens_per_step = preset.pretrain_batch * float(np.mean([len(i) for i in ids]))
    if origin is not None:
        skip(order, origin.step)
    if preset.objective == "mlm":
        # a resumed run's weights come from its state, so only a first start loads the origin's
        fresh = origin is None or (work_dir / "pretrain.pt").exists()
        model = (BertForMaskedLM(bert_config(tokenizer, preset)) if fresh else
                 BertForMaskedLM.from_pretrained(origin.work_dir / "mlm")).to(device)  # fmt: skip
        encoder, out_dir = model.bert, work_dir / "mlm"
    else:
        model = Electra(tokenizer, preset).to(device)
        encoder, out_dir = model.discriminator, work_dir / "electra"

    def step_loss(_: int) -> torch.Tensor:
        batch_ids, attention = pad([ids[i] for i in next(order)], tokenizer.pad_token_id)
        inputs, labels = mask_tokens(batch_ids, tokenizer, preset.mask_rate)
        batch_ids, inputs = batch_ids.to(device), inputs.to(device)
        labels, attention = labels.to(device), attention.to(device)
        if preset.objective == "electra":
            return model.loss(batch_ids, inputs, labels, attention)
        hidden = model.bert(input_ids=inputs, attention_mask=attention).last_hidden_state
        masked = labels != -100  # the MLM head on masked positions only (~7x cheaper here)
        return torch.nn.functional.cross_entropy(model.cls(hidden[masked]), labels[masked])

    record = curve_recorder(encoder, tokenizer, preset, probe, work_dir, tokens_per_step,
                            origin or Origin(work_dir))  # fmt: skip
    run_steps(model, step_loss, preset.pretrain_steps, preset.pretrain_lr, work_dir, "pretrain",
              record, order)  # fmt: skip
    (model if preset.objective == "mlm" else encoder).to("cpu").save_pretrained(out_dir)
    return out_dir
