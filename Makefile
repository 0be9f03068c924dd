# Two commands matter:  `make serve` (build what is missing, start TorchServe, wait for READY)
# and `make test` (the whole suite). Data: NSMC_DIR (default data/nsmc; here ../shared/nsmc).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_DIR ?= run

.PHONY: serve stop status proxy test test-fast test-unit audit image image-test train train-bert archive clean web

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

# The model-registration API is off; MODEL_API=on keeps it on (versions side by side,
# zero-downtime rollouts). docs/operations.md
serve: $(STAMP)
	$(PY) -m scripts.ops.server up --run-dir $(RUN_DIR) $(if $(filter on,$(MODEL_API)),--model-api)

stop: $(STAMP)
	@$(PY) -m scripts.ops.server stop --run-dir $(RUN_DIR)

# Exit 1 only says "not running", which the line printed already says: not a make error.
status: $(STAMP)
	@$(PY) -m scripts.ops.server status --run-dir $(RUN_DIR) || test $$? -eq 1

# Optional: nginx (apt-get install nginx-light) in the foreground on 127.0.0.1:8088 in front of
# the running `make serve`, as the image runs it: only JSON / text bodies reach TorchServe, form
# bodies get 415 (CVE-2024-29025, docs/deploy.md "The front proxy").
proxy: $(STAMP)
	$(PY) -m scripts.deploy.proxy --run-dir $(RUN_DIR)

web: $(STAMP)
	$(PY) -m web

test: $(STAMP)
	$(PY) -m pytest -q tests

# By hand: the whole suite less the tests marked slow (the one-minute key-renewal loop); CI runs them.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

# The quick loop: contract, client, keys, versions, deploy contract; no Java, no torch, seconds.
test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

# docker/constraints.txt against published advisories (pip-audit) and the Java libraries in
# TorchServe's jar; says NOT CHECKED where no advisory service answers (exit 1 = a finding).
audit: $(STAMP)
	$(PY) -m scripts.deploy.audit

# The image (Dockerfile): docker build where Docker runs, else buildah on a local Debian base
# cached in $NSMC_IMAGE_CACHE (docs/deploy.md). image-test builds it with buildah, runs it
# (buildah run, no container runtime needed) and checks that it answers; minutes, not in `test`.
image: $(STAMP)
	$(PY) -m scripts.deploy.image build

image-test: $(STAMP)
	$(PY) -m scripts.deploy.image build --engine buildah
	$(PY) -m scripts.deploy.image_test

train: $(STAMP)
	$(PY) -m scripts.training.train_fast

train-bert: $(STAMP)
	$(PY) -m scripts.training.train_bert $(if $(PRESET),--preset $(PRESET))

archive: $(STAMP)
	$(PY) -m scripts.packaging.build_archive sentiment_fast
	$(PY) -m scripts.packaging.build_archive sentiment_bert
	$(PY) -m scripts.packaging.build_archive sentiment

clean:
	@$(PY) -m scripts.ops.server stop 2>/dev/null || true
	rm -rf build model_store run
