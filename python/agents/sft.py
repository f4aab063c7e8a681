#!/usr/bin/env python3
"""ptb's scripted `sft` agent: supervised fine-tuning of the base model on allowed data.

A real, small training program (transformers + torch, no trainer framework): it reads chat
conversations from a JSONL file ({"messages": [..., {"role": "assistant", ...}]}), renders them with
the model's chat template, trains with loss on the assistant turns only, and saves the result to
final_model/ (safetensors, tokenizer, generation config). Tiny models train on a CPU in minutes;
on a GPU it trains in bf16 with gradient checkpointing. It stops early when its time budget runs out
(`--max-minutes`, default: the trial timer minus a safety margin).
"""
import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path


def log(msg):
    print(f"[sft] {msg}", flush=True)


def minutes_left_on_timer():
    try:
        out = subprocess.run(["bash", "timer.sh"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if "Timer expired" in out:
        return 0
    lines = [l.strip() for l in out.splitlines() if ":" in l and l.strip()[0].isdigit()]
    if not lines:
        return None
    h, m = lines[-1].split(":")
    return int(h) * 60 + int(m)


def load_conversations(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            msgs = row.get("messages")
            if not msgs or msgs[-1].get("role") != "assistant":
                raise SystemExit(f"{path}:{n}: each row needs 'messages' ending with an assistant turn")
            rows.append(msgs)
    if not rows:
        raise SystemExit(f"{path}: no training conversations")
    return rows


def encode(tokenizer, msgs, max_len):
    prompt = tokenizer.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns: fall back to prompt + answer + eos.
        full = prompt + msgs[-1]["content"] + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_len]
    labels = [-100] * min(len(p_ids), len(ids)) + ids[len(p_ids):]
    return ids, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=os.environ.get("PTB_BASE_MODEL_PATH"), help="base model directory")
    ap.add_argument("--data", required=True, help="JSONL conversations to train on (allowed data only)")
    ap.add_argument("--out", default="final_model")
    ap.add_argument("--chat-template", help="Jinja template file when the tokenizer has none")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--max-minutes", type=float, help="stop training after this long (default: timer - 10%%)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not args.base:
        raise SystemExit("no base model: pass --base or set PTB_BASE_MODEL_PATH")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    budget = args.max_minutes
    if budget is None:
        left = minutes_left_on_timer()
        budget = left * 0.9 if left is not None else math.inf
    deadline = time.time() + budget * 60
    log(f"base {args.base} on {device} ({dtype}); data {args.data}; budget {budget:.1f} min")

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if args.chat_template:
        tokenizer.chat_template = Path(args.chat_template).read_text()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=dtype).to(device)
    if device.startswith("cuda"):
        model.gradient_checkpointing_enable()
        model.config.use_cache = False

    examples = [encode(tokenizer, m, args.max_len) for m in load_conversations(args.data)]
    log(f"{len(examples)} conversations, {sum(len(i) for i, _ in examples)} tokens")
    rng = random.Random(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / max(1, args.steps)))
    pad = tokenizer.pad_token_id
    model.train()
    started = time.time()
    tokens = 0
    step = 0
    for step in range(1, args.steps + 1):
        batch = [examples[rng.randrange(len(examples))] for _ in range(args.batch_size)]
        width = max(len(i) for i, _ in batch)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=device)
        labels = torch.tensor([l + [-100] * (width - len(l)) for _, l in batch], device=device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
        if step == 1 or step % 10 == 0 or step == args.steps:
            rate = tokens / max(1e-9, time.time() - started)
            log(f"step {step}/{args.steps} loss {float(loss):.4f} ({rate:.0f} tokens/s)")
        if time.time() > deadline:
            log(f"time budget reached after {step} steps")
            break
    elapsed = time.time() - started
    model.eval()
    model.config.use_cache = True
    out = Path(args.out)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"saved {out} after {step} steps in {elapsed:.1f}s ({tokens / max(1e-9, elapsed):.0f} tokens/s)")
    print(json.dumps({"sft": {"steps": step, "seconds": round(elapsed, 2), "tokens": tokens,
                              "tokens_per_s": round(tokens / max(1e-9, elapsed), 1), "final_loss": float(loss)}}))


if __name__ == "__main__":
    sys.exit(main())
