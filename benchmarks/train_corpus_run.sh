# Sourced by the corpus training recipes (train_quality.sh, train_clean.sh), not run: the run
# folder they share. Before sourcing, set RUN_DEFAULT (the run folder when RUN is unset) and be
# in the checkout's root. After it: CORPUS and R (absolute), TRAIN (the corpus's training split),
# VAL (the two validation series these runs watch: chest-lungfcp-1mm, liver-crlm1004-5mm) and
# PRECISION (bf16 only where the CPU computes it natively: elsewhere emulated, about 40x slower a
# step). A run folder with a checkpoint is continued here (--resume, its recorded settings) and
# the sourcing script goes no further.
CORPUS=${CORPUS:-../corpus}
R=${RUN:-$RUN_DEFAULT}
mkdir -p "$R"
CORPUS=$(cd "$CORPUS" && pwd)
R=$(cd "$R" && pwd)
if [ -f "$R/checkpoint.safetensors" ]; then
  exec .venv/bin/hrinet train --out "$R" --resume
fi
TRAIN=$(.venv/bin/python benchmarks/data/build_corpus.py --out "$CORPUS" --list train)
VAL="$CORPUS/chest-lungfcp-1mm.nrrd $CORPUS/liver-crlm1004-5mm.nrrd"
for f in $VAL; do
  [ -f "$f" ] || { echo "$(basename "$0"): $f is not built; build the corpus first" >&2; exit 1; }
done
PRECISION=${PRECISION:-$(.venv/bin/python -c "from hrinet.learned.precision import cpu_has_bf16
print('bf16' if cpu_has_bf16() else 'fp32')")}
