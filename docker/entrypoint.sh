#!/bin/sh
# The image's entrypoint: the key renewer in the background, then the command (TorchServe in
# the foreground). Without the renewer the inference and management keys expire after
# token_expiration_min and every client, the HEALTHCHECK included, is refused
# (docs/operations.md "Keys"). It waits for TorchServe's key file by itself.
set -eu
python -m sentiment_client.renewer watch --key-file "${TS_KEY_FILE}" \
    --management-url "${TS_MANAGEMENT_URL:-http://127.0.0.1:8081}" &
exec "$@"
