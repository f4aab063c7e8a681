import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bfclBenchmark, bfclTarget, type JsonValue } from '../../src/benchmarks/bfcl/index.ts';
import type { PreparedBenchmark } from '../../src/benchmarks/types.ts';
import { repoRoot } from '../../src/core/paths.ts';
import type { ModelReply, Sample } from '../../src/core/schemas.ts';
import { parseJsonLines } from '../../src/hub/records.ts';
import {
  fixtureDir,
  jsonLines,
  localAssets,
  toolCallReply,
  writeFixture,
} from '../helpers/benchmarkFixtures.ts';
import { hasPython } from '../helpers/python.ts';

// Real BFCL files (read-only, outside the repo); the suite skips where they are absent.
const dataDir = resolve(repoRoot, '../shared/data/bfcl');
const v3File = join(dataDir, 'BFCL_v3_exec_simple.json');
const v4Question = join(dataDir, 'BFCL_v4_exec_simple.question.json');
const v4Answer = join(dataDir, 'BFCL_v4_exec_simple.possible_answer.json');
const haveData = existsSync(v3File) && existsSync(v4Question) && existsSync(v4Answer);

function reply(name: string, args: JsonValue): ModelReply {
  return toolCallReply([
    { id: 'call_0', type: 'function', function: { name, arguments: JSON.stringify(args) } },
  ]);
}

async function scoreAll(prepared: PreparedBenchmark, answer: (s: Sample) => ModelReply): Promise<number> {
  let total = 0;
  for (const sample of prepared.samples) {
    const request = prepared.request(sample, { seed: null });
    total += (await prepared.score(sample, answer(sample), { request })).value;
  }
  return total;
}

type Target = { function: string; arguments: { [k: string]: JsonValue } };

describe.skipIf(!haveData)('BFCL exec_simple validation on the real files', () => {
  it('scores every ground-truth call, sent back as a tool call, 100/100', async () => {
    const prepared = await bfclBenchmark.prepare(localAssets({ train: v3File }));
    expect(prepared.samples).toHaveLength(100);
    const total = await scoreAll(prepared, (s) => {
      const t = s.target as Target;
      return reply(t.function, t.arguments);
    });
    expect(total).toBe(100);
    expect(
      bfclBenchmark.aggregate(prepared.samples.map((sample) => ({ sample, score: { value: 1 } }))),
    ).toEqual({
      accuracy: 1,
    });
  });

  it('scores 0/100 when each call carries one wrong argument or the wrong name', async () => {
    const prepared = await bfclBenchmark.prepare(localAssets({ train: v3File }));
    const wrongArg = await scoreAll(prepared, (s) => {
      const t = s.target as Target;
      const [first] = Object.keys(t.arguments);
      return reply(t.function, { ...t.arguments, [first!]: '__not_the_value__' });
    });
    const wrongName = await scoreAll(prepared, (s) => {
      const t = s.target as Target;
      return reply(`${t.function}_x`, t.arguments);
    });
    expect([wrongArg, wrongName]).toEqual([0, 0]);
  });

  it('gives every sample one user message and one tool matching the ground-truth function', async () => {
    const prepared = await bfclBenchmark.prepare(localAssets({ train: v3File }));
    let reordered = 0;
    for (const sample of prepared.samples) {
      const request = prepared.request(sample, { seed: null });
      expect(request.messages.map((m) => m.role)).toEqual(['user']);
      expect(request.toolChoice).toBe('auto');
      expect(request.tools?.map((t) => t.function.name)).toEqual([(sample.target as Target).function]);
      const raw = (sample.record.function as Array<{ parameters: { properties: object } }>)[0]!.parameters
        .properties;
      const sent = request.tools![0]!.function.parameters.properties as object;
      expect(new Set(Object.keys(sent))).toEqual(new Set(Object.keys(raw)));
      if (Object.keys(sent).join() !== Object.keys(raw).join()) reordered++;
    }
    // Property order after the Arrow round trip (checked against pyarrow's reader once).
    expect(reordered).toBe(8);
  });

  it('agrees with the v4 question/possible_answer pair', async () => {
    const answers = new Map(
      parseJsonLines(readFileSync(v4Answer, 'utf8'), v4Answer).map((r) => [
        r.id as string,
        r.ground_truth as string[],
      ]),
    );
    const joined = parseJsonLines(readFileSync(v4Question, 'utf8'), v4Question).map((q) => ({
      ...q,
      ground_truth: answers.get(q.id as string),
    }));
    const v4Joined = writeFixture(fixtureDir('bfcl-v4'), 'v4.jsonl', jsonLines(joined));
    const v3 = await bfclBenchmark.prepare(localAssets({ train: v3File }));
    const v4 = await bfclBenchmark.prepare(localAssets({ train: v4Joined }));
    expect(v4.samples.map((s) => s.id)).toEqual(v3.samples.map((s) => s.id));
    v3.samples.forEach((sample, i) => {
      const other = v4.samples[i]!;
      expect(other.target).toEqual(sample.target);
      expect(v4.request(other, { seed: null })).toEqual(v3.request(sample, { seed: null }));
    });
  });

  it.skipIf(!hasPython)(
    'parses every ground truth exactly as CPython ast + literal_eval + JSON round trip',
    () => {
      const rows = parseJsonLines(readFileSync(v3File, 'utf8'), v3File);
      const calls = rows.map((r) => (r.ground_truth as string[])[0]!);
      const script = [
        'import ast, json, sys',
        'out = []',
        'for t in json.load(sys.stdin):',
        '    body = ast.parse(t, mode="single").body[0].value',
        '    args = {kw.arg: ast.literal_eval(kw.value) for kw in body.keywords}',
        '    out.append(json.loads(json.dumps({"function": body.func.id, "arguments": args})))',
        'print(json.dumps(out))',
      ].join('\n');
      const out = spawnSync('python3', ['-c', script], { input: JSON.stringify(calls), encoding: 'utf8' });
      expect(out.status, out.stderr).toBe(0);
      expect(calls.map((c) => bfclTarget(c))).toEqual(JSON.parse(out.stdout));
    },
  );
});
