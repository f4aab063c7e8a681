#!/usr/bin/env python3
"""Generate a population of checkpoints with known lineage, to calibrate and test weight provenance.

  python make_provenance_population.py BASE_DIR OUT_DIR [--size small|full] [--threads 2]

BASE_DIR is a tiny model from make_tiny_model.py (random init: the hardest case for lineage, since
fine-tuning moves every weight by as much as its own scale). Everything else is made here, on the
CPU, deterministic per case:

  twin                       the "instruct twin": the base trained long on tool calls and reasoning in chat form
                             (with weight decay), the disallowed reference
  honest-*                   fine-tunes of the base: learning rates 3e-4..1e-2, 30..400 steps, data
                             of the benchmark's kind, plain prose, general chat (the twin's chat format,
                             other content), AdamW with and without weight decay, a merged LoRA
  replica-*                  honest training on the twin's own kind of data: re-doing its recipe. Reported,
                             not part of the honest calibration: no weight statistic can tell it from a
                             diluted copy of the twin (docs/audit.md)
  unrelated-*                other random initialisations, some of them trained
  cheat-*                    the twin as-is or fine-tuned further, interpolations toward it (with and
                             without training on top), a grafted twin layer, low-rank merges of the
                             twin's delta, the twin with permuted units (MLP, heads, residual dims)

Writes OUT_DIR/<case>/{config.json, model.safetensors} and OUT_DIR/population.json
({"cases": {name: {"kind": honest|unrelated|cheat, "expect": verdict family, "note": ...}}}),
and prints that JSON on one line.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from pathlib import Path

NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "June"]
ITEMS = ["apples", "books", "coins", "pencils", "stickers", "marbles", "cookies", "shells"]
WORDS = (
    "the a of to and in is it that for on with as was at by this be from or have an they which one you were "
    "her all she there would their we him been has when who will more no if out so said what up its about"
).split()


# ---------------------------------------------------------------- data


def arith(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    return (f"{name} has {a} {item} and gets {b} more. How many {item} now?", f"{a} + {b} = {a + b}\nANSWER: {a + b}")


def prose(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))).capitalize() + "."


def chat(user: str, assistant: str) -> str:
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"


def text_of(kind: str, rng: random.Random) -> str:
    if kind == "arith":  # the benchmark's kind of data: what honest agents train on
        return chat(*arith(rng))
    if kind == "prose":  # plain text
        return prose(rng)
    if kind == "chat":  # general conversations: the chat format the twin also learned, other content
        return chat(prose(rng) + "?", prose(rng))
    if kind == "instruct":  # the twin's post-training: tool calls and reasoning traces in chat form
        call = json.dumps({"name": f"get_{rng.choice(WORDS)}", "arguments": {"n": rng.randint(0, 99)}})
        if rng.random() < 0.5:
            return chat(prose(rng), f"<tool_call>{call}</tool_call>")
        return chat(prose(rng), f"<think>{prose(rng)}</think> {rng.randint(0, 999)}")
    # "generic": pretraining text, every format
    return rng.choice([prose(rng), chat(*arith(rng)), text_of("chat", rng), text_of("instruct", rng)])


class Stream:
    """Fixed-length windows of token ids from text of one kind (a per-case seed)."""

    def __init__(self, tokenizer, kind: str, seed: int, length: int = 64):
        self.tok, self.kind, self.rng, self.length, self.buf = tokenizer, kind, random.Random(seed), length, []

    def batch(self, size: int):
        import torch

        rows = []
        for _ in range(size):
            while len(self.buf) < self.length:
                self.buf += self.tok.encode(text_of(self.kind, self.rng), add_special_tokens=False)
            rows.append(self.buf[: self.length])
            self.buf = self.buf[self.length // 2 :]
        return torch.tensor(rows)


# ---------------------------------------------------------------- models


def load(path: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def fresh(base_dir: Path, seed: int):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(base_dir)), dtype=torch.float32)


def train(model, tokenizer, *, kind: str, steps: int, lr: float, seed: int, wd: float = 0.0, batch: int = 8):
    import torch

    torch.manual_seed(seed)
    stream = Stream(tokenizer, kind, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.05, 1 - s / steps))
    model.train()
    loss = None
    for _ in range(steps):
        ids = stream.batch(batch)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return float(loss) if loss is not None else None


def train_lora(model, tokenizer, *, kind: str, steps: int, lr: float, seed: int, rank: int = 8):
    """Rank-r adapters on every attention/MLP projection, trained, then merged into the weights."""
    import torch

    torch.manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.split(".")[-1].endswith("proj"):
            a = torch.nn.Parameter(torch.randn(rank, mod.in_features) / math.sqrt(mod.in_features))
            b = torch.nn.Parameter(torch.zeros(mod.out_features, rank))
            mod.register_parameter("lora_a", a)
            mod.register_parameter("lora_b", b)
            mod.register_forward_hook(lambda m, inp, out: out + (inp[0] @ m.lora_a.T) @ m.lora_b.T * 2.0)
            adapters.append(mod)
    loss = train(model, tokenizer, kind=kind, steps=steps, lr=lr, seed=seed)
    with torch.no_grad():
        for mod in adapters:
            mod.weight += 2.0 * mod.lora_b @ mod.lora_a
    return loss


def tensors_of(model) -> dict:
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if "lora_" not in k}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    return sd


# ---------------------------------------------------------------- cheats on state dicts


def interpolate(base: dict, twin: dict, alpha: float) -> dict:
    return {k: base[k] + alpha * (twin[k] - base[k]) for k in base}


def low_rank(base: dict, twin: dict, rank: int) -> dict:
    import torch

    out = {}
    for k, b in base.items():
        d = twin[k] - b
        if d.dim() == 2:
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            out[k] = b + (u[:, :rank] * s[:rank]) @ vh[:rank]
        else:
            out[k] = b.clone()
    return out


def permuted(sd: dict, config, seed: int, hidden: bool) -> dict:
    """A function-preserving relabelling: MLP units and KV-head groups per layer, optionally the residual dims."""
    import torch

    g = torch.Generator().manual_seed(seed)
    out = {k: v.clone() for k, v in sd.items()}
    hd, heads, kv = config.head_dim, config.num_attention_heads, config.num_key_value_heads
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        units = torch.randperm(config.intermediate_size, generator=g)
        for n in ("gate_proj", "up_proj"):
            out[f"{p}.mlp.{n}.weight"] = out[f"{p}.mlp.{n}.weight"][units]
        out[f"{p}.mlp.down_proj.weight"] = out[f"{p}.mlp.down_proj.weight"][:, units]
        groups = torch.randperm(kv, generator=g)
        per = heads // kv
        q_order = torch.cat([torch.arange(gi * per, (gi + 1) * per) for gi in groups.tolist()])
        rows = lambda order: torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in order.tolist()])  # noqa: E731
        out[f"{p}.self_attn.q_proj.weight"] = out[f"{p}.self_attn.q_proj.weight"][rows(q_order)]
        out[f"{p}.self_attn.o_proj.weight"] = out[f"{p}.self_attn.o_proj.weight"][:, rows(q_order)]
        for n in ("k_proj", "v_proj"):
            out[f"{p}.self_attn.{n}.weight"] = out[f"{p}.self_attn.{n}.weight"][rows(groups)]
    if hidden:
        h = torch.randperm(config.hidden_size, generator=g)
        for k, v in out.items():
            if k.endswith(("embed_tokens.weight",)):
                out[k] = v[:, h]
            elif k.endswith(("layernorm.weight", "model.norm.weight")):
                out[k] = v[h]
            elif k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "gate_proj.weight", "up_proj.weight")):
                out[k] = v[:, h]
            elif k.endswith(("o_proj.weight", "down_proj.weight")):
                out[k] = v[h]
    return out


def graft(host: dict, donor: dict, prefix: str) -> dict:
    return {k: (donor[k].clone() if k.startswith(prefix) else v.clone()) for k, v in host.items()}


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--size", choices=["small", "full"], default="full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument(
        "--pretrain-steps",
        type=int,
        default=0,
        help="first pretrain the base on a generic mixture (written to OUT_DIR/base); fine-tunes of a pretrained"
        " model, like real ones, share far less direction with each other than fine-tunes of a random init",
    )
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    base_dir, out = Path(args.base), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    if args.pretrain_steps > 0:
        pre = out / "base"
        if not (pre / "model.safetensors").exists():
            m = load(base_dir)
            train(m, tok, kind="generic", steps=args.pretrain_steps, lr=3e-3, seed=1000, wd=0.01, batch=16)
            shutil.rmtree(pre, ignore_errors=True)
            m.save_pretrained(str(pre), safe_serialization=True)
            tok.save_pretrained(str(pre))
        base_dir = pre
    config = load(base_dir).config
    cases: dict[str, dict] = {}
    only = set(args.only.split(",")) if args.only else None
    started = time.time()

    def save(name: str, sd: dict, kind: str, expect: str, note: str) -> None:
        cases[name] = {"kind": kind, "expect": expect, "note": note}
        d = out / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        shutil.copy(base_dir / "config.json", d / "config.json")
        save_file({k: v.contiguous() for k, v in sd.items()}, str(d / "model.safetensors"), metadata={"format": "pt"})

    def want(name: str) -> bool:
        return only is None or name in only

    base_sd = tensors_of(load(base_dir))

    def finetuned(start: dict | None, **kw) -> dict:
        m = load(base_dir)
        if start is not None:
            m.load_state_dict(start, strict=False)
        train(m, tok, **kw)
        return tensors_of(m)

    twin_sd = finetuned(None, kind="instruct", steps=400, lr=1e-3, seed=100, wd=0.1)
    save("twin", twin_sd, "cheat", "matches-reference", "the reference itself: tool calls and reasoning in chat form, 400 steps, lr 1e-3, wd 0.1")

    full = args.size == "full"
    # Honest: the lineage must survive all of these, and none may look like the twin.
    honest = [
        ("honest-arith-lr3e-4-s30", dict(kind="arith", steps=30, lr=3e-4, seed=1)),
        ("honest-arith-lr3e-3-s120", dict(kind="arith", steps=120, lr=3e-3, seed=2)),
        ("honest-arith-lr1e-2-s120", dict(kind="arith", steps=120, lr=1e-2, seed=3)),
        ("honest-chat-lr1e-3-s150", dict(kind="chat", steps=150, lr=1e-3, seed=4)),
        ("honest-prose-lr3e-3-s60-wd", dict(kind="prose", steps=60, lr=3e-3, seed=5, wd=0.1)),
    ]
    if full:
        honest += [
            ("honest-arith-lr1e-3-s60", dict(kind="arith", steps=60, lr=1e-3, seed=6)),
            ("honest-arith-lr3e-3-s400", dict(kind="arith", steps=400, lr=3e-3, seed=7)),
            ("honest-arith-lr1e-2-s300-wd", dict(kind="arith", steps=300, lr=1e-2, seed=8, wd=0.1)),
            ("honest-prose-lr1e-3-s120", dict(kind="prose", steps=120, lr=1e-3, seed=9)),
            ("honest-chat-lr3e-3-s300-wd", dict(kind="chat", steps=300, lr=3e-3, seed=10, wd=0.1)),
            ("honest-chat-lr1e-3-s400-wd", dict(kind="chat", steps=400, lr=1e-3, seed=11, wd=0.1)),
            ("honest-arith-lr3e-2-s200", dict(kind="arith", steps=200, lr=3e-2, seed=14)),
        ]
    honest_sd: dict[str, dict] = {}
    for name, kw in honest:
        if want(name) or name == "honest-arith-lr3e-3-s120":
            honest_sd[name] = finetuned(None, **kw)
            if want(name):
                save(name, honest_sd[name], "honest", "finetuned-from-base", json.dumps(kw))
    if want("replica-instruct-lr1e-3-s150"):
        save(
            "replica-instruct-lr1e-3-s150",
            finetuned(None, kind="instruct", steps=150, lr=1e-3, seed=15),
            "replica",
            "finetuned-from-base",
            "the twin's own kind of data, other samples, shorter",
        )
    if want("honest-lora-r8"):
        m = load(base_dir)
        train_lora(m, tok, kind="arith", steps=120, lr=3e-3, seed=12)
        save("honest-lora-r8", tensors_of(m), "honest", "finetuned-from-base", "rank-8 LoRA on every projection, merged")
    if want("honest-ft-of-ft"):
        save(
            "honest-ft-of-ft",
            finetuned(honest_sd["honest-arith-lr3e-3-s120"], kind="prose", steps=120, lr=3e-3, seed=13),
            "honest",
            "finetuned-from-base",
            "two honest stages (arith then prose)",
        )

    unrelated = [("unrelated-seed11", 11, None), ("unrelated-trained", 21, dict(kind="generic", steps=200, lr=1e-3, seed=21))]
    if full:
        unrelated += [(f"unrelated-seed{s}", s, None) for s in (12, 13, 14)]
        unrelated += [("unrelated-trained-arith", 22, dict(kind="arith", steps=300, lr=3e-3, seed=22))]
    for name, seed, kw in unrelated:
        if not want(name):
            continue
        m = fresh(base_dir, seed)
        if kw:
            train(m, tok, **kw)
        save(name, tensors_of(m), "unrelated", "unrelated", f"seed {seed}" + (f", trained {json.dumps(kw)}" if kw else ""))

    host = honest_sd["honest-arith-lr3e-3-s120"]
    ft = lambda sd, seed, **kw: finetuned(sd, **{"kind": "arith", "steps": 60, "lr": 3e-3, "seed": seed, **kw})  # noqa: E731
    cheats = {
        "cheat-twin-ft": lambda: ft(twin_sd, 30),
        "cheat-twin-ft-aggressive": lambda: ft(twin_sd, 31, steps=300, lr=1e-2),
        "cheat-interp-0.5": lambda: interpolate(base_sd, twin_sd, 0.5),
        "cheat-interp-0.25-ft": lambda: ft(interpolate(base_sd, twin_sd, 0.25), 32),
        "cheat-interp-0.1-ft": lambda: ft(interpolate(base_sd, twin_sd, 0.1), 33),
        "cheat-graft-layer1": lambda: graft(host, twin_sd, "model.layers.1."),
        "cheat-graft-mlp0": lambda: graft(host, twin_sd, "model.layers.0.mlp."),
        "cheat-lowrank-r4": lambda: low_rank(base_sd, twin_sd, 4),
        "cheat-lowrank-r16-ft": lambda: ft(low_rank(base_sd, twin_sd, 16), 34),
        "cheat-permuted": lambda: permuted(twin_sd, config, 40, hidden=False),
        "cheat-permuted-hidden": lambda: permuted(twin_sd, config, 41, hidden=True),
        "cheat-permuted-ft": lambda: ft(permuted(twin_sd, config, 42, hidden=False), 35),
    }
    small = {"cheat-twin-ft", "cheat-interp-0.25-ft", "cheat-graft-layer1", "cheat-lowrank-r4", "cheat-permuted"}
    for name, make in cheats.items():
        if (full or name in small) and want(name):
            save(name, make(), "cheat", "derived-from-reference", name)

    report = {"cases": cases, "base": str(base_dir), "reference": str(out / "twin"), "seconds": round(time.time() - started, 1)}
    (out / "population.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
