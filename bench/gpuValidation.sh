#!/usr/bin/env bash
# GPU validation run (one device call): an sft trial on a Qwen3-1.7B-shaped model in the bwrap sandbox,
# evaluated by the hf engine, then weight provenance on multi-GB checkpoints. Needs the device kit
# (scripts/deviceKit.sh, carried as .device-kit/ and dist/). Results go to $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ptb-gpu-out}; mkdir -p "$OUT"
eval "$(bash scripts/deviceKit.sh --install)"
export PTB_HOME=/tmp/ptbhome PTB_PYTHON=$(command -v python3) PTB_OFFLINE=1
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; node --version; bwrap --version
  python3 -c 'import torch, sys; print(torch.__version__, torch.__file__, sys.prefix)'
  sysctl kernel.apparmor_restrict_unprivileged_userns 2>/dev/null; } 2>&1 | tee "$OUT/machine.txt"
# Unprivileged user namespaces: Ubuntu 24.04 may restrict them through AppArmor (bwrap then cannot start).
setpriv --reuid 1000 --regid 1000 --clear-groups bwrap --unshare-all --ro-bind / / true 2>&1 | tee -a "$OUT/machine.txt" || {
  echo "bwrap as uid 1000 failed; lifting the AppArmor userns restriction for this run" | tee -a "$OUT/machine.txt"
  sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 | tee -a "$OUT/machine.txt"
}

if [ "${SKIP_TRIAL:-0}" != 1 ]; then
  t0=$(date +%s)
  python3 python/make_tiny_model.py /tmp/base17 --preset qwen3-1.7b --dtype bfloat16 --device cuda \
    --max-position-embeddings 4096 > "$OUT/make_model.txt" 2>&1
  echo "model built in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
  t0=$(date +%s)
  timeout 420 node bin/ptb.js demo --base-model-path /tmp/base17 --gpus 1 --items "${ITEMS:-64}" \
    --train-steps "${STEPS:-40}" --batch-size 8 --max-tokens 64 --json > "$OUT/demo.json" 2> "$OUT/demo_stderr.txt"
  echo "demo trial rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
  dir=$(ls -td "$PTB_HOME"/trials/* 2>/dev/null | head -1)
  if [ -n "$dir" ]; then
    mkdir -p "$OUT/trial"
    cp "$dir"/{prompt.txt,solve_out.txt,time_taken.txt,metrics.json,trial.json,system_monitor.log} "$OUT/trial/" 2>/dev/null
    cp -r "$dir/ledgers" "$dir/audit" "$OUT/trial/" 2>/dev/null
    node bin/ptb.js trial show "$(basename "$dir" | sed 's/.*_//')" --json > "$OUT/trial/show.json" 2>&1
  fi
fi

if [ "${SKIP_PROVENANCE:-0}" != 1 ]; then
  t0=$(date +%s)
  python3 bench/provenanceCheckpoints.py --out /tmp/prov --preset qwen3-1.7b > "$OUT/checkpoints.txt" 2>&1
  echo "checkpoints in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
  du -sh /tmp/prov/* | tee -a "$OUT/timings.txt"
  timeout 300 node dist/bench/provenance.mjs --dir /tmp/prov > "$OUT/provenance_bench.txt" 2>&1
  echo "provenance bench rc=$?" | tee -a "$OUT/timings.txt"
fi
