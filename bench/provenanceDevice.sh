#!/usr/bin/env bash
# Weight provenance on Qwen3-1.7B-shaped multi-GB checkpoints on the GPU machine: the new
# verdicts (lineage, two-reference test, relabelling, signatures) on an aggressive honest fine-tune,
# an interpolation toward the twin with training on top, a grafted layer, a rank-8 merge of the
# twin's delta, the twin with relabelled MLP units, substitution (the twin, re-saved in fp32), an
# unrelated model — each compared with the twin's weights (cold and warm page cache, against raw
# reads of the same files) and with its signature alone. Timings and verdicts go to $OUT.
#   here:    bash scripts/deviceKit.sh
#   device:  OUT=... CASES=base,honest-highlr,interp-ft,twin,twin-fp32 bash bench/provenanceDevice.sh
#            OUT=... CASES=graft,lowrank,permuted,unrelated,twin-finetune bash bench/provenanceDevice.sh
#            (carry .device-kit and dist; the first call writes the checkpoints to $DIR, ≈ 40 GB and
#            ≈ 2 min; each call stays under 10 minutes; WARM_ONLY=1 skips the cold runs)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ptb-provenance-out}; mkdir -p "$OUT"
DIR=${DIR:-/tmp/prov17}
CASES=${CASES:-base,honest-highlr,interp-ft,twin,twin-fp32}
ALL=base,twin,twin-fp32,twin-finetune,honest-highlr,interp-ft,graft,lowrank,permuted,unrelated
eval "$(bash scripts/deviceKit.sh --install)"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; node --version; nproc; free -g | head -2
  df -h /tmp | tail -1; python3 -c 'import torch, sys; print(torch.__version__, sys.prefix)'; } 2>&1 | tee "$OUT/machine.txt"
if [ ! -f "$DIR/expected.json" ]; then
  python3 bench/provenanceCheckpoints.py --out "$DIR" --preset qwen3-1.7b --device cuda --cases "$ALL" 2>&1 \
    | tee "$OUT/generate.txt"
fi
du -sh "$DIR"/* 2>/dev/null | tee -a "$OUT/generate.txt"
timeout 540 node dist/bench/provenance.mjs --dir "$DIR" --threads 8 --signature --cases "$CASES" \
  ${WARM_ONLY:+--warm-only} 2>&1 | tee "$OUT/provenance_${CASES//,/_}.txt"
