"""Carry a resumable training run to a GPU machine and back, within its transfer limits.

A lent GPU machine runs a command over a copy of the repository for a few minutes, with
no network: it can bring back at most 8 files of 16 MiB (64 MiB in all).  A piece of
pre-training goes there and back like this:

    python -m scripts.training.device_piece data ../shared/nsmc build/device/nsmc    # here
    python -m scripts.training.device_piece worker build/device/site   # for the handler check
    # there (scripts/training/gpu_piece.sh): unpack, train_bert --stop-after-minutes, pack
    python -m scripts.training.device_piece unpack <files that came back> build/<run>/work

The same piece carries a run to the next session's machine when build/ does not survive
(committed under carry/, docs/models/sentiment_bert.md).

A packed run holds its tokenizer, the probe curve and a *light* state: weights, step,
schedule and random state without Adam's moments (twice the weights' size; the loop restarts
them and ramps the rate back up, `loop.run_steps`).  Everything goes into one tar, split into
chunks, with the whole tar's SHA-256 checked on unpacking.  `pack --half` stores the weights in
fp16 (half the bytes: a 6 x 256 run's 52 MB become 26 MB to commit each session); the loop
loads them back into its float32 model, a rounding far below one optimizer step's change.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Sequence

import torch

CHUNK_BYTES = 15 * 2**20  # under the 16 MiB a file may have on the way back
MANIFEST = "piece.json"
STAGES = ("pretrain", "finetune", "distill")
KEPT = ("tokenizer", "pretrain_curve.jsonl", "pretrain_origin.json", "distill_validation.jsonl",
        "teacher.npz")
DATA_FILES = ("ratings_train.txt", "ratings_test.txt", "unlabeled.txt")


class PieceError(ValueError):
    """The files given are not a complete, intact packed run."""


def half_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors in fp16; tensors that shared storage (tied embeddings) still share it,
    so a tied decoder is not stored twice."""
    seen: dict[tuple[int, torch.dtype, tuple[int, ...]], torch.Tensor] = {}
    out = {}
    for name, tensor in weights.items():
        if not tensor.is_floating_point():
            out[name] = tensor
            continue
        key = (tensor.data_ptr(), tensor.dtype, tuple(tensor.shape))
        if key not in seen:
            seen[key] = tensor.to(torch.float16)
        out[name] = seen[key]
    return out


def light_state(path: Path, half: bool = False) -> bytes:
    """A stage's saved state without the optimizer's moments (weights in fp16 with `half`)."""
    state = torch.load(path, weights_only=False)
    state.pop("optimizer", None)
    if half:
        state["model"] = half_weights(state["model"])
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def pack(work_dir: Path, out_dir: Path, half: bool = False) -> list[Path]:
    """Tar the run's resumable files (light states) and split it into chunks in `out_dir`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in KEPT:
            if (work_dir / name).exists():
                tar.add(work_dir / name, arcname=name)
        for stage in STAGES:
            path = work_dir / f"{stage}.pt"
            if path.exists():
                data = light_state(path, half)
                info = tarfile.TarInfo(f"{stage}.pt")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks = []
    for index, start in enumerate(range(0, len(data), CHUNK_BYTES)):
        chunk = out_dir / f"piece.{index:02d}"
        chunk.write_bytes(data[start : start + CHUNK_BYTES])
        chunks.append(chunk)
    manifest = {"chunks": [c.name for c in chunks], "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "weights": "float16" if half else "float32"}  # fmt: skip
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return chunks


def unpack(piece_dir: Path, work_dir: Path) -> list[str]:
    """Reassemble, check and extract a packed run into `work_dir`; returns what it holds."""
    manifest_path = piece_dir / MANIFEST
    if not manifest_path.exists():
        raise PieceError(f"{manifest_path}: no manifest; pack writes one beside its chunks")
    manifest = json.loads(manifest_path.read_text())
    missing = [name for name in manifest["chunks"] if not (piece_dir / name).exists()]
    if missing:
        raise PieceError(f"{piece_dir}: missing chunks {missing}")
    data = b"".join((piece_dir / name).read_bytes() for name in manifest["chunks"])
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise PieceError(f"{piece_dir}: the chunks do not add up to the packed run (SHA-256)")
    work_dir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        tar.extractall(work_dir, filter="data")
    return names


def pack_data(data_dir: Path, out_dir: Path) -> list[Path]:
    """gzip the NSMC files so they travel with the repository (never committed: build/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DATA_FILES:
        target = out_dir / f"{name}.gz"
        with open(data_dir / name, "rb") as source, gzip.open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
        written.append(target)
    return written


def pack_worker(out_dir: Path) -> list[Path]:
    """TorchServe's Python side (the `ts` package without its Java frontend, ~0.5 MB): what a
    handler imports, for a machine that has torch but no TorchServe (benchmarks.gpu_handler
    there, with PYTHONPATH=out_dir). Found without importing it: unpack runs where it is not."""
    spec = importlib.util.find_spec("ts")
    if spec is None or spec.origin is None:
        raise PieceError("TorchServe (the ts package) is not installed here")
    target = out_dir / "ts"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(Path(spec.origin).parent, target,
                    ignore=shutil.ignore_patterns("frontend", "__pycache__"))  # fmt: skip
    return [target]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, first, second in (("pack", "work_dir", "out_dir"), ("unpack", "piece_dir", "work_dir"),
                                ("data", "data_dir", "out_dir")):  # fmt: skip
        command = commands.add_parser(name)
        command.add_argument(first, type=Path)
        command.add_argument(second, type=Path)
    pack_command = commands.choices["pack"]
    pack_command.add_argument("--half", action="store_true", help="weights in fp16: half the bytes")
    commands.add_parser("worker").add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            done = [str(p) for p in pack(args.work_dir, args.out_dir, args.half)]
        elif args.command == "unpack":
            done = unpack(args.piece_dir, args.work_dir)
        elif args.command == "worker":
            done = [str(p) for p in pack_worker(args.out_dir)]
        else:
            done = [str(p) for p in pack_data(args.data_dir, args.out_dir)]
    except PieceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.command}: {', '.join(done)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
