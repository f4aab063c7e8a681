import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../core/paths.ts';
import type { BenchmarkId } from '../core/schemas.ts';
import type { CaptureScanner, ScanOutcome } from '../ledgers/fileOpens.ts';

/** Paths per `ptb scan` process (well under the argument-length limit). */
const PATHS_PER_CALL = 200;

/** The path of `paths` a scan line's source belongs to (`path` or `path!member`). */
function ownerOf(source: string, paths: ReadonlySet<string>): string | null {
  if (paths.has(source)) return source;
  const cut = source.indexOf('!');
  return cut > 0 && paths.has(source.slice(0, cut)) ? source.slice(0, cut) : null;
}

async function scanOnce(
  benchmark: BenchmarkId,
  testFile: string,
  allowed: string | null,
  paths: string[],
  env: NodeJS.ProcessEnv,
): Promise<Map<string, ScanOutcome>> {
  const want = new Set(paths);
  const out = new Map<string, ScanOutcome>(paths.map((p) => [p, { status: 'scanned', findings: [] }]));
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'bin', 'ptb.js'),
      'scan',
      '--against',
      benchmark,
      '--test-data',
      testFile,
      ...(allowed ? ['--allowed', allowed] : []),
      '--offline',
      ...paths,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  try {
    if (child.pid) setPriority(child.pid, 10); // the agent keeps its share of the machine
  } catch {}
  let pending = '';
  let stderr = '';
  const onLine = (line: string) => {
    if (!line.trim()) return;
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const source = (value.source ?? value.skipped ?? value.unreadable) as string | undefined;
    if (typeof source !== 'string') return;
    const owner = ownerOf(source, want);
    if (!owner) return;
    const entry = out.get(owner)!;
    if ('item' in value) {
      entry.findings.push({
        item: String(value.item),
        score: Number(value.score),
        source,
        location: value.location as Record<string, number>,
        span: String(value.span ?? ''),
      });
    } else if ('skipped' in value && source === owner) {
      entry.status = 'skipped';
      entry.reason = String(value.reason);
    } else if ('unreadable' in value) {
      entry.status = 'incomplete';
      entry.reason = `${source === owner ? '' : `${source}: `}${String(value.message)}`;
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    const lines = (pending + d.toString('utf8')).split('\n');
    pending = lines.pop() ?? '';
    lines.forEach(onLine);
  });
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  onLine(pending);
  // Exit 0 (clean), 1 (found), 2 (some files unreadable) are answers; anything else is a failure.
  if (code === null || code > 2)
    throw new Error(`ptb scan failed (exit ${code}): ${stderr.trim().slice(0, 500)}`);
  return out;
}

/** Scans captured files in a separate `ptb scan` process at low priority, against the trial's test items. */
export function ptbScanScanner(
  benchmark: BenchmarkId,
  testFile: string,
  env: NodeJS.ProcessEnv,
  allowed: string | null = null,
): CaptureScanner {
  return async (paths) => {
    const all = new Map<string, ScanOutcome>();
    for (let i = 0; i < paths.length; i += PATHS_PER_CALL) {
      for (const [k, v] of await scanOnce(
        benchmark,
        testFile,
        allowed,
        paths.slice(i, i + PATHS_PER_CALL),
        env,
      ))
        all.set(k, v);
    }
    return all;
  };
}
