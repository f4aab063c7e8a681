#!/usr/bin/env python3
"""An OpenAI-compatible chat-completions server over Hugging Face transformers, for machines without vLLM.

It mirrors the parts of `vllm serve` that PostTrainBench's scores depend on:
  * the prompt is rendered with the chat template given by --chat-template (else the tokenizer's);
  * default sampling comes from the checkpoint's generation_config.json (vLLM's `--generation-config
    auto`); request fields override it;
  * a request whose prompt plus max_tokens exceeds the model's context is refused with HTTP 400;
  * with --enable-auto-tool-choice --tool-call-parser hermes, `<tool_call>{json}</tool_call>` in the
    output becomes OpenAI `tool_calls`.
Requests are grouped into batches by one scheduler thread (left padding, one set of sampling
parameters per batch; each row stops at EOS or at its own max_tokens). On CUDA the KV cache is
static (and the decode step is compiled by transformers), which is many times faster than the
default dynamic cache.

  python ptb_hf_server.py MODEL_DIR --port 8000 --api-key KEY [--chat-template FILE]
      [--enable-auto-tool-choice --tool-call-parser hermes] [--max-batch-size 64]

Endpoints: GET /health, GET /v1/models, POST /v1/chat/completions, GET /stats (batching counters).
Requests may also carry vLLM's `ignore_eos` and `chat_template_kwargs`. Knobs beyond vLLM's flags
(--kv-cache, --compile, --decode-loop, --sampler, --attention, --threads, --batch-wait-ms) are for measurements;
docs/performance.md has the numbers.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import queue
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ApiError(Exception):
    """An error answered to the client as an OpenAI-style JSON error body."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.status}}


# ---------------------------------------------------------------- pure helpers (unit-tested without a model)

TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", re.DOTALL)


def parse_hermes(text: str) -> tuple[str | None, list[dict]]:
    """vLLM's hermes parser: returns (content, tool_calls). Content is the text before the first
    <tool_call>; if any call is not valid JSON with a name, nothing is parsed and the text is kept."""
    if "<tool_call>" not in text:
        return text, []
    try:
        calls = []
        for closed, unclosed in TOOL_CALL_RE.findall(text):
            call = json.loads(closed if closed else unclosed)
            calls.append(
                {
                    "id": f"chatcmpl-tool-{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False),
                    },
                }
            )
    except (ValueError, KeyError, TypeError):
        return text, []
    content = text[: text.find("<tool_call>")]
    return (content if content else None), calls


# Config keys vLLM reads for the context length (it takes the smallest present).
CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)


def max_context_length(config: dict) -> int:
    """The model's context window as vLLM derives it from config.json (no --max-model-len)."""
    text_config = config.get("text_config") or config
    found = [int(text_config[k]) for k in CONTEXT_KEYS if isinstance(text_config.get(k), (int, float))]
    if not found:
        return 2048
    length = min(found)
    rope = text_config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type")
    if rope_type and rope_type not in ("su", "longrope", "llama3", "default", "mrope") and "factor" in rope:
        base = rope.get("original_max_position_embeddings", length) if rope_type == "yarn" else length
        length = int(base * rope["factor"])
    return length


# generation_config.json fields vLLM's `--generation-config auto` turns into default sampling.
SAMPLING_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_new_tokens": "max_tokens",
}


def default_sampling(generation_config: dict) -> dict:
    return {ours: generation_config[theirs] for theirs, ours in SAMPLING_FIELDS.items() if generation_config.get(theirs) is not None}


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False

    def batch_key(self) -> tuple:
        """Requests that may share one generate() call: everything but max_tokens and the seed (a seeded
        request samples from its own generator, as in vLLM, so seeds need not split a batch)."""
        return (self.temperature, self.top_p, self.top_k, self.min_p, self.repetition_penalty, self.ignore_eos)


def _number(body: dict, name: str, kind: type, low: float | None = None, high: float | None = None):
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and int(value) != value):
        raise ApiError(400, f"'{name}' must be {'an integer' if kind is int else 'a number'}", param=name)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ApiError(400, f"'{name}' is out of range: {value}", param=name)
    return kind(value)


def resolve_sampling(body: dict, defaults: dict, prompt_tokens: int, max_model_len: int) -> SamplingParams:
    """Request fields over generation_config defaults over vLLM's neutral defaults; context checks as vLLM."""
    if prompt_tokens >= max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
        )
    requested = _number(body, "max_completion_tokens", int, 1)
    name = "max_completion_tokens"
    if requested is None:
        requested, name = _number(body, "max_tokens", int, 1), "max_tokens"
    if requested is not None and prompt_tokens + requested > max_model_len:
        raise ApiError(
            400,
            f"'{name}' is too large: {requested}. This model's maximum context length is {max_model_len} tokens "
            f"and your request has {prompt_tokens} input tokens ({requested} > {max_model_len} - {prompt_tokens}).",
            param=name,
        )
    limits = [max_model_len - prompt_tokens, requested, defaults.get("max_tokens")]
    merged: dict[str, Any] = {"max_tokens": min(int(v) for v in limits if v is not None)}
    for key, kind, low, high in (
        ("temperature", float, 0, None),
        ("top_p", float, 1e-9, 1),
        ("top_k", int, -1, None),
        ("min_p", float, 0, 1),
        ("repetition_penalty", float, 1e-9, None),
    ):
        value = _number(body, key, kind, low, high)
        merged[key] = value if value is not None else defaults.get(key, getattr(SamplingParams, key))
    merged["top_k"] = max(0, int(merged["top_k"]))  # vLLM: -1 and 0 both mean "no top-k"
    merged["seed"] = _number(body, "seed", int)
    merged["ignore_eos"] = bool(body.get("ignore_eos", False))
    return SamplingParams(**merged)


def normalize_messages(messages: Any) -> list[dict]:
    """OpenAI messages as chat templates expect them: text parts joined, tool-call arguments as dicts."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    out = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m:
            raise ApiError(400, "each message needs a 'role'", param="messages")
        m = dict(m)
        if isinstance(m.get("content"), list):
            m["content"] = "\n".join(p.get("text", "") for p in m["content"] if isinstance(p, dict) and p.get("type") == "text")
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            if isinstance(fn.get("arguments"), str):
                try:
                    fn["arguments"] = json.loads(fn["arguments"])
                except ValueError:
                    pass
        out.append(m)
    return out


def bucket(n: int, cap: int) -> int:
    """Round a batch size up to a power of two (fewer distinct shapes to compile), at most cap."""
    return min(cap, 1 << max(0, n - 1).bit_length())


def round_up(n: int, step: int) -> int:
    return -(-n // step) * step


# ---------------------------------------------------------------- model


@dataclass
class Job:
    prompt_ids: list[int]
    params: SamplingParams
    done: threading.Event = field(default_factory=threading.Event)
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = "stop"
    error: BaseException | None = None


def top_k_top_p_processor(temperature: float, top_k: int, top_p: float):
    """Temperature, then top-k, then top-p among those k, as transformers' warpers and vLLM apply them,
    but without sorting the whole vocabulary: top-p only needs the k best tokens, already in order.
    Returns logits that are -inf outside the kept tokens (generate() then samples from their softmax)."""
    import torch
    from transformers import LogitsProcessor

    class TopKTopP(LogitsProcessor):
        def __call__(self, input_ids, scores):
            scores = scores / temperature
            k = min(top_k, scores.shape[-1])
            # A few spare places keep tokens tied with the k-th (bf16 logits tie often), as the reference does.
            values, index = scores.topk(min(k + 8, scores.shape[-1]), dim=-1)
            values = values.masked_fill(values < values[..., k - 1 : k], float("-inf"))
            if top_p < 1.0:
                probs = values.softmax(dim=-1)
                # Drop a token once the tokens ranked above it already hold top_p of the mass.
                values = values.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, float("-inf"))
            return torch.full_like(scores, float("-inf")).scatter_(-1, index, values)

    return TopKTopP()


def row_generators(jobs: list, device) -> list | None:
    """One torch.Generator per seeded request, seeded with its seed (vLLM gives every request that carries
    a seed its own generator); None for unseeded ones. None when no request of the batch has a seed."""
    import torch

    if all(j.params.seed is None for j in jobs):
        return None
    generators = []
    for job in jobs:
        if job.params.seed is None:
            generators.append(None)
        else:
            g = torch.Generator(device=device)
            g.manual_seed(job.params.seed)
            generators.append(g)
    return generators


def sample_rows(probs, generators: list | None):
    """One token per row of `probs`: rows with a generator draw from it, the others (and padding rows
    past the requests) from the global generator."""
    import torch

    tokens = torch.multinomial(probs, num_samples=1).squeeze(1)
    for i, g in enumerate(generators or []):
        if g is not None:
            tokens[i] = torch.multinomial(probs[i], num_samples=1, generator=g)[0]
    return tokens


def per_row_sampler(generators: list):
    """A last logits processor for generate() that samples each row with its own generator and leaves
    only that token: run with do_sample=False, greedy decoding then takes it."""
    import torch
    from transformers import LogitsProcessor

    class PerRowSampler(LogitsProcessor):
        def __call__(self, input_ids, scores):
            tokens = sample_rows(scores.float().softmax(dim=-1), generators)
            return torch.full_like(scores, float("-inf")).scatter_(-1, tokens[:, None], 0.0)

    return PerRowSampler()


GROUPED_ATTENTION = "ptb_grouped_decode"


def register_grouped_attention() -> None:
    """An attention implementation for decoding with grouped-query attention and a mask.

    transformers' sdpa path copies every key/value head `groups` times before each masked attention
    call (repeat_kv), so each decode step writes and reads the whole KV cache two extra times. Here a
    single-token step multiplies the grouped queries against the shared K and V directly, reading the
    cache once; prefill and anything unusual go to the sdpa implementation unchanged.
    """
    import torch
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    def grouped_decode(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
        groups = getattr(module, "num_key_value_groups", 1)
        unusual = any(kwargs.get(k) is not None for k in ("softcap", "s_aux", "position_bias"))
        if query.shape[2] != 1 or groups == 1 or attention_mask is None or unusual:
            return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
        batch, heads, _, dim = query.shape
        # Query head h uses key/value head h // groups (repeat_kv's layout): group the heads beside their K/V.
        q = query.view(batch, key.shape[1], groups, dim)
        scores = torch.matmul(q, key.transpose(-1, -2)).float() * (scaling if scaling is not None else dim**-0.5)
        mask = attention_mask.view(batch, 1, 1, -1)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        out = torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)
        return out.view(batch, heads, 1, dim).transpose(1, 2).contiguous(), None

    AttentionInterface.register(GROUPED_ATTENTION, grouped_decode)
    AttentionMaskInterface.register(GROUPED_ATTENTION, sdpa_mask)


def read_checkpoint_json(model: str, name: str) -> dict | None:
    """A JSON file of a local checkpoint folder or a Hugging Face repo (None when it has none)."""
    from transformers.utils import cached_file

    path = cached_file(model, name, _raise_exceptions_for_missing_entries=False)
    return json.loads(Path(path).read_text()) if path else None


class Model:
    """Tokenizer + weights + the one place generate() is called."""

    def __init__(self, args: argparse.Namespace):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
        self.tokenizer_lock = threading.Lock()
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
        if args.dtype == "auto":
            dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            dtype = getattr(torch, args.dtype)
        # transformers < 4.56 calls the argument torch_dtype
        dtype_arg = "dtype" if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 56) else "torch_dtype"
        extra = {}
        if args.attention == "grouped":
            register_grouped_attention()
            extra["attn_implementation"] = GROUPED_ATTENTION
        # A checkpoint saved as pytorch_model.bin (vLLM loads those too) is a pickle: load only tensors
        # from it, never objects (transformers' weights_only, said explicitly so no version's default
        # can run code from the agent's checkpoint; older versions ignore the keyword).
        extra["weights_only"] = True
        self.model = AutoModelForCausalLM.from_pretrained(
            args.model, trust_remote_code=args.trust_remote_code, **{dtype_arg: dtype}, **extra
        ).to(self.device)
        self.model.eval()
        if args.threads:
            torch.set_num_threads(args.threads)
        elif self.device.type == "cpu" and sum(p.numel() for p in self.model.parameters()) < 100_000_000:
            # Small models gain nothing from intra-op threads, and on a busy machine the threads spin
            # against each other (tiny-model training ran 19x slower with 2 threads than with 1).
            torch.set_num_threads(1)
        config = read_checkpoint_json(args.model, "config.json") or {}
        self.max_model_len = args.max_model_len or max_context_length(config)
        gen = read_checkpoint_json(args.model, "generation_config.json") if args.generation_config == "auto" else None
        gen = gen or {}
        self.sampling_defaults = default_sampling(gen)
        eos = gen.get("eos_token_id", config.get("eos_token_id"))
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        # generate() fills unset fields of a passed config from model.generation_config; keep that neutral
        # so only what this server resolves (checkpoint defaults + request) applies.
        self.model.generation_config = GenerationConfig()
        self.static_cache = self.device.type == "cuda" and args.kv_cache == "auto" or args.kv_cache == "static"
        self.compile = args.compile == "auto"
        self.fast_sampler = args.sampler == "fast"
        # ptb's decode loop (static cache only): see generate_ptb_loop.
        self.ptb_loop = self.static_cache and (
            args.decode_loop == "ptb" or (args.decode_loop == "auto" and self.device.type == "cuda")
        )
        self.check_every = max(1, args.stop_check_every)
        self.ptb_caches: dict[int, tuple[int, Any]] = {}  # batch size -> (length, StaticCache)
        self.ptb_longest_cache = 0
        forward_args = inspect.signature(type(self.model).forward).parameters
        self.ptb_cache_position = "cache_position" in forward_args  # transformers < 5 needs it
        self.ptb_logits_to_keep = "logits_to_keep" in forward_args
        layer_types = getattr(self.model.config.get_text_config(), "layer_types", None) or []
        if self.ptb_loop and any(t != "full_attention" for t in layer_types):
            self.ptb_loop = False  # the loop's one padding mask is not a sliding-window mask
            print("ptb-hf-server: --decode-loop ptb needs full attention in every layer; using generate()", flush=True)
        self.compiled_step = None
        if self.ptb_loop and self.compile and self.device.type == "cuda":
            self.compiled_step = torch.compile(self.decode_step, mode="reduce-overhead", dynamic=False)
        if self.compile and self.static_cache:
            # One compiled graph per batch-size bucket and cache length; the default limit (8) is too low.
            torch._dynamo.config.cache_size_limit = 64
        text = self.model.config.get_text_config()
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        self.kv_bytes_per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * torch.finfo(dtype).bits // 8
        self.kv_budget_tokens = math.inf
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
            spare = args.gpu_memory_utilization * total - torch.cuda.memory_allocated(self.device) - (2 << 30)
            self.kv_budget_tokens = max(0, int(spare // self.kv_bytes_per_token))
        if args.chat_template:
            tpl = Path(args.chat_template)
            self.chat_template = tpl.read_text() if tpl.is_file() else args.chat_template
        else:
            self.chat_template = None
        self.dtype = dtype

    def render(self, messages: list[dict], tools: list | None, kwargs: dict) -> list[int]:
        with self.tokenizer_lock:
            try:
                prompt = self.tokenizer.apply_chat_template(
                    messages,
                    tools=tools,
                    chat_template=self.chat_template,
                    add_generation_prompt=True,
                    tokenize=False,
                    **kwargs,
                )
            except Exception as err:  # template errors are the request's fault (or the template's)
                raise ApiError(400, f"chat template failed: {err}") from err
            return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def decode(self, tokens: list[int], skip_special: bool) -> str:
        with self.tokenizer_lock:
            return self.tokenizer.decode(tokens, skip_special_tokens=skip_special)

    def cache_shape(self, jobs: list[Job]) -> tuple[int, int]:
        """(prompt width, new-token budget) of a batch, rounded on the static path so shapes repeat."""
        width = max(len(j.prompt_ids) for j in jobs)
        new = max(j.params.max_tokens for j in jobs)
        if self.static_cache:
            width, new = round_up(width, 64), round_up(new, 128)
        return width, new

    def generate(self, jobs: list[Job], max_batch: int) -> None:
        if self.ptb_loop and self.ptb_loop_handles(jobs[0].params):
            try:
                self.generate_ptb_loop(jobs, max_batch)
                return
            except Exception as err:  # keep serving through generate(); the log says why
                import traceback

                traceback.print_exc()
                print(f"ptb-hf-server: ptb decode loop failed ({type(err).__name__}: {err}); using generate() from now on", flush=True)
                self.ptb_loop = False
        self.generate_hf(jobs, max_batch)

    def ptb_loop_handles(self, p: SamplingParams) -> bool:
        """ptb's loop samples greedily or with ptb's top-k/top-p; other settings go to generate()."""
        if p.repetition_penalty != 1.0 or p.min_p > 0:
            return False
        return p.temperature < 1e-5 or (self.fast_sampler and p.top_k > 0)

    def padded_batch(self, jobs: list[Job], max_batch: int):
        """Left-padded ids and mask (CPU tensors), per-row token limits and (width, new) of the cache."""
        torch = self.torch
        width, new = self.cache_shape(jobs)
        rows = [j.prompt_ids for j in jobs]
        limits = [j.params.max_tokens for j in jobs]
        if self.static_cache:  # dummy one-token rows pad the batch to a size that repeats
            fill = bucket(len(rows), max(max_batch, len(rows))) - len(rows)
            rows, limits = rows + [rows[0][-1:]] * fill, limits + [1] * fill
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        return ids, mask, limits, width, new

    def static_cache_for(self, batch: int, length: int):
        """The StaticCache for this batch size, reset; replaced by a longer one when too short. A new cache
        is as long as the longest one made so far (transformers likewise never shrinks its cache): the
        decode graph is compiled per (batch size, cache length), about 40 s on an H100 for each new pair.
        Least recently used caches are dropped when the KV budget would be exceeded."""
        from transformers import StaticCache

        kept = self.ptb_caches.pop(batch, None)
        if kept is not None and kept[0] >= length:
            kept[1].reset()
            self.ptb_caches[batch] = kept
            return kept
        self.ptb_longest_cache = length = max(length, self.ptb_longest_cache)
        while self.ptb_caches and sum(b * n for b, (n, _) in self.ptb_caches.items()) + batch * length > self.kv_budget_tokens:
            self.ptb_caches.pop(next(iter(self.ptb_caches)))
        try:
            cache = StaticCache(config=self.model.config, max_cache_len=length)
        except TypeError:  # transformers < 4.56 allocates up front
            cache = StaticCache(config=self.model.config, max_batch_size=batch, max_cache_len=length, device=self.device, dtype=self.dtype)
        self.ptb_caches[batch] = (length, cache)
        return self.ptb_caches[batch]

    def decode_step(self, input_ids, position_ids, attention_mask, cache, cache_position=None):
        """One token per row through the model with the static cache: float32 logits of that token."""
        kwargs = dict(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
        if cache_position is not None:
            kwargs["cache_position"] = cache_position
        return self.model(**kwargs).logits[:, -1, :].float()

    def generate_ptb_loop(self, jobs: list[Job], max_batch: int) -> None:
        """ptb's own decode loop for the static cache: an eager prefill, then one compiled single-token step
        per token (CUDA graphs), sampling on the device, and the stop bookkeeping kept on the device too;
        the host looks at it only every `check_every` steps, so it never waits for the GPU in between
        and launches the next steps while the current ones run. Tokens past a row's stop are discarded."""
        torch = self.torch
        p = jobs[0].params
        ids, mask, limits, width, new = self.padded_batch(jobs, max_batch)
        batch, dev = ids.shape[0], self.device
        steps = max(limits)
        ids, mask = ids.to(dev), mask.to(dev)
        lengths = mask.sum(-1, keepdim=True)
        sampler = top_k_top_p_processor(p.temperature, p.top_k, p.top_p) if p.temperature >= 1e-5 else None
        eos = torch.tensor(self.eos_ids if self.eos_ids and not p.ignore_eos else [-1], device=dev)
        limit = torch.tensor(limits, device=dev)
        generators = row_generators(jobs, dev) if sampler is not None else None

        def pick(logits):
            if sampler is None:
                return logits.argmax(dim=-1)
            return sample_rows(sampler(None, logits).softmax(dim=-1), generators)

        with torch.inference_mode():
            # Reset in place: inside inference mode, as it was made. It may be longer than width + new.
            length, cache = self.static_cache_for(batch, width + new)
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            prefill = dict(attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
            if self.ptb_cache_position:
                prefill["cache_position"] = torch.arange(width, device=dev)
            if self.ptb_logits_to_keep:
                prefill["logits_to_keep"] = 1
            token = pick(self.model(input_ids=ids, **prefill).logits[:, -1, :].float())
            out = torch.empty((batch, steps), dtype=torch.long, device=dev)
            out[:, 0] = token
            finished = torch.isin(token, eos) | (limit <= 1)
            # The step's inputs live in fixed buffers, updated in place: the decode graph reads them there.
            step_ids = token[:, None].clone()
            step_positions = lengths.clone()
            column = torch.full((1,), width, dtype=torch.long, device=dev)
            attend = torch.zeros((batch, 1, 1, length), dtype=torch.bool, device=dev)
            attend[:, 0, 0, :width] = mask.bool()
            attend.view(batch, length).index_fill_(1, column, True)
            cache_position = column.clone() if self.ptb_cache_position else None
            checks: list = []  # (event, pinned "some row unfinished" flag) of stop checks sent to the host
            done = 1
            for step in range(1, steps):
                if step % self.check_every == 0:
                    if dev.type != "cuda":
                        if bool(finished.all()):
                            break
                    else:
                        flag = torch.empty((), dtype=torch.bool, pin_memory=True)
                        flag.copy_(~finished.all(), non_blocking=True)
                        checks.append((torch.cuda.Event(), flag))
                        checks[-1][0].record()
                        # Read the check from two rounds ago: the GPU has the steps since then still queued,
                        # so waiting for it costs no idle time, and the host stays at most 2 rounds ahead.
                        if len(checks) > 2:
                            event, unfinished = checks.pop(0)
                            event.synchronize()
                            if not unfinished.item():
                                break
                if self.compiled_step is not None:
                    torch.compiler.cudagraph_mark_step_begin()
                    logits = self.compiled_step(step_ids, step_positions, attend, cache, cache_position)
                else:
                    logits = self.decode_step(step_ids, step_positions, attend, cache, cache_position)
                token = pick(logits)
                del logits
                out[:, step] = token
                finished |= torch.isin(token, eos) | (limit <= step + 1)
                done = step + 1
                step_ids.copy_(token[:, None])
                step_positions.add_(1)
                column.add_(1)
                attend.view(batch, length).index_fill_(1, column, True)
                if cache_position is not None:
                    cache_position.add_(1)
            self.finish(jobs, out[:, :done].tolist())

    def generate_hf(self, jobs: list[Job], max_batch: int) -> None:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        torch = self.torch
        p = jobs[0].params
        ids, mask, limits, width, new = self.padded_batch(jobs, max_batch)
        limit_tensor = torch.tensor(limits, device=self.device)

        class RowLimits(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return (input_ids.shape[1] - width) >= limit_tensor

        processors = []
        if p.temperature < 1e-5:
            sampling: dict[str, Any] = dict(do_sample=False)
        elif self.fast_sampler and p.top_k > 0 and p.min_p == 0:
            sampling = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0)  # no transformers warpers
            processors.append(top_k_top_p_processor(p.temperature, p.top_k, p.top_p))
        else:
            sampling = dict(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
            if p.min_p > 0:
                sampling["min_p"] = p.min_p
        if p.repetition_penalty != 1.0:
            sampling["repetition_penalty"] = p.repetition_penalty
        config = GenerationConfig(
            max_new_tokens=new,
            eos_token_id=None if p.ignore_eos else self.eos_ids,
            pad_token_id=self.pad_id,
            cache_implementation="static" if self.static_cache else None,
            disable_compile=not self.compile,
            **sampling,
        )
        generators = row_generators(jobs, self.device) if sampling.get("do_sample") else None
        if generators is not None:
            # Seeded requests: the warpers shape each row's distribution, then each row samples with its
            # own generator; generate() decodes greedily over the one token left.
            from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

            if not processors:
                processors.append(TemperatureLogitsWarper(p.temperature))
                if p.top_k > 0:
                    processors.append(TopKLogitsWarper(p.top_k))
                if p.top_p < 1.0:
                    processors.append(TopPLogitsWarper(p.top_p))
                if p.min_p > 0:
                    processors.append(MinPLogitsWarper(p.min_p))
            processors.append(per_row_sampler(generators))
            config = GenerationConfig(
                max_new_tokens=new,
                eos_token_id=None if p.ignore_eos else self.eos_ids,
                pad_token_id=self.pad_id,
                cache_implementation="static" if self.static_cache else None,
                disable_compile=not self.compile,
                do_sample=False,
                **({"repetition_penalty": p.repetition_penalty} if p.repetition_penalty != 1.0 else {}),
            )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([RowLimits()]),
                logits_processor=LogitsProcessorList(processors),
            )
        self.finish(jobs, out[:, width:].tolist())

    def finish(self, jobs: list[Job], produced: list[list[int]]) -> None:
        """Each row's tokens up to its first stop token or its own max_tokens (later tokens are discarded)."""
        eos = set(self.eos_ids)
        p = jobs[0].params
        for job, toks in zip(jobs, produced):
            toks = toks[: job.params.max_tokens]
            cut = next((i for i, t in enumerate(toks) if t in eos), None) if not p.ignore_eos else None
            if cut is not None:
                job.tokens, job.finish_reason = toks[: cut + 1], "stop"
            else:
                job.tokens, job.finish_reason = toks, "length" if len(toks) >= job.params.max_tokens else "stop"


# ---------------------------------------------------------------- batching


class Scheduler(threading.Thread):
    """Collects queued jobs into batches that share sampling parameters and fit the KV budget."""

    def __init__(self, model: Model, max_batch: int, wait_ms: float, window_ms: float):
        super().__init__(daemon=True, name="scheduler")
        self.model, self.max_batch, self.wait, self.window = model, max_batch, wait_ms / 1000, window_ms / 1000
        self.inbox: queue.Queue[Job] = queue.Queue()
        self.pending: list[Job] = []
        self.arriving_lock = threading.Lock()
        self.arriving_count = 0
        self.last_batch_size = 0
        self.stats = {"requests": 0, "batches": 0, "max_batch_size": 0, "generated_tokens": 0, "busy_seconds": 0.0}
        self.recent_batch_sizes: list[int] = []

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def arriving(self, delta: int) -> None:
        """Count requests being parsed and rendered: the scheduler waits for them before it starts a batch."""
        with self.arriving_lock:
            self.arriving_count += delta

    def _collect(self) -> None:
        if not self.pending:
            self.pending.append(self.inbox.get())
        # Gather a batch: wait while requests are still being rendered, while fewer are queued than the
        # last batch held (closed-loop clients come back together), or while arrivals keep coming
        # within one gap of each other; never longer than the window. A lone request waits one gap.
        deadline = time.monotonic() + self.window
        expected = min(self.max_batch, self.last_batch_size)
        while len(self.pending) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            expecting = self.arriving_count > 0 or len(self.pending) < expected
            try:
                self.pending.append(self.inbox.get(timeout=min(remaining, 0.005 if expecting else self.wait)))
            except queue.Empty:
                if not expecting:
                    break
        while True:
            try:
                self.pending.append(self.inbox.get_nowait())
            except queue.Empty:
                break

    def _next_batch(self) -> list[Job]:
        key = self.pending[0].params.batch_key()
        batch: list[Job] = []
        for job in self.pending:
            if job.params.batch_key() != key or len(batch) >= self.max_batch:
                continue
            width, new = self.model.cache_shape(batch + [job])
            if batch and bucket(len(batch) + 1, self.max_batch) * (width + new) > self.model.kv_budget_tokens:
                break
            batch.append(job)
        taken = {id(j) for j in batch}
        self.pending = [j for j in self.pending if id(j) not in taken]
        return batch

    def run(self) -> None:
        while True:
            self._collect()
            batch = self._next_batch()
            started = time.monotonic()
            try:
                self.model.generate(batch, self.max_batch)
            except BaseException as err:  # answer every waiting client, keep serving
                for job in batch:
                    job.error = err
            seconds = time.monotonic() - started
            new_tokens = sum(len(j.tokens) for j in batch)
            self.stats["requests"] += len(batch)
            self.stats["batches"] += 1
            self.stats["max_batch_size"] = max(self.stats["max_batch_size"], len(batch))
            self.stats["generated_tokens"] += new_tokens
            self.stats["busy_seconds"] = round(self.stats["busy_seconds"] + seconds, 3)
            self.recent_batch_sizes = (self.recent_batch_sizes + [len(batch)])[-200:]
            self.last_batch_size = len(batch)
            width, budget = self.model.cache_shape(batch)
            print(
                f"batch size={len(batch)} prompt_max={max(len(j.prompt_ids) for j in batch)} width={width} budget={budget} "
                f"new_tokens={new_tokens} seconds={seconds:.2f} tok/s={new_tokens / max(seconds, 1e-9):.0f}",
                flush=True,
            )
            for job in batch:
                job.done.set()


# ---------------------------------------------------------------- HTTP


class Server:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.model = Model(args)
        self.names = args.served_model_name or [args.model]
        self.scheduler = Scheduler(self.model, args.max_batch_size, args.batch_wait_ms, args.batch_window_ms)
        self.scheduler.start()
        if args.tool_call_parser not in (None, "hermes"):
            raise SystemExit(f"--tool-call-parser {args.tool_call_parser} is not supported (only hermes)")

    def models(self) -> dict:
        created = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": created, "owned_by": "ptb", "root": self.args.model, "max_model_len": self.model.max_model_len}
                for n in self.names
            ],
        }

    def chat(self, body: dict) -> dict:
        if body.get("stream"):
            raise ApiError(400, "streaming is not supported by ptb's hf engine", param="stream")
        if body.get("n", 1) != 1:
            raise ApiError(400, "only n=1 is supported", param="n")
        if body.get("model") is not None and body["model"] not in self.names:
            raise ApiError(404, f"The model `{body['model']}` does not exist.", kind="NotFoundError", param="model")
        tools = body.get("tools") or None
        choice = body.get("tool_choice") or ("auto" if tools else "none")
        if tools and choice == "auto" and not self.args.enable_auto_tool_choice:
            raise ApiError(400, '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set')
        if choice not in ("auto", "none"):
            raise ApiError(400, f"tool_choice {json.dumps(choice)} is not supported by ptb's hf engine", param="tool_choice")
        parse_tools = bool(tools) and choice == "auto"
        self.scheduler.arriving(+1)
        try:
            messages = normalize_messages(body.get("messages"))
            prompt_ids = self.model.render(messages, tools, body.get("chat_template_kwargs") or {})
            params = resolve_sampling(body, self.model.sampling_defaults, len(prompt_ids), self.model.max_model_len)
            job = Job(prompt_ids, params)
            self.scheduler.submit(job)
        finally:
            self.scheduler.arriving(-1)
        job.done.wait()
        if job.error is not None:
            raise ApiError(500, f"generation failed: {job.error}", kind="InternalServerError")
        tokens = job.tokens
        if tokens and tokens[-1] in self.model.eos_ids and job.finish_reason == "stop":
            tokens = tokens[:-1]  # the stop token is counted, not shown
        text = self.model.decode(tokens, skip_special=not parse_tools)
        content, calls = parse_hermes(text) if parse_tools else (text, [])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.names[0],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "tool_calls": calls, "reasoning_content": None},
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else job.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": len(job.prompt_ids),
                "completion_tokens": len(job.tokens),
                "total_tokens": len(job.prompt_ids) + len(job.tokens),
            },
        }

    def stats(self) -> dict:
        return {**self.scheduler.stats, "recent_batch_sizes": self.scheduler.recent_batch_sizes, "queued": self.scheduler.inbox.qsize()}


def make_handler(server: Server):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise at 64 concurrent
            return

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            key = server.args.api_key
            if not key or self.headers.get("Authorization", "") == f"Bearer {key}":
                return True
            self._send(401, {"error": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/health":
                self._send(200, None)
            elif path == "/stats":
                self._send(200, server.stats())
            elif path == "/v1/models":
                if self._authorized():
                    self._send(200, server.models())
            else:
                self._send(404, ApiError(404, f"no route {path}", "NotFoundError").body())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path.split("?")[0] != "/v1/chat/completions":
                self._send(404, ApiError(404, f"no route {self.path}", "NotFoundError").body())
                return
            if not self._authorized():
                return
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise ApiError(400, "request body must be a JSON object")
                self._send(200, server.chat(body))
            except ApiError as err:
                self._send(err.status, err.body())
            except ValueError as err:
                self._send(400, ApiError(400, f"invalid JSON: {err}").body())
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


class Listener(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # socketserver's default backlog (5) resets connections at 64 concurrent clients


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="ptb_hf_server", description="OpenAI-compatible server over transformers")
    ap.add_argument("model", help="local checkpoint directory")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
    ap.add_argument("--chat-template", help="Jinja file (or inline template) used instead of the tokenizer's")
    ap.add_argument("--enable-auto-tool-choice", action="store_true")
    ap.add_argument("--tool-call-parser", help="only 'hermes'")
    ap.add_argument("--served-model-name", nargs="+")
    ap.add_argument("--max-batch-size", type=int, default=64)
    ap.add_argument("--batch-wait-ms", type=float, default=5.0, help="gap between arrivals that still joins a batch")
    ap.add_argument("--batch-window-ms", type=float, default=250.0, help="longest time spent gathering one batch")
    ap.add_argument("--max-model-len", type=int)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--generation-config", default="auto", choices=["auto", "vllm"], help="vllm: ignore the checkpoint's")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--kv-cache", default="auto", choices=["auto", "static", "dynamic"], help="auto: static on CUDA")
    ap.add_argument("--compile", default="auto", choices=["auto", "off"], help="auto: transformers compiles static-cache decoding")
    ap.add_argument(
        "--attention", default="sdpa", choices=["sdpa", "grouped"], help="grouped: read the KV cache once per decode step (GQA models)"
    )
    ap.add_argument(
        "--decode-loop",
        default="auto",
        choices=["auto", "hf", "ptb"],
        help="ptb: ptb's own loop over a compiled single-token step (static cache), stop checks every few steps; "
        "hf: transformers' generate(); auto: ptb on CUDA, hf elsewhere",
    )
    ap.add_argument("--stop-check-every", type=int, default=8, help="ptb decode loop: steps between host-side stop checks")
    ap.add_argument("--sampler", default="fast", choices=["fast", "hf"], help="hf: transformers' own top-k/top-p warpers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: 1 for models under 100M parameters on CPU, else torch's default)")
    ap.add_argument("--trust-remote-code", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise SystemExit("--enable-auto-tool-choice needs --tool-call-parser hermes")
    started = time.monotonic()
    import torch

    torch.manual_seed(args.seed)
    try:
        server = Server(args)
    except Exception as err:  # one readable line for the engine's log tail, then the traceback
        print(f"ptb-hf-server: could not load the model {args.model}: {type(err).__name__}: {err}", flush=True)
        raise
    httpd = Listener((args.host, args.port), make_handler(server))
    m = server.model
    print(
        f"ptb-hf-server ready on http://{args.host}:{httpd.server_address[1]} model={args.model} device={m.device} "
        f"dtype={str(m.dtype).replace('torch.', '')} max_model_len={m.max_model_len} static_cache={m.static_cache} decode_loop={'ptb' if m.ptb_loop else 'hf'} "
        f"max_batch_size={args.max_batch_size} load_seconds={time.monotonic() - started:.1f}",
        flush=True,
    )
    httpd.serve_forever()


if __name__ == "__main__":
    main()
