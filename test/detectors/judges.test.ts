import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { selectJudges } from '../../src/audit/detectorRegistry.ts';
import { DetectorVerdictSchema } from '../../src/core/trial.ts';
import { JUDGES } from '../../src/detectors/judges/definitions.ts';
import { aggregateRuns, createJudgeDetector, parseAnswer } from '../../src/detectors/judges/judgeDetector.ts';
import { JUDGE_SETS, judgeUnder, resolveJudges } from '../../src/detectors/judges/judgeSets.ts';
import { runEvidenceCommand } from '../../src/detectors/judges/tools.ts';
import type { AuditDetectorContext } from '../../src/detectors/shared/auditContext.ts';
import { auditPhaseJudges } from '../../src/trial/auditPhase.ts';
import { syntheticTestItems } from '../../src/trial/selftest/syntheticGsm8k.ts';
import { makeTrial, type TrialFixture } from '../audit/trialFixture.ts';
import { type StandInProvider, startStandInProvider } from '../helpers/standInProviders.ts';

const KEY = 'judge-test-key';
const open: Array<{ close(): unknown }> = [];
afterEach(async () => {
  for (const o of open.splice(0)) await o.close();
});

async function provider(
  api: 'openai' | 'anthropic',
  commands: string[],
  finalMessage: string,
  opts: { sideMessage?: string } = {},
): Promise<StandInProvider> {
  const p = await startStandInProvider(api, {
    expectedKey: KEY,
    script: { commands, finalMessage },
    toolNames: ['evidence'],
    ...opts,
  });
  open.push(p);
  return p;
}

function trial(): TrialFixture {
  const t = makeTrial({ benchmark: 'gsm8k' });
  open.push({ close: () => t.cleanup() });
  return t;
}

function ctxFor(t: TrialFixture): AuditDetectorContext {
  const auditDir = join(t.root, 'audit', 'a1');
  mkdirSync(auditDir, { recursive: true });
  return {
    ...t.ctx,
    auditDir,
    findings: [
      {
        detector: 'contamination',
        version: '2',
        verdict: 'clean',
        summary: 'no test item found',
        evidence: [],
      },
    ],
  };
}

describe('judges as data', () => {
  it('every judge is a valid declarative unit and every protocol set names known judges', () => {
    for (const [protocol, set] of Object.entries(JUDGE_SETS)) {
      for (const entry of set) {
        const def = judgeUnder(protocol, entry.judge);
        expect(def.gates.every((g) => def.fields.some((f) => f.name === g))).toBe(true);
        expect(def.source).toMatch(/@ [0-9a-f]{7,40}/);
      }
    }
    // v1.0: one run, both questions gate; v1.1: three runs with a per-field majority, API usage gates,
    // the lookup and derived-contamination judges are recorded only.
    expect(judgeUnder('v1.0', 'contamination-model')).toMatchObject({
      runs: 1,
      gates: ['contamination', 'disallowed_model'],
    });
    expect(judgeUnder('v1.1', 'contamination-model')).toMatchObject({
      runs: 3,
      aggregation: 'per-field-majority',
    });
    expect(judgeUnder('v1.1', 'api-usage').gates).toEqual(['disallowed_api_usage']);
    expect(judgeUnder('v1.1', 'ptb-lookup').gates).toEqual([]);
    expect(judgeUnder('v1.1', 'derived-contamination').gates).toEqual([]);
    expect(resolveJudges(['v1.1']).map((d) => d.id)).toEqual(JUDGE_SETS['v1.1']!.map((e) => e.judge));
    expect(() => resolveJudges(['nope'])).toThrow(/unknown judge "nope"/);
  });

  it('parses answers strictly and aggregates runs per field', () => {
    const def = JUDGES['contamination-model']!;
    const a = parseAnswer(
      def,
      'Verdict:\n```json\n{"contamination": true, "disallowed_model": false, "justification": "x"}\n```',
    );
    expect(a).toMatchObject({ values: { contamination: true, disallowed_model: false } });
    expect(parseAnswer(def, '{"contamination": "yes"}')).toEqual({
      error: expect.stringMatching(/lacks the boolean field\(s\) contamination, disallowed_model/),
    });
    const answers = [
      { values: { contamination: true, disallowed_model: false }, justification: '', evidence: [] },
      { values: { contamination: false, disallowed_model: false }, justification: '', evidence: [] },
      { values: { contamination: true, disallowed_model: true }, justification: '', evidence: [] },
    ];
    expect(aggregateRuns(def, answers)).toEqual({ contamination: true, disallowed_model: false });
    expect(aggregateRuns({ ...def, aggregation: 'any' }, answers)).toEqual({
      contamination: true,
      disallowed_model: true,
    });
    expect(aggregateRuns({ ...def, aggregation: 'all' }, answers)).toEqual({
      contamination: false,
      disallowed_model: false,
    });
  });
});

describe('the evidence tool', () => {
  it('reads inside the run directory only, never weights, and runs the contamination check', async () => {
    const t = trial();
    const items = syntheticTestItems(6);
    const testFile = join(t.root, 'test.jsonl');
    writeFileSync(testFile, `${items.map((r) => JSON.stringify(r)).join('\n')}\n`);
    t.evidence.spec.evalData = { test: testFile };
    t.writeTask('data/mix.jsonl', `${JSON.stringify({ text: items[2]!.question })}\n`);
    t.writeFinal('model.safetensors', 'weights');
    symlinkSync('/etc', join(t.evidence.layout.taskSnapshot, 'escape'));
    const ctx = { evidence: t.evidence, findings: [], home: t.ctx.home };
    expect(await runEvidenceCommand(ctx, 'ls task')).toMatch(/data\//);
    expect(await runEvidenceCommand(ctx, 'cat task/data/mix.jsonl')).toContain(
      items[2]!.question.slice(0, 40),
    );
    expect(await runEvidenceCommand(ctx, 'cat ../../etc/passwd')).toMatch(
      /outside the run directory|no such file/,
    );
    expect(await runEvidenceCommand(ctx, 'ls task/escape')).toMatch(/outside the run directory/);
    expect(await runEvidenceCommand(ctx, 'cat final_model/model.safetensors')).toMatch(/holds weights/);
    expect(await runEvidenceCommand(ctx, `grep ${items[2]!.question.split(' ')[0]} task`)).toMatch(
      /task\/data\/mix\.jsonl:1:/,
    );
    expect(await runEvidenceCommand(ctx, 'contamination task/data')).toMatch(
      /1 match\(es\):\ntask\/data\/mix\.jsonl: test item 2/,
    );
    expect(await runEvidenceCommand(ctx, 'rm -rf /')).toMatch(/unknown command "rm"/);
  });
});

describe('a judge run against stand-in providers (real protocols)', () => {
  const flagAnswer = JSON.stringify({
    derived_contamination: true,
    justification: 'gen.py rewrites each test question with new numbers; variants.jsonl trained on',
    evidence: [{ file: 'task/gen.py', detail: 'reads the test file' }],
  });

  for (const api of ['openai', 'anthropic'] as const) {
    it(`runs an agent judge over ${api}'s protocol with ptb's evidence tool and stores every run`, async () => {
      const t = trial();
      t.writeTask('gen.py', 'import json\nfor item in json.load(open("test.json")):\n    perturb(item)\n');
      const p = await provider(api, ['ls task', 'cat task/gen.py', 'findings'], flagAnswer);
      const def = {
        ...judgeUnder('v1.1', 'derived-contamination'),
        gates: ['derived_contamination'],
        runs: 1,
      };
      const detector = createJudgeDetector(def, { provider: api, baseUrl: p.url, apiKey: KEY, retries: 0 });
      const ctx = ctxFor(t);
      const verdict = DetectorVerdictSchema.parse(await detector.inspect(t.evidence, ctx));
      expect(p.problems).toEqual([]);
      expect(verdict).toMatchObject({
        detector: 'judge:derived-contamination',
        verdict: 'flagged',
        rule: 'derived-contamination',
      });
      expect(verdict.summary).toMatch(/gen\.py rewrites/);
      const run = JSON.parse(
        readFileSync(join(ctx.auditDir!, 'judges/derived-contamination/run-1.json'), 'utf8'),
      );
      expect(run.tools.map((x: { command: string }) => x.command)).toEqual([
        'ls task',
        'cat task/gen.py',
        'findings',
      ]);
      expect(run.tools[1].output).toMatch(/perturb\(item\)/);
      expect(run.tools[2].output).toMatch(/contamination: clean/);
      // The tool outputs reached the model as tool results of the real protocol.
      const last = p.requests.filter((r) => r.role === 'main').at(-1)!;
      expect(last.toolResults.join('\n')).toMatch(/perturb\(item\)/);
      expect(
        JSON.parse(readFileSync(join(ctx.auditDir!, 'judgement_derived_contamination.json'), 'utf8')),
      ).toMatchObject({
        derived_contamination: true,
      });
    });
  }

  it('keeps an archival verdict from gating, and runs three single calls with a per-field majority', async () => {
    const t = trial();
    const archival = await provider('openai', [], flagAnswer);
    const derived = createJudgeDetector(judgeUnder('v1.1', 'derived-contamination'), {
      provider: 'openai',
      baseUrl: archival.url,
      apiKey: KEY,
      retries: 0,
    });
    const recorded = await derived.inspect(t.evidence, ctxFor(t));
    expect(recorded.verdict).toBe('clean');
    expect(
      recorded.evidence.some((e) => e.severity === 'warning' && e.rule === 'derived-contamination'),
    ).toBe(true);

    const answer = JSON.stringify({
      contamination: true,
      disallowed_model: false,
      justification: 'trained on test.jsonl',
    });
    const single = await provider('anthropic', [], answer, { sideMessage: answer });
    const def = { ...judgeUnder('v1.1', 'contamination-model'), mode: 'single-call' as const };
    const detector = createJudgeDetector(def, {
      provider: 'anthropic',
      baseUrl: single.url,
      apiKey: KEY,
      retries: 0,
    });
    const ctx = ctxFor(t);
    const verdict = await detector.inspect(t.evidence, ctx);
    expect(single.problems).toEqual([]);
    expect(single.requests.filter((r) => r.method === 'POST')).toHaveLength(3);
    expect(verdict).toMatchObject({ verdict: 'flagged', rule: 'contamination' });
    for (const k of [1, 2, 3])
      expect(existsSync(join(ctx.auditDir!, `judges/contamination-model/run-${k}.json`))).toBe(true);
    expect(
      JSON.parse(readFileSync(join(ctx.auditDir!, 'judges/contamination-model/final.json'), 'utf8')),
    ).toMatchObject({
      runs: 3,
      usable: 3,
      values: { contamination: true, disallowed_model: false },
    });
  });

  it('is unverified, never clean, when the endpoint fails or answers nonsense', async () => {
    const t = trial();
    const nonsense = await provider('openai', [], 'I think it is fine.', {
      sideMessage: 'I think it is fine.',
    });
    const def = { ...judgeUnder('v1.0', 'contamination-model'), mode: 'single-call' as const };
    const bad = await createJudgeDetector(def, {
      provider: 'openai',
      baseUrl: nonsense.url,
      apiKey: KEY,
      retries: 0,
    }).inspect(t.evidence, ctxFor(t));
    expect(bad).toMatchObject({ verdict: 'unverified', rule: 'judge-malformed' });
    const wrongKey = await createJudgeDetector(def, {
      provider: 'openai',
      baseUrl: nonsense.url,
      apiKey: 'other',
      retries: 0,
    }).inspect(t.evidence, ctxFor(t));
    expect(wrongKey).toMatchObject({ verdict: 'unverified', rule: 'judge-error' });
    expect(wrongKey.summary).toMatch(/HTTP 400/);
  });

  it('selects judges from flags and PTB_JUDGE_* (model override, provider check)', () => {
    const env = { PTB_JUDGE_API_KEY: KEY, PTB_JUDGE_BASE_URL: 'http://127.0.0.1:9' };
    const judges = selectJudges({ env, judges: ['v1.1'], judge: { model: 'local-judge' } });
    expect(judges.map((j) => j.id)).toEqual([
      'judge:contamination-model',
      'judge:api-usage',
      'judge:ptb-lookup',
      'judge:derived-contamination',
    ]);
    expect(judges[0]!.version).toMatch(/^contamination-model:local-judge:3x:/);
    expect(() => selectJudges({ env, judges: ['v1.1'], judge: { provider: 'gemini' } })).toThrow(
      /unknown judge provider/,
    );
    // The audit phase runs judges only when PTB_JUDGES names them; `protocol` is the trial's own set.
    const spec = { protocol: 'v1.0' } as Parameters<typeof auditPhaseJudges>[1];
    expect(selectJudges(auditPhaseJudges(env, spec))).toEqual([]);
    const phase = selectJudges(auditPhaseJudges({ ...env, PTB_JUDGES: 'protocol' }, spec));
    expect(phase.map((j) => [j.id, j.version.split(':')[2]])).toEqual([['judge:contamination-model', '1x']]);
  });
});
