/**
 * Throughput of `ptb provenance` against raw sequential reads of the same files, side by side.
 * Target: provenance ≥ 50% of raw read throughput, memory independent of model size.
 *
 *   npx tsx bench/provenance.ts --dir DIR     # checkpoints from bench/provenanceCheckpoints.py (expected.json)
 *   npx tsx bench/provenance.ts [--size-mb 256]  # synthetic bf16 checkpoints written to a temp dir
 *   options: --threads N  --chunk-mb N  --cases a,b  --warm-only  --signature
 *
 * --signature also compares every case with the twin known only by its signature (signed once at
 * the start, timed; DIR/twin.signature.safetensors), as a re-audit without the twin's weights does.
 * Each case compares DIR/<case> with DIR/base and the reference DIR/twin. "cold" drops the page
 * cache first (`echo 3 > /proc/sys/vm/drop_caches` as root, else `dd iflag=nocache` per file);
 * "warm" reads from the page cache. Exit code 1 when a verdict differs from the expected one.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareCheckpoints } from '../src/detectors/provenance/provenance.ts';
import { openCheckpoint } from '../src/detectors/provenance/safetensors.ts';
import { type Signature, signReference, writeSignature } from '../src/detectors/provenance/signature.ts';
import { syntheticModel, writeSafetensors } from '../test/detectors/provenanceSynthetic.ts';

const { values: args } = parseArgs({
  options: {
    dir: { type: 'string' },
    'size-mb': { type: 'string', default: '256' },
    threads: { type: 'string' },
    'chunk-mb': { type: 'string' },
    cases: { type: 'string' },
    'warm-only': { type: 'boolean', default: false },
    signature: { type: 'boolean', default: false },
  },
});

function synthetic(sizeMb: number): { dir: string; expected: Record<string, string> } {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-provenance-bench-'));
  const size = 4096;
  const layers = Math.max(1, Math.round((sizeMb * 1024 * 1024) / (size * size * 2)));
  const base = { seed: 1, scale: 0.02 };
  const twin = { seed: 3, scale: 0.006 };
  const cases: Record<string, { parts: { seed: number; scale: number }[]; verdict: string }> = {
    base: { parts: [base], verdict: 'unchanged' },
    finetune: { parts: [base, { seed: 2, scale: 0.001 }], verdict: 'finetuned-from-base' },
    twin: { parts: [base, twin], verdict: 'matches-reference' },
    'twin-finetune': { parts: [base, twin, { seed: 4, scale: 0.001 }], verdict: 'finetuned-from-reference' },
  };
  const t0 = performance.now();
  for (const [name, c] of Object.entries(cases)) {
    writeSafetensors(join(dir, name, 'model.safetensors'), syntheticModel(layers, size, 'BF16', c.parts));
  }
  console.log(
    `wrote ${Object.keys(cases).length} synthetic checkpoints of ${layers} × ${size}² bf16 to ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { dir, expected: Object.fromEntries(Object.entries(cases).map(([k, v]) => [k, v.verdict])) };
}

/** Drop the files from the page cache; returns how, or null when it could not. */
function dropCache(files: string[]): string | null {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return 'drop_caches';
  } catch {
    try {
      for (const f of files) execFileSync('dd', [`if=${f}`, 'iflag=nocache', 'count=0', 'status=none']);
      return 'dd-nocache';
    } catch {
      return null;
    }
  }
}

/** Read every file start to end: 16 MiB positioned reads, 4 in flight per file. */
async function rawRead(files: string[]): Promise<{ bytes: number; seconds: number }> {
  const piece = 16 * 1024 * 1024;
  const buffers = Array.from({ length: 4 }, () => Buffer.allocUnsafe(piece));
  const t0 = performance.now();
  let bytes = 0;
  for (const file of files) {
    const h = await open(file, 'r');
    const size = (await h.stat()).size;
    let next = 0;
    await Promise.all(
      buffers.map(async (buf) => {
        while (next < size) {
          const at = next;
          next += piece;
          let done = 0;
          const want = Math.min(piece, size - at);
          while (done < want) {
            const { bytesRead } = await h.read(buf, done, want - done, at + done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          bytes += done;
        }
      }),
    );
    await h.close();
  }
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;

async function main(): Promise<number> {
  const source = args.dir
    ? {
        dir: args.dir,
        expected: JSON.parse(readFileSync(join(args.dir, 'expected.json'), 'utf8')).cases as Record<
          string,
          string
        >,
      }
    : synthetic(Number(args['size-mb']));
  const { dir, expected } = source;
  const threads = args.threads !== undefined ? Number(args.threads) : undefined;
  const chunkBytes = args['chunk-mb'] !== undefined ? Number(args['chunk-mb']) * 1024 * 1024 : undefined;
  const only = args.cases?.split(',');
  console.log(
    `machine: ${cpus()[0]?.model ?? 'cpu'} × ${availableParallelism()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; node ${process.version}`,
  );
  let failures = 0;
  const rows: string[] = [];
  let signature: Signature | null = null;
  if (args.signature) {
    const t0 = performance.now();
    signature = await signReference({
      reference: join(dir, 'twin'),
      base: join(dir, 'base'),
      referenceId: { repo: 'twin', revision: null },
    });
    writeSignature(join(dir, 'twin.signature.safetensors'), signature);
    console.log(
      `signed the twin in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${signature.tensors.size} tensors, ${(signature.bytes / 1e6).toFixed(1)} MB`,
    );
  }
  for (const [name, verdict] of Object.entries(expected)) {
    if (only && !only.includes(name)) continue;
    const model = join(dir, name);
    const base = join(dir, 'base');
    const reference = join(dir, 'twin');
    if (!existsSync(model)) continue;
    const files = [
      ...new Set([
        ...(await openCheckpoint(model)).files,
        ...(await openCheckpoint(base)).files,
        ...(await openCheckpoint(reference)).files,
      ]),
    ];
    for (const mode of args['warm-only'] ? ['warm'] : ['cold', 'warm']) {
      let how = 'cached';
      if (mode === 'cold') how = dropCache(files) ?? 'cached (could not drop the page cache)';
      else await rawRead(files); // make sure everything is cached
      const raw = await rawRead(files);
      if (mode === 'cold') dropCache(files);
      const report = await compareCheckpoints({
        base,
        model,
        references: [reference],
        ...(threads !== undefined ? { threads } : {}),
        ...(chunkBytes !== undefined ? { chunkBytes } : {}),
      });
      const ok = report.verdict === verdict;
      if (!ok) failures++;
      const rawRate = mbps(raw.bytes, raw.seconds);
      const provRate = mbps(report.scan.bytesRead, report.scan.seconds);
      const g = report.tests[0]?.global;
      const stats = `lineage min z ${report.lineage.minZ.toFixed(1)} | α ${g?.alpha.toFixed(3)} cos ${g?.cosine.toFixed(3)} z ${g?.z.toFixed(1)}${report.alignment ? ' | relabelled' : ''}`;
      const line =
        `${stats} | ${name.padEnd(14)} ${mode} (${how}): raw ${rawRate.toFixed(0)} MB/s, provenance ${provRate.toFixed(0)} MB/s ` +
        `= ${((100 * provRate) / rawRate).toFixed(0)}% | ${(report.scan.bytesRead / 1e9).toFixed(2)} GB in ${report.scan.seconds.toFixed(2)} s, ` +
        `${report.scan.threads} threads | verdict ${report.verdict} ${ok ? 'ok' : `EXPECTED ${verdict}`}` +
        (report.lora?.lowRank ? ` (low-rank, median rank ${report.lora.medianRank})` : '');
      console.log(line);
      rows.push(line);
    }
    if (signature) {
      const t0 = performance.now();
      const report = await compareCheckpoints({
        base,
        model,
        signatures: [{ label: 'twin (signature)', signature }],
        ...(threads !== undefined ? { threads } : {}),
        ...(chunkBytes !== undefined ? { chunkBytes } : {}),
      });
      // Without the weights, "equal" is "carries all of the twin's delta and nothing else".
      const ok = report.verdict === verdict;
      if (!ok) failures++;
      const g = report.tests[0]?.global;
      const line = `${name.padEnd(14)} signature only: ${((performance.now() - t0) / 1000).toFixed(2)} s | verdict ${report.verdict} ${ok ? 'ok' : `EXPECTED ${verdict}`} | α ${g?.alpha.toFixed(3)} cos ${g?.cosine.toFixed(3)} z ${g?.z.toFixed(1)}`;
      console.log(line);
      rows.push(line);
    }
  }
  console.log(
    `peak RSS of this process over all runs: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
  if (failures > 0) console.log(`${failures} verdicts differ from the expected ones`);
  return failures > 0 ? 1 : 0;
}

process.exitCode = await main();
