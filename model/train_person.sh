#!/usr/bin/env bash
# The bundled person model, exactly as it was made (model/weights/MODEL_CARD.md): on the 2-core CPU
# machine, in the background, about two hours in all (`nohup bash model/train_person.sh > runs/person.log &`).
# CCP is the Clothing Co-Parsing folder (../shared/datasets/clothing-co-parsing, or a clone of
# github.com/bearpaw/clothing-co-parsing); DATA gets its fixed split as images/ + masks/ folders.
# A stopped run carries on where it stopped: RESUME=1 bash model/train_person.sh.
set -euo pipefail
CCP=${CCP:-../shared/datasets/clothing-co-parsing}
DATA=${DATA:-data/ccp}
RUN=${RUN:-runs/person}
MINUTES=${MINUTES:-110}
PY=${PY:-.venv/bin/python}
export PYTHONUNBUFFERED=1

# 1. data: the fixed split (644 train / 80 validation / 80 test), the folder layout every data set uses
[ -d "$DATA/test" ] || $PY -m model.ccp "$CCP" --out "$DATA"

# 2. training: bf16 autocast, 128x128 crops for 60% of the time then whole 256x256 photos, cosine by wall time
resume=(); [ -n "${RESUME:-}" ] && resume=(--resume "$RUN/last.pt")
$PY -m model.train --data "$CCP" --crop-size 128 --max-minutes "$MINUTES" --epochs 1000 --batch-size 8 \
  --lr 1.5e-3 --val-every 5 --seed 0 --workers 2 --out "$RUN" "${resume[@]}"

# 3. export: the threshold chosen on the validation photos, each split scored at the photos' own size
$PY -m model.export "$RUN/best.pt" model/weights/unet.onnx --name unet-person-ccp --version 2.0.0 \
  --card model/card.json --choose-threshold "$DATA/val" --score "val=$DATA/val" --score "test=$DATA/test"

# 4. int8: calibrated on training photos, gated on the test photos (mask IoU >= 0.99, IoU within 0.005)
$PY -m model.quantize model/weights/unet.onnx model/weights/unet-int8.onnx \
  --calibration-data "$DATA/train" --gate-data "$DATA/test"

# 5. the model card's table: every model on the same test photos, in one run
$PY -m model.compare model/weights/unet.onnx model/weights/unet-int8.onnx \
  ../shared/models/mediapipe-selfie/selfie_segmentation.tflite --data "$DATA/test" --markdown
