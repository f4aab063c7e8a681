#!/usr/bin/env python3
"""Build a tiny causal LM checkpoint (Qwen3 or Llama architecture) with a real, freshly trained tokenizer.

The result is a normal Hugging Face model directory (config.json, generation_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json) that transformers and ptb's hf engine load
like any downloaded checkpoint. Everything is generated on the spot and deterministic for a given
--seed, so tests and demos need no network and no downloaded weights.

  python make_tiny_model.py OUT_DIR [--arch qwen3|llama] [--seed 0]
  python make_tiny_model.py OUT_DIR --synthetic-arith 4000 --train-steps 600   # toy arithmetic, ~2/3 right
  python make_tiny_model.py OUT_DIR --preset qwen3-1.7b --device cuda          # full-size shape, random weights

Prints one JSON line with what it built.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Plain added tokens (not "special"): they survive decoding with skip_special_tokens, as in Qwen3,
# so a tool-call parser still sees them in the text.
MARKUP_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>"]
TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "tiny_chatml.jinja"

# Shapes of real checkpoints, for throughput work with random weights.
PRESETS = {
    "qwen3-1.7b": dict(
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        max_position_embeddings=40960,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    ),
}

NAMES = ["Ava", "Ben", "Cleo", "Dan", "Eli", "Fay", "Gus", "Hana", "Ivan", "June", "Kai", "Lena", "Milo", "Nora"]
ITEMS = ["apples", "books", "coins", "pencils", "stickers", "marbles", "cookies", "shells", "cards", "stamps"]
WORDS = (
    "the a of to and in is it that for on with as was at by this be from or have an they which one you "
    "were her all she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such "
    "like our over man me even most made after also did many before must through back years where much "
    "your way well down should because each just those people how too little state good very make world "
    "still own see men work long get here between both life being under never day same another know while "
    "last might us great old year off come since against go came right used take three answer question "
    "model data train test result number total value function return print def class import"
).split()


# ---------------------------------------------------------------- synthetic text


def arithmetic_problem(rng: random.Random) -> tuple[str, str, int]:
    """One single-step word problem: (question, worked answer ending in 'ANSWER: n', n)."""
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.choice(["add", "sub", "mul"])
    if kind == "add":
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        q = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        return q, f"{a} + {b} = {a + b}\nANSWER: {a + b}", a + b
    if kind == "sub":
        a = rng.randint(5, 30)
        b = rng.randint(1, a - 1)
        q = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        return q, f"{a} - {b} = {a - b}\nANSWER: {a - b}", a - b
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    q = f"{name} buys {a} boxes with {b} {item} in each box. How many {item} does {name} buy?"
    return q, f"{a} * {b} = {a * b}\nANSWER: {a * b}", a * b


def pseudo_words(rng: random.Random, count: int) -> list[str]:
    """Pronounceable made-up words, so the BPE vocabulary fills up with varied merges."""
    onsets, vowels, codas = "b c d f g h j k l m n p r s t v w z br ch cl st tr sh th".split(), "aeiou", ["", "n", "r", "s", "t", "ng"]
    return ["".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 3))) + rng.choice(codas) for _ in range(count)]


def corpus(rng: random.Random, lines: int) -> list[str]:
    """Text for tokenizer training: prose, numbers, arithmetic, JSON tool calls, code and chat markup."""
    vocabulary = WORDS + pseudo_words(rng, 3000)
    out: list[str] = []
    for i in range(lines):
        kind = i % 6
        if kind == 0:
            out.append(" ".join(rng.choice(vocabulary) for _ in range(rng.randint(5, 25))).capitalize() + ".")
        elif kind == 1:
            q, a, _ = arithmetic_problem(rng)
            out.append(f"{q}\n{a}")
        elif kind == 2:
            args = {rng.choice(WORDS): rng.randint(0, 999) for _ in range(rng.randint(1, 3))}
            call = json.dumps({"name": f"get_{rng.choice(WORDS)}", "arguments": args})
            out.append(f"<tool_call>{call}</tool_call>")
        elif kind == 3:
            fn, var = rng.choice(WORDS), rng.choice(WORDS)
            out.append(f"def {fn}_{var}({var}):\n    return {var} + {rng.randint(0, 99)}\n")
        elif kind == 4:
            role = rng.choice(["system", "user", "assistant", "tool"])
            out.append(f"<|im_start|>{role}\n{rng.choice(vocabulary)}?<|im_end|>\n<|im_start|>assistant\n")
        else:
            out.append(f"<think>{' '.join(rng.choice(WORDS) for _ in range(6))}</think> {rng.random():.4f}")
    return out


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(rng: random.Random, vocab_size: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Digits one by one (as Qwen's tokenizer does) keeps arithmetic learnable for a tiny model.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS + MARKUP_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(rng, 6000), trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=1 << 30,
    )
    fast.chat_template = TEMPLATE_PATH.read_text()
    return fast


# ---------------------------------------------------------------- model


def build_config(args, tokenizer):
    from transformers import LlamaConfig, Qwen3Config

    dims = dict(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size or args.hidden_size * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        head_dim=args.hidden_size // args.heads,
        vocab_size=args.vocab_size or (math.ceil(len(tokenizer) / 64) * 64),
        max_position_embeddings=args.max_position_embeddings,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    )
    if args.preset:
        dims.update(PRESETS[args.preset])
    ids = dict(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    if args.arch == "llama":
        return LlamaConfig(**dims, **ids, rms_norm_eps=1e-6)
    return Qwen3Config(**dims, **ids, rms_norm_eps=1e-6)


def generation_config(tokenizer):
    from transformers import GenerationConfig

    # Sampling defaults in the style of an instruct checkpoint; vLLM and ptb's hf engine read them.
    return GenerationConfig(
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    )


def load_pairs(path: str) -> list[tuple[list[dict], str]]:
    """Chat pairs from JSONL: {"messages": [..., {"role": "assistant", ...}]} or {"prompt", "completion"}."""
    pairs = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "messages" in row:
            msgs = row["messages"]
            if not msgs or msgs[-1]["role"] != "assistant":
                raise SystemExit(f"{path}: each 'messages' list must end with an assistant turn")
            pairs.append((msgs[:-1], msgs[-1]["content"]))
        else:
            pairs.append(([{"role": "user", "content": row["prompt"]}], row["completion"]))
    return pairs


def encode_pair(tokenizer, prompt_msgs: list[dict], answer: str) -> tuple[list[int], list[int]]:
    prompt = tokenizer.apply_chat_template(prompt_msgs, add_generation_prompt=True, tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    # Loss only on the answer (labels -100 on the prompt).
    return p_ids + a_ids, [-100] * len(p_ids) + a_ids


def train(model, tokenizer, pairs, steps: int, batch_size: int, lr: float, seed: int) -> float:
    import torch

    examples = [encode_pair(tokenizer, m, a) for m, a in pairs]
    gen = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / steps))
    pad = tokenizer.pad_token_id
    model.train()
    loss_value = float("nan")
    for _ in range(steps):
        batch = [examples[gen.randrange(len(examples))] for _ in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        loss_value = float(loss)
    model.eval()
    return loss_value


def greedy_accuracy(model, tokenizer, problems: list[tuple[str, str, int]], prompt_template: str) -> float:
    import torch

    correct = 0
    tokenizer.padding_side = "left"
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt_template.format(question=q)}], add_generation_prompt=True, tokenize=False
        )
        for q, _, _ in problems
    ]
    enc = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    for (_, _, n), row in zip(problems, out[:, enc["input_ids"].shape[1] :]):
        text = tokenizer.decode(row, skip_special_tokens=True)
        correct += f"ANSWER: {n}" in text
    return correct / max(1, len(problems))


def write_compat_fields(out: Path) -> None:
    """Let transformers 4.x (vLLM 0.11's) read what transformers 5 saved: a known tokenizer class,
    the chat template inside tokenizer_config.json, and rope_theta at the top of config.json."""
    tok_cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text())
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_cfg["chat_template"] = TEMPLATE_PATH.read_text()
    tok_cfg_path.write_text(json.dumps(tok_cfg, indent=2) + "\n")
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    rope = cfg.get("rope_parameters") or {}
    if "rope_theta" not in cfg and "rope_theta" in rope:
        cfg["rope_theta"] = rope["rope_theta"]
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output directory (created or overwritten)")
    ap.add_argument("--arch", choices=["qwen3", "llama"], default="qwen3")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="use a real checkpoint's shape (random weights)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-vocab", type=int, default=2048, help="BPE vocabulary size to train")
    ap.add_argument("--vocab-size", type=int, help="model vocabulary (default: tokenizer size rounded up to 64)")
    ap.add_argument("--hidden-size", type=int, default=64)
    ap.add_argument("--intermediate-size", type=int)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--max-position-embeddings", type=int, default=2048)
    ap.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ap.add_argument("--device", default="cpu", help="where to initialise (and train) the weights")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    ap.add_argument("--train-data", help="JSONL chat pairs to fine-tune on")
    ap.add_argument("--synthetic-arith", type=int, default=0, help="add N generated arithmetic word problems")
    ap.add_argument("--arith-prompt", default="{question}", help="user message around a problem ({question})")
    ap.add_argument("--arith-eval-out", help="write 200 freshly drawn problems here in GSM8K's schema (question, answer)")
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    started = time.time()
    if args.device == "cpu":
        # A model this small trains fastest on one thread; more threads spin against each other on busy machines.
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = train_tokenizer(rng, args.tokenizer_vocab)
    config = build_config(args, tokenizer)
    dtype = getattr(torch, args.dtype)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32 if args.train_steps else dtype)

    pairs: list[tuple[list[dict], str]] = []
    if args.train_data:
        pairs += load_pairs(args.train_data)
    arith_rng = random.Random(args.seed + 1)
    for _ in range(args.synthetic_arith):
        q, a, _ = arithmetic_problem(arith_rng)
        pairs.append(([{"role": "user", "content": args.arith_prompt.format(question=q)}], a))
    fresh = [arithmetic_problem(random.Random(args.seed + 2 + i)) for i in range(200)]  # drawn apart from training; small number space, so sums repeat

    report: dict = {"out": str(Path(args.out).resolve()), "arch": args.arch, "vocab": len(tokenizer)}
    if args.train_steps:
        if not pairs:
            raise SystemExit("--train-steps needs --train-data or --synthetic-arith")
        report["final_loss"] = round(train(model, tokenizer, pairs, args.train_steps, args.batch_size, args.lr, args.seed), 4)
        if args.synthetic_arith:
            report["arith_accuracy"] = greedy_accuracy(model, tokenizer, fresh[:100], args.arith_prompt)
        model = model.to(dtype)
    if args.arith_eval_out:
        with open(args.arith_eval_out, "w") as f:
            for q, a, n in fresh:
                steps = a.split("\nANSWER:")[0]
                f.write(json.dumps({"question": q, "answer": f"{steps}\n#### {n}"}) + "\n")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.config.dtype = args.dtype
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    generation_config(tokenizer).save_pretrained(out)
    write_compat_fields(out)
    report["parameters"] = sum(p.numel() for p in model.parameters())
    report["seconds"] = round(time.time() - started, 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
