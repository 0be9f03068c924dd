# syntax=docker/dockerfile:1.7
# Both sentiment models on TorchServe 0.12.0, in one image (docs/deploy.md):
#   docker build -t nsmc-sentiment:cpu .                                  # CPU (default)
#   docker build --build-arg VARIANT=gpu -t nsmc-sentiment:gpu .          # GPU, CUDA runtime base
#   docker build --build-context nsmc=../shared/nsmc -t nsmc-sentiment:cpu .   # local NSMC files
# The build trains sentiment_fast (~2 min) from the NSMC files of the `nsmc` context, or
# downloads the official ones when none is given, and packs the committed sentiment_bert
# checkpoint: the same scripts and .mar files as `make serve`.

ARG VARIANT=cpu
# Where torch comes from: empty = the CPU index (build stage, cpu runtime), PyPI (CUDA build) for
# gpu.
ARG TORCH_INDEX_URL=""
# The Python base of the build stage and the cpu runtime. The local build without a registry
# (make image, docs/deploy.md) names a debootstrapped bookworm here: Debian's Python 3.11.2 in
# /usr/bin instead of 3.11.11 in /usr/local/bin.
ARG BASE=python:3.11.11-slim-bookworm

# NSMC data: empty unless replaced with `--build-context nsmc=<dir with ratings_*.txt>`.
FROM scratch AS nsmc

# ------------------------------------------------------------------------------------ build
FROM ${BASE} AS build
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY docker/constraints.txt requirements.txt ./
# The server's requirements (CPU torch: packing sentiment_bert exports it to ONNX) and the
# exporter's onnx; versions pinned by docker/constraints.txt (-c).
RUN pip install --extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" \
        -c constraints.txt -r requirements.txt onnx==1.23.2
COPY handlers/ handlers/
COPY scripts/ scripts/
COPY archive/ archive/
RUN --mount=type=bind,from=nsmc,target=/nsmc \
    if [ -f /nsmc/ratings_train.txt ]; then export NSMC_DIR=/nsmc; \
    else export NSMC_DIR=/tmp/nsmc; fi \
 && python -m scripts.training.train_fast --out build/sentiment_fast \
 && python -m scripts.packaging.build_archive sentiment_fast --store /model-store \
 && python -m scripts.packaging.build_archive sentiment_bert --store /model-store \
 && python -m scripts.packaging.build_archive sentiment --store /model-store

# ------------------------------------------------------------------ runtime bases (VARIANT)
FROM ${BASE} AS base-cpu
# The JRE's postinst needs the man directory that slim images leave out.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless=17.0.* \
 && rm -rf /var/lib/apt/lists/*

FROM nvidia/cuda:12.6.3-runtime-ubuntu22.04 AS base-gpu
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        python3.11=3.11.* python3.11-venv=3.11.* openjdk-17-jre-headless=17.0.* \
 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------- runtime
# A stage of this file, not an image: hadolint cannot see through the variable.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS runtime
ARG VARIANT
ARG TORCH_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    LOG_LOCATION=/home/model-server/logs METRICS_LOCATION=/home/model-server/logs \
    TS_KEY_FILE=/home/model-server/run/key_file.json \
    TS_READY_MODELS="sentiment_fast sentiment_bert sentiment" PYTHONPATH=/home/model-server
COPY docker/constraints.txt requirements.txt /tmp/
# Only the server's requirements.txt, pinned by docker/constraints.txt (-c); torch first, from
# the variant's index.
# hadolint ignore=DL3013
RUN python3.11 -m venv /opt/venv \
 && case "${TORCH_INDEX_URL:-$VARIANT}" in \
        cpu) index=https://download.pytorch.org/whl/cpu ;; \
        gpu) index=https://pypi.org/simple ;; \
        *) index="$TORCH_INDEX_URL" ;; \
    esac \
 && pip install --extra-index-url "$index" -c /tmp/constraints.txt torch \
 && pip install -c /tmp/constraints.txt -r /tmp/requirements.txt \
 && rm /tmp/constraints.txt /tmp/requirements.txt \
 && useradd --no-create-home --home-dir /home/model-server/run --uid 1000 \
        --shell /usr/sbin/nologin model-server
# The front proxy (docker/nginx.conf, started by the entrypoint as uid 1000): only the contract's
# content types reach TorchServe, never a form body for netty 4.1.53's decoder (CVE-2024-29025).
# A layer of its own after the large one above, so adding it rebuilt nothing before it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light=1.* \
 && rm -rf /var/lib/apt/lists/*
# Where the proxy listens and where TorchServe's inference listener is (docker/config.properties);
# PROXY=off starts TorchServe alone.
ENV PROXY_LISTEN=8080 PROXY_UPSTREAM=127.0.0.1:8090
# /home/model-server, the configuration, the code and the model store belong to root: the
# server (uid 1000) can write only run/ (key file, its HOME) and logs/, so it can neither swap an
# archive nor the directory that holds them (docs/security-and-reliability.md).
WORKDIR /home/model-server
# sentiment_client/ holds the key file reader and renewer that the health check and the
# entrypoint use.
COPY docker/config.properties docker/entrypoint.sh docker/nginx.conf log4j2.xml \
     scripts/ops/healthcheck.py ./
COPY sentiment_client/ sentiment_client/
COPY --from=build /model-store/ model-store/
RUN install -d -o model-server -g model-server run logs
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 1000:1000
WORKDIR /home/model-server/run
# Inference (the proxy: TorchServe's own inference listener is 127.0.0.1:8090) and metrics only:
# management (8081, the management key) stays inside the container unless a deployment
# publishes it on purpose (docs/deploy.md).
EXPOSE 8080 8082
# /ping needs the inference key (token authorization covers every port): healthcheck.py
# reads the keys from $TS_KEY_FILE, and, because /ping turns healthy before the models can
# answer, also wants a READY worker for each of $TS_READY_MODELS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "/home/model-server/healthcheck.py"]
# The key renewer beside TorchServe: keys expire after token_expiration_min.
ENTRYPOINT ["sh", "/home/model-server/entrypoint.sh"]
CMD ["torchserve", "--start", "--foreground", "--ncs", \
     "--ts-config", "/home/model-server/config.properties", \
     "--model-store", "/home/model-server/model-store"]
