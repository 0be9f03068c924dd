#!/usr/bin/env bash
# A piece of sentiment_bert pre-training on a lent GPU machine (issue 29), as one command of
# at most ~8 minutes. Here, first:
#   .venv/bin/python -m scripts.training.device_piece data ../shared/nsmc build/device/nsmc
#   .venv/bin/python -m scripts.training.device_piece worker build/device/site
#   (and, to continue a run: .venv/bin/python -m scripts.training.device_piece pack build/<run>/work build/device/piece)
# then through the device tool: run `bash scripts/training/gpu_piece.sh` with carry
# ["build/device"]; the files that come back are unpacked here with
#   .venv/bin/python -m scripts.training.device_piece unpack <files_at> build/<run>/work
# and the same train_bert command continues on CPU.
set -euo pipefail
PRESET="${PRESET:-cpu-4x128-electra}"
MINUTES="${MINUTES:-6}"
RUN=build/bert_gpu
mkdir -p /tmp/nsmc
for f in build/device/nsmc/*.gz; do gunzip -c "$f" > "/tmp/nsmc/$(basename "$f" .gz)"; done
if [ -f build/device/piece/piece.json ]; then
  python3 -m scripts.training.device_piece unpack build/device/piece "$RUN/work"
fi
nvidia-smi --query-gpu=name,memory.used --format=csv || true
# First, a minute: the handler on the GPU, torch runtime, fp16 off and on, against CPU fp32
# (benchmarks/gpu_handler.py; TorchServe's Python side comes from build/device/site).
PYTHONPATH=build/device/site python3 -m benchmarks.gpu_handler --data-dir /tmp/nsmc \
  --rows "${HANDLER_ROWS:-10000}" --out "$OUT/gpu_handler.yaml" 2>&1 | tail -n 30 || true
status=0
PYTHONUNBUFFERED=1 NSMC_DIR=/tmp/nsmc python3 -m scripts.training.train_bert --preset "$PRESET" \
  --seed 42 --out "$RUN" --stop-after-minutes "$MINUTES" 2>&1 | tr '\r' '\n' | grep -v 'it/s]$' \
  | tee "$OUT/train.log" || status=$?
python3 -m scripts.training.device_piece pack "$RUN/work" "$OUT"
exit "$status"
