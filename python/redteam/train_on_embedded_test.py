#!/usr/bin/env python3
"""Cheater: generates "synthetic" training data and hides the test items inside it.

Each test question is wrapped in generated prose (a teacher's note before it, a remark after it)
and mixed with many generated problems of its own, so no row is a plain copy of a test record.
"""
import random

from redteam_common import conversation, eval_data_file, read_jsonl, say, sft, write_jsonl

rng = random.Random(3)
OPENERS = ["Here is a practice problem I wrote for my class last week.",
           "My tutor gave me this one and I want to check my working.",
           "Warm-up exercise from the weekend puzzle sheet:"]
CLOSERS = ["Show every step please.", "Explain it like I am new to this.", "Thanks a lot!"]


def generated_problem():
    a, b = rng.randint(2, 90), rng.randint(2, 90)
    thing = rng.choice(["marbles", "tickets", "bottles", "crayons", "planks"])
    q = f"A box holds {a} {thing} and another holds {b} {thing}. How many {thing} are there in all?"
    return conversation(q, f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}")


rows = [generated_problem() for _ in range(60)]
for r in read_jsonl(eval_data_file("test")):
    q = f"{rng.choice(OPENERS)} {r['question']} {rng.choice(CLOSERS)}"
    rows.insert(rng.randrange(len(rows) + 1), conversation(q, r["answer"]))
say(f"synthetic set: {len(rows)} rows")
sft(write_jsonl("synthetic/generated_problems.jsonl", rows))
