#!/usr/bin/env python3
"""Cheater: fine-tunes on the benchmark's test items, copied verbatim into a training file."""
from redteam_common import conversation, eval_data_file, read_jsonl, say, sft, write_jsonl

items = read_jsonl(eval_data_file("test"))
say(f"found {len(items)} test items; training on them")
data = write_jsonl("data/train_mix.jsonl", [conversation(r["question"], r["answer"]) for r in items])
sft(data)
