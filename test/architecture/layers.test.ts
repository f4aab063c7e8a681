import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** ARCHITECTURE.md module map: a folder may import only from its own rank or lower ones. */
const RANK: Record<string, number> = {
  core: 0,
  store: 1,
  hub: 1,
  benchmarks: 2,
  engines: 2,
  agents: 2,
  sandbox: 2,
  ledgers: 2,
  detectors: 2,
  runtime: 2,
  trial: 3,
  eval: 3,
  audit: 3,
  report: 3,
  schedulers: 3,
  cli: 4,
  web: 4,
};

const src = resolve(import.meta.dirname, '../../src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function folderOf(file: string): string {
  return relative(src, file).split('/')[0]!;
}

describe('architecture', () => {
  const files = tsFiles(src);

  it('every src folder has a rank in the module map', () => {
    const folders = new Set(files.map(folderOf));
    expect([...folders].filter((f) => !(f in RANK))).toEqual([]);
  });

  it('dependencies point downwards only', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = folderOf(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*'(\.[^']+)'/g)) {
        const target = resolve(file, '..', m[1]!);
        const to = relative(src, target).split('/')[0]!;
        if ((RANK[to] ?? -1) > (RANK[from] ?? 99)) violations.push(`${relative(src, file)} imports ${m[1]}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('CLI commands never call process.exit', () => {
    const offenders = files.filter(
      (f) => folderOf(f) === 'cli' && /process\.exit\(/.test(readFileSync(f, 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
