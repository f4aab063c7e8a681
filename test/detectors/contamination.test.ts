import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Field, Int32, List, Struct, Table, tableToIPC, Utf8, vectorFromArray } from 'apache-arrow';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { describe, expect, it } from 'vitest';
import { ByteFeeder } from '../../src/detectors/contamination/feeder.ts';
import type { MatchFinding } from '../../src/detectors/contamination/matcher.ts';
import { type ContaminationItem, NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import { textNgrams } from '../../src/detectors/contamination/ngramStream.ts';
import { type ContaminationFinding, scanPaths } from '../../src/detectors/contamination/scanFiles.ts';
import {
  CorpusWriter,
  type Gsm8kRow,
  PLANT_KINDS,
  type PlantKind,
  plantText,
} from './contaminationCorpus.ts';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-contam-'));
}

function gsmItems(rows: Gsm8kRow[]): ContaminationItem[] {
  return rows.map((r, i) => ({ id: String(i), texts: [r.question, r.answer] }));
}

function scanText(index: NgramIndex, text: string, chunk?: number): MatchFinding[] {
  const out: MatchFinding[] = [];
  const feeder = new ByteFeeder(index, (f) => out.push(f), { countLines: true });
  const bytes = Buffer.from(text);
  const step = chunk ?? bytes.length;
  for (let o = 0; o < bytes.length; o += step) feeder.write(bytes.subarray(o, o + step));
  feeder.end();
  return out;
}

async function scan(index: NgramIndex, paths: string[]) {
  const findings: ContaminationFinding[] = [];
  const errors: string[] = [];
  const skipped: string[] = [];
  const summary = await scanPaths(index, paths, {
    onFinding: (f) => findings.push(f),
    onError: (s, m) => errors.push(`${s}: ${m}`),
    onSkip: (s) => skipped.push(s),
  });
  return { findings, errors, skipped, summary };
}

const tokens = (text: string, escapes = true) => textNgrams(text, escapes).tokens;

describe('tokeniser', () => {
  it('lowercases, applies NFKC and splits on anything but letters and digits', () => {
    expect(tokens('The Café—ﬁne “déjà” vu')).toEqual(tokens('the cafe\u0301 fine de\u0301ja\u0300 vu'));
    expect(tokens('ＡＢＣ full-width')).toEqual(tokens('abc full width'));
    expect(tokens('one two')).not.toEqual(tokens('one three'));
  });

  it('masks numbers: any digits, separators between numbers and glued suffixes collapse', () => {
    expect(tokens('costs $1,250.75 on the 3rd day')).toEqual(tokens('costs $8 on the 21st day'));
    expect(tokens('48/2 = <<48/2=24>>24 clips')).toEqual(tokens('7 clips'));
    expect(tokens('4 apples and 5 pears')).toEqual(tokens('10 apples and 77 pears'));
    expect(tokens('4 apples and 5 pears')).not.toEqual(tokens('4 apples 5 pears'));
  });

  it('reads JSON and code escapes as the characters they stand for', () => {
    const text = 'He said "don’t go"\nThen left: café';
    expect(tokens(JSON.stringify(text))).toEqual(tokens(text));
    // Python's json.dumps escapes every non-ASCII character (ensure_ascii)
    const ascii = JSON.stringify(text).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
    expect(ascii).toContain('\\u2019');
    expect(tokens(ascii)).toEqual(tokens(text));
    // a newline escaped twice (JSON inside a JSON string), recognised before a capital or a separator
    expect(tokens(JSON.stringify(JSON.stringify(text)))).toEqual(tokens(text));
    // LaTeX and code escapes: pasted raw, or JSON-encoded
    const latex = 'Let $\\frac{m}{n}$ be the answer, where \\times binds tighter; print("a\\nb")';
    for (const escapes of [false, true]) {
      const variant = textNgrams(latex, escapes).tokens;
      expect([tokens(latex), tokens(JSON.stringify(latex))]).toContainEqual(variant);
    }
  });

  it('gives each CJK character its own token', () => {
    expect(tokens('写一本中国玄幻小说的剧本').length).toBe(12);
  });
});

describe('synthetic corpus: recall per kind and no false positives', () => {
  const writer = new CorpusWriter(11);
  const rows = Array.from({ length: 150 }, () => writer.item());
  const index = new NgramIndex(gsmItems(rows));

  it('finds ≥ 99% of verbatim, embedded and number-changed copies, in text and in JSONL', () => {
    const lines: string[] = [];
    const plants = new Map<number, { item: number; kind: PlantKind }>();
    const jsonl: string[] = [];
    const jsonlPlants = new Map<number, { item: number; kind: PlantKind }>();
    rows.forEach((row, item) => {
      for (const kind of PLANT_KINDS) {
        lines.push(writer.prose(6));
        const text = plantText(writer, row, kind);
        lines.push(text.replace(/\n/g, ' '));
        plants.set(lines.length, { item, kind });
        jsonl.push(JSON.stringify({ text: writer.paragraph(5) }));
        jsonl.push(JSON.stringify({ text: plantText(writer, row, kind) }));
        jsonlPlants.set(jsonl.length, { item, kind });
      }
    });
    for (const [text, planted] of [
      [lines.join('\n'), plants],
      [jsonl.join('\n'), jsonlPlants],
    ] as const) {
      const found = scanText(index, text, 1 << 16);
      const hits = new Set(found.filter((f) => planted.get(f.record)?.item === f.item).map((f) => f.record));
      for (const kind of PLANT_KINDS) {
        const ofKind = [...planted].filter(([, p]) => p.kind === kind).map(([line]) => line);
        const recall = ofKind.filter((line) => hits.has(line)).length / ofKind.length;
        expect(recall, kind).toBeGreaterThanOrEqual(0.99);
      }
      const wrong = found.filter((f) => planted.get(f.record)?.item !== f.item);
      expect(wrong).toEqual([]);
      expect(found.every((f) => f.score > 0.5)).toBe(true);
    }
  });

  it('reports nothing on clean text that shares the items’ words and templates', () => {
    const clean: string[] = [];
    for (let k = 0; k < 3000; k++) clean.push(k % 2 ? writer.prose(8) : writer.paragraph(8));
    expect(scanText(index, clean.join('\n'))).toEqual([]);
    expect(scanText(index, clean.map((t) => JSON.stringify({ t })).join('\n'))).toEqual([]);
  });

  it('finds the same items however the input is cut into chunks', () => {
    const text = rows
      .slice(0, 20)
      .map((r) => `${writer.prose(3)} ${plantText(writer, r, 'verbatim')} ${writer.prose(3)}`)
      .join('\n');
    const whole = scanText(index, text).map((f) => [f.item, f.record, f.start]);
    expect(whole.length).toBe(20);
    for (const chunk of [1, 7, 4096])
      expect(scanText(index, text, chunk).map((f) => [f.item, f.record, f.start])).toEqual(whole);
  });

  it('names the line, the matched span and the score', () => {
    const row = rows[3]!;
    const [f] = scanText(index, `intro line\nsecond line\nnoise ${row.question} more noise\n`);
    expect(f).toMatchObject({ item: 3, record: 3, score: 1 });
    expect(f!.span).toContain(row.question.split(' ').slice(2, 8).join(' '));
  });
});

describe('index rules', () => {
  it('ignores n-grams shared by many items and items too short to tell from chance', () => {
    const boiler = 'Please read the following question carefully and answer it with a single number only.';
    const writer = new CorpusWriter(9);
    const items: ContaminationItem[] = Array.from({ length: 10 }, (_, i) => ({
      id: `q${i}`,
      texts: [boiler, i === 0 ? 'Too short to find.' : writer.item().question],
    }));
    const index = new NgramIndex(items);
    expect(index.unindexable()).toEqual(['q0']);
    expect(scanText(index, `${boiler}\n${boiler}`)).toEqual([]);
  });

  it('needs distinct n-grams: one item phrase repeated is not a copy', () => {
    const writer = new CorpusWriter(3);
    const rows = Array.from({ length: 40 }, () => writer.item());
    const index = new NgramIndex(gsmItems(rows));
    const phrase = rows[0]!.question.split(' ').slice(0, 9).join(' ');
    expect(scanText(index, Array.from({ length: 20 }, () => phrase).join(' '))).toEqual([]);
  });
});

describe('allowed data and formulaic texts', () => {
  it('does not index n-grams of the allowed training data', () => {
    const w = new CorpusWriter(9);
    const rows = Array.from({ length: 20 }, () => w.item());
    const items = gsmItems(rows);
    const plain = new NgramIndex(items);
    // Allowed data that repeats item 0 entirely: item 0 can no longer be found; the others can.
    const allowed = new NgramIndex(items, [rows[0]!.question, rows[0]!.answer]);
    expect(allowed.allowedDropped).toBeGreaterThan(0);
    const text = `${rows[0]!.question}\n${rows[1]!.question}`;
    expect(scanText(plain, text).map((f) => f.item)).toEqual([0, 1]);
    expect(scanText(allowed, text).map((f) => f.item)).toEqual([1]);
  });

  it('finds a copy of a formulaic text alone only with the item’s own numbers', () => {
    const w = new CorpusWriter(10);
    const rows = Array.from({ length: 20 }, () => w.item());
    const index = new NgramIndex(
      rows.map((r, i) => ({ id: String(i), texts: [r.question, r.answer], formulaic: [1] })),
    );
    const answer = rows[2]!.answer;
    expect(scanText(index, answer).map((f) => f.item)).toEqual([2]);
    expect(scanText(index, w.changeNumbers(answer))).toEqual([]);
    // the question still finds the item with other numbers
    expect(scanText(index, w.changeNumbers(rows[2]!.question)).map((f) => f.item)).toEqual([2]);
  });
});

describe('input formats', () => {
  const writer = new CorpusWriter(5);
  const rows = Array.from({ length: 30 }, () => writer.item());
  const index = new NgramIndex(gsmItems(rows));
  const planted = (i: number) => `Question: ${rows[i]!.question}\nAnswer: ${rows[i]!.answer}`;

  it('JSONL lines, JSON offsets, CSV rows (quoted newlines), text and .gz', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'a.jsonl'),
      [writer.prose(4), planted(1), writer.prose(4)].map((t) => JSON.stringify({ t })).join('\n'),
    );
    const json = JSON.stringify([{ t: writer.prose(4) }, { t: planted(2) }], null, 1);
    writeFileSync(join(dir, 'b.json'), json);
    const csvCell = (t: string) => `"${t.replace(/"/g, '""')}"`;
    writeFileSync(
      join(dir, 'c.csv'),
      ['id,text', `1,${csvCell(writer.prose(3).replace('. ', '.\n'))}`, `2,${csvCell(planted(3))}`].join(
        '\n',
      ),
    );
    writeFileSync(join(dir, 'd.md'), `# notes\n\n${writer.prose(3)}\n\n${planted(4)}\n`);
    writeFileSync(
      join(dir, 'e.jsonl.gz'),
      gzipSync(`${JSON.stringify({ t: writer.prose(2) })}\n${JSON.stringify({ t: planted(5) })}\n`),
    );
    const { findings, errors } = await scan(index, [dir]);
    expect(errors).toEqual([]);
    const by = Object.fromEntries(findings.map((f) => [f.source.split('/').pop(), f]));
    expect(by['a.jsonl']).toMatchObject({ item: '1', location: { line: 2 } });
    expect(by['b.json']).toMatchObject({ item: '2', location: { offset: expect.any(Number) } });
    const offset = (by['b.json']!.location as { offset: number }).offset;
    expect(Buffer.from(json).subarray(offset).toString().startsWith(rows[2]!.question.slice(0, 30))).toBe(
      true,
    );
    expect(by['c.csv']).toMatchObject({ item: '3', location: { row: 2 } });
    expect(by['d.md']).toMatchObject({ item: '4', location: { line: 5 } });
    expect(by['e.jsonl.gz']).toMatchObject({ item: '5', location: { line: 2 } });
    expect(findings).toHaveLength(5);
  });

  it('string literals in code, triple-quoted and concatenated', async () => {
    const dir = tmp();
    const q = rows[6]!.question;
    const half = q.length >> 1;
    writeFileSync(
      join(dir, 'train.py'),
      `import json\n\nDATA = [\n    """${q}""",\n    ${JSON.stringify(q.slice(0, half))}\n    ${JSON.stringify(q.slice(half))},\n]\n`,
    );
    writeFileSync(
      join(dir, 'gen.js'),
      `const items = [\n  '${rows[7]!.question.replace(/'/g, "\\'")}',\n];\n`,
    );
    const { findings } = await scan(index, [dir]);
    expect(findings.map((f) => [f.source.split('/').pop(), f.item, f.location])).toEqual([
      ['gen.js', '7', { line: 2 }],
      ['train.py', '6', { line: 4 }],
    ]);
  });

  it('Parquet rows, with a nested list of messages', async () => {
    const dir = tmp();
    const n = 6;
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'id', data: Array.from({ length: n }, (_, i) => i), type: 'INT32' },
        {
          name: 'text',
          data: Array.from({ length: n }, (_, i) => (i === 4 ? planted(8) : writer.prose(3))),
          type: 'STRING',
        },
      ],
    });
    writeFileSync(join(dir, 'train.parquet'), Buffer.from(buf));
    const { findings, errors } = await scan(index, [dir]);
    expect(errors).toEqual([]);
    expect(findings).toMatchObject([{ item: '8', location: { row: 5 } }]);
  });

  it('Arrow IPC stream and file formats, strings nested in lists of structs', async () => {
    const dir = tmp();
    const message = new Struct([new Field('role', new Utf8()), new Field('content', new Utf8())]);
    const table = new Table({
      id: vectorFromArray(['a', 'b', 'c'], new Utf8()),
      n: vectorFromArray([1, 2, 3], new Int32()),
      messages: vectorFromArray(
        [
          [{ role: 'user', content: writer.prose(3) }],
          [
            { role: 'user', content: writer.prose(2) },
            { role: 'assistant', content: planted(9) },
          ],
          [{ role: 'user', content: planted(10) }],
        ],
        new List(new Field('item', message, true)),
      ),
    });
    mkdirSync(join(dir, 'cache'));
    writeFileSync(join(dir, 'cache', 'data-00000-of-00001.arrow'), tableToIPC(table, 'stream'));
    writeFileSync(join(dir, 'table.feather'), tableToIPC(table, 'file'));
    const { findings, errors } = await scan(index, [dir]);
    expect(errors).toEqual([]);
    expect(findings.map((f) => [f.source.split('/').pop(), f.item, f.location])).toEqual([
      ['data-00000-of-00001.arrow', '9', { row: 2 }],
      ['data-00000-of-00001.arrow', '10', { row: 3 }],
      ['table.feather', '9', { row: 2 }],
      ['table.feather', '10', { row: 3 }],
    ]);
  });

  it('reads binaries as bytes, skips weights, media and code with the reason, reports unreadable files', async () => {
    const dir = tmp();
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([length, header, Buffer.from(planted(14))]));
    writeFileSync(join(dir, 'fake.safetensors'), planted(11));
    writeFileSync(
      join(dir, 'blob.dat'),
      Buffer.concat([Buffer.from([0, 1, 2, 0]), Buffer.from(planted(12))]),
    );
    writeFileSync(
      join(dir, 'lib.so'),
      Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]), Buffer.from(planted(15))]),
    );
    writeFileSync(
      join(dir, 'plot.png'),
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.from(planted(16))]),
    );
    writeFileSync(join(dir, 'broken.parquet'), 'PAR1 this is not parquet');
    writeFileSync(join(dir, 'broken.jsonl.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    symlinkSync(join(dir, 'missing-target'), join(dir, 'dangling.txt'));
    writeFileSync(join(dir, 'z.txt'), planted(13));
    const { findings, errors, skipped, summary } = await scan(index, [dir]);
    expect(findings.map((f) => f.item).sort()).toEqual(['11', '12', '13']);
    expect(skipped.map((s) => s.split('/').pop()).sort()).toEqual([
      'dangling.txt',
      'lib.so',
      'model.safetensors',
      'plot.png',
    ]);
    expect(errors.map((e) => e.split(':')[0]!.split('/').pop()).sort()).toEqual([
      'broken.jsonl.gz',
      'broken.parquet',
    ]);
    expect(summary).toMatchObject({ files: 3, skipped: 4, errors: 2, findings: 3, items: 3 });
  });
});
