"""Model artifacts in an archive: finding them, and proving they are the ones we built.

joblib/pickle files can execute code when loaded, so every artifact's SHA-256
is written to metadata.json when the model is built, and checked before it is
loaded.  Used by the build scripts (to record) and the handlers (to verify).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

METADATA_FILE = "metadata.json"
FAST_MODEL_FILE = "model.joblib"  # sentiment_fast: the fitted scikit-learn pipeline
# sentiment_bert: a save_pretrained directory (weights, config, tokenizer)
BERT_WEIGHTS_FILE = "model.safetensors"
BERT_FILES = (BERT_WEIGHTS_FILE, "config.json", "tokenizer.json", "tokenizer_config.json")
#: what every sentiment_bert archive carries, whichever runtime it is built for
BERT_COMMON_FILES = BERT_FILES[1:]
# sentiment_bert, optional: the same weights exported for ONNX Runtime when the archive is built
BERT_ONNX_FILE = "model.onnx"
# ... and its dynamic int8 quantization (onnxruntime.quantization), for `runtime: onnx-int8`
BERT_ONNX_INT8_FILE = "model.int8.onnx"
#: the one model file each sentiment_bert runtime (handler.runtime) serves from
BERT_RUNTIME_FILES = {"onnx": BERT_ONNX_FILE, "onnx-int8": BERT_ONNX_INT8_FILE,
                      "torch": BERT_WEIGHTS_FILE}  # fmt: skip
#: the exported graph's output, named by scripts/packaging/bert_onnx.py and read by the handler
BERT_ONNX_OUTPUT = "logits"


class MissingArtifactError(FileNotFoundError):
    """The archive lacks a file the handler needs; names every missing file."""


class TamperedArtifactError(RuntimeError):
    """An artifact's SHA-256 differs from the one recorded in metadata.json at build time."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def require_files(model_dir: Path, names: Sequence[str]) -> list[Path]:
    """Paths of `names` in `model_dir`, or MissingArtifactError naming all that are absent."""
    paths = [model_dir / name for name in names]
    missing = [p.name for p in paths if not p.exists()]
    if missing:
        raise MissingArtifactError(
            f"{', '.join(missing)} not found in model dir {model_dir}; rebuild the archive"
        )
    return paths


def write_metadata(model_dir: Path, metadata: Mapping[str, Any], artifacts: Sequence[str]) -> dict:
    """Write metadata.json with the SHA-256 of every artifact the handler will load."""
    paths = require_files(model_dir, artifacts)
    recorded = {**metadata, "artifact_sha256": {p.name: sha256_of(p) for p in paths}}
    (model_dir / METADATA_FILE).write_text(json.dumps(recorded, indent=2), encoding="utf-8")
    return recorded


def add_artifact(model_dir: Path, name: str, metadata: Mapping[str, Any]) -> dict:
    """Record one more artifact (made after training, e.g. an export) in metadata.json."""
    recorded = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    hashes = recorded.pop("artifact_sha256", {})
    return write_metadata(model_dir, {**recorded, **metadata}, [*hashes, name])


def remove_artifacts(model_dir: Path, names: Sequence[str], entries: Mapping[str, Any]) -> dict:
    """Delete `names` from `model_dir` and from metadata.json's hashes, adding `entries`.

    For an archive that leaves files out (one runtime's): a hash recorded for a file
    that is not there fails the load, so the record goes with the file.  The other
    hashes stay as recorded, as in update_metadata.
    """
    for name in names:
        (model_dir / name).unlink(missing_ok=True)
    hashes = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8"))["artifact_sha256"]
    kept = {name: digest for name, digest in hashes.items() if name not in names}
    return update_metadata(model_dir, {**entries, "artifact_sha256": kept})


def update_metadata(model_dir: Path, entries: Mapping[str, Any]) -> dict:
    """Add or replace entries of metadata.json (e.g. a calibration fitted after training).

    The recorded artifact hashes are kept as they are, never recomputed: updating the
    metadata must not bless an artifact that changed since it was built.
    """
    path = model_dir / METADATA_FILE
    recorded = {**json.loads(path.read_text(encoding="utf-8")), **entries}
    hashes = recorded.pop("artifact_sha256", {})
    recorded["artifact_sha256"] = hashes  # stays last, as write_metadata puts it
    path.write_text(json.dumps(recorded, indent=2), encoding="utf-8")
    return recorded


def load_verified_metadata(model_dir: Path, required: Sequence[str]) -> dict[str, Any]:
    """metadata.json, after checking every required file exists and matches its recorded hash."""
    (metadata_path, *_) = require_files(model_dir, [METADATA_FILE, *required])
    metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    recorded: Mapping[str, str] = metadata.get("artifact_sha256", {})
    unrecorded = [name for name in required if name not in recorded]
    if unrecorded:
        raise TamperedArtifactError(
            f"metadata.json in {model_dir} records no SHA-256 for {', '.join(unrecorded)}; "
            "refusing to load unverified artifacts"
        )
    for name, expected in recorded.items():
        actual = sha256_of(model_dir / name)
        if actual != expected:
            raise TamperedArtifactError(
                f"{name} in {model_dir} has SHA-256 {actual}, but metadata.json records "
                f"{expected}; refusing to load it"
            )
    return metadata
