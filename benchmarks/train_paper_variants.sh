#!/usr/bin/env bash
# Trains the five paper variants the paper's way: AE and ACAI (stage I: autoencoder + critic D1)
# from scratch, then the three stage-II variants each from the one stage-I result (stage I
# skipped, E_I frozen from it). Resumes any run that was stopped.
# Usage: benchmarks/train_paper_variants.sh [ITERATIONS] [STAGE1_WEIGHTS]
#   STAGE1_WEIGHTS: start stage II from these ACAI weights instead of this script's ACAI run
#   (e.g. Resources/weights/hrinet-variant-acai.safetensors, the shipped stage-I result).
set -euo pipefail
cd "$(dirname "$0")/.."
D=${HRINET_SHARED_CT:-../shared/data/ct}
IT=${1:-800}
TRAIN="$D/chest-lidc-1mm.nrrd $D/thorax-2mm.nrrd $D/chest-cmbcrc-2p5mm.nrrd $D/heart-1p5mm.nrrd $D/chest-1p5mm.nrrd $D/torso-3mm.nrrd $D/head-ge-1p25mm.nrrd $D/chest-rider-0p8mm.nrrd"
VAL="$D/chest-lungfcp-1mm.nrrd $D/abdomen-2mm-dicom"
train() {  # variant, extra options...
  local v=$1; shift
  local out=runs/$v
  [ -f "$out/$v.safetensors" ] && return 0
  local resume=""; [ -f "$out/checkpoint.safetensors" ] && resume="--resume"
  .venv/bin/hrinet train --data $TRAIN --val $VAL --variant "$v" --iterations "$IT" --batch 4 \
    --crop 128 --val-every 0 --val-factors 2,4,6 --checkpoint-minutes 4 --out "$out" $resume "$@"
}
STAGE1=${2:-}
train ae
if [ -z "$STAGE1" ]; then train acai; STAGE1=runs/acai/acai.safetensors; fi
for v in hrinet-patchgan hrinet-mse hrinet-perceptual; do
  if [ -f "runs/$v/checkpoint.safetensors" ]; then train "$v"; else train "$v" --init "$STAGE1"; fi
done
