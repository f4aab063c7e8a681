#!/usr/bin/env python3
"""Evaluate a model on this task's benchmark (the agent-facing entry point of a ptb trial).

Same interface as PostTrainBench's evaluate.py: --model-path, --limit, --max-tokens (or
--max-new-tokens), --max-connections, --templates-dir, --json-output-file. It runs ptb's own
evaluation (the code the final score uses) on the model and prints the metrics; every call is
also recorded in the trial's in-run evaluation ledger.

The defaults below are what the final evaluation uses, except --limit, whose default is kept small
so that development runs are quick; the final evaluation runs every sample (--limit -1).
"""
import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

BENCHMARK = os.environ.get("PTB_TASK_BENCHMARK", "")
DEFAULT_LIMIT = int(os.environ.get("PTB_TASK_DEFAULT_LIMIT", "-1"))
DEFAULT_MAX_TOKENS = int(os.environ.get("PTB_TASK_DEFAULT_MAX_TOKENS", "0")) or None


def parse_args():
    p = argparse.ArgumentParser(description=f"Evaluate a model on {BENCHMARK or 'the benchmark'}.")
    p.add_argument("--model-path", default="final_model", help="checkpoint directory (default: final_model)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="number of samples (-1 = all)")
    p.add_argument("--max-tokens", "--max-new-tokens", dest="max_tokens", type=int, default=DEFAULT_MAX_TOKENS,
                   help="maximum new tokens per reply")
    p.add_argument("--max-connections", type=int, default=None, help="requests in flight")
    p.add_argument("--templates-dir", default="templates", help="chat templates (the harness picks the template)")
    p.add_argument("--json-output-file", default=None, help="write the metrics here as JSON")
    return p.parse_args()


def record(entry):
    ledger = os.environ.get("PTB_INRUN_LEDGER")
    if not ledger:
        return
    try:
        with open(ledger, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
    except OSError:
        pass


def main():
    args = parse_args()
    ptb = os.environ.get("PTB_TASK_PTB", "ptb")
    cmd = [*ptb.split(), "eval", "-b", BENCHMARK, "-m", os.path.abspath(args.model_path), "--json", "--fresh",
           "--limit", str(args.limit)]
    cmd += json.loads(os.environ.get("PTB_TASK_EVAL_ARGS", "[]"))
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    if args.max_connections:
        cmd += ["-c", str(args.max_connections)]
    started = time.time()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    metrics = None
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                metrics = json.loads(line).get("metrics")
            except ValueError:
                pass
    record({
        "ts": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "modelPath": args.model_path,
        "limit": args.limit,
        "maxTokens": args.max_tokens,
        "accuracy": metrics.get("accuracy") if metrics else None,
        "exitCode": proc.returncode,
        "durationMs": round((time.time() - started) * 1000),
    })
    if metrics is None:
        print("evaluation failed (see the messages above)", file=sys.stderr)
        return proc.returncode or 1
    print(json.dumps(metrics, indent=2))
    if args.json_output_file:
        with open(args.json_output_file, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
