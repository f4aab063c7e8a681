import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { repoRoot } from '../core/paths.ts';
import { runLines, withDirLock } from './pythonEnv.ts';

export const tinyModelScript = join(repoRoot, 'python', 'make_tiny_model.py');
/** ptb's own small ChatML template the tiny models are built and evaluated with. */
export const tinyChatTemplatePath = join(repoRoot, 'python', 'templates', 'tiny_chatml.jinja');

function buildKey(args: readonly string[], inputs: readonly string[]): string {
  const h = createHash('sha256')
    .update(readFileSync(tinyModelScript))
    .update(readFileSync(tinyChatTemplatePath));
  for (const file of inputs) h.update(readFileSync(file));
  return h.update(JSON.stringify(args)).digest('hex');
}

/**
 * Build a tiny model with `make_tiny_model.py` into `outDir` once: a stamp keyed by the script,
 * the template, the arguments and the input files makes later calls free. The directory appears
 * only when complete (built in a temp folder, then renamed).
 */
export async function ensureTinyModelBuilt(opts: {
  python: string;
  outDir: string;
  args: readonly string[];
  /** Files the build reads (training data): part of the stamp. */
  inputs?: readonly string[];
  onLine?: (line: string) => void;
  signal?: AbortSignal;
}): Promise<{ dir: string; built: boolean; report: Record<string, unknown> | null }> {
  const stampFile = join(opts.outDir, 'ptb-build.json');
  const key = buildKey(opts.args, opts.inputs ?? []);
  const stamp = (): { key: string; report: Record<string, unknown> | null } | null => {
    try {
      return JSON.parse(readFileSync(stampFile, 'utf8'));
    } catch {
      return null;
    }
  };
  const hit = stamp();
  if (hit?.key === key) return { dir: opts.outDir, built: false, report: hit.report };
  return withDirLock(`${opts.outDir}.lock`, async () => {
    const again = stamp();
    if (again?.key === key) return { dir: opts.outDir, built: false, report: again.report };
    const tmp = `${opts.outDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const run = await runLines(opts.python, [tinyModelScript, tmp, ...opts.args], {
      onLine: opts.onLine ?? (() => {}),
      signal: opts.signal,
    });
    if (run.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new UserError(
        `building the tiny model failed (exit ${run.code}):\n${run.tail}`,
        'See the output above.',
      );
    }
    const reportLine = run.tail
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('{'));
    const report = reportLine ? (JSON.parse(reportLine) as Record<string, unknown>) : null;
    writeJsonAtomic(join(tmp, 'ptb-build.json'), { key, report });
    rmSync(opts.outDir, { recursive: true, force: true });
    renameSync(tmp, opts.outDir);
    return { dir: opts.outDir, built: true, report };
  });
}
