import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { ensureProvenanceFixtures } from '../detectors/provenanceHelpers.ts';
import { runCli } from '../helpers/runCli.ts';
import { tinyModelTimeoutMs } from '../helpers/tinyModel.ts';

/** The prebuilt CLI (scripts/buildBundle.mjs) and how bin/ptb.js chooses between it and the sources. */
const outRel = `dist/cli-test-${process.pid}`;
const outdir = join(repoRoot, outRel);
const home = mkdtempSync(join(tmpdir(), 'ptb-bundle-'));

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [file, ...args], {
    env: { ...process.env, PTB_HOME: home, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

beforeAll(() => {
  const built = spawnSync(process.execPath, ['scripts/buildBundle.mjs', '--outdir', outRel], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  expect(built.status, built.stderr).toBe(0);
}, 120_000);

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

describe('prebuilt CLI bundle', () => {
  it('splits lazily loaded command code into chunks and lists every source in build.json', () => {
    const manifest = JSON.parse(readFileSync(join(outdir, 'build.json'), 'utf8')) as {
      builtAt: number;
      inputs: string[];
    };
    expect(manifest.inputs).toContain('src/cli/main.ts');
    expect(manifest.inputs).toContain('src/eval/evaluate.ts');
    expect(manifest.inputs).toContain('src/sandbox/bridge/forwarder.mjs');
    expect(manifest.inputs.some((p) => p.includes('node_modules'))).toBe(false);
    expect(readdirSync(outdir).filter((n) => n.startsWith('chunk-')).length).toBeGreaterThan(5);
    // The entry holds commander and the command declarations, not the flows.
    expect(statSync(join(outdir, 'ptb.mjs')).size).toBeLessThan(400_000);
  });

  it('finds every file a source reads next to itself through import.meta.url', () => {
    const missing: string[] = [];
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
      });
    let found = 0;
    for (const file of walk(join(repoRoot, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/new URL\(\s*[`']\.\/([^`'$]+)[^)]*import\.meta\.url/g)) {
        found++;
        // Template paths (`./static/${name}`) name a folder; plain ones a file.
        const target = join(outdir, m[1]!);
        if (!existsSync(target)) missing.push(`${relative(repoRoot, file)} → ${m[1]}`);
      }
    }
    expect(found).toBeGreaterThan(0);
    expect(missing).toEqual([]);
  });

  it('runs commands that load their chunks, the store and the native SQLite module', () => {
    const help = run(join(outdir, 'ptb.mjs'), ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('benchmarks');
    const benchmarks = run(join(outdir, 'ptb.mjs'), ['benchmarks', '--json']);
    expect(benchmarks.status, benchmarks.stderr).toBe(0);
    expect((JSON.parse(benchmarks.stdout) as Array<{ id: string }>).map((b) => b.id)).toContain('gsm8k');
    const evals = run(join(outdir, 'ptb.mjs'), ['evals', '--json']);
    expect(evals.status, evals.stderr).toBe(0);
    expect(JSON.parse(evals.stdout)).toEqual([]);
    expect(existsSync(join(home, 'ptb.db'))).toBe(true);
    const bad = run(join(outdir, 'ptb.mjs'), ['data', 'import', 'nosuchbenchmark', '/tmp']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^\nptb: /);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('prebuilt CLI bundle, provenance workers', () => {
  // The kernel runs in worker threads from its functions' source text (kernelSource): the bundler
  // must leave their names alone, or the bundled CLI gives other numbers than the sources.
  it(
    'gives the same report from the bundle as from the sources, with worker threads',
    async () => {
      const { dir } = await ensureProvenanceFixtures();
      const args = [
        'provenance',
        '--base',
        join(dir, 'base'),
        '--model',
        join(dir, 'twin-finetune'),
        '--reference',
        join(dir, 'twin'),
        '--threads',
        '2',
        '--json',
      ];
      const bundled = run(join(outdir, 'ptb.mjs'), args);
      expect(bundled.status, bundled.stderr).toBe(0);
      const fromSources = await runCli(args);
      expect(fromSources.code).toBe(0);
      const strip = (text: string) => {
        const r = JSON.parse(text) as Record<string, unknown> & { scan?: Record<string, unknown> };
        delete r.scan; // timings and thread counts
        return r;
      };
      expect(strip(bundled.stdout)).toEqual(strip(fromSources.stdout));
    },
    tinyModelTimeoutMs,
  );
});

describe('bin/ptb.js', () => {
  /** A fake checkout: bin/ptb.js, a "bundle" and a "source" entry that say which one ran. */
  function checkout() {
    const root = mkdtempSync(join(tmpdir(), 'ptb-bin-'));
    mkdirSync(join(root, 'bin'));
    mkdirSync(join(root, 'dist/cli'), { recursive: true });
    mkdirSync(join(root, 'src/cli'), { recursive: true });
    copyFileSync(join(repoRoot, 'bin/ptb.js'), join(root, 'bin/ptb.js'));
    symlinkSync(join(repoRoot, 'node_modules'), join(root, 'node_modules'));
    writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
    writeFileSync(join(root, 'dist/cli/ptb.mjs'), "process.stdout.write('bundle');\n");
    writeFileSync(
      join(root, 'src/cli/main.ts'),
      "export async function main(): Promise<number> { process.stdout.write('source'); return 0; }\n",
    );
    writeFileSync(join(root, 'src/cli/extra.ts'), 'export {};\n');
    const builtAt = Date.now();
    const inputs = ['src/cli/main.ts', 'src/cli/extra.ts', 'package.json'];
    writeFileSync(join(root, 'dist/cli/build.json'), JSON.stringify({ builtAt, inputs }));
    const past = new Date(builtAt - 60_000);
    for (const input of inputs) utimesSync(join(root, input), past, past);
    return { root, builtAt, ptb: join(root, 'bin/ptb.js') };
  }

  it('runs the bundle while it is as new as its sources, the sources once one changes', () => {
    const c = checkout();
    expect(run(c.ptb, []).stdout).toBe('bundle');
    expect(run(c.ptb, [], { PTB_FROM_SOURCE: '1' }).stdout).toBe('source');
    const later = new Date(c.builtAt + 5_000);
    utimesSync(join(c.root, 'src/cli/main.ts'), later, later);
    expect(run(c.ptb, []).stdout).toBe('source');
    rmSync(c.root, { recursive: true, force: true });
  });

  it('runs the sources when a listed source is gone or there is no manifest', () => {
    const c = checkout();
    expect(run(c.ptb, []).stdout).toBe('bundle');
    rmSync(join(c.root, 'src/cli/extra.ts'));
    expect(run(c.ptb, []).stdout).toBe('source');
    rmSync(join(c.root, 'dist/cli/build.json'));
    expect(run(c.ptb, []).stdout).toBe('source');
    rmSync(c.root, { recursive: true, force: true });
  });
});
