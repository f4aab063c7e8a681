import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { limitRepetitions } from '../../src/benchmarks/shared/limitRepetitions.ts';
import { PythonRandom } from '../../src/benchmarks/shared/pythonRandom.ts';
import { pythonStrip } from '../../src/benchmarks/shared/pythonText.ts';
import { hasPython } from '../helpers/python.ts';

describe('limitRepetitions', () => {
  it('leaves ordinary text alone', () => {
    const text = 'First line.\nSecond line.\n\nA third, different line with some words.';
    expect(limitRepetitions(text)).toBe(text);
  });

  it('keeps a run of exactly five identical lines but cuts a longer one to five', () => {
    const five = ['x', 'same', 'same', 'same', 'same', 'same', 'y'].join('\n');
    expect(limitRepetitions(five)).toBe(five);
    const nine = ['x', ...Array(9).fill('same line'), 'y'].join('\n');
    expect(limitRepetitions(nine)).toBe(['x', ...Array(5).fill('same line'), 'y'].join('\n'));
  });

  it('cuts a repeated two-line block to five copies', () => {
    const block = ['The chorus goes on,', 'and on again.'];
    const text = ['Intro', ...Array(8).fill(block).flat(), 'Outro'].join('\n');
    expect(limitRepetitions(text)).toBe(['Intro', ...Array(5).fill(block).flat(), 'Outro'].join('\n'));
  });

  it('drops a cut-off partial copy that follows a repeated block', () => {
    const block = ['Step one: breathe in deeply', 'Step two: breathe out slowly', ''];
    const lines = [...Array(7).fill(block).flat(), 'Step one: brea'];
    expect(limitRepetitions(lines.join('\n'))).toBe(Array(5).fill(block).flat().join('\n'));
  });

  it('keeps trailing lines that are not a partial copy', () => {
    const block = ['alpha line', 'beta line'];
    const lines = [...Array(7).fill(block).flat(), 'a genuinely new ending'];
    expect(limitRepetitions(lines.join('\n'))).toBe(
      [...Array(5).fill(block).flat(), 'a genuinely new ending'].join('\n'),
    );
  });

  it('cuts substrings repeated back to back inside a line', () => {
    expect(limitRepetitions(`start ${'abc'.repeat(12)} end`)).toBe(`start ${'abc'.repeat(5)} end`);
    // The lazy unit is the shortest one of at least 3 characters: "haha", not "ha".
    expect(limitRepetitions('ha'.repeat(20))).toBe('ha'.repeat(10));
    // Six copies of a unit exceed the limit; the limiter needs unit + 5 more copies.
    expect(limitRepetitions('xyz'.repeat(6))).toBe('xyz'.repeat(5));
    expect(limitRepetitions('xyz'.repeat(5))).toBe('xyz'.repeat(5));
  });

  it('counts units in code points, as Python does', () => {
    // 20 emoji: the unit is 3 code points; 6 copies are cut to 5 and 2 emoji are left over.
    expect([...limitRepetitions('😀'.repeat(20))]).toHaveLength(17);
  });

  it('honours another maximum', () => {
    expect(limitRepetitions(Array(6).fill('row').join('\n'), 2)).toBe('row\nrow');
  });

  it('works in rounds until nothing changes', () => {
    // Lines that differ until the substring pass cuts each to five units become identical lines,
    // which the next round's line pass then cuts to five.
    const lines = Array.from({ length: 8 }, (_, i) => `item ${'nana'.repeat(6 + i)}`);
    expect(limitRepetitions(lines.join('\n'))).toBe(
      Array(5)
        .fill(`item ${'nana'.repeat(5)}`)
        .join('\n'),
    );
  });
});

describe('pythonStrip', () => {
  it("strips Python's whitespace set, not JavaScript's", () => {
    expect(pythonStrip('\u001c\u0085 text \u3000\n')).toBe('text');
    // U+FEFF is whitespace for trim() but not for str.strip().
    expect(pythonStrip('\ufefftext\ufeff')).toBe('\ufefftext\ufeff');
  });
});

/**
 * The same algorithm in Python, written from the spec's description for this test, run by the
 * real CPython `re` engine: the risk in porting is that V8's and CPython's regex engines differ.
 */
const PYTHON_LIMITER = String.raw`
import json, re, sys

def limit(text, m=5):
    def lines_pass(t):
        ls = t.split('\n'); out = []; i = 0; ch = False
        while i < len(ls):
            j = i + 1
            while j < len(ls) and ls[j] == ls[i]: j += 1
            if j - i > m: ch = True
            out += [ls[i]] * min(j - i, m); i = j
        return '\n'.join(out), ch
    def blocks_pass(t):
        ls = t.split('\n')
        for size in range(2, min(30, len(ls) // 5 + 1)):
            for i in range(0, len(ls) - size + 1):
                blk = ls[i:i + size]; n = 1; j = i + size
                while j + size <= len(ls) and ls[j:j + size] == blk: n += 1; j += size
                if n <= m: continue
                rest = ls[j:]
                def partial():
                    if len(rest) > len(blk): return False
                    for k, r in enumerate(rest):
                        b = blk[k]
                        if r == b: continue
                        if r.strip() and b.startswith(r.strip()): continue
                        if b.strip() and r.startswith(b.strip()): continue
                        return False
                    return True
                keep = len(ls) if rest and partial() else j
                return '\n'.join(ls[:i] + blk * m + ls[keep:]), True
        return t, False
    def regex_pass(t):
        ch = False
        while True:
            rnd = False
            for lo, hi in [(3, 30), (30, 60), (60, 120), (120, 250), (250, 500)]:
                def rep(mt):
                    nonlocal rnd
                    if len(mt.group(0)) // len(mt.group(1)) > m:
                        rnd = True
                        return mt.group(1) * m
                    return mt.group(0)
                t = re.sub(r'(.{%d,%d}?)\1{%d,}' % (lo, hi, m), rep, t, flags=re.DOTALL)
            if not rnd: break
            ch = True
        return t, ch
    for _ in range(10):
        text, a = lines_pass(text); text, b = blocks_pass(text); text, c = regex_pass(text)
        if not (a or b or c): break
    return text

print(json.dumps([limit(t) for t in json.load(sys.stdin)]))
`;

function syntheticDegenerateTexts(count: number): string[] {
  const rng = new PythonRandom(2024);
  const pieces = [
    'la',
    'na ',
    'Hello!',
    '—',
    '😀',
    '你好',
    '\n',
    '\n\n',
    'word ',
    'The end.',
    '  ',
    '**',
    '1.',
  ];
  const texts: string[] = [];
  for (let t = 0; t < count; t++) {
    let text = '';
    const parts = 3 + rng.randbelow(8);
    for (let p = 0; p < parts; p++) {
      let unit = '';
      const unitParts = 1 + rng.randbelow(4);
      for (let u = 0; u < unitParts; u++) unit += pieces[rng.randbelow(pieces.length)];
      text += unit.repeat(1 + rng.randbelow(14));
    }
    texts.push(text);
  }
  return texts;
}

describe('limitRepetitions against CPython re', () => {
  it.skipIf(!hasPython)('gives the same output on varied degenerate texts', () => {
    const texts = [
      ...syntheticDegenerateTexts(150),
      `${'Once upon a time, '.repeat(30)}\n${'- item\n'.repeat(12)}`,
      Array(9).fill('line A\nline B\nline C').join('\n') + '\nline A\nline',
      '😀'.repeat(40) + 'x' + '🎉ab'.repeat(9),
    ];
    const out = spawnSync('python3', ['-c', PYTHON_LIMITER], {
      input: JSON.stringify(texts),
      encoding: 'utf8',
    });
    expect(out.status, out.stderr).toBe(0);
    const expected = JSON.parse(out.stdout) as string[];
    const changed = texts.filter((t, i) => expected[i] !== t).length;
    expect(changed).toBeGreaterThan(50);
    texts.forEach((text, i) => {
      expect(limitRepetitions(text), JSON.stringify(text)).toBe(expected[i]);
    });
  });
});
