#!/usr/bin/env python3
"""Do the hf server's two decode loops pick the same tokens on a GPU? And where not, is it a tie?

Loads the model twice in one process (default loop: transformers' compiled generate(); ptb loop:
`--decode-loop ptb`), runs the same greedy batch through both, and for every row that differs finds
the first differing step and, with an eager teacher-forced forward over the default path's tokens,
the gap between the two candidate tokens' logits at that step. A gap at bf16 resolution means the
two compiled graphs merely round a near-tie differently.

  python3 bench/hfDecodeLoopAgreement.py MODEL_DIR [--rows 16] [--new-tokens 64] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
import ptb_hf_server as server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out")
    args = ap.parse_args()
    import torch

    t0 = time.time()
    default = server.Model(server.parse_args([args.model, "--kv-cache", "static"]))
    ptb = server.Model(server.parse_args([args.model, "--kv-cache", "static", "--decode-loop", "ptb"]))
    g = torch.Generator().manual_seed(0)
    vocab = min(default.model.config.vocab_size, 2048)
    prompts = [torch.randint(10, vocab, (120 + 8 * (i % 4),), generator=g).tolist() for i in range(args.rows)]
    params = [server.SamplingParams(max_tokens=args.new_tokens, temperature=0.0, ignore_eos=True)] * args.rows

    def run(m):
        jobs = [server.Job(p, q) for p, q in zip(prompts, params)]
        m.generate(jobs, args.rows)
        return [j.tokens for j in jobs]

    a, b = run(default), run(ptb)
    rows = []
    model = default.model
    for i, (x, y) in enumerate(zip(a, b)):
        t = next((k for k, (u, v) in enumerate(zip(x, y)) if u != v), None)
        if t is None:
            rows.append({"row": i, "identical": True})
            continue
        ids = torch.tensor([prompts[i] + x[:t]], device=default.device)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].float()
        top = torch.topk(logits, 2)
        rows.append({
            "row": i,
            "identical": False,
            "first_diff_step": t,
            "default_token": x[t],
            "ptb_token": y[t],
            "gap_default_vs_ptb": float(logits[x[t]] - logits[y[t]]),
            "top2_gap": float(top.values[0] - top.values[1]),
            "logit_scale": float(logits.abs().max()),
        })
    same = sum(r["identical"] for r in rows)
    report = {
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "rows": args.rows,
        "new_tokens": args.new_tokens,
        "identical_rows": same,
        "diverging": [r for r in rows if not r["identical"]],
        "seconds": round(time.time() - t0, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
