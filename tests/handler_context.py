"""Send one batch through a handler the way a TorchServe worker does, without the server.

The Context is TorchServe's own (scripts.inprocess.make_context); only the socket is missing.
"""

from __future__ import annotations

from typing import Any, Sequence

from ts.context import Context, RequestProcessor

from scripts.inprocess import make_context

__all__ = ["make_context", "run_batch"]


def _headers(request: dict, content_type: str | None, explain: bool = False) -> RequestProcessor:
    """As the worker builds them: per-parameter content types, plus the HTTP headers.

    `explain`: the header TorchServe's frontend adds to requests sent to /explanations.
    """
    headers: dict = {"Content-Type": content_type} if content_type else {}
    if explain:
        headers["explain"] = "True"
    headers.update({name: {"content-type": content_type} for name in request})
    return RequestProcessor(headers)


def run_batch(
    handler: Any,
    context: Context,
    requests: Sequence[tuple[dict, str | None]],
    explain: Sequence[bool] = (),
) -> list[tuple[int, str, str | None]]:
    """Send one batch through handler.handle; (status, body, content type) per request."""
    flags = list(explain) or [False] * len(requests)
    context.request_processor = [
        _headers(request, content_type, flag)
        for (request, content_type), flag in zip(requests, flags)
    ]
    context.request_ids = {idx: f"req-{idx}" for idx in range(len(requests))}
    context.metrics.request_ids = context.request_ids
    bodies = handler.handle([request for request, _ in requests], context)
    assert len(bodies) == len(requests)
    return [
        (context.get_response_status(idx)[0], body, context.get_response_content_type(idx))
        for idx, body in enumerate(bodies)
    ]
