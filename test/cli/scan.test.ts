import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getBenchmark } from '../../src/benchmarks/registry.ts';
import { homeLayout } from '../../src/core/paths.ts';
import { AssetCache } from '../../src/hub/assetCache.ts';
import { CorpusWriter } from '../detectors/contaminationCorpus.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

const writer = new CorpusWriter(31);
const rows = Array.from({ length: 25 }, () => writer.item());

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ptb-scan-cli-'));
}

function jsonLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Items file in any schema: ids from `id`, texts from every string field. */
function itemsFile(): string {
  const file = join(tmp(), 'items.jsonl');
  writeFileSync(file, rows.map((r, i) => JSON.stringify({ id: `item-${i}`, ...r })).join('\n'));
  return file;
}

describe('ptb scan', () => {
  it('prints one JSON line per finding and a summary, and exits 1 when something is found', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'data'));
    writeFileSync(
      join(dir, 'data', 'train.jsonl'),
      [writer.prose(3), `Q: ${writer.changeNumbers(rows[4]!.question)}`, writer.prose(3)]
        .map((t) => JSON.stringify({ text: t }))
        .join('\n'),
    );
    writeFileSync(join(dir, 'notes.txt'), `${writer.prose(5)}\n${rows[9]!.question}\n`);
    const run = await runCli(['scan', '--against', itemsFile(), dir]);
    expect(run.code).toBe(1);
    const lines = jsonLines(run.stdout);
    const findings = lines.filter((l) => !('summary' in l));
    expect(findings).toEqual([
      {
        source: join(dir, 'data', 'train.jsonl'),
        location: { line: 2 },
        item: 'item-4',
        score: expect.any(Number),
        span: expect.stringContaining('market on Monday. Then'),
      },
      {
        source: join(dir, 'notes.txt'),
        location: { line: 2 },
        item: 'item-9',
        score: 1,
        span: expect.any(String),
      },
    ]);
    expect(Object.keys(findings[0]!).sort()).toEqual(['item', 'location', 'score', 'source', 'span']);
    expect(lines.at(-1)).toMatchObject({
      summary: { items: 25, files: 2, findings: 2, itemsFound: 2, errors: 0 },
    });
  });

  it('exits 0 on clean files; an unreadable file is an error line and the scan goes on', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'clean.jsonl'),
      Array.from({ length: 50 }, () => JSON.stringify({ t: writer.paragraph(5) })).join('\n'),
    );
    const clean = await runCli(['scan', '--against', itemsFile(), dir]);
    expect(clean.code).toBe(0);
    expect(jsonLines(clean.stdout)).toEqual([
      expect.objectContaining({ summary: expect.objectContaining({ findings: 0 }) }),
    ]);

    writeFileSync(join(dir, 'bad.parquet'), 'PAR1 not really');
    const bad = await runCli(['scan', '--against', itemsFile(), dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/ptb scan: cannot read .*bad\.parquet: /);
    expect(jsonLines(bad.stdout)[0]).toMatchObject({ unreadable: join(dir, 'bad.parquet') });
    expect(jsonLines(bad.stdout).at(-1)).toMatchObject({ summary: { files: 1, errors: 1, findings: 0 } });

    writeFileSync(join(dir, 'z.md'), rows[2]!.question);
    const found = await runCli(['scan', '--against', itemsFile(), dir]);
    expect(found.code).toBe(1);
    expect(jsonLines(found.stdout).find((l) => 'item' in l)).toMatchObject({
      item: 'item-2',
      location: { line: 1 },
    });
  });

  it('lists every skipped file with its reason, and findings inside archives with the decoders used', async () => {
    const dir = tmp();
    writeFileSync(
      join(dir, 'plot.png'),
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47]), Buffer.alloc(64)]),
    );
    writeFileSync(
      join(dir, 'lib.so'),
      Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(64)]),
    );
    writeFileSync(join(dir, 'data.txt'), Buffer.from(rows[5]!.question).toString('base64'));
    const run = await runCli(['scan', '--against', itemsFile(), dir]);
    expect(run.code).toBe(1);
    const lines = jsonLines(run.stdout);
    expect(lines.filter((l) => 'skipped' in l)).toEqual([
      { skipped: join(dir, 'lib.so'), reason: 'compiled binary (ELF)' },
      { skipped: join(dir, 'plot.png'), reason: 'image' },
    ]);
    expect(lines.find((l) => 'item' in l)).toMatchObject({
      source: expect.stringMatching(/data\.txt!base64@0$/),
      item: 'item-5',
      via: ['base64'],
    });
    expect(lines.at(-1)).toMatchObject({
      summary: { skipped: 2, skippedByReason: { 'compiled binary': 1, image: 1 } },
    });
  });

  it('scans against a benchmark from the cache, offline', async () => {
    const home = tempHome();
    const test = join(tmp(), 'test.jsonl');
    writeFileSync(test, rows.map((r) => JSON.stringify(r)).join('\n'));
    const pin = getBenchmark('gsm8k').assets.find((a) => a.part === 'test')!;
    await new AssetCache(homeLayout(home).dataCache).import('gsm8k', pin, test);
    const dir = tmp();
    writeFileSync(join(dir, 'x.csv'), `id,q\n1,"${rows[3]!.question.replace(/"/g, '""')}"\n`);
    const run = await runCli(['scan', '--against', 'gsm8k', '--offline', dir], { PTB_HOME: home });
    expect(run.code).toBe(1);
    expect(jsonLines(run.stdout)[0]).toMatchObject({ item: '3', location: { row: 1 } });

    const missing = await runCli(['scan', '--against', 'aime2025', '--offline', dir], { PTB_HOME: home });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not in the cache and ptb is offline/);
    const nonsense = await runCli(['scan', '--against', 'no-such-thing', dir], { PTB_HOME: home });
    expect(nonsense.stderr).toMatch(/neither a benchmark nor a file/);
  });
});
