/**
 * Start-up time of the installed `ptb` (bin/ptb.js running the prebuilt bundle) against `node -e 0`,
 * side by side: every round runs each command once, in turn, so load on a shared machine hits all
 * of them alike. Target (issue 13): `ptb --help` and `ptb benchmarks` each within 3× `node -e 0`,
 * median of 7. The same commands from the TypeScript sources (PTB_FROM_SOURCE=1, through tsx) are
 * shown for comparison.
 *
 *   npm run build && npx tsx bench/cliStartup.ts [rounds=7]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const rounds = Number(process.argv[2] ?? 7);
const root = resolve(import.meta.dirname, '..');
const ptb = join(root, 'bin/ptb.js');
if (!existsSync(join(root, 'dist/cli/build.json'))) {
  throw new Error('no prebuilt CLI: run `npm run build` first');
}
const home = mkdtempSync(join(tmpdir(), 'ptb-bench-startup-'));
const env = { ...process.env, PTB_HOME: home };

interface Case {
  name: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
}
const CASES: Case[] = [
  { name: 'node -e 0', argv: ['-e', '0'] },
  { name: 'ptb --version', argv: [ptb, '--version'] },
  { name: 'ptb --help', argv: [ptb, '--help'] },
  { name: 'ptb benchmarks', argv: [ptb, 'benchmarks'] },
  { name: 'ptb evals (opens the store)', argv: [ptb, 'evals'] },
  { name: 'ptb --help from sources (tsx)', argv: [ptb, '--help'], env: { PTB_FROM_SOURCE: '1' } },
  { name: 'ptb benchmarks from sources (tsx)', argv: [ptb, 'benchmarks'], env: { PTB_FROM_SOURCE: '1' } },
];

function once(c: Case): number {
  const started = process.hrtime.bigint();
  const out = spawnSync(process.execPath, c.argv, {
    env: { ...env, ...c.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (out.status !== 0) throw new Error(`${c.name} exited ${out.status}: ${out.stderr}`);
  return ms;
}

const times = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
for (const c of CASES) once(c); // warm the file cache and tsx's transform cache
for (let r = 0; r < rounds; r++) for (const c of CASES) times.get(c.name)!.push(once(c));
rmSync(home, { recursive: true, force: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const base = median(times.get('node -e 0')!);
console.log(
  `machine: ${cpus()[0]?.model} × ${cpus().length}, node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}; ${rounds} rounds`,
);
console.log(`${'command'.padEnd(36)} ${'median ms'.padStart(10)} ${'× node -e 0'.padStart(12)}`);
for (const [name, xs] of times) {
  console.log(
    `${name.padEnd(36)} ${median(xs).toFixed(1).padStart(10)} ${(median(xs) / base).toFixed(2).padStart(12)}`,
  );
}
const worst = Math.max(median(times.get('ptb --help')!), median(times.get('ptb benchmarks')!)) / base;
console.log(
  `target ≤ 3.00× for --help and benchmarks: ${worst <= 3 ? 'met' : 'NOT met'} (worst ${worst.toFixed(2)}×)`,
);
