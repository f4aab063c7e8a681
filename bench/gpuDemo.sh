#!/usr/bin/env bash
# One-GPU device check of issue 13 item 1 and issue 12's one-GPU parts (one device call, < 6 min):
#   1. `ptb demo --gpus 1` with every other flag at its default: the honest sft agent must end with
#      audit clean and its own score kept (final_score = accuracy, not substituted);
#   2. the same demo with the sft agent under torchrun (`--nproc-per-node 1`): the data-parallel path
#      (NCCL) on the GPU;
#   3. a command-agent trial with --gpus 1 that records, from inside the bwrap sandbox, what it sees:
#      CUDA_VISIBLE_DEVICES, the /dev/nvidia* nodes, `nvidia-smi -L`, torch's device count and name.
# Needs the device kit: on the development machine `bash scripts/deviceKit.sh` (writes .device-kit/
# and dist/), then carry both. Results go to $OUT: summary.txt first.
#   run: OUT=$OUT bash bench/gpuDemo.sh          (carry: .device-kit, dist)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/ptb-gpu-demo}; mkdir -p "$OUT"
eval "$(bash scripts/deviceKit.sh --install)"
export PTB_HOME=/tmp/ptbhome-gpudemo PTB_PYTHON=$(command -v python3) PTB_OFFLINE=1
rm -rf "$PTB_HOME"
{ nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader; node --version; bwrap --version
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'; } \
  2>&1 | tee "$OUT/machine.txt"
# Ubuntu 24.04 may restrict unprivileged user namespaces through AppArmor (bwrap then cannot start).
setpriv --reuid 1000 --regid 1000 --clear-groups bwrap --unshare-all --ro-bind / / true >/dev/null 2>&1 || {
  echo "bwrap as uid 1000 failed; lifting the AppArmor userns restriction for this run" | tee -a "$OUT/machine.txt"
  sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 >> "$OUT/machine.txt" 2>&1
}

ptb() { node bin/ptb.js "$@"; }

# Copy the newest trial's record (no weights) into $OUT/$1.
keep_trial() {
  local dir; dir=$(ls -td "$PTB_HOME"/trials/* 2>/dev/null | head -1)
  [ -n "$dir" ] || return 0
  mkdir -p "$OUT/$1"
  cp "$dir"/{prompt.txt,solve_out.txt,time_taken.txt,metrics.json,trial.json,system_monitor.log} "$OUT/$1/" 2>/dev/null
  cp -r "$dir/ledgers" "$dir/audit" "$OUT/$1/" 2>/dev/null
  ptb trial show "$(basename "$dir" | sed 's/.*_//')" --json > "$OUT/$1/show.json" 2>&1
}

# A line of summary.txt per demo: outcome, verdict, scores, whether the own score was kept.
summarise() {
  node -e '
    const fs = require("fs");
    const [file, label] = process.argv.slice(1);
    try {
      const r = JSON.parse(fs.readFileSync(file, "utf8").trim().split("\n").pop());
      const t = r.trial;
      const kept = t.audit_verdict === "clean" && !t.substituted && t.final_score === t.accuracy;
      console.log(`${label}: agent ${t.agent_outcome}, audit ${t.audit_verdict}, accuracy ${t.accuracy}, baseline ${r.baseline.accuracy}, final ${t.final_score}${t.substituted ? " (substituted)" : ""} -> ${kept ? "PASS own score kept" : "FAIL"}`);
    } catch (e) { console.log(`${label}: FAIL no result (${e.message})`); }
  ' "$1" "$2" | tee -a "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
t0=$(date +%s)
timeout 220 node bin/ptb.js demo --gpus 1 --json > "$OUT/demo_defaults.json" 2> "$OUT/demo_defaults_stderr.txt"
echo "demo defaults rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
keep_trial demo_defaults
summarise "$OUT/demo_defaults.json" "demo --gpus 1 (defaults)"
grep -c '^agent \[sft\] step' "$OUT/demo_defaults_stderr.txt" | sed 's/^/training lines shown during the agent phase: /' | tee -a "$OUT/summary.txt"

t0=$(date +%s)
timeout 150 node bin/ptb.js demo --gpus 1 --nproc-per-node 1 --json > "$OUT/demo_torchrun.json" 2> "$OUT/demo_torchrun_stderr.txt"
echo "demo torchrun rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
keep_trial demo_torchrun
summarise "$OUT/demo_torchrun.json" "demo --gpus 1 --nproc-per-node 1 (torchrun)"
grep -h 'processes (nccl)\|CUDA_VISIBLE_DEVICES=\|"processes"' "$OUT/demo_torchrun/solve_out.txt" 2>/dev/null | tee -a "$OUT/summary.txt"

# What a trial's agent sees of the GPU from inside the sandbox (bench/gpuProbe.sh, read-only at /opt/ptb).
t0=$(date +%s)
timeout 90 node bin/ptb.js trial run -a command --agent-command "bash /opt/ptb/bench/gpuProbe.sh" -m ptb-demo/tiny-qwen3-base \
  --base-model-path "$PTB_HOME/models/demo-qwen3-base" -b gsm8k --hours 0.05 --gpus 1 --engine hf \
  --network none --experiment gpu-probe --json > "$OUT/probe.json" 2> "$OUT/probe_stderr.txt"
echo "probe trial rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/timings.txt"
keep_trial probe
{ echo "inside the sandbox (probe trial):"; sed 's/^\[[^]]*\] /  /' "$OUT/probe/solve_out.txt" 2>/dev/null | head -20
  echo "gate record:"; cat "$OUT/probe/ledgers/gpus.json" 2>/dev/null; } | tee -a "$OUT/summary.txt"
