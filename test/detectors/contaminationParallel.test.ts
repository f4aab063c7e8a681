import { closeSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ContaminationItem, NgramIndex } from '../../src/detectors/contamination/ngramIndex.ts';
import { scanPathsParallel, startScanWorkers } from '../../src/detectors/contamination/parallelScan.ts';
import { type ContaminationFinding, scanPaths } from '../../src/detectors/contamination/scanFiles.ts';
import { CorpusWriter, plantText } from './contaminationCorpus.ts';

describe('scan over several threads', () => {
  it('cuts a large JSONL file at line starts and reports what one thread reports, line numbers included', async () => {
    const w = new CorpusWriter(77);
    const rows = Array.from({ length: 40 }, () => w.item());
    const items: ContaminationItem[] = rows.map((r, i) => ({ id: String(i), texts: [r.question, r.answer] }));
    const dir = mkdtempSync(join(tmpdir(), 'ptb-par-'));
    const big = join(dir, 'big.jsonl');
    const fd = openSync(big, 'w');
    let written = 0;
    let plant = 0;
    // 36 MB (over the cut threshold); plants spread through it, one base64-encoded.
    while (written < 36e6) {
      let text = w.prose(10);
      if (written > (plant + 1) * 0.9e6 && plant < rows.length) {
        text =
          plant === 20
            ? Buffer.from(plantText(w, rows[plant]!, 'verbatim')).toString('base64')
            : plantText(w, rows[plant]!, 'embedded');
        plant++;
      }
      const line = `${JSON.stringify({ text })}\n`;
      writeSync(fd, line);
      written += line.length;
    }
    closeSync(fd);
    writeFileSync(join(dir, 'small.txt'), plantText(w, rows[39]!, 'verbatim'));
    const key = (f: ContaminationFinding) =>
      `${f.source}|${f.item}|${JSON.stringify(f.container ?? f.location)}`;
    const one: string[] = [];
    await scanPaths(new NgramIndex(items), [dir], { onFinding: (f) => one.push(key(f)) });
    const two: string[] = [];
    const files: string[] = [];
    const summary = await scanPathsParallel(
      new NgramIndex(items),
      [dir],
      {
        onFinding: (f) => two.push(key(f)),
        onFile: (r) => files.push(`${r.source}:${r.status}`),
      },
      { threads: 2 },
    );
    expect(one.length).toBeGreaterThanOrEqual(40);
    const a = new Set(one);
    const b = new Set(two);
    expect(two.filter((k) => !a.has(k))).toEqual([]);
    expect(one.filter((k) => !b.has(k))).toEqual([]);
    expect(files).toEqual([`${big}:scanned`, `${join(dir, 'small.txt')}:scanned`]);
    expect(summary).toMatchObject({ files: 2, errors: 0 });
    // Three threads on one queue (the file is cut into more ranges than threads), two of them
    // workers started before the index existed: the same findings, in the same order.
    const workers = startScanWorkers([big], 3);
    expect(workers).toHaveLength(2);
    // Time to load their code, so that they take ranges beside the main thread.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const three: string[] = [];
    const progress: Array<[number, number]> = [];
    await scanPathsParallel(
      new NgramIndex(items),
      [dir],
      { onFinding: (f) => three.push(key(f)), onProgress: (done, total) => progress.push([done, total]) },
      { workers },
    );
    expect(three).toEqual(two);
    // Progress counts every thread's ranges as they finish, up to the whole corpus, never back.
    const total = progress[0]![1];
    expect(progress.at(-1)).toEqual([total, total]);
    expect(progress.every(([done], i) => i === 0 || done >= progress[i - 1]![0])).toBe(true);
    expect(progress.length).toBeGreaterThanOrEqual(4); // 36 MB cut into more ranges than threads, + small.txt
  }, 120_000);
});
