#!/usr/bin/env python3
"""ptb's scripted `sft` agent: supervised fine-tuning of the base model on allowed data.

A real, small training program (transformers + torch, no trainer framework): it reads chat
conversations from a JSONL file ({"messages": [..., {"role": "assistant", ...}]}), renders them with
the model's chat template, trains with loss on the assistant turns only, and saves the result to
final_model/ (safetensors, tokenizer, generation config). Tiny models train on a CPU in minutes;
on a GPU it trains in bf16 with gradient checkpointing. It stops early when its time budget runs out
(`--max-minutes`, default: the trial timer minus a safety margin).

Several GPUs: run it under torchrun (`python -m torch.distributed.run --standalone --nproc-per-node N
sft.py ...`; ptb's sft agent does so when the trial has more than one GPU). Each process trains a
data-parallel replica (DistributedDataParallel, NCCL on GPUs, gloo on CPUs) on its share of every
global batch of --batch-size conversations; rank 0 logs and saves.

Like other SFT tools (TRL, axolotl) it cuts conversations at --max-len tokens and drops those with no
answer token left inside the limit; when nothing is left to learn from, or the loss stops being a
finite number, it fails with a message and writes no final_model.
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


RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))
LOCAL_RANK = int(os.environ.get("LOCAL_RANK", "0"))


def log(msg):
    if RANK == 0:
        print(f"[sft] {msg}", flush=True)


def fail(msg):
    """Stop with a message and a non-zero exit (every rank: none may go on alone)."""
    if RANK == 0:
        print(f"[sft] error: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


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
    """Token ids and labels (-100 on the prompt), cut at max_len; also the uncut lengths."""
    prompt = tokenizer.apply_chat_template(msgs[:-1], add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(prompt):
        # Templates that rewrite earlier turns: fall back to prompt + answer + eos.
        full = prompt + msgs[-1]["content"] + (tokenizer.eos_token or "")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    all_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    ids = all_ids[:max_len]
    labels = [-100] * min(len(p_ids), len(ids)) + ids[len(p_ids):]
    return {"ids": ids, "labels": labels, "prompt_len": len(p_ids), "full_len": len(all_ids)}


def usable_examples(encoded, max_len):
    """Drop conversations whose answer lies wholly beyond max_len (they have no token to learn from)."""
    usable = [(e["ids"], e["labels"]) for e in encoded if any(l != -100 for l in e["labels"])]
    cut = sum(1 for e in encoded if e["full_len"] > max_len)
    dropped = len(encoded) - len(usable)
    if not usable:
        longest = max(e["prompt_len"] for e in encoded)
        shortest = min(e["prompt_len"] for e in encoded)
        fail(
            f"nothing to train on: the prompt of every one of the {len(encoded)} conversations fills "
            f"--max-len {max_len} tokens (prompts are {shortest}-{longest} tokens), so no answer token is "
            f"left to learn from. Raise --max-len (e.g. --max-len {longest + 256}) or shorten the prompts; "
            "no final_model was written."
        )
    if dropped:
        log(f"dropped {dropped} of {len(encoded)} conversations: their prompt fills --max-len {max_len} tokens")
    if cut > dropped:
        log(f"cut {cut - dropped} conversations at --max-len {max_len} tokens (part of their answer is not learnt)")
    return usable


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
    dist = None
    if WORLD > 1:
        import torch.distributed as dist

        if device.startswith("cuda"):
            device = f"cuda:{LOCAL_RANK}"
            torch.cuda.set_device(LOCAL_RANK)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if args.batch_size % WORLD:
            fail(f"--batch-size {args.batch_size} does not split over {WORLD} processes: use a multiple of {WORLD}")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    budget = args.max_minutes
    if budget is None:
        left = minutes_left_on_timer()
        budget = left * 0.9 if left is not None else math.inf
    deadline = time.time() + budget * 60
    where = f"{WORLD} processes ({dist.get_backend()}), rank 0 " if dist else ""
    log(f"base {args.base} on {where}{device} ({dtype}); data {args.data}; budget {budget:.1f} min")
    if device.startswith("cuda"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "(all)")
        log(f"CUDA_VISIBLE_DEVICES={visible}; {torch.cuda.device_count()} visible: {torch.cuda.get_device_name(device)}")

    tokenizer = AutoTokenizer.from_pretrained(args.base)
    if args.chat_template:
        tokenizer.chat_template = Path(args.chat_template).read_text()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=dtype).to(device)
    if device.startswith("cuda"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    trained = model
    if dist:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model, device_ids=[LOCAL_RANK] if device.startswith("cuda") else None)

    encoded = [encode(tokenizer, m, args.max_len) for m in load_conversations(args.data)]
    log(f"{len(encoded)} conversations, {sum(len(e['ids']) for e in encoded)} tokens")
    examples = usable_examples(encoded, args.max_len)
    # Every process draws the same global batch and trains on its slice of it.
    rng = random.Random(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / max(1, args.steps)))
    pad = tokenizer.pad_token_id
    every = max(1, args.steps // 20)
    trained.train()
    started = time.time()
    tokens = 0
    step = 0
    loss_value = float("nan")
    for step in range(1, args.steps + 1):
        batch = [examples[rng.randrange(len(examples))] for _ in range(args.batch_size)][RANK::WORLD]
        width = max(len(i) for i, _ in batch)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=device)
        labels = torch.tensor([l + [-100] * (width - len(l)) for _, l in batch], device=device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=device)
        loss = trained(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        # Mean loss over the processes, this step's tokens, and whether the time is up, in one reduction.
        stats = torch.tensor([loss.detach().float().item(), float(mask.sum()), float(time.time() > deadline)],
                             device=device)
        if dist:
            dist.all_reduce(stats)
        loss_value = stats[0].item() / WORLD
        tokens += int(stats[1].item())
        if not math.isfinite(loss_value):
            fail(f"the loss is {loss_value} at step {step}: training diverged (try a lower --lr than {args.lr:g}); "
                 "no final_model was written")
        if step == 1 or step % every == 0 or step == args.steps:
            spent = time.time() - started
            log(f"step {step}/{args.steps} loss {loss_value:.4f} lr {sched.get_last_lr()[0]:.2e} | "
                f"{tokens / max(1e-9, spent):.0f} tokens/s | {spent / step:.2f} s/step | "
                f"ETA {duration(spent / step * (args.steps - step))}")
        if stats[2].item() > 0:
            log(f"time budget reached after {step} steps")
            break
    elapsed = time.time() - started
    if RANK == 0:
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
                                  "tokens_per_s": round(tokens / max(1e-9, elapsed), 1), "final_loss": loss_value,
                                  "processes": WORLD, "conversations": len(examples)}}), flush=True)
    if dist:
        dist.barrier()
        dist.destroy_process_group()
        # Leave without running the interpreter's and libraries' exit code: with gloo, a rank could
        # hang there after main() returned (native threads joined by static destructors, seen in the
        # sandbox under strace). Everything this process wrote is closed already.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

if __name__ == "__main__":
    sys.exit(main())
