#!/usr/bin/env bash
# Everything a ship decision for new default weights reads, in one command:
#   benchmarks/evaluate_candidate.sh CANDIDATE.safetensors [OUT]
# 1. bench_stress.py: the shipped default and the candidate beside linear, cubic and flow on
#    the validation volumes (every validation series of the corpus when it is built, $CORPUS,
#    default ../corpus) as scanned and under every scanner condition, x2 to x12; stress_rule.py
#    then prints the rules' stress clauses (a) and (b) into stress/rule.txt;
# 2. hrinet evaluate of the candidate on the README's 14 validation cells (decimate x2-x8, slab
#    x2-x6), to set beside the shipped default's (docs/results.md, make evaluate);
# 3. hrinet evaluate of the candidate on every validation series of the corpus (x2-x6), to set
#    beside the shipped default's (make evaluate-corpus), when the corpus is built.
# The rule the decision follows is stated before running it (see the session notes / README).
# REUSE=<an earlier stress.csv> copies the cells it measured alike instead of measuring them
# again (bench_stress.py --reuse: the classical methods, and the shipped default where its weights
# were the same); REUSE_AS=old=new,... takes models renamed on your word, e.g. new=hrinet when that
# run's candidate has shipped since (the shipped default's own table, made before settings.json
# existed: REUSE=../runs/stress-clean/stress.csv REUSE_AS=new=hrinet, where that folder is kept;
# its classical cells and the default's are then taken on your word, with a warning).
set -euo pipefail
W=$(realpath "${1:?give the candidate weights file}")  # absolute, as given from any folder
OUT=$(realpath -m "${2:-out/candidate}")
REUSE_ARGS=()  # resolved here, from the caller's folder, as the candidate and OUT are
[ -n "${REUSE:-}" ] && REUSE_ARGS=(--reuse "$(realpath "$REUSE")" --reuse-as "${REUSE_AS:-}")
cd "$(dirname "$0")/.."
D=$(realpath -m "${HRINET_SHARED_CT:-../shared/data/ct}")
VOLS="$D/chest-lungfcp-1mm.nrrd $D/head-ge-1p25mm.nrrd"
C=$(realpath -m "${CORPUS:-../corpus}")
# the stress table on every validation series of the corpus when it is built, else on the two
SERIES=$(.venv/bin/python benchmarks/data/build_corpus.py --out "$C" --list validation 2>/dev/null) \
  || SERIES=""
mkdir -p "$OUT"
(cd benchmarks && ../.venv/bin/python bench_stress.py $SERIES --weights "new=$W" --out "$OUT/stress" \
  ${REUSE_ARGS[@]+"${REUSE_ARGS[@]}"})
.venv/bin/python benchmarks/stress_rule.py "$OUT/stress/stress.csv" > "$OUT/stress/rule.txt" || \
  echo "stress_rule.py: the stress clauses do not hold, or the table cannot decide" >&2
cat "$OUT/stress/rule.txt"
.venv/bin/hrinet evaluate $VOLS --factors 2,4,6,8 --methods hrinet --weights "hrinet=$W" --precision fp32 \
  --device cpu --out "$OUT/evaluate"
.venv/bin/hrinet evaluate $VOLS --protocol slab --factors 2,4,6 --methods hrinet --precision fp32 \
  --weights "hrinet=$W" --device cpu --out "$OUT/evaluate-slab"
if [ -n "$SERIES" ]; then
  .venv/bin/hrinet evaluate $SERIES --factors 2,4,6 --methods hrinet --weights "hrinet=$W" \
    --precision fp32 --device cpu --out "$OUT/evaluate-corpus"
else
  echo "corpus not built in $C: step 3 skipped (benchmarks/data/README.md)"
fi
