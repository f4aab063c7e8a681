import { spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type MonitorSample, MonitorSampleSchema } from '../../src/core/trial.ts';
import { diskUsageBytes, formatSample, parseGpuQuery, startMonitor } from '../../src/ledgers/monitor.ts';
import { runInSandbox, type SandboxProcessInfo, sandboxHostIds } from '../../src/sandbox/bwrap.ts';
import { isRoot, sandboxAvailable } from '../sandbox/helpers.ts';

vi.setConfig({ testTimeout: 30_000 });

const BUSY_PYTHON =
  'import time\nx = bytearray(48 << 20)\nend = time.time() + 1.6\nwhile time.time() < end: pass';

let dir: string;
let fakeSmi: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ptb-monitor-'));
  fakeSmi = join(dir, 'nvidia-smi');
  writeFileSync(
    fakeSmi,
    '#!/bin/sh\n' +
      'case "$1" in --query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw)\n' +
      '  echo "0, 3, 1024, 81559, 35, 71.20"\n  echo "1, 87, 40960, 81559, 61, [N/A]" ;;\n' +
      '*) exit 2 ;; esac\n',
  );
  chmodSync(fakeSmi, 0o755);
  mkdirSync(join(dir, 'work'));
  writeFileSync(join(dir, 'work', 'data.bin'), Buffer.alloc(1 << 20, 1));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ledgerSamples = (path: string) =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => MonitorSampleSchema.parse(JSON.parse(line)));

describe('monitor parts', () => {
  it('parses nvidia-smi rows, N/A included', () => {
    expect(parseGpuQuery('0, 45, 1234, 81559, 40, 120.50\n1, [N/A], 0, 81559, [N/A], [N/A]\n')).toEqual([
      {
        index: 0,
        utilPercent: 45,
        memoryUsedMiB: 1234,
        memoryTotalMiB: 81559,
        temperatureC: 40,
        powerW: 120.5,
      },
      {
        index: 1,
        utilPercent: null,
        memoryUsedMiB: 0,
        memoryTotalMiB: 81559,
        temperatureC: null,
        powerW: null,
      },
    ]);
    expect(parseGpuQuery('No devices were found\n')).toEqual([]);
  });

  it('formats a readable block per sample', () => {
    const sample: MonitorSample = {
      ts: '2026-01-01T00:00:00.000Z',
      cpuPercent: 250,
      memoryBytes: 3 * 1024 ** 3,
      diskBytes: null,
      gpus: [
        {
          index: 0,
          utilPercent: 45,
          memoryUsedMiB: 1234,
          memoryTotalMiB: 81559,
          temperatureC: 40,
          powerW: 120.5,
        },
      ],
    };
    expect(formatSample(sample)).toBe(
      '=== 2026-01-01T00:00:00.000Z ===\n' +
        'cpu 250.0% | memory 3.0 GiB | workspace n/a\n' +
        'gpu 0: util 45%, memory 1234/81559 MiB, temp 40 C, power 120.5 W\n',
    );
  });

  it('counts the disk blocks of a workspace', async () => {
    const bytes = await diskUsageBytes(join(dir, 'work'));
    expect(bytes).toBeGreaterThanOrEqual(1 << 20);
    expect(bytes).toBeLessThan(2 << 20);
    expect(await diskUsageBytes(join(dir, 'absent'))).toBeNull();
  });
});

describe('startMonitor', () => {
  it('samples a busy process tree, the workspace and the chosen GPUs on every tick', async () => {
    const ledger = join(dir, 'tree', 'monitor.jsonl');
    const log = join(dir, 'tree', 'system_monitor.log');
    const child = spawn('python3', ['-c', BUSY_PYTHON], { stdio: 'ignore' });
    const samples: MonitorSample[] = [];
    const monitor = startMonitor({
      intervalMs: 300,
      ledgerPath: ledger,
      logPath: log,
      workspaceDir: join(dir, 'work'),
      rootPid: child.pid!,
      gpus: [1],
      nvidiaSmi: fakeSmi,
      onSample: (sample) => samples.push(sample),
    });
    await new Promise((resolve) => child.on('exit', resolve));
    await monitor.stop();
    expect(samples.length).toBeGreaterThanOrEqual(3);
    expect(ledgerSamples(ledger)).toEqual(samples);
    expect(samples[0]!.cpuPercent).toBeNull(); // no interval to measure over yet
    // A spinning process on a possibly crowded CI machine: clearly busy, never above the machine's cores.
    const cpu = samples.map((s) => s.cpuPercent ?? 0);
    expect(Math.max(...cpu)).toBeGreaterThan(5);
    expect(Math.max(...cpu)).toBeLessThanOrEqual(100 * availableParallelism() + 10);
    expect(Math.max(...samples.map((s) => s.memoryBytes ?? 0))).toBeGreaterThan(40 << 20);
    expect(samples[1]!.diskBytes).toBeGreaterThanOrEqual(1 << 20);
    expect(samples[1]!.gpus).toEqual([
      {
        index: 1,
        utilPercent: 87,
        memoryUsedMiB: 40960,
        memoryTotalMiB: 81559,
        temperatureC: 61,
        powerW: null,
      },
    ]);
    const text = readFileSync(log, 'utf8');
    expect(text.match(/^=== /gm)?.length).toBe(samples.length);
    expect(text).toContain('gpu 1: util 87%, memory 40960/81559 MiB, temp 61 C, power n/a');
    const countAfterStop = ledgerSamples(ledger).length;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(ledgerSamples(ledger).length).toBe(countAfterStop); // stopped means stopped
  });

  it.skipIf(!sandboxAvailable || !isRoot)('reads CPU and memory from a sandbox run’s cgroups', async () => {
    const ledger = join(dir, 'cgroup', 'monitor.jsonl');
    const work = join(dir, 'cgroup-work');
    mkdirSync(work);
    const ids = sandboxHostIds();
    chownSync(work, ids.uid, ids.gid);
    const samples: MonitorSample[] = [];
    let spawned: SandboxProcessInfo | null = null;
    let monitor: ReturnType<typeof startMonitor> | null = null;
    const result = await runInSandbox({
      argv: ['/usr/bin/python3', '-c', BUSY_PYTHON],
      limits: { memoryBytes: 512 << 20, cpus: 1 },
      timeoutMs: 20_000,
      onSpawn: (info) => {
        spawned = info;
        monitor = startMonitor({
          intervalMs: 300,
          ledgerPath: ledger,
          workspaceDir: work,
          cgroups: info.cgroups,
          gpus: [],
          onSample: (sample) => samples.push(sample),
        });
      },
    });
    await (monitor as ReturnType<typeof startMonitor> | null)?.stop();
    expect(result.exitCode).toBe(0);
    expect(spawned!.cgroups.memory ?? spawned!.cgroups.unified).toBeTruthy();
    expect(samples.length).toBeGreaterThanOrEqual(3);
    const cpu = samples.map((s) => s.cpuPercent ?? 0);
    expect(Math.max(...cpu)).toBeGreaterThan(5);
    expect(Math.max(...cpu)).toBeLessThan(130); // the one-core quota holds
    expect(Math.max(...samples.map((s) => s.memoryBytes ?? 0))).toBeGreaterThan(40 << 20);
    expect(samples.every((s) => s.gpus.length === 0)).toBe(true);
  });
});
