import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { MatchFinding } from '../../src/detectors/contamination/matcher.ts';
import { Matcher } from '../../src/detectors/contamination/matcher.ts';
import { type ContaminationItem, NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import { type NgramSink, NgramStream, textNgrams } from '../../src/detectors/contamination/ngramStream.ts';
import { CorpusWriter } from './contaminationCorpus.ts';

describe('the WebAssembly scan kernel', () => {
  it('is committed as assembled from its source', async () => {
    // @ts-expect-error: a plain .mjs build script, no type declarations
    const { generated, WASM_SOURCES } = await import('../../scripts/buildWasm.mjs');
    for (const source of WASM_SOURCES as string[]) {
      const { out, text } = (await generated(source)) as { out: string; text: string };
      expect(readFileSync(out, 'utf8'), `${out}: run node scripts/buildWasm.mjs`).toBe(text);
    }
  });

  const writer = new CorpusWriter(11);
  /** Ten thousand words: more n-grams than the kernel's event buffer holds (it stops and resumes). */
  const long = Array.from({ length: 700 }, () => writer.prose(2)).join(' ');

  it('collects every n-gram of a long text, as when the text is fed in pieces', () => {
    const whole = textNgrams(long, true);
    expect(whole.tokens.length).toBeGreaterThan(10_000);
    expect(whole.h1.length).toBe(whole.tokens.length - 7);
    // The same bytes through one stream, cut after separators into calls of a few hundred bytes.
    const stream = new NgramStream({ escapes: true, countLines: false });
    const buf = Buffer.from(`${long} `);
    for (let from = 0; from < buf.length - 1; ) {
      const stop = stream.safeEnd(buf, from, Math.min(buf.length - 1, from + 300));
      from = stream.process(buf, from, stop, buf.length - 1, 0);
    }
    expect(stream.tokens).toEqual(whole.tokens);
    expect(stream.collected1).toEqual(whole.h1);
    expect(stream.collected2).toEqual(whole.h2);
  });

  it('finds an item at the end of one call larger than its first window, with non-ASCII words around', () => {
    const item: ContaminationItem = {
      id: 'x',
      texts: [
        'Naïve Zoë baked 12 crème brûlée tarts for the fête and sold each of them for 3 dollars at the market',
      ],
    };
    const index = new NgramIndex([item, { id: 'y', texts: [long] }]);
    const found: MatchFinding[] = [];
    const matcher = new Matcher(index, (f) => found.push(f));
    const stream = new NgramStream({ escapes: true, countLines: true }, index, matcher);
    const filler = Buffer.alloc(6 << 20, 'lorem ipsum dolor sit amet\n');
    const copy = Buffer.from(
      ' Naïve Zo\\u00eb baked 40 cre\u0300me br\\u00fbl\\u00e9e tarts for the f\u00eate and sold each of them for 7 dollars at the market \n',
    );
    const buf = Buffer.concat([filler, copy]);
    stream.process(buf, 0, buf.length, buf.length, 0);
    matcher.sweep(stream.count);
    matcher.flush();
    expect(found.map((f) => [f.item, f.record, f.start])).toEqual([
      [0, filler.toString().split('\n').length, filler.length + 1],
    ]);
  });

  it('reports the line a hit starts on, whether the n-gram starts in the call or before it', () => {
    const w = new CorpusWriter(5);
    const row = w.item();
    const index = new NgramIndex([{ id: 'a', texts: [row.question, row.answer] }]);
    // The question two words a line (its n-grams span lines), twice, among other lines.
    const words = row.question.split(/\s+/);
    let copy = '';
    for (let k = 0; k < words.length; k += 2) copy += `${words.slice(k, k + 2).join(' ')}\n`;
    const text = `${w.prose(3)}\n${copy}${w.prose(2)}\n\n${copy}${w.prose(1)}\n `;
    const buf = Buffer.from(text);
    const lineAt = (offset: number) => 1 + (text.slice(0, offset).match(/\n/g)?.length ?? 0);
    const seen: string[][] = [];
    // One call (lines counted back in WebAssembly), and calls of a few dozen bytes (most hits
    // start before their call: JavaScript counts from the line where they end).
    for (const step of [buf.length, 97, 29]) {
      const hits: string[] = [];
      const sink: NgramSink = {
        hit(_slot, _token, start, record) {
          expect(record, `hit at ${start}, calls of ${step} bytes`).toBe(lineAt(start));
          hits.push(`${start}:${record}`);
        },
      };
      const stream = new NgramStream({ escapes: true, countLines: true }, index, sink);
      for (let from = 0; from < buf.length - 1; ) {
        const stop = stream.safeEnd(buf, from, Math.min(buf.length - 1, from + step));
        from = stream.process(buf, from, stop, buf.length - 1, 0);
      }
      expect(stream.record).toBe(lineAt(buf.length));
      seen.push(hits);
    }
    expect(seen[0]!.length).toBeGreaterThan(2 * (words.length - 10));
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });
});
