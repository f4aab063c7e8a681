import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/**
 * The hf server's two fast paths must compute what transformers computes. The fast sampler (top-k, then top-p among the k best, no full-vocabulary sort) must
 * keep exactly the tokens transformers' own warpers keep, with the same logits (for tied logits: the
 * same kept values, since which of several equal tokens survives depends on sort order anyway).
 */
describe('top_k_top_p_processor', { timeout: 60_000 }, () => {
  let python: string;
  beforeAll(async () => {
    python = await testPython();
  }, tinyModelTimeoutMs);

  it('matches transformers temperature + top-k + top-p warpers on random and tied logits', () => {
    const script = `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'python'))})
from ptb_hf_server import top_k_top_p_processor
from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
torch.manual_seed(0)
report = []
for temperature, k, p in [(0.6, 20, 0.95), (1.0, 50, 0.8), (0.7, 5, 1.0), (1.3, 200, 0.5), (0.6, 1, 0.95)]:
    for tied in (False, True):
        scores = torch.randn(16, 3000) * 3
        if tied:  # bf16 keeps 8 mantissa bits: many logits share a value
            scores = scores.to(torch.bfloat16).float()
        ref = LogitsProcessorList([TemperatureLogitsWarper(temperature), TopKLogitsWarper(k), TopPLogitsWarper(p)])(None, scores.clone())
        ours = top_k_top_p_processor(temperature, k, p)(None, scores.clone())
        kept = ~torch.isinf(ref)
        if tied:
            # Among tokens with equal logits, which ones top-p drops depends on the sort order (in
            # transformers and in vLLM alike): compare the kept logit values row by row instead.
            same_mask = all(
                torch.equal(r[~torch.isinf(r)].sort().values, o[~torch.isinf(o)].sort().values) for r, o in zip(ref, ours)
            )
            close = same_mask
        else:
            same_mask = bool(torch.equal(kept, ~torch.isinf(ours)))
            close = bool(torch.allclose(ref[kept], ours[kept]))
        report.append({"case": [temperature, k, p, tied], "same_mask": same_mask, "close": close, "kept": int(kept.sum())})
print(json.dumps(report))
`;
    const report = JSON.parse(execFileSync(python, ['-c', script], { encoding: 'utf8' })) as {
      case: unknown[];
      same_mask: boolean;
      close: boolean;
      kept: number;
    }[];
    expect(report).toHaveLength(10);
    for (const row of report) {
      expect(row, JSON.stringify(row.case)).toMatchObject({ same_mask: true, close: true });
      expect(row.kept).toBeGreaterThanOrEqual(16); // at least one token per row
    }
  });
});

describe('grouped decode attention', { timeout: 120_000 }, () => {
  let python: string;
  let model: string;
  beforeAll(async () => {
    python = await testPython();
    model = await ensureTinyModel();
  }, tinyModelTimeoutMs);

  it('gives the logits of the sdpa implementation, with left padding, dynamic and static caches', () => {
    const script = `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'python'))})
import ptb_hf_server as server
from transformers import AttentionInterface, AutoModelForCausalLM
server.register_grouped_attention()
grouped = AttentionInterface._global_mapping[server.GROUPED_ATTENTION]
calls = {"decode": 0}
def counting(module, query, key, value, attention_mask, *args, **kwargs):
    calls["decode"] += query.shape[2] == 1 and attention_mask is not None  # the grouped path, not the sdpa fallback
    return grouped(module, query, key, value, attention_mask, *args, **kwargs)
AttentionInterface.register(server.GROUPED_ATTENTION, counting)
reference = AutoModelForCausalLM.from_pretrained(${JSON.stringify(model)}, attn_implementation="sdpa")
ours = AutoModelForCausalLM.from_pretrained(${JSON.stringify(model)}, attn_implementation=server.GROUPED_ATTENTION)
torch.manual_seed(0)
ids = torch.randint(10, 2000, (3, 20))
mask = torch.ones_like(ids)
mask[0, :5] = 0
mask[1, :2] = 0
report = []
for cache in (None, "static"):
    runs = [
        m.generate(input_ids=ids, attention_mask=mask, max_new_tokens=30, do_sample=False, cache_implementation=cache,
                   output_scores=True, return_dict_in_generate=True, pad_token_id=0)
        for m in (reference, ours)
    ]
    report.append({
        "cache": cache or "dynamic",
        "same_tokens": bool(torch.equal(runs[0].sequences, runs[1].sequences)),
        "max_logit_diff": max(float((a - b).abs().max()) for a, b in zip(runs[0].scores, runs[1].scores)),
    })
print(json.dumps({"runs": report, "grouped_decode_calls": calls["decode"], "kv_groups": ours.config.num_attention_heads // ours.config.num_key_value_heads}))
`;
    const out = JSON.parse(
      execFileSync(python, ['-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    ) as {
      runs: { cache: string; same_tokens: boolean; max_logit_diff: number }[];
      grouped_decode_calls: number;
      kv_groups: number;
    };
    expect(out.kv_groups).toBeGreaterThan(1); // the tiny model uses grouped-query attention
    expect(out.grouped_decode_calls).toBeGreaterThan(2 * 29); // every layer of every decode step went through it
    for (const run of out.runs) {
      expect(run, run.cache).toMatchObject({ same_tokens: true });
      expect(run.max_logit_diff).toBeLessThan(1e-4);
    }
  });
});
