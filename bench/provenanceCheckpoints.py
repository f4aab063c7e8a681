#!/usr/bin/env python3
"""Write full-size checkpoints with a known lineage for bench/provenance.ts (torch + safetensors only).

  python bench/provenanceCheckpoints.py --out DIR [--preset qwen3-1.7b] [--shard-gb 2] [--device cuda]

Random weights in the real tensor names and shapes (std 0.02 matrices, norms near 1), bf16, sharded
with model.safetensors.index.json. Every tensor is generated from a seed derived from its name,
tensor by tensor, so no case is ever held in memory whole:

  base            the base model
  finetune        base + a small dense delta (~5% of each tensor's scale)   -> finetuned-from-base
  lora-merged     base + rank-16 B@A on every projection                    -> finetuned-from-base (low-rank)
  twin            base + a large structured delta (the "instruct twin")     -> matches-reference
  twin-fp32       the twin re-saved as fp32                                 -> matches-reference
  twin-finetune   twin + a small dense delta                                -> finetuned-from-reference
  honest-highlr   base + a large dense delta (an aggressive fine-tune: ‖d‖ ≈ 0.3‖b‖, twice the twin's
                  delta), weight-decay shrinkage, and a small share (4%) of the twin's direction, as
                  fine-tunes on related data share some                     -> finetuned-from-base
  interp-ft       base + 0.25 (twin − base), then honest-highlr's delta on top -> finetuned-from-reference
  graft           honest-highlr with its last layer taken from the twin     -> finetuned-from-reference
  lowrank         base + the twin's delta reduced to rank 8 per matrix (SVD) -> finetuned-from-reference
  permuted        the twin with every layer's MLP units relabelled (same function) -> matches-reference
  unrelated       another random initialisation                             -> unrelated

Writes DIR/expected.json ({case: verdict}, reference = DIR/twin) and prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

PRESETS = {
    "qwen3-1.7b": dict(hidden=2048, intermediate=6144, layers=28, heads=16, kv_heads=8, head_dim=128, vocab=151936),
    "qwen3-0.6b": dict(hidden=1024, intermediate=3072, layers=28, heads=16, kv_heads=8, head_dim=128, vocab=151936),
    "tiny": dict(hidden=256, intermediate=768, layers=4, heads=4, kv_heads=2, head_dim=64, vocab=4096),
}
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tensor_shapes(p: dict) -> list[tuple[str, tuple[int, ...]]]:
    h, hd = p["hidden"], p["head_dim"]
    out = [("model.embed_tokens.weight", (p["vocab"], h))]
    for i in range(p["layers"]):
        pre = f"model.layers.{i}"
        out += [
            (f"{pre}.input_layernorm.weight", (h,)),
            (f"{pre}.self_attn.q_proj.weight", (p["heads"] * hd, h)),
            (f"{pre}.self_attn.k_proj.weight", (p["kv_heads"] * hd, h)),
            (f"{pre}.self_attn.v_proj.weight", (p["kv_heads"] * hd, h)),
            (f"{pre}.self_attn.o_proj.weight", (h, p["heads"] * hd)),
            (f"{pre}.self_attn.q_norm.weight", (hd,)),
            (f"{pre}.self_attn.k_norm.weight", (hd,)),
            (f"{pre}.post_attention_layernorm.weight", (h,)),
            (f"{pre}.mlp.gate_proj.weight", (p["intermediate"], h)),
            (f"{pre}.mlp.up_proj.weight", (p["intermediate"], h)),
            (f"{pre}.mlp.down_proj.weight", (h, p["intermediate"])),
        ]
    out.append(("model.norm.weight", (h,)))
    return out


def seed_of(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "little") & ((1 << 63) - 1)


def randn(shape, seed: int, device: str):
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32)


def base_tensor(name: str, shape, device: str):
    x = randn(shape, seed_of("base", name), device)
    return 1 + 0.1 * x if len(shape) == 1 else 0.02 * x


def dense_delta(name: str, shape, tag: str, scale: float, device: str):
    return scale * (0.1 if len(shape) == 1 else 0.02) * randn(shape, seed_of(tag, name), device)


def twin_tensor(name: str, shape, device: str):
    import torch

    t = base_tensor(name, shape, device)
    if len(shape) == 1:
        return t + 0.05 * randn(shape, seed_of("twin", name), device)
    u = randn((shape[0], 16), seed_of("twin-u", name), device)
    w = randn((16, shape[1]), seed_of("twin-w", name), device)
    structured = u @ w / 4.0  # entries of std 1
    return t + 0.02 * (0.2 * randn(shape, seed_of("twin", name), device) + 0.2 * structured).to(torch.float32)


def case_tensor(case: str, name: str, shape, device: str):
    import torch

    if case == "base":
        return base_tensor(name, shape, device).to(torch.bfloat16)
    if case == "finetune":
        return (base_tensor(name, shape, device) + dense_delta(name, shape, "ft", 0.05, device)).to(torch.bfloat16)
    if case == "lora-merged":
        t = base_tensor(name, shape, device)
        if any(p in name for p in PROJECTIONS):
            a = randn((16, shape[1]), seed_of("lora-a", name), device)
            b = randn((shape[0], 16), seed_of("lora-b", name), device)
            t = t + 0.02 * 0.08 * (b @ a) / 4.0
        return t.to(torch.bfloat16)
    if case in ("honest-highlr", "interp-ft", "graft", "lowrank", "permuted", "unrelated"):
        return special_tensor(case, name, shape, device).to(torch.bfloat16)
    twin = twin_tensor(name, shape, device).to(torch.bfloat16)
    if case == "twin":
        return twin
    if case == "twin-fp32":
        return twin.to(torch.float32)
    if case == "twin-finetune":
        return (twin.float() + dense_delta(name, shape, "twin-ft", 0.05, device)).to(torch.bfloat16)
    raise ValueError(case)


def honest_delta(name: str, shape, device: str):
    """An aggressive honest fine-tune's delta: dense, large, shrinking, 4% along the twin's own."""
    b = base_tensor(name, shape, device)
    twin_delta = twin_tensor(name, shape, device) - b
    shrink = 0.02 * b if len(shape) > 1 else 0.0
    return dense_delta(name, shape, "honest", 0.3, device) - shrink + 0.04 * twin_delta


LAYERS = {"qwen3-1.7b": 28, "qwen3-0.6b": 28, "tiny": 4}


def special_tensor(case: str, name: str, shape, device: str):
    import torch

    b = base_tensor(name, shape, device)
    if case == "unrelated":
        x = randn(shape, seed_of("unrelated", name), device)
        return 1 + 0.1 * x if len(shape) == 1 else 0.02 * x
    if case == "honest-highlr":
        return b + honest_delta(name, shape, device)
    twin = twin_tensor(name, shape, device)
    if case == "interp-ft":
        return b + 0.25 * (twin - b) + honest_delta(name, shape, device)
    if case == "graft":
        last = f"model.layers.{CURRENT['layers'] - 1}."
        return twin if name.startswith(last) else b + honest_delta(name, shape, device)
    if case == "lowrank":
        if len(shape) != 2:
            return b
        u, sv, vh = torch.linalg.svd(twin - b, full_matrices=False)
        return b + (u[:, :8] * sv[:8]) @ vh[:8]
    if case == "permuted":
        layer = name.split(".")[2] if name.startswith("model.layers.") else None
        if layer is None or ".mlp." not in name:
            return twin
        units = CURRENT["intermediate"]
        g = torch.Generator(device="cpu").manual_seed(seed_of("perm", layer) % (2**31))
        perm = torch.randperm(units, generator=g).to(device)
        return twin[:, perm] if "down_proj" in name else twin[perm]
    raise ValueError(case)


CURRENT: dict = {}

EXPECTED = {
    "base": "unchanged",
    "finetune": "finetuned-from-base",
    "lora-merged": "finetuned-from-base",
    "twin": "matches-reference",
    "twin-fp32": "matches-reference",
    "twin-finetune": "finetuned-from-reference",
    "honest-highlr": "finetuned-from-base",
    "interp-ft": "finetuned-from-reference",
    "graft": "finetuned-from-reference",
    "lowrank": "finetuned-from-reference",
    "permuted": "matches-reference",
    "unrelated": "unrelated",
}


def write_case(out: Path, case: str, shapes, shard_bytes: int, device: str) -> int:
    """Plan the shards from the shapes, then generate and save one shard at a time."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    width = 4 if case.endswith("fp32") else 2
    plan: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes:
        nbytes = width * math.prod(shape)
        if plan[-1] and size + nbytes > shard_bytes:
            plan.append([])
            size = 0
        plan[-1].append((name, shape))
        size += nbytes
    total, weight_map = 0, {}
    for i, part in enumerate(plan):
        fname = f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors"
        shard = {name: case_tensor(case, name, shape, device).cpu().contiguous() for name, shape in part}
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
        del shard
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "tie_word_embeddings": True}
    (out / "config.json").write_text(json.dumps(config))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-1.7b")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    ap.add_argument("--device", default=None, help="where to generate (default: cuda when available)")
    ap.add_argument("--cases", default=",".join(EXPECTED), help="comma-separated subset of the cases")
    args = ap.parse_args()

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(args.out)
    shapes = tensor_shapes(PRESETS[args.preset])
    CURRENT.update(PRESETS[args.preset])
    report = {"preset": args.preset, "device": device, "reference": "twin", "cases": {}, "bytes": {}}
    started = time.time()
    cases = [c for c in args.cases.split(",") if c]
    for case in cases:
        t0 = time.time()
        total = write_case(out / case, case, shapes, int(args.shard_gb * 1e9), device)
        report["cases"][case] = EXPECTED[case]
        report["bytes"][case] = total
        print(json.dumps({"case": case, "bytes": total, "seconds": round(time.time() - t0, 1)}), flush=True)
    report["seconds"] = round(time.time() - started, 1)
    (out / "expected.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
