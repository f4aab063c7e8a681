import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scoreAime } from '../../src/benchmarks/aime2025/index.ts';
import { gsm8kBenchmark } from '../../src/benchmarks/gsm8k/index.ts';
import {
  lastNumberExact,
  matchNumericEnd,
  numericMatchScore,
  signedLastNumberExact,
  stripNumericPunctuation,
} from '../../src/benchmarks/shared/numericMatch.ts';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { ScorerFailure } from '../../src/benchmarks/types.ts';
import { PROTOCOLS } from '../../src/core/protocols.ts';
import { forkNumericMatch, inspectForkPackage } from '../helpers/inspectFork.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';

const V10 = PROTOCOLS['v1.0'].scoring;
const V11 = PROTOCOLS['v1.1'].scoring;
// ../shared/data next to the checkout (PTB_SHARED_DATA elsewhere, e.g. in a worktree).
const DATA = process.env.PTB_SHARED_DATA ?? resolve(import.meta.dirname, '../../../shared/data');
const GSM8K_OUTPUTS = resolve(DATA, 'outputs/gsm8k/example_model_solutions.jsonl');
const GSM8K_TEST = resolve(DATA, 'gsm8k/test.jsonl');

describe('numeric matching as the reference eval image runs it (the inspect fork)', () => {
  it('strips markdown emphasis (* and _) around numbers', () => {
    for (const reply of [
      '**ANSWER: 18**',
      'ANSWER: **18**',
      'ANSWER: *18*',
      'ANSWER: _18_',
      'ANSWER: __18__',
    ]) {
      expect(matchNumericEnd(reply, '18'), reply).toEqual({ answer: '18', matched: true });
    }
    expect(stripNumericPunctuation('**$1,000.50**')).toBe('1000.50');
  });

  it('parses a token with several dots from its leading number (1.2.3 is 1.2)', () => {
    expect(matchNumericEnd('version 1.2.3', '1')).toEqual({ answer: '1.2', matched: false });
    expect(matchNumericEnd('ANSWER: 18.0.0', '18')).toEqual({ answer: '18', matched: true });
    const score = numericMatchScore('ANSWER: 12.5.1', '12', V10, { signedTargets: true });
    expect(score).toMatchObject({ value: 0, answer: '12.5' });
  });

  it('GSM8K and AIME score those replies as correct', async () => {
    const prepared = {
      score: (text: string, target: string) =>
        numericMatchScore(text, target, V10, { signedTargets: true }).value,
    };
    expect(prepared.score('Reasoning...\n**ANSWER: 18**', '18')).toBe(1);
    expect(scoreAime('The answer is **70**.', '70', V10).value).toBe(1);
    expect(gsm8kBenchmark.id).toBe('gsm8k');
  });

  it('v1.0 fails the attempt where inspect raises; v1.1 counts it as wrong', () => {
    expect(() => numericMatchScore('so .10.00.50', '10', V10, { signedTargets: true })).toThrow(
      ScorerFailure,
    );
    expect(numericMatchScore('so .10.00.50', '10', V11, { signedTargets: true })).toMatchObject({
      value: 0,
      answer: '.10.00.50',
    });
    expect(() => numericMatchScore('3*5²*13 = 10⁹⁹⁹', '5', V10, { signedTargets: false })).toThrow(
      ScorerFailure,
    );
  });
});

describe('exact comparison (protocol v1.1, exact_numeric_match.py)', () => {
  it('compares the extracted number with ==, not endswith (upstream issue #44)', () => {
    expect(matchNumericEnd('ANSWER: 711', '11').matched).toBe(true);
    expect(lastNumberExact('ANSWER: 711', '11')).toEqual({
      answer: '711',
      matched: false,
      unparsable: false,
    });
    expect(lastNumberExact('ANSWER: **11**', '11').matched).toBe(true);
    expect(scoreAime('\\boxed{149}', '49', V10).value).toBe(1);
    expect(scoreAime('\\boxed{149}', '49', V11).value).toBe(0);
    expect(scoreAime('\\boxed{49}', '49', V11).value).toBe(1);
  });

  it('compares GSM8K signed and comma-grouped targets by value', () => {
    // inspect compares these as text: 13 "ends with" -3, and 14000 does not end with "14,000"
    expect(matchNumericEnd('ANSWER: 13', '-3').matched).toBe(true);
    expect(matchNumericEnd('ANSWER: 14000', '14,000').matched).toBe(false);
    expect(signedLastNumberExact('ANSWER: 13', '-3').matched).toBe(false);
    expect(signedLastNumberExact('ANSWER: -3', '-3')).toEqual({
      answer: '-3',
      matched: true,
      unparsable: false,
    });
    expect(signedLastNumberExact('ANSWER: 14000', '14,000').matched).toBe(true);
    expect(signedLastNumberExact('ANSWER: $14,000.00', '14000')).toMatchObject({
      answer: '14000',
      matched: true,
    });
    expect(signedLastNumberExact('no number here', '5')).toEqual({
      answer: 'here',
      matched: false,
      unparsable: false,
    });
  });
});

/** Every (reply, target) pair of the real GSM8K model outputs, plus their ANSWER-formatted and emphasized variants. */
function realPairs(): Array<[string, string]> {
  const targets = readFileSync(GSM8K_TEST, 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { answer: string }).answer.split('####').pop()!.trim());
  const rows = readFileSync(GSM8K_OUTPUTS, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, { solution: string } | string>);
  const pairs: Array<[string, string]> = [];
  rows.forEach((row, i) => {
    for (const key of ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification']) {
      const solution = (row[key] as { solution: string }).solution;
      const final = solution.split('A:').pop()!.trim();
      pairs.push([solution, targets[i]!]);
      pairs.push([`${solution}\n**ANSWER: ${final}**`, targets[i]!]);
      pairs.push([`${solution}\nANSWER: *${final}*.`, targets[i]!]);
    }
  });
  return pairs;
}

/** Tokens that reach the number parser's corners: dots, fractions, superscripts, other scripts. */
function fuzzPairs(count: number): Array<[string, string]> {
  const pieces = [
    '1',
    '2',
    '7',
    '0',
    '.',
    '..',
    '½',
    '⅓',
    '²',
    '³',
    '¹⁰',
    '١',
    '٣',
    '５',
    'Ⅻ',
    '十',
    '二',
    '*',
    '_',
    ',',
    '$',
    '-',
  ];
  const rng = new PythonRandom(5);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < count; i++) {
    let token = '';
    const n = 1 + Math.floor(rng.random() * 6);
    for (let j = 0; j < n; j++) token += pieces[Math.floor(rng.random() * pieces.length)]!;
    const target = String(Math.floor(rng.random() * 30));
    out.push([`ANSWER: ${token}`, target]);
  }
  return out;
}

describe.skipIf(!hasPython || !existsSync(GSM8K_OUTPUTS) || inspectForkPackage() === null)(
  'agreement with the fork itself (validation: its own text.py, _unicode.py and _common.py)',
  () => {
    it('matches the fork on every real GSM8K output and its emphasized variants', () => {
      const pairs = realPairs();
      const expected = forkNumericMatch(pairs);
      const ours = pairs.map(([reply, target]) => {
        try {
          return matchNumericEnd(reply, target);
        } catch (err) {
          return { error: (err as Error).name };
        }
      });
      const mismatches = pairs.filter((_, i) => {
        const e = expected[i]!;
        const o = ours[i]!;
        return 'error' in e ? !('error' in o) : JSON.stringify(e) !== JSON.stringify(o);
      });
      expect(mismatches.slice(0, 5)).toEqual([]);
      // the fork is what changed these: ptb's earlier rule scored the emphasized variants as wrong
      expect(expected.filter((e) => 'matched' in e && e.matched).length).toBeGreaterThan(pairs.length / 3);
    });

    it('matches the fork on fuzzed number tokens, including where it raises', () => {
      const pairs = fuzzPairs(4000);
      const expected = forkNumericMatch(pairs);
      const mismatches: unknown[] = [];
      pairs.forEach(([reply, target], i) => {
        let ours: unknown;
        try {
          ours = matchNumericEnd(reply, target);
        } catch (_err) {
          ours = { error: 'raises' };
        }
        const e = expected[i]!;
        const same =
          'error' in e
            ? (ours as { error?: string }).error === 'raises'
            : JSON.stringify(ours) === JSON.stringify(e);
        if (!same) mismatches.push({ reply, target, fork: e, ours });
      });
      expect(mismatches.slice(0, 8)).toEqual([]);
    });
  },
);

describe.skipIf(!hasPython)('per-request value comparison against Python float semantics', () => {
  it('signedLastNumberExact formats like format(x, ".12g")', () => {
    const values = ['1234567.25', '-3', '0.1', '14000', '123456789012345'];
    const expected = runPythonJson(
      'import json,sys; print(json.dumps([format(float(v), ".12g") for v in json.load(sys.stdin)]))',
      values,
    );
    expect(values.map((v) => signedLastNumberExact(`ANSWER: ${v}`, '0').answer)).toEqual(expected);
  });
});
