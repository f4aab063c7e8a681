import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  JsonRoundTripError,
  jsonRoundTrip,
  LiteralEvalError,
  PythonSyntaxError,
  parsePythonCall,
  pythonFloatRepr,
  pythonLiteralEval,
} from '../../src/benchmarks/bfcl/pythonLiteral.ts';
import { hasPython } from '../helpers/python.ts';

const evalJson = (src: string) => jsonRoundTrip(pythonLiteralEval(src));

describe('python literals (ast.literal_eval semantics)', () => {
  it('reads numbers: ints, floats, exponents, signs, bases, underscores', () => {
    expect(evalJson('42')).toBe(42);
    expect(evalJson('-7')).toBe(-7);
    expect(evalJson('+3')).toBe(3);
    expect(evalJson('2.5')).toBe(2.5);
    expect(evalJson('.5')).toBe(0.5);
    expect(evalJson('5.')).toBe(5);
    expect(evalJson('1e3')).toBe(1000);
    expect(evalJson('-2.5E-3')).toBe(-0.0025);
    expect(evalJson('1_000_000')).toBe(1000000);
    expect(evalJson('0x1F')).toBe(31);
    expect(evalJson('0o17')).toBe(15);
    expect(evalJson('0b101')).toBe(5);
    expect(evalJson('-(4)')).toBe(-4);
    expect(evalJson('1e400')).toBe(Number.POSITIVE_INFINITY);
  });

  it('reads strings with both quote styles, escapes, prefixes and implicit concatenation', () => {
    expect(evalJson(`'single'`)).toBe('single');
    expect(evalJson(`"double"`)).toBe('double');
    expect(evalJson(`"it's"`)).toBe("it's");
    expect(evalJson(`'say \\"hi\\"'`)).toBe('say "hi"');
    expect(evalJson(`"a\\nb\\tc\\\\d"`)).toBe('a\nb\tc\\d');
    expect(evalJson(`"\\x41\\u00e9\\U0001F600\\101"`)).toBe('Aé😀A');
    expect(evalJson(`"keep \\d as is"`)).toBe('keep \\d as is');
    expect(evalJson(`r"raw\\n"`)).toBe('raw\\n');
    expect(evalJson(`u"unicode"`)).toBe('unicode');
    expect(evalJson(`"ab" 'cd'`)).toBe('abcd');
    expect(evalJson(`"""tri\nple"""`)).toBe('tri\nple');
    expect(evalJson(`"héllo"`)).toBe('héllo');
  });

  it('reads containers, nesting and trailing commas', () => {
    expect(evalJson('[1, 2.5, "x"]')).toEqual([1, 2.5, 'x']);
    expect(evalJson('(1, 2)')).toEqual([1, 2]);
    expect(evalJson('(1,)')).toEqual([1]);
    expect(evalJson('()')).toEqual([]);
    expect(evalJson('(7)')).toBe(7);
    expect(evalJson('[1, [2, (3, 4)], {"k": [5]},]')).toEqual([1, [2, [3, 4]], { k: [5] }]);
    expect(evalJson('{"a": True, "b": False, "c": None}')).toEqual({ a: true, b: false, c: null });
    expect(evalJson('{}')).toEqual({});
  });

  it('converts dict keys the way json.dumps writes them, later duplicates winning', () => {
    expect(evalJson('{1: "a", 2.5: "b", True: "c", None: "d"}')).toEqual({ '1': 'c', '2.5': 'b', null: 'd' });
    expect(evalJson('{1.0: "x"}')).toEqual({ '1.0': 'x' });
    expect(evalJson('{"k": 1, "k": 2}')).toEqual({ k: 2 });
  });

  it('refuses what json.dumps cannot write: sets, bytes, complex, tuple keys', () => {
    expect(() => evalJson('{1, 2}')).toThrow(JsonRoundTripError);
    expect(() => evalJson('set()')).toThrow(JsonRoundTripError);
    expect(() => evalJson('b"x"')).toThrow(JsonRoundTripError);
    expect(() => evalJson('1+2j')).toThrow(JsonRoundTripError);
    expect(() => evalJson('{(1, 2): 3}')).toThrow(JsonRoundTripError);
  });

  it('rejects valid Python that is not a literal', () => {
    for (const src of [
      'x',
      'math.pi',
      '1 + 2',
      '2 * 3',
      '--1',
      '-True',
      'f(1)',
      'f"x{y}"',
      '[*a]',
      '{**a}',
      'a[0]',
    ]) {
      expect(() => pythonLiteralEval(src), src).toThrow(LiteralEvalError);
    }
  });

  it('rejects text that is not Python', () => {
    for (const src of ['[1, 2', '"unterminated', '012', '1abc', '{1: }', ')', "'a' b'c'"]) {
      expect(() => pythonLiteralEval(src), src).toThrow(PythonSyntaxError);
    }
  });
});

describe('parsePythonCall (inspect_evals bfcl parse_target)', () => {
  it('returns the function name and the keyword arguments in order', () => {
    const call = parsePythonCall('f(a=1, b=[1, 2.5], c="x", d=(1,2), e={"k": True})');
    expect(call.function).toBe('f');
    expect(call.arguments.map(([name, v]) => [name, jsonRoundTrip(v)])).toEqual([
      ['a', 1],
      ['b', [1, 2.5]],
      ['c', 'x'],
      ['d', [1, 2]],
      ['e', { k: true }],
    ]);
    expect(call.skipped).toEqual([]);
  });

  it('accepts a call without arguments, a trailing newline and a comment', () => {
    expect(parsePythonCall('ping()\n').arguments).toEqual([]);
    expect(parsePythonCall('ping(x=1)  # note').arguments).toHaveLength(1);
  });

  it('skips (not fails) a keyword whose value is not a literal, like the reference', () => {
    const call = parsePythonCall('area(radius=math.pi, scale=2 * 3, unit="cm")');
    expect(call.arguments.map(([name]) => name)).toEqual(['unit']);
    expect(call.skipped.map((s) => s.name)).toEqual(['radius', 'scale']);
  });

  it('keeps the last value of a repeated keyword and skips a non-literal `**` argument', () => {
    const call = parsePythonCall('f(a=1, b=2, a=3, **kw)');
    expect(call.arguments.map(([name, v]) => [name, jsonRoundTrip(v)])).toEqual([
      ['a', 3],
      ['b', 2],
    ]);
    expect(call.skipped.map((s) => s.name)).toEqual(['**']);
    expect(parsePythonCall('f(**{"k": 1})').arguments.map(([name]) => name)).toEqual([null]);
  });

  it('throws where the reference would crash', () => {
    for (const src of [
      'f(1)',
      'f(a=1, 2)',
      'obj.method(a=1)',
      'f(a=1); g(b=2)',
      'f(a=1)\ng(b=2)',
      'x = f(a=1)',
      '[f(a=1)]',
      'f(a=1',
      '',
    ]) {
      expect(() => parsePythonCall(src), JSON.stringify(src)).toThrow(PythonSyntaxError);
    }
  });
});

describe('pythonFloatRepr', () => {
  it('formats like repr(float)', () => {
    const cases: Array<[number, string]> = [
      [1, '1.0'],
      [2.5, '2.5'],
      [-0.5, '-0.5'],
      [1e16, '1e+16'],
      [1.5e16, '1.5e+16'],
      [1e15, '1000000000000000.0'],
      [0.0001, '0.0001'],
      [0.00001, '1e-05'],
      [123.456, '123.456'],
      [0.1 + 0.2, '0.30000000000000004'],
    ];
    for (const [x, repr] of cases) expect(pythonFloatRepr(x)).toBe(repr);
  });
});

describe.skipIf(!hasPython)('agreement with CPython', () => {
  const expressions = [
    '[1, -2, 3.25, -4e-2, 0x10, 1_0]',
    `{"a": 'b', 'c': ("d", 1), 2: [None, True]}`,
    `"mixed \\"quotes\\" and 'single' \\u00e9 \\x7f \\0"`,
    `r'C:\\path\\n'`,
    '((1, 2), [3, (4,)], {})',
    '{1.5: 1, 10.0: 2, 1e20: 3, True: 4}',
    '"a" "b" \'c\'',
    '-0.0',
    '[1e-7, 123456789012345.0, 2.5e+30]',
  ];

  it('produces what json.loads(json.dumps(ast.literal_eval(x))) produces', () => {
    const script = [
      'import ast, json, sys',
      'print(json.dumps([json.loads(json.dumps(ast.literal_eval(x))) for x in json.load(sys.stdin)]))',
    ].join('\n');
    const out = spawnSync('python3', ['-c', script], {
      input: JSON.stringify(expressions),
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    expect(expressions.map(evalJson)).toEqual(JSON.parse(out.stdout));
  });

  it('writes float dict keys with repr(float)', () => {
    const values = [1.5, 10, 1e20, 1e-5, 0.1, 123456.789, 5e-324, 1.7976931348623157e308];
    const out = spawnSync(
      'python3',
      ['-c', 'import json,sys; print(json.dumps([repr(float(x)) for x in json.load(sys.stdin)]))'],
      {
        input: JSON.stringify(values),
        encoding: 'utf8',
      },
    );
    expect(values.map(pythonFloatRepr)).toEqual(JSON.parse(out.stdout));
  });
});
