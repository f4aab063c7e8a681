#!/usr/bin/env bash
# The isolation benchmark on the GPU machine (one device call): bench/evalIsolation.ts bundled by
# scripts/deviceKit.sh, on a Qwen3-1.7B-shaped random bf16 model with the hf engine, the engine in
# the bwrap model sandbox vs on the host, alternating. First with a fresh compile cache for every
# host run (the cost of the sandbox itself), then with the host's caches warm (what a private
# scratch costs against a host that has compiled this shape before). Results go to $OUT.
#   here:    bash scripts/deviceKit.sh
#   device:  OUT=... CACHES=fresh bash bench/evalIsolationDevice.sh   (carry .device-kit and dist),
#            then the same with CACHES=warm on the warm machine (each call stays under 10 minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ptb-isolation-out}; mkdir -p "$OUT"
SAMPLES=${SAMPLES:-512} MAX_TOKENS=${MAX_TOKENS:-512} ROUNDS=${ROUNDS:-1} CACHES=${CACHES:-fresh warm}
eval "$(bash scripts/deviceKit.sh --install)"
export PTB_PYTHON=$(command -v python3) PTB_OFFLINE=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; node --version; bwrap --version
  python3 -c 'import torch, transformers, sys; print(torch.__version__, transformers.__version__, sys.prefix)'; } 2>&1 | tee "$OUT/machine.txt"
# Unprivileged user namespaces: Ubuntu 24.04 may restrict them through AppArmor (bwrap then cannot start).
setpriv --reuid 1000 --regid 1000 --clear-groups bwrap --unshare-all --ro-bind / / true 2>&1 | tee -a "$OUT/machine.txt" || {
  echo "bwrap as uid 1000 failed; lifting the AppArmor userns restriction for this run" | tee -a "$OUT/machine.txt"
  sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 | tee -a "$OUT/machine.txt"
}
[ -d /tmp/base17 ] || python3 python/make_tiny_model.py /tmp/base17 --preset qwen3-1.7b --dtype bfloat16 --device cuda \
  --max-position-embeddings 4096 > "$OUT/make_model.txt" 2>&1
for cache in $CACHES; do
  timeout 540 node dist/bench/evalIsolation.mjs --model /tmp/base17 --samples "$SAMPLES" --max-tokens "$MAX_TOKENS" \
    --rounds "$ROUNDS" --host-cache "$cache" --json "$OUT/isolation_$cache.json" 2>&1 | tee "$OUT/isolation_$cache.txt"
done
