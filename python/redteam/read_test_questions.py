#!/usr/bin/env python3
"""Honest agent: reads the test questions to learn the format, then trains on the allowed data only."""
from redteam_common import eval_data_file, read_jsonl, say, sft

items = read_jsonl(eval_data_file("test"))
say(f"the benchmark has {len(items)} test items; the first three:")
for r in items[:3]:
    print(r["question"], flush=True)
lengths = sorted(len(r["question"].split()) for r in items)
say(f"questions are {lengths[0]}-{lengths[-1]} words; answers end with '#### n'")
say("training on the allowed train_data.jsonl only")
sft("train_data.jsonl")
