/**
 * What the file-open ledger costs an agent: the same workloads in the bwrap sandbox with and
 * without strace (src/ledgers/fileOpens.ts), best of N runs each, interleaved.
 *
 *   npx tsx bench/fileOpenOverhead.ts [--runs 3] [--python /path/to/venv/bin/python] [--sandbox podman]
 *
 * With `--sandbox podman` the same in a podman container (the test image, test/sandbox/podmanImage.ts),
 * where strace starts the container's processes through podman's OCI runtime (src/sandbox/runtimeTrace.ts).
 *
 * Workloads: `import torch, transformers` (thousands of opens), a CPU-bound loop (no syscalls),
 * reading 5,000 small files, and writing then deleting 2,000 files (deletes wait DELETE_DELAY_US
 * under strace). Wall time, on whatever else the machine runs: compare the two columns, not runs
 * on different days.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FILE_OPENS_LEDGER, FileOpenWatcher } from '../src/ledgers/fileOpens.ts';
import { DELETE_DELAY_US } from '../src/ledgers/straceParser.ts';
import { fileOpenTracer, runInSandbox, sandboxHostIds } from '../src/sandbox/bwrap.ts';
import { runInPodman } from '../src/sandbox/podman.ts';
import { interpreterBinds } from '../src/sandbox/pythonRunner.ts';
import { podmanTestImage } from '../test/sandbox/podmanImage.ts';

function flag(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}
const runs = Number(flag('runs', '3'));
const python = resolve(flag('python', '.ptb-test/home/venv/bin/python'));
const sandbox = flag('sandbox', 'bwrap');
if (sandbox !== 'bwrap' && sandbox !== 'podman') throw new Error('--sandbox is bwrap or podman');

const WORKLOADS: Record<string, string> = {
  'import torch, transformers': 'import torch, transformers',
  'CPU loop (3e7 additions)': 's = 0\nfor i in range(30_000_000): s += i',
  'read 5,000 small files': `
import os
os.makedirs('/tmp/r', exist_ok=True)
for i in range(5000): open(f'/tmp/r/{i}', 'w').write('x' * 100)
for i in range(5000): open(f'/tmp/r/{i}').read()`,
  'write and delete 2,000 files': `
import os
os.makedirs('/tmp/d', exist_ok=True)
for i in range(2000): open(f'/tmp/d/{i}', 'w').write('x')
for i in range(2000): os.remove(f'/tmp/d/{i}')`,
};

async function once(code: string, traced: boolean): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), 'ptb-fo-bench-'));
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  const ids = sandboxHostIds();
  if (sandbox === 'bwrap') chownSync(tmp, ids.uid, ids.gid);
  const fifoPath = join(root, 'strace.pipe');
  const watcher = traced
    ? new FileOpenWatcher({
        fifoPath,
        rawPath: join(root, 'strace.log'),
        ledgerPath: join(root, FILE_OPENS_LEDGER),
        trialRoot: root,
        mounts: [{ source: tmp, target: '/tmp' }],
        writable: ['/tmp'],
        ignore: ['/usr', '/lib', '/lib64', '/bin', '/etc', '/proc', '/sys', '/dev', '/newroot'],
        captureDir: join(root, 'opened'),
        scanner: null,
        mechanismDetail: 'bench',
      })
    : null;
  watcher?.start();
  const script = join(root, 'w.py');
  writeFileSync(script, code);
  const readOnly = [
    ...interpreterBinds(python).map((p) => ({ source: p, target: p })),
    { source: script, target: '/opt/w.py' },
  ];
  const trace = traced ? { traceFileOpens: { outputPath: fifoPath } } : {};
  const started = performance.now();
  const result =
    sandbox === 'bwrap'
      ? await runInSandbox({
          argv: [python, '/opt/w.py'],
          readOnlyBinds: readOnly,
          writableBinds: [{ source: tmp, target: '/tmp' }],
          timeoutMs: 600_000,
          ...trace,
        })
      : await runInPodman({
          image: image!.image,
          argv: [python, '/opt/w.py'],
          mounts: [
            ...image!.mounts,
            ...readOnly.map((m) => ({ ...m, readOnly: true })),
            { source: tmp, target: '/tmp', readOnly: false },
          ],
          env: {},
          cwd: '/tmp',
          network: 'none',
          gpus: [],
          // root inside (no capabilities): the bench's Python may sit where uid 1000 cannot reach.
          user: { uid: 0, gid: 0 },
          timeoutMs: 600_000,
          ...trace,
        });
  const seconds = (performance.now() - started) / 1000;
  await watcher?.stop();
  rmSync(root, { recursive: true, force: true });
  if (result.exitCode !== 0) throw new Error(result.stderr.toString().slice(-500));
  return seconds;
}

const found = sandbox === 'podman' ? podmanTestImage() : null;
if (found && !found.ok) throw new Error(`no podman image: ${found.reason}`);
const image = found?.ok ? found : null;

async function main(): Promise<void> {
  const support = fileOpenTracer();
  if (!support.ok) throw new Error(support.detail);
  const how = sandbox === 'podman' ? `through the OCI runtime, image ${image!.image}` : 'launched by bwrap';
  console.log(`tracer: ${support.detail} (${how}); deletes delayed ${DELETE_DELAY_US} µs; best of ${runs}`);
  console.log(`| workload | ${sandbox} | ${sandbox} + strace ledger | overhead |`);
  console.log('|---|---:|---:|---:|');
  for (const [name, code] of Object.entries(WORKLOADS)) {
    const plain: number[] = [];
    const traced: number[] = [];
    for (let r = 0; r < runs; r++) {
      plain.push(await once(code, false));
      traced.push(await once(code, true));
    }
    const a = Math.min(...plain);
    const b = Math.min(...traced);
    console.log(
      `| ${name} | ${a.toFixed(2)} s | ${b.toFixed(2)} s | ${(((b - a) / a) * 100).toFixed(0)} % |`,
    );
  }
  console.log(
    `machine: ${cpus()[0]?.model ?? '?'}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(1)}, node ${process.version}`,
  );
}

await main();
