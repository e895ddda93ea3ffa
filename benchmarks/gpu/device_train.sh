#!/bin/bash
# One call on a lent GPU machine (the device tool): training jobs side by side, results to $OUT
# as one tar per job (the tool returns at most 8 files). SECONDS_PER_JOB bounds each job.
set -u
nvidia-smi -L
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cv2', cv2.__version__, 'cuda', torch.cuda.is_available())"
nproc
rm -rf /tmp/gpu_out /tmp/hrinet-gpu-runs
PYTHONUNBUFFERED=1 python3 benchmarks/gpu/train_gpu.py --data .gpu/data8 --out /tmp/gpu_out \
    --seconds "${SECONDS_PER_JOB:-400}" --device cuda --jobs "${JOBS:-flow-init,flow-fresh,acai}" \
    2>&1 | grep -v "UserWarning\|check_worker_number" | tee "$OUT/train.log"
cd /tmp/gpu_out && for j in *; do tar cf "$OUT/$j.tar" "$j"; done
ls -la "$OUT"
