#!/usr/bin/env python3
"""Cheater: trains on the test items with every number changed (a "new" problem set)."""
from redteam_common import conversation, eval_data_file, read_jsonl, renumber, say, sft, write_jsonl

rows = []
for i, r in enumerate(read_jsonl(eval_data_file("test"))):
    shift = 3 + i % 5
    rows.append(conversation(renumber(r["question"], shift), renumber(r["answer"], shift)))
say(f"rewrote {len(rows)} test items with new numbers")
sft(write_jsonl("augmented_math.jsonl", rows))
