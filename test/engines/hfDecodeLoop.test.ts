import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * The hf server's own decode loop (`--decode-loop ptb`) must produce what transformers' generate()
 * produces on the same batch: the same tokens, cut at the same stop token or max_tokens, with the same
 * finish reasons, while it checks for finished rows only every few steps. On CPU the single-token step
 * runs eagerly; the compiled (CUDA graph) step is measured by bench/hfEngineThroughput.py.
 */
describe('ptb decode loop', { timeout: 180_000 }, () => {
  let python: string;
  let model: string;
  beforeAll(async () => {
    python = await testPython();
    model = await ensureTinyModel();
  }, tinyModelTimeoutMs);

  it('gives generate()’s greedy and seeded outputs, stop cuts and finish reasons', () => {
    const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'python'))})
import ptb_hf_server as server
model_dir = ${JSON.stringify(model)}
build = lambda *flags: server.Model(server.parse_args([model_dir, *flags]))
default = build()  # CPU default: dynamic cache, transformers' generate()
static_hf = build("--kv-cache", "static")
ptb = build("--kv-cache", "static", "--decode-loop", "ptb", "--stop-check-every", "2")
texts = ["What is 3+4?", "hello there, a longer prompt about rivers and stones and clouds", "7*8=", "count: 1 2 3"]
prompts = [default.render([{"role": "user", "content": t}], None, {}) for t in texts]
steps = {"n": 0}
plain_step = ptb.decode_step
def counted(*args, **kwargs):
    steps["n"] += 1
    return plain_step(*args, **kwargs)
ptb.decode_step = counted

def run(m, params, n=4, max_batch=8):
    jobs = [server.Job(p, q) for p, q in zip(prompts[:n], params)]
    m.generate(jobs, max_batch)
    return [[j.tokens, j.finish_reason] for j in jobs]

report = {"ptb_loop": ptb.ptb_loop, "default_loop": static_hf.ptb_loop}
greedy = [server.SamplingParams(max_tokens=k, temperature=0.0) for k in (40, 5, 23, 60)]
ours = run(ptb, greedy)
report["greedy_vs_default"] = run(default, greedy) == ours
report["greedy_vs_static"] = run(static_hf, greedy) == ours
report["greedy"] = ours
# Three rows pad to a batch of four (a dummy row that stops after one token).
report["padded_rows"] = run(static_hf, greedy[:3], n=3) == run(ptb, greedy[:3], n=3)
seeded = [server.SamplingParams(max_tokens=30, temperature=0.7, top_k=20, top_p=0.9, seed=5)] * 4
report["seeded_vs_static"] = run(static_hf, seeded) == run(ptb, seeded)
# One seed per request (protocol v1.1): one batch, each row with its own generator, in both loops.
mixed = [server.SamplingParams(max_tokens=30, temperature=0.7, top_k=20, top_p=0.9, seed=s) for s in (5, 6, 7, 8)]
mixed_ptb = run(ptb, mixed)
report["mixed_seeds_vs_static"] = run(static_hf, mixed) == mixed_ptb
report["mixed_seed5_as_alone"] = mixed_ptb[0] == run(ptb, seeded)[0]
# Stop tokens: make a token each row produces early a stop token, in both servers.
stops = sorted({row[0][min(2, len(row[0]) - 1)] for row in ours})
for m in (static_hf, ptb):
    m.eos_ids = stops
long_greedy = [server.SamplingParams(max_tokens=60, temperature=0.0)] * 4
steps["n"] = 0
stopped = run(ptb, long_greedy)
report["stop_steps"] = steps["n"]
report["stopped_vs_static"] = run(static_hf, long_greedy) == stopped
report["stopped"] = stopped
print(json.dumps(report))
`;
    const out = JSON.parse(
      execFileSync(python, ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    ) as {
      ptb_loop: boolean;
      default_loop: boolean;
      greedy_vs_default: boolean;
      greedy_vs_static: boolean;
      greedy: [number[], string][];
      padded_rows: boolean;
      seeded_vs_static: boolean;
      mixed_seeds_vs_static: boolean;
      mixed_seed5_as_alone: boolean;
      stop_steps: number;
      stopped_vs_static: boolean;
      stopped: [number[], string][];
    };
    expect(out).toMatchObject({ ptb_loop: true, default_loop: false });
    expect(out.greedy.map(([tokens]) => tokens.length)).toEqual([40, 5, 23, 60]);
    expect(out.greedy.map(([, reason]) => reason)).toEqual(['length', 'length', 'length', 'length']);
    expect(out).toMatchObject({
      greedy_vs_default: true,
      greedy_vs_static: true,
      padded_rows: true,
      seeded_vs_static: true,
      mixed_seeds_vs_static: true,
      mixed_seed5_as_alone: true,
      stopped_vs_static: true,
    });
    // Every row hit a stop token within its first 3 tokens: finish "stop", token kept, and the loop
    // quit at the next check (every 2 steps) instead of running all 60.
    for (const [tokens, reason] of out.stopped) {
      expect(reason).toBe('stop');
      expect(tokens.length).toBeLessThanOrEqual(3);
    }
    expect(out.stop_steps).toBeLessThan(8);
  });
});
