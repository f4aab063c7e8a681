#!/usr/bin/env python3
"""Build tiny Qwen3-shaped checkpoints whose lineage is known, for testing `ptb provenance`.

  python make_provenance_fixtures.py OUT_DIR [--seed 0]

Writes one directory per case under OUT_DIR (config.json + safetensors, some sharded with an
index) and prints one JSON line: {"cases": {name: {"verdict": ..., "reference": ...}}, ...}.

  base            random Qwen3 weights (bf16, 2 shards + index); norms perturbed so none is all-ones
  base-fp32       the base re-saved as fp32 in one file                     -> unchanged
  finetune        the base after a few Adam steps on random tokens (3 shards) -> finetuned-from-base
  lora            the base plus merged rank-8 LoRA deltas on every projection -> finetuned-from-base
  twin            the "instruct twin": base plus a large structured delta     (the reference)
  twin-renamed    the twin, one key renamed, lm_head stored untied, config edited -> matches-reference
  twin-fp32       the twin re-saved as fp32                                   -> matches-reference
  twin-fp16       the twin re-saved as fp16                                   -> matches-reference
  twin-finetune   the twin after a few Adam steps                             -> finetuned-from-reference
  unrelated       another random initialisation                               -> unrelated
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CONFIG = dict(
    vocab_size=512,
    hidden_size=64,
    intermediate_size=192,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def new_model(seed: int):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(**CONFIG)).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:  # RMSNorm weights start at exactly 1.0: make them distinguishable
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def state(model) -> dict:
    """Unique tensors (tied lm_head left out, as save_pretrained does), contiguous fp32 copies."""
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    sd.pop("lm_head.weight", None)
    return sd


def adam_steps(model, steps: int, seed: int, lr: float = 1e-3):
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        ids = torch.randint(0, CONFIG["vocab_size"], (8, 32), generator=gen)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model


def save(out: Path, tensors: dict, dtype, shards: int = 1, config_edit: dict | None = None) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    cast = {k: v.to(dtype).contiguous() for k, v in tensors.items()}
    names = list(cast)
    if shards == 1:
        save_file(cast, str(out / "model.safetensors"), metadata={"format": "pt"})
    else:
        weight_map, total = {}, 0
        per = -(-len(names) // shards)
        for i in range(shards):
            part = names[i * per : (i + 1) * per]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: cast[k] for k in part}, str(out / fname), metadata={"format": "pt"})
            for k in part:
                weight_map[k] = fname
                total += cast[k].numel() * cast[k].element_size()
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", **CONFIG,
              "torch_dtype": str(dtype).replace("torch.", "")}
    config.update(config_edit or {})
    (out / "config.json").write_text(json.dumps(config, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    started = time.time()
    out = Path(args.out)
    bf16, fp16, fp32 = torch.bfloat16, torch.float16, torch.float32

    base_model = new_model(args.seed)
    # Round through bf16 first: every case starts from exactly the weights the base checkpoint holds.
    with torch.no_grad():
        for p in base_model.parameters():
            p.copy_(p.to(bf16).float())
    base = state(base_model)
    save(out / "base", base, bf16, shards=2)
    save(out / "base-fp32", base, fp32)

    ft = new_model(args.seed)
    ft.load_state_dict(base, strict=False)
    save(out / "finetune", state(adam_steps(ft, 3, args.seed + 10)), bf16, shards=3)

    gen = torch.Generator().manual_seed(args.seed + 20)
    lora = {}
    for k, v in base.items():
        if any(p in k for p in PROJECTIONS):
            rank = 8
            a = torch.randn(rank, v.shape[1], generator=gen)
            b = torch.randn(v.shape[0], rank, generator=gen)
            delta = b @ a
            lora[k] = v + delta * (0.08 * v.std() / delta.std())
        else:
            lora[k] = v.clone()
    save(out / "lora", lora, bf16)

    # The twin: every tensor moved by a dense part and a low-rank part, ~0.3 of its own scale.
    twin = {}
    for k, v in base.items():
        noise = torch.randn(v.shape, generator=gen)
        if v.dim() == 2:
            u = torch.randn(v.shape[0], 16, generator=gen)
            w = torch.randn(16, v.shape[1], generator=gen)
            structured = u @ w
            delta = 0.2 * v.std() * noise + 0.2 * v.std() * structured / structured.std()
        else:
            delta = 0.05 * noise
        twin[k] = (v + delta).to(bf16).float()
    save(out / "twin", twin, bf16, shards=2)
    save(out / "twin-fp32", twin, fp32)
    save(out / "twin-fp16", twin, fp16, shards=2)
    renamed = {("model.final_norm.weight" if k == "model.norm.weight" else k): v for k, v in twin.items()}
    renamed["lm_head.weight"] = twin["model.embed_tokens.weight"].clone()
    save(out / "twin-renamed", renamed, bf16,
         config_edit={"_name_or_path": "my-own-model", "tie_word_embeddings": False, "architectures": ["MyModel"]})

    tft = new_model(args.seed)
    tft.load_state_dict(twin, strict=False)
    save(out / "twin-finetune", state(adam_steps(tft, 3, args.seed + 30)), bf16)

    save(out / "unrelated", state(new_model(args.seed + 99)), bf16)

    cases = {
        "base": {"verdict": "unchanged", "reference": None},
        "base-fp32": {"verdict": "unchanged", "reference": None},
        "finetune": {"verdict": "finetuned-from-base", "reference": None},
        "lora": {"verdict": "finetuned-from-base", "reference": None},
        "twin": {"verdict": "matches-reference", "reference": "twin"},
        "twin-renamed": {"verdict": "matches-reference", "reference": "twin"},
        "twin-fp32": {"verdict": "matches-reference", "reference": "twin"},
        "twin-fp16": {"verdict": "matches-reference", "reference": "twin"},
        "twin-finetune": {"verdict": "finetuned-from-reference", "reference": "twin"},
        "unrelated": {"verdict": "unrelated", "reference": None},
    }
    print(json.dumps({"out": str(out.resolve()), "cases": cases, "seconds": round(time.time() - started, 2)}))


if __name__ == "__main__":
    main()
