#!/usr/bin/env bash
# A piece of sentiment_bert pre-training on a lent GPU machine (issue 29), as one command of
# at most ~8 minutes. It continues the run the CPU is on (the 6 x 256 teacher). Here, first:
#   .venv/bin/python -m scripts.training.device_piece data ../shared/nsmc build/device/nsmc
#   .venv/bin/python -m scripts.training.device_piece worker build/device/site
#   .venv/bin/python -m scripts.training.device_piece pack --half build/bert_teacher6/work build/device/piece
# then through the device tool: run `bash scripts/training/gpu_piece.sh` with carry
# ["build/device"]; the files that come back (fp16 weights, < 16 MiB each) are unpacked with
#   .venv/bin/python -m scripts.training.device_piece unpack <files_at> build/bert_teacher6/work
# and the same train_bert command continues on CPU. Exit 3: the piece stopped at MINUTES, as
# planned (its state came back); tests/handler/test_gpu_piece.py runs this script on the CPU.
set -euo pipefail
PRESET="${PRESET:-cpu-6x256-teacher}"
MINUTES="${MINUTES:-6}"
DEVICE_DIR="${DEVICE_DIR:-build/device}"
RUN="${RUN:-build/bert_gpu}"
DATA="${DATA:-/tmp/nsmc}"
mkdir -p "$DATA"
for f in "$DEVICE_DIR"/nsmc/*.gz; do gunzip -c "$f" > "$DATA/$(basename "$f" .gz)"; done
if [ -f "$DEVICE_DIR/piece/piece.json" ]; then
  python3 -m scripts.training.device_piece unpack "$DEVICE_DIR/piece" "$RUN/work"
fi
nvidia-smi --query-gpu=name,memory.used --format=csv || true
# First, a minute: the handler on the GPU, torch runtime, fp16 off and on, against CPU fp32
# (benchmarks/gpu_handler.py; TorchServe's Python side comes from $DEVICE_DIR/site).
PYTHONPATH="$DEVICE_DIR/site" python3 -m benchmarks.gpu_handler --data-dir "$DATA" \
  --rows "${HANDLER_ROWS:-10000}" --out "$OUT/gpu_handler.yaml" 2>&1 | tail -n 30 || true
status=0
PYTHONUNBUFFERED=1 NSMC_DIR="$DATA" python3 -m scripts.training.train_bert --preset "$PRESET" \
  --seed 42 ${THREADS:+--threads "$THREADS"} --out "$RUN" --stop-after-minutes "$MINUTES" 2>&1 \
  | tr '\r' '\n' | grep -v 'it/s]$' | tee "$OUT/train.log" || status=$?
python3 -m scripts.training.device_piece pack --half "$RUN/work" "$OUT"
exit "$status"
