#!/bin/sh
# The image's entrypoint: the key renewer and the front proxy in the background, then the command
# (TorchServe in the foreground). Without the renewer the inference and management keys expire
# after token_expiration_min and every client, the HEALTHCHECK included, is refused
# (docs/operations.md "Keys"). It waits for TorchServe's key file by itself.
# The proxy (nginx, docker/nginx.conf) listens on $PROXY_LISTEN (8080) and passes only the
# contract's content types, up to max_request_size, to TorchServe's inference listener on
# $PROXY_UPSTREAM (127.0.0.1:8090): form bodies never reach netty's form decoder
# (CVE-2024-29025, docs/security-and-reliability.md). PROXY=off leaves it out.
set -eu
python -m sentiment_client.renewer watch --key-file "${TS_KEY_FILE}" \
    --management-url "${TS_MANAGEMENT_URL:-http://127.0.0.1:8081}" &
if [ "${PROXY:-on}" != off ]; then
    run=/home/model-server/run
    mkdir -p "$run/nginx-tmp"
    sed -e "s|@LISTEN@|${PROXY_LISTEN:-8080}|" -e "s|@UPSTREAM@|${PROXY_UPSTREAM:-127.0.0.1:8090}|" \
        -e "s|@RUN@|$run|" /home/model-server/nginx.conf > "$run/nginx.conf"
    /usr/sbin/nginx -e stderr -c "$run/nginx.conf" -g 'daemon off;' &
fi
exec "$@"
