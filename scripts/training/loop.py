"""The training loop every sentiment_bert stage shares: length-grouped batches, padding, and
an optimizer loop that checkpoints and resumes in the middle of a stage.

A run on 2 cores takes hours and may be stopped at any moment and continued on another
day, so a resumed stage must continue where it stopped: same weights, optimizer, schedule,
random state and batch order (the batches already seen are skipped, not repeated).
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

# how often a stage writes its resumable state, in seconds of training
SAVE_EVERY_S = 300
# steps over which the rate is ramped back up after resuming from a light state (no Adam
# moments): fresh moments make Adam's first updates about lr per weight whatever the gradient's
# noise, a jolt at a mid-schedule rate. ~1/(1 - beta2) steps, as long as Adam takes to
# estimate them again.
REWARM_STEPS = 1000
# monotonic time after which a stage saves its state and stops (stop_after); None: never
_deadline: float | None = None


class StageStopped(Exception):
    """The run's time budget ran out in the middle of a stage; its state is saved and a rerun
    of the same command resumes there (e.g. a GPU piece of a few minutes)."""


def stop_after(minutes: float | None) -> None:
    """Give every stage from now on `minutes` of wall time in all (None: no limit)."""
    global _deadline
    _deadline = None if minutes is None else time.monotonic() + 60 * minutes


def encode(tokenizer, texts: Sequence[str], max_len: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_len)["input_ids"]


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence of this batch, not to a fixed length."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
    return ids, (ids != pad_id).long()


def batches(
    lengths: Sequence[int], batch_size: int, seed: int, pool: int = 64
) -> Iterator[list[int]]:
    """Shuffled index batches of similar lengths, epoch after epoch.

    Reviews are mostly short with a long tail: a batch drawn at random is padded to its
    longest review.  Sorting each pool of `pool` batches by length, then shuffling the
    batches, cuts most of that padding and keeps the order random at the batch level.
    """
    rng = random.Random(seed)
    n_items = len(lengths)
    while True:
        order = list(range(n_items))
        rng.shuffle(order)
        epoch = []
        span = batch_size * pool
        for start in range(0, n_items - batch_size + 1, span):
            chunk = sorted(order[start : start + span], key=lengths.__getitem__)
            epoch += [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1,
                                                                batch_size)]  # fmt: skip
        rng.shuffle(epoch)
        yield from epoch


def skip(order: Iterator, steps: int) -> None:
    """Advance a batch iterator past the `steps` batches a resumed stage has already seen."""
    for _ in itertools.islice(order, steps):
        pass


def _random_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}  # fmt: skip


def _restore_random_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def run_steps(
    model, step_loss, total_steps: int, lr: float, work_dir: Path, desc: str,
    after_step: Callable[[int, float], None] | None = None,
    order: Iterator | None = None,
) -> None:
    """AdamW with warm-up and linear decay; checkpoints every few minutes and resumes from them.

    `order`: the stage's batch iterator, advanced past the batches already trained on when
    resuming.  `after_step(step, seconds)` runs after each optimizer step with the stage's
    training seconds so far, resumed runs included (e.g. a validation at epoch ends).
    """
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, total_steps // 20)
    rewarm_from: int | None = None  # the step a light state resumed at

    def rate(s: int) -> float:
        scale = min((s + 1) / warmup, max(0.0, (total_steps - s) / (total_steps - warmup)))
        if rewarm_from is not None:
            scale *= min(1.0, (s - rewarm_from + 1) / REWARM_STEPS)
        return scale

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    state_path = work_dir / f"{desc}.pt"
    start, prior_seconds = 0, 0.0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        schedule.load_state_dict(state["schedule"])
        start, prior_seconds = state["step"], state.get("seconds", 0.0)
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
        else:  # a light state (device_piece): Adam's moments restart, the rate ramps back
            rewarm_from = start
            for group in optimizer.param_groups:
                group["lr"] = lr * rate(start)
        if "random" in state:
            _restore_random_state(state["random"])
        if order is not None:
            skip(order, start)
        light = "" if rewarm_from is None else f", Adam restarted, rate ramped over {REWARM_STEPS} steps"
        print(f"resuming {desc} at step {start}/{total_steps}{light}")
    model.train()
    began = last_save = time.monotonic()
    hook_seconds = 0.0
    progress = tqdm(range(start, total_steps), desc=desc, initial=start, total=total_steps,
                    mininterval=5, dynamic_ncols=True)  # fmt: skip
    for step in progress:
        loss = step_loss(step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 20 == 0:
            progress.set_postfix(loss=f"{loss.item():.3f}")
        seconds = prior_seconds + time.monotonic() - began - hook_seconds
        if after_step is not None:  # before the save: a record is repeated, never lost
            hook_started = time.monotonic()
            after_step(step, seconds)
            model.train()
            hook_seconds += time.monotonic() - hook_started  # not training time
        out_of_time = _deadline is not None and time.monotonic() > _deadline
        if time.monotonic() - last_save > SAVE_EVERY_S or step + 1 == total_steps or out_of_time:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), "step": step + 1, "seconds": seconds,
                     "random": _random_state()}  # fmt: skip
            torch.save(state, state_path.with_suffix(".tmp"))
            state_path.with_suffix(".tmp").replace(state_path)  # a kill mid-write keeps the old
            last_save = time.monotonic()
        if out_of_time and step + 1 < total_steps:
            raise StageStopped(f"{desc} stopped at step {step + 1}/{total_steps}: time budget "
                               "spent, state saved; rerun the same command to resume")
    model.eval()


def stage_minutes(work_dir: Path, stages: Sequence[str]) -> dict[str, float]:
    """Training minutes each finished or resumed stage recorded in its state (resumes summed)."""
    minutes = {}
    for stage in stages:
        path = work_dir / f"{stage}.pt"
        if path.exists():
            seconds = torch.load(path, weights_only=False).get("seconds")
            if seconds is not None:
                minutes[stage] = round(seconds / 60, 1)
    return minutes
