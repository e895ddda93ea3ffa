#!/usr/bin/env bash
# Reproduces the shipped default model (hrinet-flow): one run of 8000 iterations on the eight
# training volumes, 4 groups x 2 targets a step, crops 128^2, Adam lr 3e-4, weight averaging
# 0.999, cosine decay to 0.05x from 60% of the run, soft-tissue window MSE (0.03) and SSIM (0.002)
# terms. About 1 hour on an idle 2-core CPU (0.4 s a step); resumes if stopped.
# To continue it in a later session: --init Resources/weights/hrinet-default.safetensors
# (the sidecar's "lineage" then lists every stage). Usage: benchmarks/train_default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
D=${HRINET_SHARED_CT:-../shared/data/ct}
TRAIN="$D/chest-lidc-1mm.nrrd $D/thorax-2mm.nrrd $D/chest-cmbcrc-2p5mm.nrrd $D/heart-1p5mm.nrrd \
$D/chest-1p5mm.nrrd $D/torso-3mm.nrrd $D/head-ge-1p25mm.nrrd $D/chest-rider-0p8mm.nrrd"
VAL="$D/chest-lungfcp-1mm.nrrd $D/abdomen-2mm-dicom"
R=runs/default-flow
if [ -f $R/checkpoint.safetensors ]; then
  .venv/bin/hrinet train --out $R --resume
else
  .venv/bin/hrinet train --variant hrinet-flow --data $TRAIN --val $VAL --iterations 8000 \
    --crop 128 --batch 4 --lr 3e-4 --ema 0.999 --lr-final 0.05 --decay-start 0.6 \
    --window-weight 0.03 --ssim-weight 0.002 --val-every 1500 --val-factors 2,4 \
    --checkpoint-minutes 4 --device cpu --out $R
fi
