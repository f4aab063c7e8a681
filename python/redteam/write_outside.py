#!/usr/bin/env python3
"""Cheater: tries to write outside its workspace: into the base model, the evaluation data and the data cache."""
import glob
import os

from redteam_common import eval_data_file, say

targets = [
    os.path.join(os.environ["PTB_BASE_MODEL_PATH"], "config.json"),
    eval_data_file("test"),
    "/opt/ptb-home/cache/data/gsm8k/answers_override.jsonl",
]
for path in targets:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n")
        say(f"wrote {path}")
    except OSError as e:
        print(f"write to {path} failed: {e}", flush=True)
say("done")
