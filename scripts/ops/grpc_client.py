"""One prediction over TorchServe's gRPC inference API, with stubs generated from its own protos.

The torchserve wheel ships the .proto files inside its frontend jar but no Python stubs, so
they are generated on first use with grpcio-tools into build/grpc_stubs/ (git-ignored, keyed
by the jar's hash): nothing generated is committed.  gRPC also needs the inference key, sent
as `authorization: Bearer <key>` metadata.

    python -m scripts.ops.grpc_client "정말 재밌게 잘봤습니다!" --model sentiment_fast
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from scripts.ops.server import TorchServe
from scripts.registry import DEFAULT_RUN_DIR, ROOT
from sentiment_client.api import model_name

STUB_DIR = ROOT / "build" / "grpc_stubs"
PROTOS = ("inference.proto",)


def _jar() -> Path:
    import ts

    return Path(ts.__file__).parent / "frontend" / "model-server.jar"


def generate_stubs(out_dir: Path = STUB_DIR) -> Path:
    """Extract the protos from the installed TorchServe jar and compile them (once per jar)."""
    import google.rpc.status_pb2  # noqa: F401  (googleapis-common-protos: google/rpc/status.proto)
    import grpc_tools
    from grpc_tools import protoc

    jar = _jar()
    target = out_dir / hashlib.sha256(jar.read_bytes()).hexdigest()[:12]
    if (target / "inference_pb2_grpc.py").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(jar) as archive:
        for name in PROTOS:
            (target / name).write_bytes(archive.read(f"proto/{name}"))
    includes = [
        Path(grpc_tools.__file__).parent / "_proto",  # google/protobuf/*.proto
        Path(google.rpc.status_pb2.__file__).parent.parent.parent,  # google/rpc/status.proto
    ]
    args = [
        "protoc",
        f"-I{target}",
        *(f"-I{path}" for path in includes),
        f"--python_out={target}",
        f"--grpc_python_out={target}",
        *(str(target / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTOS} from {jar}")
    return target


def stubs() -> tuple[ModuleType, ModuleType]:
    """(inference_pb2, inference_pb2_grpc), generated if needed."""
    directory = str(generate_stubs())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return importlib.import_module("inference_pb2"), importlib.import_module("inference_pb2_grpc")


def predict(server: TorchServe, model: str, body: bytes, version: str = "") -> Any:
    """TorchServe's answer to `body` (raw UTF-8 text or a JSON object), parsed from JSON."""
    import grpc

    messages, services = stubs()
    key = server.keys().get("inference")
    metadata = [("authorization", f"Bearer {key}")] if key else []
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc_inference}") as channel:
        stub = services.InferenceAPIsServiceStub(channel)
        request = messages.PredictionsRequest(
            model_name=model, model_version=version, input={"body": body}
        )
        response = stub.Predictions(request, metadata=metadata, timeout=30)
    return json.loads(response.prediction)


def main(argv: Sequence[str] | None = None) -> int:
    import grpc

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("text")
    parser.add_argument("--model", default="sentiment_fast",
                        help="sentiment_fast or sentiment_bert (the registered names; "
                        "fast and bert are accepted too)")  # fmt: skip
    parser.add_argument("--version", default="", help="default: the model's default version")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    args = parser.parse_args(argv)
    server = TorchServe.attach(args.run_dir)
    try:
        answer = predict(server, model_name(args.model), args.text.encode("utf-8"), args.version)
    except grpc.RpcError as err:
        print(f"error: gRPC {err.code().name}: {err.details()}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
