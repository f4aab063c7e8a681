#!/usr/bin/env python3
"""Log-likelihoods of benchmark items under two checkpoints (ptb's likelihood probe).

Reads one JSON object (from the file named by --request, else stdin):
  {"models": {"base": DIR, "final": DIR}, "tokenizer": DIR, "template": JINJA or null,
   "device": "auto"|"cpu"|"cuda", "threads": N, "batch_tokens": N,
   "items": [{"id": str, "messages": [...], "question": str, "answer": str or null}]}
and prints one JSON object: {"items": [{"id", "question": {"n", "base", "final"}, "answer": {...}}],
"models": {...}, "device", "seconds"} (to the file named by --out, else stdout); sums of per-token log-probabilities (natural log) of the
question's tokens (inside the rendered prompt) and of the answer's tokens (after the prompt).

Both checkpoints are read with the same tokenizer and chat template (the harness's, never the
submission's), so the two models score the very same token sequences. The checkpoints are
untrusted data: safetensors only, no remote code, no network; ptb runs this program inside a
sandbox that sees nothing but the interpreter, this file and the two model folders.
"""

from __future__ import annotations

import json
import sys
import time


def log(msg: str) -> None:
    print(f"[probe] {msg}", file=sys.stderr, flush=True)


def encode_items(tokenizer, template, items, max_len):
    """Token ids of prompt+answer per item, with the positions of question and answer tokens."""
    encoded = []
    for item in items:
        render_kwargs = {"tokenize": False, "add_generation_prompt": True}
        if template is not None:
            render_kwargs["chat_template"] = template
        prompt = tokenizer.apply_chat_template(item["messages"], **render_kwargs)
        answer = item.get("answer") or ""
        text = prompt + answer
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        q_start = prompt.rfind(item["question"]) if item.get("question") else -1
        q_end = q_start + len(item["question"]) if q_start >= 0 else -1
        question_pos, answer_pos = [], []
        for i, (start, end) in enumerate(offsets):
            if i == 0:
                continue  # the first token has no context to be predicted from
            if start >= len(prompt) and answer:
                answer_pos.append(i)
            elif q_start >= 0 and start >= q_start and end <= q_end and end > start:
                question_pos.append(i)
        if len(ids) > max_len:
            ids = ids[:max_len]
            question_pos = [p for p in question_pos if p < max_len]
            answer_pos = [p for p in answer_pos if p < max_len]
        encoded.append({"ids": ids, "question": question_pos, "answer": answer_pos})
    return encoded


def load_model(path, device, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
    )
    model.to(device)
    model.eval()
    torch.set_grad_enabled(False)
    return model


def token_logprobs(model, batch_ids, attention, positions, targets):
    """Log-probabilities of `targets` at `positions` (flat (row, col) index lists)."""
    import torch

    rows, cols = positions
    inner = getattr(model, "model", None)
    head = model.get_output_embeddings()
    plain_head = (
        inner is not None
        and head is not None
        and not getattr(model.config, "final_logit_softcapping", None)
        and getattr(model.config, "logit_scale", None) is None
    )
    if plain_head:
        hidden = inner(input_ids=batch_ids, attention_mask=attention).last_hidden_state
        picked = hidden[rows, cols - 1]
        logits = head(picked).float()
    else:
        logits = model(input_ids=batch_ids, attention_mask=attention).logits[rows, cols - 1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]


def score(model, encoded, device, batch_tokens):
    """Per item: sums of log-probabilities over its question and answer positions."""
    import torch

    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["ids"]))
    sums = [{"question": 0.0, "answer": 0.0} for _ in encoded]
    start = 0
    while start < len(order):
        # Lengths ascend, so the last item of a batch sets its padded width.
        end = start + 1
        while end < len(order) and (end - start + 1) * len(encoded[order[end]]["ids"]) <= batch_tokens:
            end += 1
        chunk = order[start:end]
        width = max(len(encoded[i]["ids"]) for i in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        rows, cols, kinds, owners = [], [], [], []
        for r, i in enumerate(chunk):
            seq = encoded[i]["ids"]
            ids[r, : len(seq)] = torch.tensor(seq)
            attention[r, : len(seq)] = 1
            for kind in ("question", "answer"):
                for p in encoded[i][kind]:
                    rows.append(r)
                    cols.append(p)
                    kinds.append(kind)
                    owners.append(i)
        if rows:
            ids_d, att_d = ids.to(device), attention.to(device)
            rows_t = torch.tensor(rows, device=device)
            cols_t = torch.tensor(cols, device=device)
            lp = token_logprobs(model, ids_d, att_d, (rows_t, cols_t), ids_d[rows_t, cols_t]).tolist()
            for value, kind, owner in zip(lp, kinds, owners):
                sums[owner][kind] += value
        start = end
    return sums


def main() -> None:
    started = time.time()
    args = sys.argv[1:]
    request_file = args[args.index("--request") + 1] if "--request" in args else None
    out_file = args[args.index("--out") + 1] if "--out" in args else None
    if request_file:
        with open(request_file, encoding="utf-8") as f:
            request = json.load(f)
    else:
        request = json.load(sys.stdin)
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(max(1, int(request.get("threads") or 1)))
    want = request.get("device") or "auto"
    device = "cuda" if want in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if want == "cuda" and device != "cuda":
        raise SystemExit("CUDA was asked for but is not available")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(request["tokenizer"], trust_remote_code=False, local_files_only=True)
    encoded = encode_items(tokenizer, request.get("template"), request["items"], int(request.get("max_len") or 4096))
    log(f"{len(encoded)} items, {sum(len(e['ids']) for e in encoded)} tokens, on {device}")
    results = {}
    timings = {}
    for name, path in request["models"].items():
        t0 = time.time()
        model = load_model(path, device, dtype)
        t1 = time.time()
        results[name] = score(model, encoded, device, int(request.get("batch_tokens") or 16384))
        timings[name] = {"load_s": round(t1 - t0, 3), "score_s": round(time.time() - t1, 3)}
        log(f"{name}: loaded in {t1 - t0:.1f} s, scored in {time.time() - t1:.1f} s")
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    out_items = []
    for i, item in enumerate(request["items"]):
        entry = {"id": item["id"]}
        for kind in ("question", "answer"):
            entry[kind] = {"n": len(encoded[i][kind]), **{name: results[name][i][kind] for name in results}}
        out_items.append(entry)
    result = {"items": out_items, "device": device, "timings": timings, "seconds": round(time.time() - started, 3)}
    if out_file:
        with open(out_file + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f)
        import os

        os.replace(out_file + ".tmp", out_file)
    else:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
