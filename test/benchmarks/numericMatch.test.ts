import { describe, expect, it } from 'vitest';
import {
  casefold,
  formatGeneral,
  inspectMatch,
  isPythonNumeric,
  matchNumericEnd,
  NumericNormalizeError,
  normalizeNumber,
  removeBoxed,
  stripNumericPunctuation,
  stripPunctuation,
} from '../../src/benchmarks/shared/numericMatch.ts';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { hasPython, runPythonJson } from '../helpers/python.ts';

describe('match(numeric=True, location="end")', () => {
  it.each([
    ['ANSWER: 18', '18', '18', true],
    ['Reasoning...\nANSWER: 18.', '18', '18', true],
    ['She makes $1,234.00 a day', '1234', '1234', true],
    ['It costs £7 or €7', '7', '7', true],
    ['18 apples and 3 oranges', '18', '3', false],
    ['ANSWER: 18\n\nI hope this helps!', '18', '18', true],
    ['3.0', '3', '3', true],
    ['007', '7', '7', true],
    ['ANSWER: １８', '18', '18', true],
    ['The area is 10²', '100', '100', true],
  ])('%j vs %j extracts %j', (reply, target, answer, matched) => {
    expect(matchNumericEnd(reply, target)).toEqual({ answer, matched });
  });

  it('compares with endswith, so 25 matches a target of 5 (reference quirk)', () => {
    expect(matchNumericEnd('ANSWER: 25', '5')).toEqual({ answer: '25', matched: true });
    expect(matchNumericEnd('ANSWER: 5', '25').matched).toBe(false);
  });

  it('normalizes both sides to five significant digits', () => {
    expect(matchNumericEnd('123456', '123457')).toEqual({ answer: '1.2346e+05', matched: true });
    expect(matchNumericEnd('ANSWER: 3.14159', '3')).toEqual({ answer: '3.1416', matched: false });
  });

  it('takes the last token when no token is numeric, and "-18" is not numeric', () => {
    expect(matchNumericEnd('I do not know', '5')).toEqual({ answer: 'know', matched: false });
    expect(matchNumericEnd('', '5')).toEqual({ answer: '', matched: false });
    // "-18" is the last token, kept as text, and it ends with "18".
    expect(matchNumericEnd('ANSWER: -18', '18')).toEqual({ answer: '-18', matched: true });
    // A token glued to a word is not numeric: the earlier number wins.
    expect(matchNumericEnd('7 then ANSWER:18', '7')).toEqual({ answer: '7', matched: true });
  });

  it('falls back to text endswith for non-numeric targets (negative, with commas, decimal)', () => {
    expect(matchNumericEnd('ANSWER: -3', '-3')).toEqual({ answer: 'ANSWER: -3', matched: true });
    expect(matchNumericEnd('ANSWER: 13', '-3').matched).toBe(true);
    expect(matchNumericEnd('ANSWER: 1,000', '1,000').matched).toBe(true);
    expect(matchNumericEnd('ANSWER: 1000', '1,000').matched).toBe(false);
    expect(matchNumericEnd('ANSWER: 2.5.', '2.5').matched).toBe(true);
  });

  it('signals where the reference raises', () => {
    expect(() => matchNumericEnd('dotted .10.00.50', '5')).toThrow(NumericNormalizeError);
    expect(() => matchNumericEnd('huge 10⁹⁹⁹', '5')).toThrow(NumericNormalizeError);
  });

  it('supports the other locations', () => {
    expect(inspectMatch('12 then 5', '12', { location: 'begin', numeric: true }).matched).toBe(true);
    expect(inspectMatch('12.0', '12', { location: 'exact', numeric: true }).matched).toBe(true);
    expect(inspectMatch('Paris, France.', 'paris', { location: 'begin' }).matched).toBe(true);
  });
});

describe('number helpers', () => {
  it('strips numeric punctuation like inspect', () => {
    expect(stripNumericPunctuation('$1,000.50. Done.')).toBe('1000.50 Done');
    expect(stripNumericPunctuation('a.b 3.x')).toBe('ab 3x');
    expect(stripPunctuation(' "(hello)!" ')).toBe('hello');
  });

  it('normalizes only numeric tokens', () => {
    expect(normalizeNumber('18')).toBe('18');
    expect(normalizeNumber('0.000012345678')).toBe('1.2346e-05');
    expect(normalizeNumber('apples')).toBe('apples');
    expect(normalizeNumber('½')).toBe('0.5');
    expect(normalizeNumber('٣')).toBe('3');
    expect(() => normalizeNumber('9⁹⁹⁹⁹')).toThrow(NumericNormalizeError);
  });

  it('formats like Python .5g, ties to even on the exact binary value', () => {
    expect(formatGeneral(123465)).toBe('1.2346e+05');
    expect(formatGeneral(123475)).toBe('1.2348e+05');
    expect(formatGeneral(12345.5)).toBe('12346');
    expect(formatGeneral(12344.5)).toBe('12344');
    expect(formatGeneral(99999.5)).toBe('1e+05');
    expect(formatGeneral(0.00001)).toBe('1e-05');
    expect(formatGeneral(0.0001)).toBe('0.0001');
    expect(formatGeneral(0)).toBe('0');
  });

  it.skipIf(!hasPython)('formatGeneral agrees with Python format(x, ".5g") on random values', () => {
    const rng = new PythonRandom(11);
    const xs = Array.from({ length: 3000 }, (_, i) => {
      const scale = 10 ** Math.floor(rng.random() * 24 - 12);
      return i % 3 === 0 ? Math.round(rng.random() * 1e7) * 5 : rng.random() * scale;
    });
    const expected = runPythonJson(
      'import json,sys; print(json.dumps([format(x, ".5g") for x in json.load(sys.stdin)]))',
      xs,
    );
    expect(xs.map((x) => formatGeneral(x))).toEqual(expected);
  });

  it.skipIf(!hasPython)('isPythonNumeric and casefold agree with Python on sample strings', () => {
    const samples = [
      '18',
      '1.5',
      '-3',
      '١٢',
      '½',
      '²',
      'Ⅻ',
      '一二',
      'x1',
      '',
      '１８',
      '1,000',
      'ß',
      'Straße',
      'ſ',
    ];
    const expected = runPythonJson(
      'import json,sys; print(json.dumps([[s.isnumeric(), s.casefold()] for s in json.load(sys.stdin)]))',
      samples,
    ) as [boolean, string][];
    expect(samples.map((s) => [isPythonNumeric(s), casefold(s)])).toEqual(expected);
  });
});

describe('AIME \\boxed{} removal', () => {
  it('unwraps greedily within a line, once per line', () => {
    expect(removeBoxed('\\boxed{70}')).toBe('70');
    expect(removeBoxed('So $\\boxed{70}$.')).toBe('So $70$.');
    expect(removeBoxed('\\boxed{\\frac{1}{2}}')).toBe('\\frac{1}{2}');
    expect(removeBoxed('\\boxed{1} and \\boxed{2}')).toBe('1} and \\boxed{2');
    expect(removeBoxed('\\boxed{1}\n\\boxed{2}')).toBe('1\n2');
    expect(removeBoxed('\\boxed{}')).toBe('\\boxed{}');
  });
});
