#!/usr/bin/env bash
# Reproduces the shipped hrinet-plus model (the default before hrinet-flow) step for step: the run was trained in
# stages, changing the schedule at steps 2093 and 2597, then fine-tuning from 4000 with a
# soft-tissue SSIM term (planned to 4800, shortened to 4500 at step 4056).
# About 2.5 hours on a 2-core CPU; every stage resumes if stopped. Usage: benchmarks/train_default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
D=${HRINET_SHARED_CT:-../shared/data/ct}
TRAIN="$D/chest-lidc-1mm.nrrd $D/thorax-2mm.nrrd $D/chest-cmbcrc-2p5mm.nrrd $D/heart-1p5mm.nrrd $D/chest-1p5mm.nrrd $D/torso-3mm.nrrd"
VAL="$D/chest-lungfcp-1mm.nrrd $D/abdomen-2mm-dicom"
H=.venv/bin/hrinet
R=runs/default
step() { python3 -c "import json;print(json.load(open('$R/progress.json'))['step'])" 2>/dev/null || echo 0; }
[ -f $R/checkpoint.safetensors ] || $H train --data $TRAIN --val $VAL --variant hrinet-plus \
  --iterations 10000 --batch 2 --lr 3e-4 --val-every 500 --val-factors 2,4,6 \
  --checkpoint-minutes 4 --out $R --stop-at 2093
[ "$(step)" -ge 2597 ] || $H train --out $R --resume --iterations 4000 --ema 0.998 \
  --lr-final 0.05 --decay-start 0.55 --stop-at 2597
[ "$(step)" -ge 4000 ] || $H train --out $R --resume --window-weight 0.03
[ -d $R-ssim ] || { mkdir -p $R-ssim && cp $R/checkpoint.safetensors $R/log.csv $R-ssim/; }
[ "$(R=$R-ssim step)" -ge 4056 ] || $H train --out $R-ssim --resume --iterations 4800 \
  --ssim-weight 0.005 --stop-at 4056
$H train --out $R-ssim --resume --iterations 4500
