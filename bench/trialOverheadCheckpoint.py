#!/usr/bin/env python3
"""A full-size base checkpoint of random weights for bench/trialOverhead.ts (torch + safetensors only).

  python bench/trialOverheadCheckpoint.py OUT_DIR [--preset qwen3-1.7b] [--shard-gb 2]

Qwen3 tensor names and shapes with the untied output head the published 1.7B checkpoint ships
(about 4.1 GB in bf16), random bf16 values (std 0.02 matrices, norms near 1), sharded with
model.safetensors.index.json, plus a complete config.json and generation_config.json. Tokenizer
files are copied in by the caller. Prints one JSON line: bytes, tensors, seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

PRESETS = {
    # hidden, intermediate, layers, heads, kv heads, head dim, vocab, untied head
    "qwen3-1.7b": (2048, 6144, 28, 16, 8, 128, 151936, True),
    "qwen3-0.6b": (1024, 3072, 28, 16, 8, 128, 151936, False),
}


def shapes(preset: str) -> list[tuple[str, tuple[int, ...]]]:
    h, inter, layers, heads, kv, hd, vocab, untied = PRESETS[preset]
    out = [("model.embed_tokens.weight", (vocab, h))]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.self_attn.q_proj.weight", (heads * hd, h)),
            (f"{p}.self_attn.k_proj.weight", (kv * hd, h)),
            (f"{p}.self_attn.v_proj.weight", (kv * hd, h)),
            (f"{p}.self_attn.o_proj.weight", (h, heads * hd)),
            (f"{p}.self_attn.q_norm.weight", (hd,)),
            (f"{p}.self_attn.k_norm.weight", (hd,)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.mlp.gate_proj.weight", (inter, h)),
            (f"{p}.mlp.up_proj.weight", (inter, h)),
            (f"{p}.mlp.down_proj.weight", (h, inter)),
        ]
    out.append(("model.norm.weight", (h,)))
    if untied:
        out.append(("lm_head.weight", (vocab, h)))
    return out


def config(preset: str) -> dict:
    h, inter, layers, heads, kv, hd, vocab, untied = PRESETS[preset]
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "head_dim": hd,
        "hidden_act": "silu",
        "hidden_size": h,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 32768,
        "max_window_layers": layers,
        "model_type": "qwen3",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": not untied,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="qwen3-1.7b")
    ap.add_argument("--shard-gb", type=float, default=2.0)
    args = ap.parse_args()

    import torch
    from safetensors.torch import save_file

    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    plan: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in shapes(args.preset):
        nbytes = 2 * math.prod(shape)
        if plan[-1] and size + nbytes > args.shard_gb * 1e9:
            plan.append([])
            size = 0
        plan[-1].append((name, shape))
        size += nbytes
    total, weight_map = 0, {}
    for i, part in enumerate(plan):
        fname = f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors"
        shard = {}
        for name, shape in part:
            x = torch.randn(shape, dtype=torch.bfloat16)
            shard[name] = (x.mul_(0.1).add_(1) if len(shape) == 1 else x.mul_(0.02)).contiguous()
        save_file(shard, str(out / fname), metadata={"format": "pt"})
        for name, t in shard.items():
            weight_map[name] = fname
            total += t.numel() * t.element_size()
        del shard
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    (out / "config.json").write_text(json.dumps(config(args.preset), indent=2))
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 151643, "eos_token_id": 151643, "max_new_tokens": 2048}, indent=2)
    )
    print(json.dumps({"bytes": total, "tensors": len(weight_map), "seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()
