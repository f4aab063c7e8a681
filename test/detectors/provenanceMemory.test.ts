import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { writeRelatedBf16 } from './provenanceSynthetic.ts';

/**
 * Memory stays independent of model size: a child process compares three checkpoints of 32 MB each
 * and then three of 160 MB each (480 MB read); its peak RSS must stay under a fixed bound and grow
 * by less than one chunk set between the two.
 */

const work = mkdtempSync(join(tmpdir(), 'ptb-prov-mem-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function peakRss(layers: number): { verdict: string; maxRssMb: number; bytesRead: number } {
  const paths = writeRelatedBf16(join(work, `l${layers}`), layers, 4096);
  const script = join(work, `run${layers}.mts`);
  writeFileSync(
    script,
    `import { compareCheckpoints } from ${JSON.stringify(join(repoRoot, 'src/detectors/provenance/provenance.ts'))};
const r = await compareCheckpoints(${JSON.stringify({ base: paths.base, model: paths.finetune, references: [paths.twin], threads: 2 })});
console.log(JSON.stringify({ verdict: r.verdict, bytesRead: r.scan.bytesRead, maxRssMb: process.resourceUsage().maxRSS / 1024 }));
`,
  );
  const out = execFileSync(process.execPath, ['--import', 'tsx', script], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  rmSync(join(work, `l${layers}`), { recursive: true, force: true });
  return JSON.parse(out.trim().split('\n').pop()!);
}

describe('provenance memory', () => {
  it('peak RSS does not grow with the checkpoint size', () => {
    const small = peakRss(1);
    const large = peakRss(5);
    expect(small.verdict).toBe('finetuned-from-base');
    expect(large.verdict).toBe('finetuned-from-base');
    expect(large.bytesRead).toBe(3 * 5 * 4096 * 4096 * 2);
    // Node + tsx + 2 workers + (2 + 2) chunk sets of 3 × 8 MiB ≈ 200 MB, whatever the size.
    expect(large.maxRssMb).toBeLessThan(350);
    expect(large.maxRssMb - small.maxRssMb).toBeLessThan(48);
  }, 180_000);
});
