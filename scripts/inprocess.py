"""Run a handler the way a TorchServe worker does, in this process, without the server.

Builds TorchServe's own Context (with its real metrics cache), so the handler
sees the same object as in production; only the socket is missing.  Used by
the tests, the ONNX parity check and the benchmark's in-process ceilings.
"""

from __future__ import annotations

import importlib
import inspect
import json
import time
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import ts
import yaml
from ts.context import Context
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

from scripts.registry import MODELS

METRICS_YAML = Path(ts.__file__).parent / "configs" / "metrics.yaml"


def make_context(
    model_name: str,
    model_dir: Path,
    config_yaml: Path | Mapping[str, Any] | None = None,
    gpu_id: int | None = None,
) -> Context:
    """A worker's Context for `model_dir`; the config is a model-config.yaml path or its dict.
    `gpu_id`: the GPU TorchServe would assign the worker (None: a CPU worker)."""
    metrics = MetricsCacheYamlImpl(config_file_path=str(METRICS_YAML))
    metrics.initialize_cache()
    if isinstance(config_yaml, Path):
        config = yaml.safe_load(config_yaml.read_text())
    else:
        config = dict(config_yaml or {})
    return Context(
        model_name,
        str(model_dir),
        None,
        config.get("batchSize", 1),
        gpu_id,
        "0.12.0",
        metrics=metrics,
        model_yaml_config=config,
    )


def handler_class(handler_file: str) -> type:
    """The handler class defined in handlers/<handler_file> (the one with `predict_proba`).

    Imported by name, as TorchServe does, so importing this module costs no torch."""
    module = importlib.import_module(f"handlers.{Path(handler_file).stem}")
    [cls] = [
        c
        for _, c in inspect.getmembers(module, inspect.isclass)
        if c.__module__ == module.__name__ and hasattr(c, "predict_proba")
    ]
    return cls


def load_handler(
    model_name: str,
    model_dir: Path,
    handler_file: str,
    config: Mapping[str, Any],
    gpu_id: int | None = None,
) -> Any:
    """An initialised handler for the artifacts in `model_dir`, through its own load path."""
    handler = handler_class(handler_file)()
    handler.initialize(make_context(model_name, model_dir, config, gpu_id))
    return handler


def load_registered(name: str, model_dir: Path, gpu_id: int | None = None, **overrides: Any) -> Any:
    """`name`'s handler on `model_dir`, configured as its archive configures it (the registry's
    model-config.yaml), with `handler:` settings overridden."""
    spec = MODELS[name]
    config = yaml.safe_load(spec.config_file.read_text())
    config["handler"] = {**config.get("handler", {}), **overrides}
    return load_handler(name, model_dir, spec.handler, config, gpu_id)


def load_archive(mar: Path, into: Path, handler_overrides: Mapping[str, Any] = ()) -> Any:
    """Unpack a .mar into `into` and initialise its handler exactly as a worker would."""
    with zipfile.ZipFile(mar) as archive:
        archive.extractall(into)
    manifest = json.loads((into / "MAR-INF" / "MANIFEST.json").read_text())["model"]
    config = yaml.safe_load((into / manifest["configFile"]).read_text())
    config["handler"] = {**config.get("handler", {}), **dict(handler_overrides)}
    return load_handler(manifest["modelName"], into, manifest["handler"], config)


def timed_probabilities(
    handler: Any, texts: Sequence[str], batch_size: int
) -> tuple[np.ndarray, float]:
    """The handler's probabilities for `texts` in batches of `batch_size`, and texts/s (after
    one warm-up batch: a GPU's first call pays for its kernels and allocator)."""
    handler.predict_proba(list(texts[:batch_size]))
    started = time.perf_counter()
    rows = [handler.predict_proba(list(texts[i : i + batch_size]))
            for i in range(0, len(texts), batch_size)]  # fmt: skip
    speed = len(texts) / (time.perf_counter() - started)
    return np.concatenate([np.asarray(r, dtype=np.float64) for r in rows]), speed


def texts_per_second(handler: Any, texts: Sequence[str], batch_size: int) -> float:
    """predict_proba throughput over `texts` in batches of `batch_size` (no server)."""
    return timed_probabilities(handler, texts, batch_size)[1]
