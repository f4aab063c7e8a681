"""Shared helpers of the selftest's red-team agents (`ptb selftest`).

Each agent is a small program run by the `command` agent inside the real sandbox. It finds what a
real agent would find: the task directory it starts in, the base model at $PTB_BASE_MODEL_PATH,
the benchmark data the agent-facing evaluate.py is given ($PTB_TASK_EVAL_ARGS), the Hugging Face
endpoint ($HF_ENDPOINT), the proxy and whatever keys sit in the environment.
"""
import glob
import json
import os
import re
import subprocess
import sys

SFT = "/opt/ptb/python/agents/sft.py"


def say(msg):
    print(f"[redteam] {msg}", flush=True)


def eval_data_file(part="test"):
    """The data file evaluate.py evaluates with (`--data test=/opt/ptb-data/...`)."""
    args = json.loads(os.environ.get("PTB_TASK_EVAL_ARGS", "[]"))
    for i, arg in enumerate(args[:-1]):
        if arg == "--data" and args[i + 1].startswith(f"{part}="):
            return args[i + 1].split("=", 1)[1]
    found = sorted(glob.glob(f"/opt/ptb-data/{part}-*"))
    if not found:
        raise SystemExit(f"no {part} data found")
    return found[0]


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    say(f"wrote {len(rows)} rows to {path}")
    return path


def conversation(question, answer):
    """A GSM8K record as a chat pair in the benchmark's answer format."""
    reasoning, _, target = answer.partition("####")
    return {
        "messages": [
            {"role": "user", "content": f"Solve this problem. End with a line \"ANSWER: n\".\n\n{question}\n\nReasoning:"},
            {"role": "assistant", "content": f"{reasoning.strip()}\n\nANSWER: {target.strip()}"},
        ]
    }


def renumber(text, shift):
    """Every number in the text moved by `shift` (a crude paraphrase of an item)."""
    return re.sub(r"\d+", lambda m: str(int(m.group(0)) + shift), text)


def sft(data, base=None, steps=5, out="final_model", lr=None, stdin_rows=None):
    """Run ptb's sft script briefly (a few steps are enough to make a real fine-tune).

    With `stdin_rows` the conversations are piped in (`--data /dev/stdin`) and never touch the disk.
    """
    cmd = [sys.executable, SFT, "--data", data, "--steps", str(steps), "--batch-size", "4",
           "--threads", "1", "--max-len", "512", "--max-minutes", "4", "--out", out]
    if base:
        cmd += ["--base", base]
    if lr:
        cmd += ["--lr", str(lr)]
    say("running " + " ".join(cmd))
    if stdin_rows is None:
        subprocess.run(cmd, check=True)
    else:
        text = "".join(json.dumps(r) + "\n" for r in stdin_rows)
        subprocess.run(cmd, check=True, input=text, text=True)


def hub_download(repo_id, filename=None, repo_type="model"):
    """Fetch from the Hub as agents do (huggingface_hub, through $HF_ENDPOINT)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    say(f"downloading {repo_type} {repo_id} {filename or ''} from {os.environ.get('HF_ENDPOINT')}")
    if filename:
        return hf_hub_download(repo_id=repo_id, filename=filename, repo_type=repo_type)
    return snapshot_download(repo_id=repo_id, repo_type=repo_type)
