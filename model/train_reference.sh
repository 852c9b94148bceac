#!/usr/bin/env bash
# The reference model's training run, exactly as it was made (see model/weights/MODEL_CARD.md).
# On one GPU (an H100 here) it takes about 7 minutes end to end; on a CPU, drop --workers and
# expect hours. OUT is where the slim checkpoint (weights + config + preprocessing) goes.
set -euo pipefail
OUT=${OUT:-runs/reference}
RUN=${RUN:-/tmp/unet-reference}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c 'import torch, numpy, PIL; print("torch", torch.__version__, "numpy", numpy.__version__, "pillow", PIL.__version__)'

python3 -m model.train --data synthetic --seed 0 --train-size 20000 --val-size 500 \
  --batch-size 32 --lr 1.5e-3 --epochs 60 --max-minutes 5.5 --workers 15 --out "$RUN"

# The full checkpoint carries AdamW state (3x the weights); keep what export needs.
mkdir -p "$OUT"
python3 - "$RUN/best.pt" "$OUT/best-slim.pt" <<'PY'
import sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
ckpt.pop("optimizer")
torch.save(ckpt, sys.argv[2])
print("best:", ckpt["metrics"], "epoch", ckpt["epoch"], "step", ckpt["step"], "elapsed", round(ckpt["elapsed"]))
PY
sha256sum "$OUT/best-slim.pt" | tee "$OUT/best-slim.pt.sha256"
# Where a machine can only hand back files up to a size (the GPU machine this was trained on
# returned at most 16 MiB each), SPLIT_MB=15 also writes parts: `cat best-slim.pt.part-* > best-slim.pt`.
if [ -n "${SPLIT_MB:-}" ]; then split -b "${SPLIT_MB}M" -d "$OUT/best-slim.pt" "$OUT/best-slim.pt.part-"; fi
echo "checkpoint: $OUT/best-slim.pt (export: python -m model.export $OUT/best-slim.pt model.onnx)"
