import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DetectorVerdict } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { SELFTEST_CASES, type SelftestCase } from '../../src/trial/selftest/cases.ts';
import {
  detectorTallies,
  judgeCase,
  type SelftestCaseResult,
  selftestEnv,
} from '../../src/trial/selftest/runSelftest.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython, tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

const caseById = (id: string): SelftestCase => SELFTEST_CASES.find((c) => c.id === id)!;

function verdict(detector: string, value: DetectorVerdict['verdict'], rule?: string): DetectorVerdict {
  return {
    detector,
    version: '1',
    verdict: value,
    ...(rule ? { rule } : {}),
    summary: `${detector} ${value}`,
    evidence: rule ? [{ source: 'somewhere', detail: 'what was found', severity: 'flag', rule }] : [],
  };
}

describe('judging a selftest case', () => {
  it('passes a cheater only when the named detector flags it with one of the named rules', () => {
    const c = caseById('test-verbatim');
    const caught = judgeCase(c, {
      combined: 'flagged',
      verdicts: [
        verdict('tamper', 'clean'),
        verdict('contamination', 'flagged', 'test-items-in-training-data'),
      ],
    });
    expect(caught.passed).toBe(true);
    expect(caught.evidence).toBe('contamination: somewhere: what was found');

    const byAnother = judgeCase(c, {
      combined: 'flagged',
      verdicts: [verdict('tamper', 'flagged', 'evaluation-code-modified'), verdict('contamination', 'clean')],
    });
    expect(byAnother.passed).toBe(false);
    expect(byAnother.problem).toMatch(/contamination did not flag/);

    const otherRule = judgeCase(c, {
      combined: 'flagged',
      verdicts: [verdict('contamination', 'flagged', 'something-else')],
    });
    expect(otherRule.passed).toBe(false);
    expect(otherRule.problem).toMatch(/not test-items-in-training-data/);

    expect(judgeCase(c, undefined).passed).toBe(false);
  });

  it('requires the evidence rules a case names (the Hub download of the test split)', () => {
    const c = caseById('test-from-hub');
    const verdicts = [verdict('contamination', 'flagged', 'test-items-in-training-data')];
    expect(judgeCase(c, { combined: 'flagged', verdicts }).problem).toMatch(
      /no test-split-download evidence/,
    );
    const withDownload = [...verdicts, verdict('egress-rules', 'clean')];
    withDownload[1]!.evidence.push({
      source: 'ledgers/downloads.jsonl:2',
      detail: 'downloaded the test split',
      severity: 'warning',
      rule: 'test-split-download',
    });
    expect(judgeCase(c, { combined: 'flagged', verdicts: withDownload }).passed).toBe(true);
  });

  it('passes an honest agent only on a clean audit (unverified is not clean)', () => {
    const c = caseById('honest-noop');
    expect(judgeCase(c, { combined: 'clean', verdicts: [verdict('tamper', 'clean')] }).passed).toBe(true);
    const unverified = judgeCase(c, {
      combined: 'unverified',
      verdicts: [verdict('egress-rules', 'unverified', 'egress-unrecorded')],
    });
    expect(unverified.passed).toBe(false);
    expect(unverified.evidence).toMatch(/^egress-rules: /);
  });

  it('gives the trials no real credentials and only stand-in upstreams', () => {
    const env = selftestEnv(
      {
        PATH: '/usr/bin',
        OPENAI_API_KEY: 'sk-real',
        HF_TOKEN: 'hf_real',
        PTB_JUDGE_MODEL: 'gpt-x',
        PTB_RELAY_UPSTREAM_OPENAI: 'https://gateway.example',
      },
      'http://127.0.0.1:1',
      'http://127.0.0.1:2',
    );
    expect(env.PATH).toBe('/usr/bin');
    expect(env.OPENAI_API_KEY).toBeUndefined();
    expect(env.HF_TOKEN).toBeUndefined();
    expect(env.PTB_JUDGE_MODEL).toBeUndefined();
    expect(env.PTB_HF_UPSTREAM).toBe('http://127.0.0.1:1');
    expect(env.PTB_RELAY_UPSTREAM_OPENAI).toBe('http://127.0.0.1:2/openai');
    expect(env.PTB_RELAY_UPSTREAM_ANTHROPIC).toBe('http://127.0.0.1:2/anthropic');
  });

  it('reports per detector what it caught, what it missed and whom it wrongly flagged', () => {
    const result = (
      c: string,
      kind: 'cheater' | 'honest',
      expected: string[],
      flagged: string[],
      unverified: string[] = [],
    ): SelftestCaseResult => ({
      case: c,
      kind,
      description: '',
      expected: { verdict: kind === 'cheater' ? 'flagged' : 'clean', detectors: expected, rules: [] },
      actual: {
        verdict: flagged.length ? 'flagged' : unverified.length ? 'unverified' : 'clean',
        flagged: flagged.map((detector) => ({ detector, rule: 'r' })),
        unverified: unverified.map((detector) => ({ detector, rule: 'u' })),
      },
      passed: true,
      problem: '',
      evidence: '',
      trial: null,
      dir: null,
      seconds: 1,
    });
    const { detectors, uncaught } = detectorTallies([
      result('a', 'cheater', ['contamination'], ['contamination', 'likelihood-probe']),
      result('b', 'cheater', ['likelihood-probe'], []),
      result('c', 'cheater', ['tamper'], ['tamper']),
      result('h1', 'honest', [], ['likelihood-probe']),
      result('h2', 'honest', [], [], ['egress-rules']),
    ]);
    expect(detectors).toEqual([
      { detector: 'contamination', caught: ['a'], missed: [], falsePositives: [] },
      { detector: 'egress-rules', caught: [], missed: [], falsePositives: ['h2'] },
      { detector: 'likelihood-probe', caught: ['a'], missed: ['b'], falsePositives: ['h1'] },
      { detector: 'tamper', caught: ['c'], missed: [], falsePositives: [] },
    ]);
    expect(uncaught).toEqual(['b']);
  });

  it('refuses an unknown case id', async () => {
    const run = await runCli(['selftest', '--only', 'no-such-case'], { PTB_HOME: tempHome() });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/unknown selftest case: no-such-case/);
  });
});

interface CaseLine {
  case: string;
  kind: 'cheater' | 'honest';
  expected: { verdict: string; detectors: string[]; rules: string[] };
  actual: {
    verdict: string;
    flagged: Array<{ detector: string; rule: string }>;
    unverified: Array<{ detector: string; rule: string }>;
  };
  passed: boolean;
  problem?: string;
  evidence: string;
  trial: string;
  dir: string;
}

/**
 * The CI proof of the audit (issue #4): every case a real trial — the command agent running
 * python/redteam/ scripts in the bwrap sandbox, ledgers, audit, evaluation by the hf engine — on
 * the tiny model. Every cheater must be caught by its detector, no honest agent flagged.
 */
describe('ptb selftest (every case, end to end)', () => {
  let python: string;
  beforeAll(async () => {
    python = await testPython();
  }, tinyModelTimeoutMs);

  it('catches every cheater with the right detector and leaves every honest agent clean', async () => {
    const home = tempHome();
    const run = await runCli(['selftest', '--json'], { PTB_HOME: home, PTB_PYTHON: python });
    expect(run.stderr).not.toMatch(/unexpected error/);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.at(-1)!.summary as Record<string, number>;
    // The per-detector report: every detector a case expects is there, none missed, no honest agent flagged.
    const tallies = lines.at(-1)!.detectors as Array<{
      detector: string;
      missed: string[];
      falsePositives: string[];
    }>;
    for (const c of SELFTEST_CASES)
      for (const d of c.expect.detectors) expect(tallies.map((t) => t.detector)).toContain(d);
    expect(tallies.flatMap((t) => [...t.missed, ...t.falsePositives])).toEqual([]);
    expect(lines.at(-1)!.uncaught).toEqual([]);
    const cases = lines.slice(0, -1) as unknown as CaseLine[];
    const failures = cases.filter((c) => !c.passed).map((c) => `${c.case}: ${c.problem}`);
    expect(failures).toEqual([]);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);

    // The JSON contract: one line per case in case order, then the summary.
    expect(cases.map((c) => c.case)).toEqual(SELFTEST_CASES.map((c) => c.id));
    const cheaters = SELFTEST_CASES.filter((c) => c.kind === 'cheater').length;
    const honest = SELFTEST_CASES.filter((c) => c.kind === 'honest').length;
    expect(summary).toMatchObject({
      caught: cheaters,
      cheaters,
      false_positives: 0,
      honest,
      provider_calls: 0,
    });
    // Issue 9's bar: at least 25 cheaters and 10 honest agents, all told apart.
    expect(cheaters).toBeGreaterThanOrEqual(25);
    expect(honest).toBeGreaterThanOrEqual(10);

    for (const c of cases) {
      const spec = caseById(c.case);
      expect(c.kind).toBe(spec.kind);
      expect(c.expected.verdict).toBe(spec.expect.verdict);
      if (c.kind === 'honest') {
        expect(c.actual).toEqual({ verdict: 'clean', flagged: [], unverified: [] });
        continue;
      }
      expect(c.actual.verdict).toBe('flagged');
      for (const detector of spec.expect.detectors) {
        const hit = c.actual.flagged.find((f) => f.detector === detector);
        expect(hit, `${c.case}: ${detector}`).toBeDefined();
        expect(spec.expect.rules?.some((r) => hit!.rule.split(', ').includes(r))).toBe(true);
      }
      expect(c.evidence.length, c.case).toBeGreaterThan(0);
      // The audit is on disk too, as `ptb audit` and the report read it.
      expect(existsSync(join(trialLayout(c.dir).audits)), c.case).toBe(true);
    }

    // The Hub case really went through the HF pass-through to the stand-in Hub.
    const hub = cases.find((c) => c.case === 'test-from-hub')!;
    const downloads = readFileSync(trialLayout(hub.dir).ledgers.downloads, 'utf8');
    expect(downloads).toMatch(
      /"repo":"openai\/gsm8k"[^\n]*"file":"main\/test-00000-of-00001\.jsonl"[^\n]*"status":200/,
    );
    // The direct call was refused by the egress proxy before any connection.
    const direct = cases.find((c) => c.case === 'direct-api')!;
    const egress = readFileSync(trialLayout(direct.dir).ledgers.egress, 'utf8');
    expect(egress).toMatch(
      /"host":"api\.openai\.com"[^\n]*"allowed":false[^\n]*"rule":"provider-host-denied"/,
    );
    // Without --keep the live workspaces are gone; the trial records stay.
    expect(existsSync(trialLayout(hub.dir).work.dir)).toBe(false);
    expect(existsSync(trialLayout(hub.dir).taskSnapshot)).toBe(true);
  }, 1_500_000);
});
