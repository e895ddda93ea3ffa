#!/bin/bash
# One call on a lent GPU machine (the device tool), prepared here (docs/gpu-training.md):
# 1. bench_gpu.py: the default's GPU inference figures (fp32, bf16, fp16 at 512^2; the packed
#    8 mm chest made isotropic) unless BENCH=0;
# 2. the training jobs of train_gpu.py side by side (JOBS, default flow-corpus,acai), each for
#    SECONDS_PER_JOB, continuing the checkpoints an earlier lease returned (.gpu/returned).
# Results go to $OUT: bench.log, train.log and one tar per job (the tool returns few files).
set -u
nvidia-smi -L
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"
nproc
if [ "${BENCH:-1}" = 1 ]; then
  python3 benchmarks/gpu/bench_gpu.py --volume .gpu/chest8 2>&1 | tee "$OUT/bench.log"
fi
rm -rf /tmp/gpu_out /tmp/hrinet-gpu-runs
RESUME=()
[ -d .gpu/returned ] && RESUME=(--resume .gpu/returned)
PYTHONUNBUFFERED=1 python3 benchmarks/gpu/train_gpu.py --data "${DATA:-.gpu/data}" --out /tmp/gpu_out \
    --seconds "${SECONDS_PER_JOB:-400}" --device cuda --jobs "${JOBS:-flow-corpus,acai}" "${RESUME[@]}" \
    2>&1 | grep -v "UserWarning\|check_worker_number" | tee "$OUT/train.log"
cd /tmp/gpu_out && for j in *; do tar cf "$OUT/$j.tar" "$j"; done
ls -la "$OUT"
