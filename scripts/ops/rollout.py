"""Retrain and roll out a new version of a served model, while it keeps serving.

    train -> archive <model>_v<N>.0.mar (version N.0, named as `build_archive --version N.0`
    names it) -> register it beside the serving version
    -> smoke test /predictions/<model>/N.0 (accuracy on a held-out slice) -> set default
    -> unregister the old version

The smoke test gates on the validation split of ratings_train.txt (held out of every model's
fitting, scripts/nsmc.py), or on a file the user names with --smoke-file; ratings_test.txt
stays reserved for the final figures.

The model API (registering) is off by default: the command turns it on for itself by restarting
TorchServe, and off again by another restart at the end (scripts/ops/model_api.py), saying so;
a TorchServe started with it on (`make serve MODEL_API=on`) keeps it and answers throughout.

Until the default flips, a failure only unregisters the new version: the old one stays the
default and keeps answering.  Each step prints its elapsed time.

    python -m scripts.ops.rollout sentiment_fast --data-dir ../shared/nsmc
    python -m scripts.ops.rollout sentiment_bert --model-dir build/sentiment_bert
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from scripts.nsmc import TRAIN_FILE, read_labelled, resolve_data_dir
from scripts.ops.manage import Management
from scripts.ops.model_api import ModelApiError, registration_window
from scripts.ops.server import ServerError, TorchServe
from scripts.packaging.build_archive import build_archive, versioned_name
from scripts.registry import DEFAULT_RUN_DIR, MODELS, ROOT
from scripts.training.train_fast import train as train_fast


class RolloutError(RuntimeError):
    """A step failed; `step` names it and the message says what is serving now."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


@dataclass
class Rollout:
    """What a rollout did: versions, archive, smoke accuracy and the seconds of each step."""

    model: str
    old_version: str
    new_version: str
    archive: str
    seconds: dict[str, float] = field(default_factory=dict)
    smoke_accuracy: float | None = None


def is_number(text: str) -> bool:
    """'2.0' (a version's archive) or '2' (an older rollout's), not 'x'."""
    return text.replace(".", "", 1).isdigit()


def archive_name(model: str, number: int) -> str:
    """The archive of version `number`.0: the file `build_archive --version N.0` writes, so
    that docs, rollouts and manual builds share one name (sentiment_fast_v2.0.mar)."""
    return versioned_name(model, f"{number}.0") + ".mar"


def next_version(versions: Sequence[str], store: Path, model: str) -> int:
    """One above the highest registered version and every <model>_v<N>[.M].mar in the store,
    so that no archive a restart may load (model_store/defaults.json) is ever overwritten."""
    built = [p.stem.rsplit("_v", 1)[1] for p in store.glob(f"{model}_v*.mar")]
    numbers = [int(float(v)) for v in [*versions, *filter(is_number, built)]]
    return max(numbers, default=0) + 1


@dataclass(frozen=True)
class SmokeSlice:
    """The labelled reviews the gate scores, and how to name them in a message."""

    texts: list[str]
    labels: list[int]
    described: str


def smoke_slice(data_dir: Path, rows: int, smoke_file: Path | None = None) -> SmokeSlice:
    """The first `rows` reviews of `smoke_file`, else of the validation split.

    Not ratings_test.txt: that file is kept for the final figures, and a gate tuned or
    repeated on it would leak into them.
    """
    path = smoke_file or data_dir / TRAIN_FILE
    part = None if smoke_file else "validation"
    texts, labels = read_labelled(path, rows, part=part)
    which = f"{part} reviews" if part else "reviews"
    if not texts:  # an empty slice would pass or fail every model alike
        raise ValueError(f"no labelled {which} in {path}")
    return SmokeSlice(texts, labels, f"the first {len(texts)} {which} of {path}")


def smoke_test(
    server: TorchServe,
    model: str,
    version: str,
    texts: list[str],
    labels: list[int],
    chunk: int = 200,
) -> float:
    """Accuracy of exactly `model`/`version` on labelled texts, sent as JSON lists."""
    path = f"/predictions/{model}/{version}"
    url = server.url("inference", path)
    correct = 0
    for start in range(0, len(texts), chunk):
        body = {"text": texts[start : start + chunk]}
        response = server.request("inference", "POST", path, json=body, timeout=120)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
        predicted = [answer["label"] == "positive" for answer in response.json()]
        correct += sum(int(p) == y for p, y in zip(predicted, labels[start : start + chunk]))
    return correct / len(texts)


def rollout(
    server: TorchServe,
    model: str,
    data_dir: Path,
    model_dir: Path | None = None,
    max_rows: int | None = None,
    min_accuracy: float = 0.8,
    smoke_rows: int = 1000,
    smoke_file: Path | None = None,
    build_dir: Path = ROOT / "build",
    drain_seconds: float = 1.0,
    log: Callable[[str], None] = print,
) -> Rollout:
    """Roll `model` to a new version; RolloutError (after cleaning up) if any step fails."""
    management = Management(server)
    try:
        old = management.default_version(model)
        number = next_version(management.versions(model), server.model_store, model)
    except Exception as err:
        raise RolloutError("find the serving version", f"{err}") from None
    done = Rollout(model, old, f"{number}.0", archive_name(model, number))
    registered = False

    def step(name: str, action: Callable[[], object]) -> object:
        log(f"[{name}] ...")
        started = time.perf_counter()
        try:
            result = action()
        except Exception as err:  # any failure: leave the old version serving, say what failed
            message = " ".join(str(err).split()) or type(err).__name__
            raise RolloutError(name, f"{message}") from None
        done.seconds[name] = time.perf_counter() - started
        log(f"[{name}] done in {done.seconds[name]:.1f}s")
        return result

    try:
        try:  # first: a missing file fails before minutes of training and registering
            held_out = smoke_slice(data_dir, smoke_rows, smoke_file)
        except (OSError, ValueError) as err:
            raise RolloutError("read the smoke slice", f"{err}") from None
        if model_dir is None:
            if model != "sentiment_fast":
                raise RolloutError("train", f"{model} is not trained here: pass --model-dir")
            model_dir = build_dir / f"{model}_v{number}"
            step("train", lambda: train_fast(data_dir, model_dir, max_rows))
        step(
            "archive",
            lambda: build_archive(
                MODELS[model],
                model_dir,
                server.model_store,
                done.new_version,
                done.archive[: -len(".mar")],
            ),
        )
        step("register", lambda: management.register(done.archive, model))
        registered = True
        done.smoke_accuracy = step(
            "smoke test",
            lambda: smoke_test(server, model, done.new_version, held_out.texts, held_out.labels),
        )
        summary = f"accuracy {done.smoke_accuracy:.4f} on {held_out.described}"
        if done.smoke_accuracy < min_accuracy:
            raise RolloutError("smoke test", f"{summary} < minimum {min_accuracy}")
        log(f"[smoke test] {summary}")
        step("set default", lambda: management.set_default(model, done.new_version))
        registered = False  # the new version serves now: never unregister it below
    except RolloutError as err:
        if registered:
            try:
                management.unregister(model, done.new_version)
            except Exception as cleanup:  # report, but the original failure is the story
                log(f"could not unregister {model} {done.new_version}: {cleanup}")
        (server.model_store / done.archive).unlink(missing_ok=True)  # numbered: nobody else's
        raise RolloutError(err.step, f"{err}; {model} {old} is still the default") from None
    # Requests routed to the old version just before the flip are still queued: let them drain.
    time.sleep(drain_seconds)
    try:
        step("unregister old", lambda: management.unregister(model, old))
    except RolloutError as err:
        raise RolloutError(
            err.step, f"{err}; {model} {done.new_version} is the default, {old} is still registered"
        ) from None
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--data-dir", help="NSMC directory (default: $NSMC_DIR or data/nsmc)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="an already trained model directory (required for sentiment_bert)",
    )
    parser.add_argument("--max-rows", type=int, help="train on the first N rows only")
    parser.add_argument("--min-accuracy", type=float, default=0.8)
    parser.add_argument(
        "--smoke-rows",
        type=int,
        default=1000,
        help="reviews the smoke test scores (the first rows of the validation split)",
    )
    parser.add_argument(
        "--smoke-file",
        type=Path,
        help="an NSMC-format file to smoke-test on instead of the validation split",
    )
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        with registration_window(TorchServe.attach(args.run_dir)) as server:
            done = rollout(
                server,
                args.model,
                resolve_data_dir(args.data_dir),
                args.model_dir,
                args.max_rows,
                args.min_accuracy,
                args.smoke_rows,
                args.smoke_file,
            )
    except RolloutError as err:
        print(f"error: rollout failed at step '{err.step}': {err}", file=sys.stderr)
        return 1
    except (ModelApiError, ServerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in done.seconds.items())
    print(
        f"{done.model}: {done.old_version} -> {done.new_version} ({done.archive}) in "
        f"{time.perf_counter() - started:.1f}s ({steps})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
