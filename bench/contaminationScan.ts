/**
 * Contamination scanner throughput and recall on a synthetic corpus, side by side with a naive
 * baseline like the reference's tool (exact 50-character substrings of each item, looked up at
 * every position of every line).
 *
 *   npx tsx bench/contaminationScan.ts [--mb 200] [--items 1000] [--baseline-mb 20]
 *
 * The corpus is JSON Lines ({"text": ...}), as agents' training data usually is: clean paragraphs
 * written from the items' own templates and word pools, plus each planted item on its own line —
 * verbatim, embedded in a ~3 KB document, or with every number changed. One core (the scan is
 * single-threaded); MB = 10^6 bytes.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NgramIndex } from '../src/detectors/contamination/ngramIndex.ts';
import { scanPaths } from '../src/detectors/contamination/scanFiles.ts';
import {
  CorpusWriter,
  type Gsm8kRow,
  PLANT_KINDS,
  type Plant,
  type PlantKind,
  plantText,
  writePlantedJsonl,
} from '../test/detectors/contaminationCorpus.ts';

/** CPU seconds of this process (user + system): per-core throughput, whatever else the machine runs. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function flag(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const targetMb = flag('mb', 200);
const itemCount = flag('items', 1000);
const baselineMb = flag('baseline-mb', 20);

const writer = new CorpusWriter(7);
const items: Gsm8kRow[] = Array.from({ length: itemCount }, () => writer.item());

type CleanKind = 'prose' | 'templates';

/** Writes the corpus; returns line → plant. */
function writeCorpus(path: string, bytes: number, clean: CleanKind, withPlants: boolean): Map<number, Plant> {
  const order: Plant[] = [];
  if (withPlants)
    for (let i = 0; i < items.length; i++) for (const kind of PLANT_KINDS) order.push({ item: i, kind });
  return writePlantedJsonl(
    path,
    bytes,
    order,
    (plant) => plantText(writer, items[plant.item]!, plant.kind),
    (line) => (clean === 'prose' ? writer.prose(8 + (line % 8)) : writer.paragraph(8 + (line % 8))),
  ).plants;
}

function recallByKind(
  plants: Map<number, Plant>,
  found: Array<{ line: number; item: number }>,
): Record<PlantKind, number> {
  const hit = new Set<string>();
  for (const f of found) {
    const plant = plants.get(f.line);
    if (plant && plant.item === f.item) hit.add(`${f.line}`);
  }
  const out = {} as Record<PlantKind, number>;
  for (const kind of PLANT_KINDS) {
    const lines = [...plants].filter(([, p]) => p.kind === kind).map(([l]) => l);
    out[kind] = lines.filter((l) => hit.has(`${l}`)).length / lines.length;
  }
  return out;
}

/** The reference-style baseline: normalised 50-character pieces of each item, probed at every offset. */
function naiveScan(
  path: string,
  maxBytes: number,
): { seconds: number; bytes: number; found: Array<{ line: number; item: number }> } {
  const norm = (s: string) => s.toLowerCase().replace(/\s+/g, ' ');
  const probes = new Map<string, number>();
  items.forEach((row, i) => {
    const text = norm(`${row.question} ${row.answer}`);
    for (let k = 0; k + 50 <= text.length; k += 50) probes.set(text.slice(k, k + 50), i);
  });
  const started = cpuSeconds();
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(maxBytes);
  const n = readInto(fd, buf);
  closeSync(fd);
  const text = buf.subarray(0, n).toString('utf8');
  const lines = text.split('\n');
  const found: Array<{ line: number; item: number }> = [];
  lines.forEach((raw, li) => {
    let value: string;
    try {
      value = (JSON.parse(raw) as { text: string }).text;
    } catch {
      return;
    }
    const line = norm(value);
    const seen = new Set<number>();
    for (let i = 0; i + 50 <= line.length; i++) {
      const item = probes.get(line.slice(i, i + 50));
      if (item !== undefined && !seen.has(item)) {
        seen.add(item);
        found.push({ line: li + 1, item });
      }
    }
  });
  return { seconds: cpuSeconds() - started, bytes: n, found };
}

function readInto(fd: number, buf: Buffer): number {
  let done = 0;
  for (;;) {
    const n = readSync(fd, buf, done, buf.length - done, null);
    if (n === 0 || done + n >= buf.length) return done + n;
    done += n;
  }
}

async function scanCorpus(index: NgramIndex, path: string) {
  const found: Array<{ line: number; item: number }> = [];
  let best = Number.POSITIVE_INFINITY;
  let bestWall = Number.POSITIVE_INFINITY;
  let findings = 0;
  for (let rep = 0; rep < 3; rep++) {
    found.length = 0;
    const cpu = cpuSeconds();
    const summary = await scanPaths(index, [path], {
      onFinding: (f) => found.push({ line: (f.location as { line: number }).line, item: Number(f.item) }),
    });
    best = Math.min(best, cpuSeconds() - cpu);
    bestWall = Math.min(bestWall, summary.seconds);
    findings = summary.findings;
  }
  return { found, cpu: best, wall: bestWall, findings };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-contamination-bench-'));
  const path = join(dir, 'corpus.jsonl');
  const worstPath = join(dir, 'templates.jsonl');
  try {
    const t0 = performance.now();
    const plants = writeCorpus(path, targetMb * 1e6, 'prose', true);
    const size = statSync(path).size;
    writeCorpus(worstPath, (targetMb / 4) * 1e6, 'templates', false);
    const worstSize = statSync(worstPath).size;
    console.log(
      `corpus: ${(size / 1e6).toFixed(1)} MB of JSONL prose on the items' topics with ${plants.size} planted items, ` +
        `plus ${(worstSize / 1e6).toFixed(1)} MB written from the items' own templates (worst case); ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    const t1 = performance.now();
    const index = new NgramIndex(
      items.map((row, i) => ({ id: String(i), texts: [row.question, row.answer] })),
    );
    console.log(
      `index: ${index.items} items, ${index.ngrams} n-grams, ${(index.bytes / 1e6).toFixed(1)} MB, built in ${((performance.now() - t1) / 1000).toFixed(2)} s`,
    );

    const main = await scanCorpus(index, path);
    const falsePositives = main.found.filter((f) => plants.get(f.line)?.item !== f.item).length;
    const recall = recallByKind(plants, main.found);
    const mbps = size / 1e6 / main.cpu;
    console.log(
      `ptb scan: ${mbps.toFixed(0)} MB/s per core (best of 3: ${main.cpu.toFixed(2)} s CPU, ${main.wall.toFixed(2)} s wall), ${main.findings} findings, ${falsePositives} false positives`,
    );
    console.log(`  recall: ${PLANT_KINDS.map((k) => `${k} ${(recall[k] * 100).toFixed(1)}%`).join(', ')}`);

    const worst = await scanCorpus(index, worstPath);
    console.log(
      `ptb scan, text from the items' templates: ${(worstSize / 1e6 / worst.cpu).toFixed(0)} MB/s per core, ${worst.findings} findings (all false positives)`,
    );

    const naive = naiveScan(path, Math.min(size, baselineMb * 1e6));
    const naiveMbps = naive.bytes / 1e6 / naive.seconds;
    const lines = countLines(path, naive.bytes);
    const naivePlants = new Map([...plants].filter(([line]) => line <= lines));
    const naiveRecall = recallByKind(naivePlants, naive.found);
    console.log(
      `naive 50-char baseline (first ${(naive.bytes / 1e6).toFixed(0)} MB): ${naiveMbps.toFixed(1)} MB/s per core, ${naive.found.length} findings`,
    );
    console.log(
      `  recall: ${PLANT_KINDS.map((k) => `${k} ${(naiveRecall[k] * 100).toFixed(1)}%`).join(', ')}`,
    );
    console.log(`ratio: ptb scan is ${(mbps / naiveMbps).toFixed(1)}x the baseline's throughput`);
    console.log(
      `machine: ${cpus()[0]?.model ?? 'unknown cpu'}, ${cpus().length} cores, node ${process.version}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function countLines(path: string, bytes: number): number {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(bytes);
  const n = readInto(fd, buf);
  closeSync(fd);
  let lines = 0;
  for (let i = 0; i < n; i++) if (buf[i] === 0x0a) lines++;
  return lines;
}

await main();
