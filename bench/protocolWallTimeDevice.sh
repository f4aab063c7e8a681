#!/usr/bin/env bash
# Protocol v1.1 against v1.0 on the GPU machine (one device call): bench/protocolWallTime.ts bundled by
# scripts/deviceKit.sh, a GSM8K evaluation of a Qwen3-1.7B-shaped random bf16 model (its generation
# config samples at temperature 0.6, as Qwen3's does, so v1.1 runs all five seeds) with the hf engine
# in its default sandbox. Results go to $OUT.
#   here:    bash scripts/deviceKit.sh
#   device:  OUT=... bash bench/protocolWallTimeDevice.sh   (carry .device-kit and dist; about 7 min)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ptb-protocol-out}; mkdir -p "$OUT"
SAMPLES=${SAMPLES:-128} MAX_TOKENS=${MAX_TOKENS:-256} ROUNDS=${ROUNDS:-1}
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
timeout 560 node dist/bench/protocolWallTime.mjs --model /tmp/base17 --samples "$SAMPLES" --max-tokens "$MAX_TOKENS" \
  --rounds "$ROUNDS" --json "$OUT/protocol.json" 2>&1 | tee "$OUT/protocol.txt"
