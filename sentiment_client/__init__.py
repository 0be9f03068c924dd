"""Python client and `sentiment` command for the project's TorchServe models.

    from sentiment_client import SentimentClient
    client = SentimentClient(run_dir="run")           # reads run/key_file.json
    client.predict(["정말 재밌게 잘봤습니다!"], model="bert")

Standalone on purpose: it needs only `requests` (and `tqdm` for the CLI's
progress bar), never the models or the handlers.
"""

from sentiment_client.api import (
    MODEL_ALIASES,
    ClientError,
    RequestRejected,
    SentimentClient,
    ServerUnavailable,
    strongest,
)

__all__ = [
    "MODEL_ALIASES",
    "ClientError",
    "RequestRejected",
    "SentimentClient",
    "ServerUnavailable",
    "strongest",
]
