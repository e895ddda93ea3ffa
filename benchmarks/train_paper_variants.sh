#!/usr/bin/env bash
# Trains the five paper variants on the fixed training split (see README "Results"), one after
# another, resuming any run that was stopped. Usage: benchmarks/train_paper_variants.sh [ITERATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
D=${HRINET_SHARED_CT:-../shared/data/ct}
IT=${1:-800}
TRAIN="$D/chest-lidc-1mm.nrrd $D/thorax-2mm.nrrd $D/chest-cmbcrc-2p5mm.nrrd $D/heart-1p5mm.nrrd $D/chest-1p5mm.nrrd $D/torso-3mm.nrrd"
VAL="$D/chest-lungfcp-1mm.nrrd $D/abdomen-2mm-dicom"
for v in ae acai hrinet-patchgan hrinet-mse hrinet-perceptual; do
  out=runs/$v
  [ -f "$out/$v.safetensors" ] && continue
  resume=""; [ -f "$out/checkpoint.safetensors" ] && resume="--resume"
  .venv/bin/hrinet train --data $TRAIN --val $VAL --variant $v --iterations "$IT" --batch 4 \
    --crop 128 --val-every 0 --val-factors 2,4,6 --checkpoint-minutes 4 --out "$out" $resume
done
