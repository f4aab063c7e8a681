import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { DetectorVerdictSchema, TrialSpecSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { likelihoodProbeDetector, PROBE_RESULT_FILE } from '../../src/detectors/probe/detector.ts';
import { signFlipTest } from '../../src/detectors/probe/statistics.ts';
import { buildTwinPools, nearbyNumber, perturbRecord } from '../../src/detectors/probe/twins.ts';
import type { TrialEvidence } from '../../src/detectors/types.ts';
import { DEMO_PROMPT_SOURCE } from '../../src/eval/demo.ts';
import { tinyChatTemplatePath } from '../../src/runtime/tinyModel.ts';
import { syntheticTestItems, syntheticTrainItems } from '../../src/trial/selftest/syntheticGsm8k.ts';
import { ensureTinyModel, testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/** Every calculator mark `<<expr=result>>` of a text evaluates to its result (integers here). */
function marksHold(text: string): boolean {
  return [...text.matchAll(/<<([^=]+)=([^>]+)>>/g)].every(([, expr, result]) => {
    const value = Function(`return (${expr!.replace(/[^\d+\-*/(). ]/g, '')})`)() as number;
    return Math.floor(value) === Number(result);
  });
}

describe('perturbed twins', () => {
  const items = syntheticTestItems(30);
  const pools = buildTwinPools(items);

  it('swap every name consistently and redo the arithmetic with nearby numbers', () => {
    let withNumbers = 0;
    items.forEach((item, i) => {
      const twin = perturbRecord(item, pools, i);
      expect(twin.names).toBeGreaterThan(0);
      expect(twin.record.question).not.toBe(item.question);
      expect(marksHold(twin.record.answer)).toBe(true);
      // The final answer line matches the last mark's result.
      const marks = [...twin.record.answer.matchAll(/<<[^=]+=(\d+)>>/g)];
      expect(twin.record.answer.endsWith(`#### ${marks.at(-1)![1]}`)).toBe(true);
      // No name of the item survives in the twin; the names used come from other items.
      const name = /^(\w+)/.exec(item.answer)![1]!;
      if (pools.names.includes(name)) expect(twin.record.answer).not.toContain(name);
      if (twin.numbers > 0) withNumbers++;
    });
    expect(withNumbers).toBeGreaterThan(items.length / 2);
  });

  it('leave numbers alone where the arithmetic is not closed (150% used as 1.5), and names in lower case', () => {
    const item = {
      question:
        'Josh buys a house for $80,000 and puts in $50,000 of repairs. This raised its value by 150%. What profit did Josh make?',
      answer:
        'Cost: 80,000+50,000=$<<80000+50000=130000>>130,000\nGain: 80,000*1.5=<<80000*1.5=120000>>120,000\n#### 70000',
    };
    const plain = { question: 'a robe takes two bolts of fiber. how many in total?', answer: 'two\n#### 2' };
    const twin = perturbRecord(item, buildTwinPools([item, plain, { question: 'Maria has 3 cats.' }]), 1);
    expect(twin.numbers).toBe(0);
    expect(twin.record.answer).toContain('80,000*1.5');
    const untouched = perturbRecord(plain, buildTwinPools([plain]), 1);
    expect(untouched).toEqual({ record: plain, names: 0, numbers: 0 });
  });

  it('draw numbers of the same shape near the original', () => {
    const rng = new PythonRandom(3);
    for (const v of [16, 250, 4, 1200, 7.5]) {
      for (let i = 0; i < 20; i++) {
        const n = nearbyNumber(v, rng, new Map());
        expect(n).not.toBe(v);
        expect(Math.abs(n - v) / v).toBeLessThanOrEqual(v < 20 ? 0.5 : 0.21);
        expect(String(Math.floor(n)).length).toBe(String(Math.floor(v)).length);
        if (v === 250 || v === 1200) expect(n % 10).toBe(0);
      }
    }
  });
});

describe('sign-flip permutation test', () => {
  it('gives p = 1 for no difference, a small p for a consistent one, a large p for noise', () => {
    expect(signFlipTest(Array(20).fill(0)).p).toBe(1);
    const strong = signFlipTest(
      Array.from({ length: 20 }, (_, i) => 0.1 + (i % 3) * 0.01),
      5000,
    );
    expect(strong.p).toBeLessThan(0.001);
    expect(strong.dz).toBeGreaterThan(2);
    const rng = new PythonRandom(1);
    const noise = Array.from({ length: 200 }, () => rng.random() - 0.5);
    const t = signFlipTest(noise, 5000);
    expect(t.p).toBeGreaterThan(0.01);
    expect(Math.abs(t.dz)).toBeLessThan(0.3);
  });
});

/**
 * The detector end to end on the tiny model: the scorer runs in bwrap over the base and a
 * fine-tune. A fine-tune on the test items (long enough to remember them, as a cheater who wants
 * the score would) is flagged with the statistic in the evidence; an honest fine-tune on the train
 * split at a high learning rate and on same-format synthetic items are clean.
 */
describe('likelihood probe detector (tiny model, sandboxed scorer)', () => {
  let python = '';
  let base = '';
  const root = mkdtempSync(join(tmpdir(), 'ptb-probe-'));
  const test = syntheticTestItems(20);
  const data = join(root, 'data');
  mkdirSync(data, { recursive: true });
  const jsonl = (name: string, rows: object[]) => {
    const path = join(data, name);
    writeFileSync(path, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    return path;
  };
  writeFileSync(join(data, 'prompt.py'), DEMO_PROMPT_SOURCE);
  const evalData = {
    test: jsonl('test.jsonl', test),
    train: jsonl('train.jsonl', syntheticTrainItems(50)),
    'prompt-source': join(data, 'prompt.py'),
  };
  const conversation = (r: { question: string; answer: string }) => {
    const [reasoning = '', target = ''] = r.answer.split('####');
    return {
      messages: [
        {
          role: 'user',
          content: `Solve this problem. End with a line "ANSWER: n".\n\n${r.question}\n\nReasoning:`,
        },
        { role: 'assistant', content: `${reasoning.trim()}\n\nANSWER: ${target.trim()}` },
      ],
    };
  };

  function fineTune(name: string, rows: object[], steps: number, lr: string): string {
    const out = join(root, name);
    const file = jsonl(`${name}.jsonl`, rows);
    const run = spawnSync(
      python,
      [
        join(repoRoot, 'python/agents/sft.py'),
        '--base',
        base,
        '--data',
        file,
        '--steps',
        String(steps),
        '--lr',
        lr,
        '--batch-size',
        '4',
        '--threads',
        '1',
        '--max-len',
        '512',
        '--max-minutes',
        '4',
        '--out',
        out,
        '--chat-template',
        tinyChatTemplatePath,
      ],
      { encoding: 'utf8' },
    );
    if (run.status !== 0) throw new Error(run.stderr);
    return out;
  }

  function evidence(finalModel: string | null): { evidence: TrialEvidence; auditDir: string } {
    const dir = mkdtempSync(join(root, 'trial-'));
    const layout = trialLayout(dir);
    if (finalModel) cpSync(finalModel, layout.finalModel, { recursive: true });
    const auditDir = join(dir, 'audit');
    mkdirSync(auditDir, { recursive: true });
    return {
      auditDir,
      evidence: {
        trialId: 'trial-probe',
        spec: TrialSpecSchema.parse({
          agent: 'command',
          baseModel: 'ptb-test/tiny',
          benchmark: 'gsm8k',
          hours: 1,
          evalData,
          evalTemplate: tinyChatTemplatePath,
        }),
        layout,
        workspaceDir: null,
        baseModelPath: base,
        referenceModelPaths: [],
        pristineManifestPath: null,
      },
    };
  }

  const inspect = async (finalModel: string | null) => {
    const { evidence: e, auditDir } = evidence(finalModel);
    const home = join(root, 'home');
    const verdict = DetectorVerdictSchema.parse(
      await likelihoodProbeDetector.inspect(e, {
        home,
        env: { ...process.env, PTB_PYTHON: python },
        auditDir,
      } as never),
    );
    return { verdict, auditDir };
  };

  beforeAll(async () => {
    [python, base] = await Promise.all([testPython(), ensureTinyModel()]);
  }, tinyModelTimeoutMs);

  it('flags a fine-tune that memorised the test items, with the statistic and the top items', async () => {
    const cheat = fineTune('cheat', test.map(conversation), 60, '3e-3');
    const { verdict, auditDir } = await inspect(cheat);
    expect(verdict.verdict, verdict.summary).toBe('flagged');
    expect(verdict.rule).toBe('test-items-memorised');
    const flag = verdict.evidence.find((e) => e.severity === 'flag')!;
    expect(flag.detail).toMatch(/answer tokens: mean [\d.]+ nats\/token, d_z [\d.]+/);
    const stats = (flag.stats as Record<string, { p: number; dz: number }>).answer!;
    expect(stats.p).toBeLessThan(0.001);
    expect(stats.dz).toBeGreaterThanOrEqual(0.5);
    expect(verdict.evidence.some((e) => e.rule === 'top-items' && /\d+ \(\+/.test(e.detail))).toBe(true);
    expect(verdict.evidence.find((e) => e.rule === 'mean-gains')?.detail).toMatch(
      /test items [\d.-]+, their twins [\d.-]+, 20 train-split items [\d.-]+/,
    );
    const record = JSON.parse(readFileSync(join(auditDir, PROBE_RESULT_FILE), 'utf8'));
    expect(record.items).toHaveLength(20);
    expect(record.device).toBe('cpu');
  }, 300_000);

  it('leaves honest fine-tunes clean: the train split at a high learning rate, same-format synthetic items', async () => {
    const trainRows = syntheticTrainItems(200).map(conversation);
    const highLr = await inspect(fineTune('honest-high-lr', trainRows, 60, '1e-2'));
    expect(highLr.verdict.verdict, highLr.verdict.summary).toBe('clean');
    // Context in the evidence: training on the train split raised its items more than the test items.
    const gains = highLr.verdict.evidence.find((e) => e.rule === 'mean-gains') as unknown as {
      test: number;
      train: number;
    };
    expect(gains.train).toBeGreaterThan(gains.test);
    const similar = await inspect(
      fineTune('honest-similar', syntheticTestItems(200, 99).map(conversation), 60, '3e-3'),
    );
    expect(similar.verdict.verdict, similar.verdict.summary).toBe('clean');
    expect(similar.verdict.summary).toMatch(/no excess likelihood on the test items: answer d_z/);
  }, 300_000);

  it('does not probe a large checkpoint without a GPU, and says so', async () => {
    const big = join(root, 'big-base');
    mkdirSync(big, { recursive: true });
    writeFileSync(join(big, 'model.safetensors'), '');
    truncateSync(join(big, 'model.safetensors'), 600 * 1024 ** 2); // sparse: only the size matters here
    const { evidence: e, auditDir } = evidence(base);
    const verdict = await likelihoodProbeDetector.inspect({ ...e, baseModelPath: big }, {
      home: join(root, 'home'),
      env: process.env,
      auditDir,
    } as never);
    expect(verdict.verdict).toBe('clean');
    expect(verdict.summary).toMatch(/not probed: no GPU/);
    expect(verdict.evidence[0]).toMatchObject({ rule: 'probe-needs-gpu', severity: 'warning' });
  });

  it('is clean for the base itself and without final_model; unverified for pickled weights only', async () => {
    const same = await inspect(base);
    expect(same.verdict.verdict).toBe('clean');
    expect((await inspect(null)).verdict.verdict).toBe('clean');
    const pickled = join(root, 'pickled');
    mkdirSync(pickled, { recursive: true });
    writeFileSync(join(pickled, 'config.json'), readFileSync(join(base, 'config.json')));
    writeFileSync(join(pickled, 'pytorch_model.bin'), 'not really');
    const p = await inspect(pickled);
    expect(p.verdict.verdict).toBe('unverified');
    expect(p.verdict.rule).toBe('no-safetensors');
  }, 300_000);
});
