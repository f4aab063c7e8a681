#!/usr/bin/env python3
"""How two tokenizers treat the benchmark's test prompts (ptb's submission check).

Reads one JSON object on stdin:
  {"base": DIR, "final": DIR, "template": JINJA or null,
   "items": [{"id": str, "messages": [{"role", "content"}, ...]}]}
and prints one JSON object:
  {"items": N,
   "encode": {"differs": [...], "same_text": [...]},      # the evaluation prompt, tokenized by each
   "own_template": {"base": bool, "final": bool, "differs": [...]},   # each model's own template(s)
   "seconds": float}

The evaluation prompt of an item is rendered once, with the harness's template (or, without one,
the base tokenizer's), so both tokenizers get the very same text; then each tokenizer encodes it
as an inference server does (the template carries the special tokens) and with its own special
tokens added. A tokenizer whose rules rewrite the text (a normalizer that appends answers, added
tokens that are not what they look like, a post-processor that injects tokens) gives different
ids, and its decoding shows the rewritten text. `differs` lists items whose decoded text changed,
`same_text` those whose ids changed but not their text (a different token split).

The folders are untrusted data: transformers' AutoTokenizer without remote code, no network; ptb
runs this program inside a sandbox that sees only the interpreter, this file and the two folders.
"""

from __future__ import annotations

import json
import sys
import time

EXAMPLES = 5


def log(msg: str) -> None:
    print(f"[tokenizer] {msg}", file=sys.stderr, flush=True)


def load(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=True)


def clip(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def first_difference(a: str, b: str) -> dict:
    i = 0
    while i < len(a) and i < len(b) and a[i] == b[i]:
        i += 1
    lo = max(0, i - 60)
    return {"at": i, "base": clip(a[lo : i + 200]), "final": clip(b[lo : i + 200])}


def render(tokenizer, template, messages):
    kwargs = {"tokenize": False, "add_generation_prompt": True}
    if template is not None:
        kwargs["chat_template"] = template
    return tokenizer.apply_chat_template(messages, **kwargs)


def main() -> None:
    started = time.time()
    request = json.load(sys.stdin)
    base = load(request["base"])
    final = load(request["final"])
    template = request.get("template")
    differs, same_text = [], []
    own = {"base": bool(getattr(base, "chat_template", None)), "final": bool(getattr(final, "chat_template", None)), "differs": []}
    for item in request["items"]:
        prompt = render(base, template, item["messages"])
        for special in (False, True):
            ids_base = base(prompt, add_special_tokens=special)["input_ids"]
            ids_final = final(prompt, add_special_tokens=special)["input_ids"]
            if ids_base == ids_final:
                continue
            text_base = base.decode(ids_base)
            text_final = final.decode(ids_final)
            entry = {"id": item["id"], "special_tokens": special, "base_tokens": len(ids_base), "final_tokens": len(ids_final)}
            if text_base != text_final:
                entry.update(first_difference(text_base, text_final))
                differs.append(entry)
            else:
                same_text.append(entry)
            break
        # Each model's own template (what a server uses when the harness passes none).
        if own["base"] and own["final"]:
            try:
                a, b = render(base, None, item["messages"]), render(final, None, item["messages"])
                if a != b:
                    own["differs"].append({"id": item["id"], **first_difference(a, b)})
            except Exception as err:  # a template that fails to render is a difference too
                own["differs"].append({"id": item["id"], "at": 0, "base": "", "final": f"render error: {err}"})
    out = {
        "items": len(request["items"]),
        "encode": {"differs": differs, "same_text": same_text},
        "own_template": {**own, "differs_count": len(own["differs"]), "differs": own["differs"][:EXAMPLES]},
        "seconds": round(time.time() - started, 3),
    }
    out["encode"]["differs_count"] = len(differs)
    out["encode"]["same_text_count"] = len(same_text)
    out["encode"]["differs"] = differs[:EXAMPLES]
    out["encode"]["same_text"] = same_text[:EXAMPLES]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
