#!/usr/bin/env python3
"""Throughput of ptb's hf engine server (python/ptb_hf_server.py) on a GPU, in one run.

Builds a Qwen3-1.7B-shaped checkpoint with random weights (make_tiny_model.py --preset qwen3-1.7b),
then for each server variant starts the server, and with C closed-loop clients (C = 1, 2, 6, 64;
each client sends its next request when the last one returns) measures new tokens per second for
prompts of ~256 tokens and 256 new tokens (ignore_eos, the checkpoint's default sampling). Every
level gets one untimed warm-up round first (it pays for compilation of new shapes).

  python3 bench/hfEngineThroughput.py --out $OUT [--variants compiled-ptbloop,compiled,compiled-grouped,compiled-hf-sampler,static-eager,dynamic]

Writes results.json and one server log per variant under --out; prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"

# Server flags and levels of each variant. A level is a client count; a trailing "g" means greedy
# requests (temperature 0) instead of the checkpoint's sampling defaults.
VARIANTS = {
    "compiled": {"flags": ["--kv-cache", "static", "--compile", "auto"], "levels": "64,6,2,1,64g"},
    "compiled-hfloop": {"flags": ["--kv-cache", "static", "--compile", "auto", "--decode-loop", "hf"], "levels": "64,6,2,1"},
    "compiled-ptbloop": {"flags": ["--kv-cache", "static", "--compile", "auto", "--decode-loop", "ptb"], "levels": "64,64g,1,6,2"},
    "compiled-grouped": {"flags": ["--kv-cache", "static", "--compile", "auto", "--attention", "grouped"], "levels": "64,6,2,1"},
    "compiled-hf-sampler": {"flags": ["--kv-cache", "static", "--compile", "auto", "--sampler", "hf"], "levels": "64,1"},
    "static-eager": {"flags": ["--kv-cache", "static", "--compile", "off"], "levels": "64,6,2,1"},
    "dynamic": {"flags": ["--kv-cache", "dynamic", "--compile", "off"], "levels": "64,1", "new_tokens": 64},
}


def post(url: str, body: dict, timeout: float = 600) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as res:
        return json.loads(res.read() or b"{}")


class Server:
    def __init__(self, model: str, port: int, flags: list[str], log: Path):
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        cmd = [sys.executable, str(ROOT / "python" / "ptb_hf_server.py"), model, "--port", str(port), "--api-key", KEY, *flags]
        self.proc = subprocess.Popen(
            cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )

    def wait_healthy(self, timeout: float) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.base + "/health", timeout=2)
                return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError("server not healthy in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


WORDS = "alpha beta gamma delta apple river stone cloud green seven model train value answer number table".split()


def prompt_maker(base: str, target_tokens: int):
    """A function i -> messages whose rendered prompt is close to target_tokens (calibrated via usage)."""
    url = base + "/v1/chat/completions"

    def text(n_words: int, seed: int) -> str:
        rng = random.Random(seed)
        return " ".join(rng.choice(WORDS) for _ in range(n_words))

    def measure(n_words: int) -> int:
        return post(url, {"messages": [{"role": "user", "content": text(n_words, 0)}], "max_tokens": 1})["usage"]["prompt_tokens"]

    overhead = measure(1)
    # Start low: a long calibration prompt would grow the server's static cache for the whole run.
    n = max(1, (target_tokens - overhead) // 4)
    for _ in range(3):
        got = measure(n)
        n = max(1, round(n * (target_tokens - overhead) / max(1, got - overhead)))
    return (lambda i: [{"role": "user", "content": text(n, i + 1)}]), measure(n)


def run_level(base: str, messages, clients: int, per_client: int, new_tokens: int, seed0: int, extra: dict) -> dict:
    url = base + "/v1/chat/completions"
    before = get(base + "/stats")

    def client(c: int) -> list[tuple[int, float]]:
        out = []
        for r in range(per_client):
            started = time.monotonic()
            body = {"messages": messages(seed0 + c * 1000 + r), "max_tokens": new_tokens, "ignore_eos": True, **extra}
            reply = post(url, body)
            out.append((reply["usage"]["completion_tokens"], time.monotonic() - started))
        return out

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        results = [x for chunk in pool.map(client, range(clients)) for x in chunk]
    seconds = time.monotonic() - started
    after = get(base + "/stats")
    tokens = sum(t for t, _ in results)
    sizes = after["recent_batch_sizes"][len(before["recent_batch_sizes"]) :] if after["batches"] - before["batches"] < 200 else []
    return {
        "clients": clients,
        "sampling": "greedy" if extra.get("temperature") == 0 else "checkpoint defaults",
        "requests": len(results),
        "new_tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "mean_latency_s": round(sum(s for _, s in results) / len(results), 2),
        "batches": after["batches"] - before["batches"],
        "batch_sizes": sizes,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "bench-out"))
    ap.add_argument("--variants", default="compiled,compiled-hf-sampler")
    ap.add_argument("--levels", help="override every variant's levels, e.g. 64,1,64g")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--deadline-s", type=float, default=500, help="stop starting work after this long")
    ap.add_argument("--model-dir", default="/tmp/ptb-bench-model")
    ap.add_argument("--preset", default="qwen3-1.7b", help="make_tiny_model.py preset; 'tiny' for a CPU smoke test")
    args = ap.parse_args()
    t0 = time.monotonic()
    left = lambda: args.deadline_s - (time.monotonic() - t0)  # noqa: E731
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers

    results: dict = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "prompt_tokens_target": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "variants": {},
    }
    save = lambda: (out / "results.json").write_text(json.dumps(results, indent=2))  # noqa: E731

    started = time.monotonic()
    build = subprocess.run(
        [sys.executable, str(ROOT / "python" / "make_tiny_model.py"), args.model_dir]
        + (["--preset", args.preset, "--dtype", "bfloat16", "--device", "cuda"] if args.preset != "tiny" else []),
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        print(build.stdout, build.stderr[-4000:])
        raise SystemExit("model build failed")
    results["build"] = {**json.loads(build.stdout.strip().splitlines()[-1]), "wall_seconds": round(time.monotonic() - started, 1)}
    print("built", results["build"], flush=True)
    save()

    for v_index, name in enumerate(args.variants.split(",")):
        spec = VARIANTS[name]
        if left() < 60:
            results["variants"][name] = {"skipped": "out of time"}
            continue
        server = Server(args.model_dir, 8100 + v_index, spec["flags"], out / f"server-{name}.log")
        record: dict = {"levels": []}
        results["variants"][name] = record
        try:
            record["startup_seconds"] = round(server.wait_healthy(min(300, left())), 1)
            messages, prompt_len = prompt_maker(server.base, args.prompt_tokens)
            record["prompt_tokens"] = prompt_len
            new_tokens = spec.get("new_tokens", args.new_tokens)  # the dynamic cache is slow: fewer tokens
            for token in (args.levels or spec["levels"]).split(","):
                clients, extra = int(token.rstrip("g")), ({"temperature": 0} if token.endswith("g") else {})
                if left() < 30:
                    record["levels"].append({"clients": clients, "skipped": "out of time"})
                    continue
                w = time.monotonic()
                run_level(server.base, messages, clients, 1, new_tokens, 10_000 * clients, extra)  # warm-up / compile
                warm = round(time.monotonic() - w, 1)
                per_client = 3 if clients <= 2 else 2
                level = run_level(server.base, messages, clients, per_client, new_tokens, 20_000 * clients, extra)
                level["warmup_seconds"] = warm
                record["levels"].append(level)
                print(name, {k: level[k] for k in ("clients", "sampling", "tokens_per_s", "mean_latency_s", "batches", "warmup_seconds")}, flush=True)
                save()
            # Same seed, same distribution: the fast and the transformers sampler must draw the same tokens.
            # new_tokens (not fewer) so the request reuses a cache shape the C=1 level already compiled.
            url = server.base + "/v1/chat/completions"
            sample = {"messages": messages(7), "max_tokens": new_tokens, "ignore_eos": True}
            seeded = post(url, {**sample, "seed": 1234})
            record["seeded_sample"] = seeded["choices"][0]["message"]["content"]
            record["greedy_sample"] = post(url, {**sample, "temperature": 0})["choices"][0]["message"]["content"]
            if torch.cuda.is_available():
                free, total = torch.cuda.mem_get_info()
                record["device_memory_in_use_gib"] = round((total - free) / 2**30, 1)
        except Exception as err:  # keep what was measured, note the failure, go on
            record["error"] = f"{type(err).__name__}: {err}"[:2000]
            print(name, "failed:", record["error"], flush=True)
        finally:
            server.stop()
        save()

    print("\nvariant              clients  sampling             new tok/s  mean latency s  batches  warm-up s")
    for name, record in results["variants"].items():
        for level in record.get("levels", []):
            if "tokens_per_s" in level:
                print(
                    f"{name:20} {level['clients']:7}  {level['sampling']:20} {level['tokens_per_s']:9} "
                    f"{level['mean_latency_s']:15} {level['batches']:8} {level['warmup_seconds']:10}"
                )
        if "error" in record:
            print(f"{name:16} error: {record['error'][:300]}")
    samples = {name: r["seeded_sample"] for name, r in results["variants"].items() if "seeded_sample" in r}
    print("seeded samples identical across variants:", len(set(samples.values())) == 1, {n: s[:40] for n, s in samples.items()})
    greedy = {name: r["greedy_sample"] for name, r in results["variants"].items() if "greedy_sample" in r}
    print("greedy samples identical across variants:", len(set(greedy.values())) == 1, {n: s[:40] for n, s in greedy.items()})
    results["seeded_identical"], results["greedy_identical"] = len(set(samples.values())) == 1, len(set(greedy.values())) == 1
    save()
    print(json.dumps({k: v for k, v in results.items() if k != "variants"}))


if __name__ == "__main__":
    main()
