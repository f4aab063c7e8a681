import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../src/core/atomicWrite.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { runLines, withDirLock } from '../../src/runtime/pythonEnv.ts';
import { testPython, testRoot } from '../helpers/tinyModel.ts';

/**
 * Tiny Qwen3-shaped checkpoints with a known lineage for the provenance tests, built once per
 * checkout by python/make_provenance_fixtures.py. Large synthetic ones: provenanceSynthetic.ts.
 */

export const fixturesDir = join(testRoot, 'provenance-fixtures');
export { tensorBytes, writeRawSafetensors } from './provenanceSynthetic.ts';

const builder = join(repoRoot, 'python', 'make_provenance_fixtures.py');

export interface FixtureCase {
  verdict: string;
  reference: string | null;
}

/** Directory of the tiny fixtures and their expected verdicts (built on first call). */
export async function ensureProvenanceFixtures(): Promise<{
  dir: string;
  cases: Record<string, FixtureCase>;
}> {
  const key = createHash('sha256').update(readFileSync(builder)).digest('hex');
  const stamp = join(fixturesDir, 'ptb-build.json');
  const read = () => {
    try {
      const s = JSON.parse(readFileSync(stamp, 'utf8'));
      return s.key === key ? (s.cases as Record<string, FixtureCase>) : null;
    } catch {
      return null;
    }
  };
  const ready = read();
  if (ready) return { dir: fixturesDir, cases: ready };
  const python = await testPython();
  return await withDirLock(`${fixturesDir}.lock`, async () => {
    const again = read();
    if (again) return { dir: fixturesDir, cases: again };
    const tmp = `${fixturesDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const run = await runLines(python, [builder, tmp], { onLine: () => {} });
    if (run.code !== 0) throw new Error(`make_provenance_fixtures.py failed:\n${run.tail}`);
    const report = JSON.parse(run.tail.split('\n').find((l) => l.startsWith('{')) ?? '{}');
    writeJsonAtomic(join(tmp, 'ptb-build.json'), { key, cases: report.cases });
    rmSync(fixturesDir, { recursive: true, force: true });
    renameSync(tmp, fixturesDir);
    return { dir: fixturesDir, cases: report.cases as Record<string, FixtureCase> };
  });
}
