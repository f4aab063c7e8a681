/**
 * Resource monitor of one agent run: every interval (default 60 s, as the reference's
 * system_monitor.sh) one MonitorSample line in the monitor ledger and a human-readable block in
 * system_monitor.log: CPU (percent of one core, so 250 = two and a half cores busy), memory, disk used
 * by the workspace, and per GPU its utilisation, memory, temperature and power.
 *
 * CPU and memory come from the run's cgroups when given (exact, every process included, the page cache
 * that can be reclaimed left out), else from the process tree under `rootPid` read from /proc.
 * Unlike the reference, the log is written by the harness outside the workspace, so the agent can
 * neither read nor rewrite it.
 */
import { spawn } from 'node:child_process';
import { accessSync, appendFileSync, constants, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { lstat, opendir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { MonitorSample } from '../core/trial.ts';

export interface MonitorCgroups {
  /** v1 memory group (memory.usage_in_bytes, memory.stat). */
  memory?: string;
  /** v1 cpu/cpuacct group (cpuacct.usage). */
  cpu?: string;
  /** v2 group (memory.current, cpu.stat). */
  unified?: string;
}

export interface MonitorOptions {
  intervalMs?: number;
  /** MonitorSample JSON lines are appended here. */
  ledgerPath: string;
  /** Human-readable blocks (upstream's system_monitor.log) are appended here, when given. */
  logPath?: string;
  /** Disk use is measured under this directory. */
  workspaceDir: string;
  /** The run's cgroups (e.g. from runInSandbox's onSpawn). */
  cgroups?: MonitorCgroups;
  /** Root of the process tree, used where the cgroups do not say. */
  rootPid?: number;
  /** nvidia-smi indices to report (default: every GPU nvidia-smi lists; [] for none). */
  gpus?: readonly number[];
  /** nvidia-smi to run (default `nvidia-smi` on PATH; absent means no GPU section). */
  nvidiaSmi?: string;
  onSample?: (sample: MonitorSample) => void;
}

export interface Monitor {
  /** Take one sample now (also written to the ledger and log). */
  sample(): Promise<MonitorSample>;
  /** Stop sampling; waits for a sample in progress. */
  stop(): Promise<void>;
}

type GpuReading = MonitorSample['gpus'][number];

const CLOCK_TICKS = 100; // USER_HZ on every Linux architecture ptb runs on

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readNumber(path: string | undefined): number | null {
  const text = path ? readText(path) : null;
  if (text === null || text.trim() === '') return null;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

function statField(text: string | null, field: string): number | null {
  if (!text) return null;
  const match = new RegExp(`^${field} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

/** CPU seconds used so far by the cgroup, or null. */
function cgroupCpuSeconds(cgroups: MonitorCgroups | undefined): number | null {
  const nanoseconds = readNumber(cgroups?.cpu && join(cgroups.cpu, 'cpuacct.usage'));
  if (nanoseconds !== null) return nanoseconds / 1e9;
  if (cgroups?.unified) {
    const usec = statField(readText(join(cgroups.unified, 'cpu.stat')), 'usage_usec');
    if (usec !== null) return usec / 1e6;
  }
  return null;
}

/** Memory in use by the cgroup without reclaimable file cache (what `docker stats` shows), or null. */
function cgroupMemoryBytes(cgroups: MonitorCgroups | undefined): number | null {
  const v1 = readNumber(cgroups?.memory && join(cgroups.memory, 'memory.usage_in_bytes'));
  if (v1 !== null) {
    const inactive = statField(readText(join(cgroups!.memory!, 'memory.stat')), 'total_inactive_file') ?? 0;
    return Math.max(0, v1 - inactive);
  }
  const v2 = readNumber(cgroups?.unified && join(cgroups.unified, 'memory.current'));
  if (v2 !== null) {
    const inactive = statField(readText(join(cgroups!.unified!, 'memory.stat')), 'inactive_file') ?? 0;
    return Math.max(0, v2 - inactive);
  }
  return null;
}

/** The pids of `root` and all its descendants. */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readText(`/proc/${entry}/stat`);
    if (!stat) continue;
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(parent);
    if (list) list.push(Number(entry));
    else children.set(parent, [Number(entry)]);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** CPU seconds and resident memory of a process tree, from /proc. */
function treeUsage(root: number): { cpuSeconds: number; rssBytes: number } | null {
  let cpuTicks = 0;
  let rssBytes = 0;
  let found = false;
  for (const pid of processTree(root)) {
    const stat = readText(`/proc/${pid}/stat`);
    if (!stat) continue;
    found = true;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat; here indices 11 and 12 after the command name.
    cpuTicks += Number(fields[11]) + Number(fields[12]);
    const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readText(`/proc/${pid}/status`) ?? '');
    if (rss) rssBytes += Number(rss[1]) * 1024;
  }
  return found ? { cpuSeconds: cpuTicks / CLOCK_TICKS, rssBytes } : null;
}

/** Bytes allocated on disk under `dir` (what `du` counts), links not followed; null if it is gone. */
export async function diskUsageBytes(dir: string): Promise<number | null> {
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(path);
    } catch {
      return;
    }
    for await (const entry of handle) {
      const child = join(path, entry.name);
      try {
        const stat = await lstat(child);
        total += stat.blocks * 512;
        if (stat.isDirectory()) await walk(child);
      } catch {
        // removed meanwhile
      }
    }
  };
  try {
    total += (await lstat(dir)).blocks * 512;
  } catch {
    return null;
  }
  await walk(dir);
  return total;
}

const nullable = (field: string | undefined): number | null => {
  const value = Number((field ?? '').trim());
  return field !== undefined && field.trim() !== '' && Number.isFinite(value) ? value : null;
};

/** Parse `nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw`. */
export function parseGpuQuery(text: string): GpuReading[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.split(',').map((field) => field.trim()))
    .filter((fields) => /^\d+$/.test(fields[0] ?? ''))
    .map((fields) => ({
      index: Number(fields[0]),
      utilPercent: nullable(fields[1]),
      memoryUsedMiB: nullable(fields[2]),
      memoryTotalMiB: nullable(fields[3]),
      temperatureC: nullable(fields[4]),
      powerW: nullable(fields[5]),
    }));
}

function queryGpus(nvidiaSmi: string): Promise<GpuReading[]> {
  return new Promise((resolve) => {
    const child = spawn(
      nvidiaSmi,
      [
        '--query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw',
        '--format=csv,noheader,nounits',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.on('error', () => {
      clearTimeout(timer);
      resolve([]);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? parseGpuQuery(out) : []);
    });
  });
}

function formatBytes(bytes: number | null): string {
  if (bytes === null) return 'n/a';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

const orNa = (value: number | null, suffix: string) => (value === null ? 'n/a' : `${value}${suffix}`);

/** The human-readable block of one sample (system_monitor.log). */
export function formatSample(sample: MonitorSample): string {
  const lines = [
    `=== ${sample.ts} ===`,
    `cpu ${sample.cpuPercent === null ? 'n/a' : `${sample.cpuPercent.toFixed(1)}%`} | memory ${formatBytes(sample.memoryBytes)} | workspace ${formatBytes(sample.diskBytes)}`,
  ];
  for (const gpu of sample.gpus) {
    lines.push(
      `gpu ${gpu.index}: util ${orNa(gpu.utilPercent, '%')}, memory ${orNa(gpu.memoryUsedMiB, '')}/${orNa(gpu.memoryTotalMiB, ' MiB')}, ` +
        `temp ${orNa(gpu.temperatureC, ' C')}, power ${orNa(gpu.powerW, ' W')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function findNvidiaSmi(): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin'])) {
    if (!dir) continue;
    try {
      accessSync(join(dir, 'nvidia-smi'), constants.X_OK);
      return join(dir, 'nvidia-smi');
    } catch {
      // keep looking
    }
  }
  return null;
}

/** Start sampling now and every `intervalMs` until `stop()`. */
export function startMonitor(options: MonitorOptions): Monitor {
  const intervalMs = options.intervalMs ?? 60_000;
  const nvidiaSmi = options.nvidiaSmi ?? findNvidiaSmi();
  mkdirSync(dirname(options.ledgerPath), { recursive: true });
  if (options.logPath) mkdirSync(dirname(options.logPath), { recursive: true });
  let previous: { cpuSeconds: number; at: number } | null = null;
  let running: Promise<MonitorSample> | null = null;
  let stopped = false;

  const cpuAndMemory = (): { cpuSeconds: number | null; memoryBytes: number | null } => {
    const tree = options.rootPid !== undefined ? treeUsage(options.rootPid) : null;
    return {
      cpuSeconds: cgroupCpuSeconds(options.cgroups) ?? tree?.cpuSeconds ?? null,
      memoryBytes: cgroupMemoryBytes(options.cgroups) ?? tree?.rssBytes ?? null,
    };
  };

  const takeSample = async (): Promise<MonitorSample> => {
    const at = performance.now();
    const usage = cpuAndMemory();
    let cpuPercent: number | null = null;
    if (usage.cpuSeconds !== null) {
      if (previous && at > previous.at) {
        const busy = Math.max(0, usage.cpuSeconds - previous.cpuSeconds);
        cpuPercent = Math.round((busy / ((at - previous.at) / 1000)) * 1000) / 10;
      }
      previous = { cpuSeconds: usage.cpuSeconds, at };
    }
    const [diskBytes, allGpus] = await Promise.all([
      diskUsageBytes(options.workspaceDir),
      nvidiaSmi && options.gpus?.length !== 0 ? queryGpus(nvidiaSmi) : Promise.resolve([]),
    ]);
    const gpus = options.gpus ? allGpus.filter((gpu) => options.gpus!.includes(gpu.index)) : allGpus;
    const sample: MonitorSample = {
      ts: new Date().toISOString(),
      cpuPercent,
      memoryBytes: usage.memoryBytes,
      diskBytes,
      gpus,
    };
    appendFileSync(options.ledgerPath, `${JSON.stringify(sample)}\n`);
    if (options.logPath) appendFileSync(options.logPath, formatSample(sample));
    options.onSample?.(sample);
    return sample;
  };

  const sample = (): Promise<MonitorSample> => {
    // One sample at a time: a slow disk walk delays the next tick instead of piling up.
    running ??= takeSample().finally(() => {
      running = null;
    });
    return running;
  };

  const tick = () => {
    if (!stopped && !running) void sample().catch(() => {});
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();

  return {
    sample,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      if (running) await running.catch(() => {});
    },
  };
}
