"""The `sentiment` command: predictions and explanations from the project's TorchServe.

    python -m sentiment_client predict "정말 재밌게 잘봤습니다!" --model bert
    python -m sentiment_client predict --file reviews.txt --model fast --out preds.jsonl
    python -m sentiment_client explain "정말 재밌게 잘봤습니다!" --model bert
    python -m sentiment_client predict "그냥 그랬다" --model cascade   # + "models" per text

predict writes one JSON line per input text, in input order (a file: one
review per line).  Exit codes, for scripts:

    0  every text answered
    1  some texts were refused (e.g. empty); their lines are {"error": {...}}
    2  usage: bad arguments, unreadable input file or key file
    3  TorchServe unreachable, timing out, or failing (5xx) after retries
    4  TorchServe refused the request: unknown model (404) or wrong key
  141  whoever read the output stopped reading (`| head`): no traceback
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import ExitStack
from typing import Any, Sequence, TextIO

from sentiment_client.api import (
    DEFAULT_URL,
    MAX_TEXTS_PER_REQUEST,
    ClientError,
    RequestRejected,
    SentimentClient,
    model_name,
    strongest,
)
from sentiment_client.api import ConfigError as UsageError

EXIT_OK, EXIT_REFUSED_TEXTS, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a tool that SIGPIPE ended


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model", "-m", default="fast",
        help="sentiment_fast, sentiment_bert or sentiment (the registered names, canonical), "
        "their short forms fast, bert and cascade (BERT only where fast is unsure), or any "
        "registered model name",
    )  # fmt: skip
    common.add_argument(
        "--url",
        default=os.environ.get("SENTIMENT_URL", DEFAULT_URL),
        help=f"inference API (default: $SENTIMENT_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--key-file",
        default=os.environ.get("SENTIMENT_KEY_FILE"),
        help="TorchServe key file (default: $SENTIMENT_KEY_FILE or run/key_file.json, "
        "which `make serve` writes)",
    )
    parser = argparse.ArgumentParser(
        prog="sentiment", description=__doc__.split("\n")[0],
        epilog=__doc__[__doc__.index("Exit codes"):], formatter_class=argparse.RawTextHelpFormatter,
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", parents=[common], help="label texts or a file")
    predict.add_argument("texts", nargs="*", help="review text(s)")
    predict.add_argument("--file", "-f", help="one review per line ('-' for stdin)")
    predict.add_argument("--out", "-o", help="write JSON lines here (default: stdout)")
    predict.add_argument("--batch-size", type=int, default=MAX_TEXTS_PER_REQUEST,
                         help=f"texts per request (1-{MAX_TEXTS_PER_REQUEST})")  # fmt: skip
    predict.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    predict.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    explain = commands.add_parser("explain", parents=[common], help="why a text got its label")
    explain.add_argument("texts", nargs="+", help="review text(s)")
    explain.add_argument("--top", type=int, default=8, help="tokens to show each way")
    explain.add_argument("--json", action="store_true", help="print TorchServe's JSON answer")
    return parser


def _read_lines(path: str) -> list[str]:
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path}: {err}") from None


def _progress_bar(total: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="text", disable=quiet or None, file=sys.stderr)


def name_line(answer: dict[str, Any], path: str) -> dict[str, Any]:
    """A refused text read from a file: its error names the file's line (1-based), which the
    user can find, not its position in the list sent ("text"[index])."""
    error = answer.get("error")
    if not isinstance(error, dict) or "index" not in error:
        return answer
    line = error.pop("index") + 1
    where = f"line {line} of {'stdin' if path == '-' else path}"
    sent_as = f'"text"[{line - 1}]'
    message = str(error.get("message", ""))
    error["message"] = message.replace(sent_as, where, 1) if sent_as in message else (
        f"{where}: {message}")  # fmt: skip
    error["line"] = line
    return answer


def refused_summary(refused: list[str], total: int) -> str:
    """One stderr line: how many were refused, and where (the first few)."""
    shown = ", ".join(refused[:5]) + (", ..." if len(refused) > 5 else "")
    return (f"{len(refused)} of {total} texts refused by TorchServe ({shown}); their output "
            "lines hold the error")  # fmt: skip


def run_predict(client: SentimentClient, args: argparse.Namespace, out: TextIO) -> int:
    if bool(args.texts) == bool(args.file):
        raise UsageError("give review text(s) or --file, not both or neither")
    texts = args.texts or _read_lines(args.file)
    refused: list[str] = []
    with _progress_bar(len(texts), args.quiet or not args.file) as bar:
        answers = client.predict_many(texts, args.model, args.batch_size, args.concurrency,
                                      progress=bar.update)  # fmt: skip
        for answer in answers:
            if "error" in answer:
                answer = name_line(answer, args.file) if args.file else answer
                error = answer["error"]
                refused.append(f"line {error['line']}" if "line" in error else
                               f'"text"[{error.get("index")}]')  # fmt: skip
            out.write(json.dumps(answer, ensure_ascii=False) + "\n")
    if refused:
        print(refused_summary(refused, len(texts)), file=sys.stderr)
    return EXIT_REFUSED_TEXTS if refused else EXIT_OK


def format_explanation(answer: dict[str, Any], top: int) -> str:
    """A terminal summary: the verdict, then the strongest tokens each way."""
    positive, negative = strongest(answer["tokens"], top)
    pushes = positive + negative[::-1]
    lines = [f"{answer['label']} ({answer['confidence']:.3f})  {answer['text']}",
             f"  scores: {answer['method']}"]  # fmt: skip
    lines += [f"  {t['score']:+8.3f}  {t['token'].replace(' ', '␣')}" for t in pushes]
    return "\n".join(lines)


def run_explain(client: SentimentClient, args: argparse.Namespace, out: TextIO) -> int:
    try:
        answers = client.explain(args.texts, args.model)
    except RequestRejected as err:
        if not err.is_input_error:
            raise
        print(f"error ({model_name(args.model)}): {err}", file=sys.stderr)
        return EXIT_REFUSED_TEXTS
    for answer in answers:
        text = json.dumps(answer, ensure_ascii=False) if args.json else format_explanation(
            answer, args.top)  # fmt: skip
        out.write(text + "\n")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        client = SentimentClient(args.url, key_file=args.key_file)
        with ExitStack() as stack:
            out = sys.stdout
            if getattr(args, "out", None):
                try:
                    out = stack.enter_context(open(args.out, "w", encoding="utf-8"))
                except OSError as err:
                    raise UsageError(f"cannot write {args.out}: {err}") from None
            run = run_predict if args.command == "predict" else run_explain
            return run(client, args, out)
    except ClientError as err:
        print(f"error ({model_name(args.model)}): {err}", file=sys.stderr)
        return err.exit_code
    except ValueError as err:  # e.g. --batch-size out of range
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `sentiment ... | head -2` stopped reading: end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_BROKEN_PIPE
