#!/usr/bin/env python3
"""Build the selftest's "instruct twin" of a base model: every tensor moved far from the base.

  make_twin.py BASE_DIR OUT_DIR [--seed 1] [--name ORG/NAME]

The twin keeps the base's architecture, tokenizer and chat template (so it loads and evaluates like
the base) but each weight is the base's plus a large deterministic delta: a dense part and, for
matrices, a low-rank part, each about 0.2 of the tensor's own scale (norm vectors move by 0.05) —
the shape of a long post-training run. Prints one JSON line.
"""
import argparse
import json
import shutil
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("out")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--name", default="ptb-selftest/tiny-qwen3")
args = ap.parse_args()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

base, out = Path(args.base), Path(args.out)
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
for f in base.iterdir():
    if f.is_file() and not f.name.endswith(".safetensors") and f.name != "ptb-build.json":
        shutil.copy(f, out / f.name)

gen = torch.Generator().manual_seed(args.seed)
moved = 0
for shard in sorted(base.glob("*.safetensors")):
    tensors = load_file(str(shard))
    twin = {}
    for name in sorted(tensors):
        v = tensors[name]
        x = v.float()
        noise = torch.randn(x.shape, generator=gen)
        if x.dim() == 2:
            u = torch.randn(x.shape[0], 16, generator=gen)
            w = torch.randn(16, x.shape[1], generator=gen)
            structured = u @ w
            delta = 0.2 * x.std() * noise + 0.2 * x.std() * structured / structured.std()
        else:
            delta = 0.05 * noise
        twin[name] = (x + delta).to(v.dtype).contiguous()
        moved += 1
    save_file(twin, str(out / shard.name), metadata={"format": "pt"})

config = json.loads((out / "config.json").read_text())
config["_name_or_path"] = args.name
(out / "config.json").write_text(json.dumps(config, indent=2))
print(json.dumps({"twin": str(out), "tensors": moved, "name": args.name}))
