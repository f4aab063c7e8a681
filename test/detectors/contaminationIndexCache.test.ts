import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteFeeder } from '../../src/detectors/contamination/feeder.ts';
import {
  cachedIndex,
  deserializeIndex,
  INDEX_VERSION,
  indexKey,
  serializeIndex,
} from '../../src/detectors/contamination/indexCache.ts';
import type { MatchFinding } from '../../src/detectors/contamination/matcher.ts';
import { type ContaminationItem, NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import { CorpusWriter, plantText } from './contaminationCorpus.ts';

/**
 * The digest of the reference index below for each INDEX_VERSION. When the tokeniser or the index
 * rules change, this test fails: bump INDEX_VERSION (indexCache.ts) so that indexes cached by the
 * old code are not loaded, and record the new digest here.
 */
const REFERENCE_DIGEST: Record<string, string> = {
  '1': 'b0e0787d109889eb0260014cfc393ea2df7324e4b57d57931b0130634966c37c',
};

const writer = new CorpusWriter(5);
const rows = Array.from({ length: 40 }, () => writer.item());
const items: ContaminationItem[] = rows.map((r, i) => ({
  id: String(i),
  texts: [r.question, `${r.answer} \\frac{1}{2} café`],
  ...(i % 3 === 0 ? { formulaic: [1] } : {}),
}));
const allowed = Array.from({ length: 10 }, () => writer.paragraph(4));

function findings(index: NgramIndex, text: string): MatchFinding[] {
  const out: MatchFinding[] = [];
  const feeder = new ByteFeeder(index, (f) => out.push(f), { countLines: true });
  feeder.write(Buffer.from(text));
  feeder.end();
  return out;
}

describe('the n-gram index cache', () => {
  it('restores an index that finds what the built one finds', () => {
    const built = new NgramIndex(items, allowed);
    const key = indexKey(items, allowed);
    const restored = NgramIndex.fromData(deserializeIndex(key, serializeIndex(key, built.data()))!);
    expect(restored.data()).toEqual(built.data());
    const text = rows
      .map((r, i) => `${writer.prose(2)}\n${plantText(writer, r, i % 2 ? 'verbatim' : 'numbers-changed')}`)
      .join('\n');
    const expected = findings(built, text);
    expect(expected.length).toBeGreaterThanOrEqual(39);
    expect(findings(restored, text)).toEqual(expected);
    expect(deserializeIndex(indexKey(items.slice(1), allowed), serializeIndex(key, built.data()))).toBeNull();
  });

  it('keeps one file per items and allowed data, loads it, and rebuilds a damaged one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-index-cache-'));
    const first = cachedIndex(items, allowed, dir);
    const [file] = readdirSync(dir);
    expect(file).toBe(`${indexKey(items, allowed)}.ngram-index`);
    const loaded = cachedIndex(items, allowed, dir);
    expect(loaded.keys1.buffer).not.toBe(first.keys1.buffer);
    expect(loaded.data()).toEqual(first.data());
    // Other allowed data: another index, another file.
    cachedIndex(items, allowed.slice(1), dir);
    expect(readdirSync(dir)).toHaveLength(2);
    // A truncated file is rebuilt and rewritten, without an error.
    const path = join(dir, file!);
    writeFileSync(path, readFileSync(path).subarray(0, 1000));
    expect(cachedIndex(items, allowed, dir).data()).toEqual(first.data());
    expect(readFileSync(path).length).toBeGreaterThan(1000);
    // An unwritable place: built, nothing kept.
    expect(cachedIndex(items, allowed, join(path, 'not-a-dir')).data()).toEqual(first.data());
  });

  it(`has the reference digest of INDEX_VERSION ${INDEX_VERSION} (bump the version when the rules change)`, () => {
    const data = new NgramIndex(items, allowed).data();
    const digest = createHash('sha256').update(serializeIndex('reference', data)).digest('hex');
    expect(digest, `index rules changed: bump INDEX_VERSION and record ${digest}`).toBe(
      REFERENCE_DIGEST[INDEX_VERSION],
    );
  });
});
