import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineIndex, LineIndexCache, MAX_LINE_BYTES } from '../../src/web/lineIndex.ts';

const dir = mkdtempSync(join(tmpdir(), 'ptb-lineindex-'));
let counter = 0;
function file(content: string | Buffer): string {
  const p = join(dir, `f${counter++}.txt`);
  writeFileSync(p, content);
  return p;
}

function indexOf(content: string | Buffer): LineIndex {
  const ix = new LineIndex(file(content));
  ix.refresh();
  ix.ensureAll();
  return ix;
}

/** What search must return: line numbers whose lower-cased text contains the lower-cased needle. */
function naive(lines: string[], q: string): number[] {
  const needle = q.toLowerCase();
  return lines.flatMap((l, i) => (l.toLowerCase().includes(needle) ? [i] : []));
}

describe('LineIndex', () => {
  it('splits lines with and without a trailing newline, keeps empty lines, drops CR', () => {
    expect(indexOf('').count).toBe(0);
    expect(indexOf('').read(0, 10)).toEqual([]);
    const a = indexOf('a\n\nb');
    expect(a.count).toBe(3);
    expect(a.read(0, 10).map((l) => l.text)).toEqual(['a', '', 'b']);
    const b = indexOf('x\r\ny\r\n');
    expect(b.count).toBe(2);
    expect(b.read(0, 10).map((l) => l.text)).toEqual(['x', 'y']);
    expect(b.read(1, 1)).toEqual([{ n: 1, text: 'y', bytes: 2, truncated: false }]);
    expect(b.read(5, 10)).toEqual([]);
  });

  it('cuts a huge line and says so, and pages around it', () => {
    const huge = 'z'.repeat(MAX_LINE_BYTES * 3);
    const ix = indexOf(`first\n${huge}\nlast\n`);
    const [first, big, last] = ix.read(0, 3);
    expect(first!.text).toBe('first');
    expect(big!.truncated).toBe(true);
    expect(big!.bytes).toBe(huge.length);
    expect(big!.text.length).toBe(MAX_LINE_BYTES);
    expect(last!.text).toBe('last');
  });

  it('pages through a file larger than one read chunk', () => {
    const lines = Array.from({ length: 120_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 90)}`);
    const ix = indexOf(`${lines.join('\n')}\n`);
    expect(ix.count).toBe(lines.length);
    for (const offset of [0, 59_999, 119_990]) {
      expect(ix.read(offset, 10).map((l) => l.text)).toEqual(lines.slice(offset, offset + 10));
    }
  });

  it('extends the index when an append-only file grows, and rebuilds when it is replaced', () => {
    const p = file('one\ntw');
    const ix = new LineIndex(p);
    ix.refresh();
    expect(ix.read(0, 5).map((l) => l.text)).toEqual(['one', 'tw']);
    expect(ix.count).toBe(2);
    appendFileSync(p, 'o\nthree\n');
    ix.refresh();
    expect(ix.read(0, 5).map((l) => l.text)).toEqual(['one', 'two', 'three']);
    expect(ix.count).toBe(3);
    writeFileSync(`${p}.new`, 'new\n');
    writeFileSync(p, 'a\n'); // shorter: rebuilt from scratch
    ix.refresh();
    expect(ix.read(0, 5).map((l) => l.text)).toEqual(['a']);
  });

  it('searches case-insensitively, once per line, with a cap and a continuation point', () => {
    const lines = [
      'Alpha beta',
      'gamma',
      'BETA beta Beta',
      'delta',
      'alpha-beta',
      'a+b(c literal',
      'ÜBERPRÜFUNG fertig',
    ];
    const ix = indexOf(lines.join('\n'));
    expect(ix.search('beta', 0, 100)).toEqual({ matches: [0, 2, 4], nextFrom: null, scanned: 7 });
    const capped = ix.search('beta', 0, 2);
    expect(capped.matches).toEqual([0, 2]);
    expect(capped.nextFrom).toBe(3);
    expect(ix.search('beta', capped.nextFrom!, 2).matches).toEqual([4]);
    expect(ix.search('A+B(C', 0, 10).matches).toEqual([5]);
    expect(ix.search('überprüfung', 0, 10).matches).toEqual([6]);
    expect(ix.search('', 0, 10).matches).toEqual([]);
    expect(ix.search('nowhere', 0, 10).matches).toEqual([]);
  });

  it('finds the same lines as a naive scan in a multi-chunk file with multi-byte text', () => {
    // Multi-byte characters before a hit shift byte offsets away from string offsets.
    const lines = Array.from({ length: 90_000 }, (_, i) => {
      const pre = i % 3 === 0 ? 'ünïcödé ✓ 日本語 ' : 'plain ';
      const hit = i % 7919 === 0 ? 'Needle' : i % 4999 === 0 ? 'nÉédle' : 'hay';
      return `${pre}${'x'.repeat(i % 50)} ${hit} ${i}`;
    });
    const ix = indexOf(`${lines.join('\n')}\n`);
    expect(ix.bytes).toBeGreaterThan(4 * 1024 * 1024);
    for (const q of ['needle', 'NÉÉDLE', '日本語 plain', 'hay 89999']) {
      expect(ix.search(q, 0, 1_000_000).matches).toEqual(naive(lines, q));
    }
  });

  it('indexes lazily: a first page needs one chunk, the rest completes in the background', async () => {
    const lines = Array.from({ length: 200_000 }, (_, i) => `row ${i} ${'y'.repeat(40)}`);
    const p = file(`${lines.join('\n')}\n`);
    const ix = new LineIndex(p);
    ix.refresh();
    expect(ix.read(0, 3).map((l) => l.text)).toEqual(lines.slice(0, 3));
    expect(ix.complete).toBe(false);
    expect(ix.count).toBeGreaterThan(3);
    expect(ix.count).toBeLessThan(lines.length);
    expect(ix.read(150_000, 2).map((l) => l.text)).toEqual(lines.slice(150_000, 150_002)); // scans further on demand
    await ix.completeInBackground();
    expect(ix.complete).toBe(true);
    expect(ix.count).toBe(lines.length);
    // Growth continues the scan; the trailing newline never counts as an extra line.
    appendFileSync(p, 'tail line\n');
    ix.refresh();
    expect(ix.complete).toBe(false);
    ix.ensureAll();
    expect(ix.count).toBe(lines.length + 1);
    expect(ix.read(lines.length, 5).map((l) => l.text)).toEqual(['tail line']);
  });

  it('cache refreshes entries and evicts the least recently used', () => {
    const cache = new LineIndexCache(2);
    const p1 = file('a\n');
    const p2 = file('b\n');
    const p3 = file('c\n');
    const i1 = cache.get(p1);
    cache.get(p2);
    expect(cache.get(p1)).toBe(i1);
    cache.get(p3); // evicts p2
    expect(cache.get(p1)).toBe(i1);
    appendFileSync(p1, 'more\n');
    expect(cache.get(p1).count).toBe(2);
  });
});
