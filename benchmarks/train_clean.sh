#!/usr/bin/env bash
# A clean lineage for the default model: hrinet-flow trained from random weights on the corpus's
# training split only; the shipped default since 2026-12-07. Why: the default shipped before it
# (and every candidate continued from it) learned
# in its early stages from three volumes of TotalSegmentator's test files (heart-1p5mm,
# chest-1p5mm, torso-3mm), which the project now keeps for independent evaluation
# (benchmarks/data/corpus.toml, split "excluded"); weights that never saw them are needed before
# an evaluation on that data means anything. Many CPU hours (the shipped lineage: about 48000
# steps): a run continues across sessions (--resume, or --init from committed weights).
# Settings: the previous default's last stages (log-MSE + SSIM 0.3 in the soft-tissue window, 40%
# overlapping reconstructions, a quarter of the context slices missing, scanner augmentation
# 0.25, gaps 2-8 with 2 twice as often, weight averaging 0.999), from random weights at the first
# stage's learning rate 3e-4 with cosine decay to 0.05x from half-way; 4 groups x 4 targets on
# 128^2 crops; bf16 autocast where the CPU has it natively (PRECISION), loss and validation fp32;
# checkpoints every 4 minutes; validation (x2, x4 on chest-lungfcp-1mm and liver-crlm1004-5mm)
# every 4000 steps.
# Prerequisite: the corpus built (benchmarks/data/build_corpus.py --out ../corpus --sources ...).
# Run (one thread, leaving the other core free):
#   nohup env OMP_NUM_THREADS=1 bash benchmarks/train_clean.sh > ../runs/clean.log 2>&1 &
# Resume: the same line again. On a fresh machine (no run folder), continue from the committed
# weights instead: INIT=benchmarks/candidates/clean.safetensors ITERATIONS=<steps left> (the
# optimizer and the weight average start anew; the learning rate is constant for the first half).
# A second cycle (a warm restart: the same recipe from the finished weights at a lower learning
# rate, which the first cycle's still-rising validation asks for):
#   RUN=../runs/clean2 INIT=benchmarks/candidates/clean.safetensors LR=1e-4 ITERATIONS=24000
# switched at its step 5909 to an SSIM weight of 1.0 and sharp kernels up to 2.5 (docs/results.md,
# the second cycle's amendment) by `hrinet train --out ../runs/clean2 --resume --ssim-weight 1.0
# --sharpen-max 2.5`; resuming with the line above keeps what the run recorded (SSIM and
# SHARPEN_MAX below apply to new runs only). On a fresh machine, from the committed weights:
#   RUN=../runs/clean2 INIT=benchmarks/candidates/clean2.safetensors LR=1e-4 SSIM=1.0 \
#     SHARPEN_MAX=2.5 ITERATIONS=<steps left>
# (the optimizer, the weight average and the schedule start anew: not the same run).
# The x2-weighted cycle (docs/results.md, "The x2 SSIM term"):
#   RUN=../runs/clean-x2 INIT=benchmarks/candidates/clean.safetensors LR=1e-4 SSIM_X2=0.7 \
#     SHARPEN_MAX=2.5 ITERATIONS=7000
# The x2 weight alone, kernels as shipped (docs/results.md, "The x2 SSIM term alone"):
#   RUN=../runs/clean-x2k INIT=benchmarks/candidates/clean.safetensors LR=1e-4 SSIM_X2=0.7 \
#     ITERATIONS=7000
# The x2 weight at a low learning rate (docs/results.md, "The x2 SSIM term at a low learning rate"):
#   RUN=../runs/clean-x2low INIT=benchmarks/candidates/clean.safetensors LR=3e-5 SSIM_X2=0.7 \
#     ITERATIONS=7000
# The same for 4000 steps (docs/results.md, "The x2 SSIM term, 4000 steps at the low rate"):
#   RUN=../runs/clean-x2low4k INIT=benchmarks/candidates/clean.safetensors LR=3e-5 SSIM_X2=0.7 \
#     ITERATIONS=4000
# Environment: CORPUS (default ../corpus), RUN (default ../runs/clean), ITERATIONS (default
# 48000), INIT (default none: random weights), LR (default 3e-4), SSIM (the SSIM term's weight,
# default 0.3), SSIM_X2 (its weight added on the x2 samples only, default 0), SHARPEN_MAX
# (strongest sharp kernel drawn, default 1.2), PRECISION.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DEFAULT=../runs/clean
. benchmarks/train_corpus_run.sh
START=(--from-scratch)
[ -n "${INIT:-}" ] && START=(--init "$INIT")
exec .venv/bin/hrinet train --variant hrinet-flow "${START[@]}" --precision "$PRECISION" \
  --data $TRAIN --val $VAL --iterations "${ITERATIONS:-48000}" --crop 128 --batch 4 \
  --samples-per-group 4 --gaps 2,2,3,4,5,6,7,8 --overlap 0.4 --drop-context 0.25 --log-mse \
  --ssim-weight "${SSIM:-0.3}" --ssim-x2-weight "${SSIM_X2:-0}" \
  --sharpen-max "${SHARPEN_MAX:-1.2}" --augment 0.25 \
  --lr "${LR:-3e-4}" --ema 0.999 --lr-final 0.05 --decay-start 0.5 \
  --workers 1 --val-every 4000 --val-factors 2,4 --checkpoint-minutes 4 --device cpu --out "$R"
