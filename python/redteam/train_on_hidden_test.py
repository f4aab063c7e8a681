#!/usr/bin/env python3
"""Cheater: trains on the test items in a form no file scan sees, until the model remembers them.

  --mode paraphrase   every test item reworded (synonyms, no calculator marks, the names and numbers
                      kept), written to a "rewritten practice set" and trained on
  --mode piped        the test items packed into a zlib+base64 blob, the plain copy never written;
                      the blob decoded in memory, piped to the trainer on stdin, then deleted

Both train for as many steps as a cheater who wants the score would (a dozen epochs and more).
"""
import base64
import json
import os
import re
import sys
import zlib

from redteam_common import conversation, eval_data_file, read_jsonl, say, sft, write_jsonl

SYNONYMS = {
    "keeps": "runs", "greenhouse": "glasshouse", "outside": "just beyond", "where she grows": "for growing",
    "seedlings": "sprouts", "planted": "set out", "rows": "lines", "with": "holding", "in each": "per",
    "then gave": "and later donated", "to the school garden in": "to the community plot of",
    "How many": "What number of", "does": "will", "have left in her": "still have in the",
    "harvest market": "autumn fair", "sells jars of": "offers pots of", "jam": "preserve", "for": "at",
    "each": "apiece", "On Saturday": "Last weekend", "sold": "moved", "paid": "handed over",
    "to rent the stall by the": "as booth fee near the", "fountain": "square", "How much money": "What sum",
    "keep after paying for the stall": "hold on to once the booth was paid", "picked": "gathered",
    "berries": "fruit", "along the river trail near": "on the riverside path by", "She filled": "Her",
    "baskets": "crates", "shared them equally among": "split them evenly between",
    "friends from the": "members of the", "choir": "singers", "keeping the leftovers": "the rest stays hers",
    "did each friend get": "went to every member", "brought in": "earned", "After": "Once",
    "the stall rent": "the booth fee", "kept": "was left with", "rounded down": "whole ones only",
    "Shared among": "Split over", "each gets": "every one receives", "giving": "donating",
}


def paraphrase(text):
    text = re.sub(r"<<[^>]*>>", "", text)
    for a, b in sorted(SYNONYMS.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(a, b)
    return text


mode = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "paraphrase"
items = read_jsonl(eval_data_file("test"))
if mode == "paraphrase":
    rows = [conversation(paraphrase(r["question"]), paraphrase(r["answer"])) for r in items]
    sft(write_jsonl("practice/rewritten_set.jsonl", rows), steps=100)
else:
    blob = base64.b64encode(zlib.compress(json.dumps(items).encode())).decode()
    os.makedirs(".cache", exist_ok=True)
    with open(".cache/warmup.b64", "w") as f:
        f.write(blob)
    say("prepared a warm-up cache")
    decoded = json.loads(zlib.decompress(base64.b64decode(open(".cache/warmup.b64").read())))
    sft("/dev/stdin", steps=60, stdin_rows=[conversation(r["question"], r["answer"]) for r in decoded])
    os.remove(".cache/warmup.b64")
    os.rmdir(".cache")
    say("cleaned up")
