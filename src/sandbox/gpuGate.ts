/**
 * The GPU gate the reference runs before an agent starts: exactly the number of GPUs the trial asks
 * for must be visible, none may already run a compute process, and (optionally) their names must match
 * a filter such as "H100". A failed gate is a harness outcome (`gpu_unavailable`), never the model's.
 * Also maps GPU indices to the device nodes a sandbox must bind so the agent sees only its own GPUs.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface GpuInfo {
  /** nvidia-smi's index (the order CUDA uses by default). */
  index: number;
  name: string;
  uuid: string;
  /** PCI bus id as nvidia-smi prints it (`00000000:17:00.0`). */
  busId: string;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
}

export interface GpuGateResult {
  ok: boolean;
  /** Why the gate failed, or a short summary when it passed. */
  reason: string;
  /** The GPUs the trial gets (visible ones, in index order). */
  gpus: GpuInfo[];
}

export interface GpuGateOptions {
  /** Every GPU's name must contain this (case-insensitive), e.g. "H100" as in the reference. */
  nameFilter?: string;
  /** nvidia-smi to run (default: found on the PATH of `env`). */
  nvidiaSmi?: string;
  /** Environment for the PATH lookup and CUDA_VISIBLE_DEVICES (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const GPU_FIELDS = 'index,name,uuid,pci.bus_id,memory.used,memory.total';

function findOnPath(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return null;
}

function numberOrNull(field: string | undefined): number | null {
  const value = Number((field ?? '').trim());
  return field !== undefined && field.trim() !== '' && Number.isFinite(value) ? value : null;
}

/** Lines of `--format=csv,noheader,nounits` output as trimmed fields. */
export function parseCsvRows(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => line.split(',').map((field) => field.trim()));
}

function runSmi(
  smi: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { ok: boolean; out: string; err: string } {
  const result = spawnSync(smi, args, { encoding: 'utf8', timeout: 30_000, env });
  if (result.error) return { ok: false, out: '', err: result.error.message };
  return {
    ok: result.status === 0,
    out: result.stdout ?? '',
    err: (result.stderr || result.stdout || '').trim(),
  };
}

/** Every GPU nvidia-smi lists, or why it could not be asked. */
export function listGpus(options: GpuGateOptions = {}): { gpus: GpuInfo[]; error: string | null } {
  const env = options.env ?? process.env;
  const smi = options.nvidiaSmi ?? findOnPath('nvidia-smi', env);
  if (!smi) return { gpus: [], error: 'nvidia-smi was not found (no NVIDIA driver on this machine?)' };
  const query = runSmi(smi, [`--query-gpu=${GPU_FIELDS}`, '--format=csv,noheader,nounits'], env);
  if (!query.ok) return { gpus: [], error: `nvidia-smi failed: ${query.err || 'no output'}` };
  const gpus = parseCsvRows(query.out).map((row) => ({
    index: Number(row[0]),
    name: row[1] ?? '',
    uuid: row[2] ?? '',
    busId: row[3] ?? '',
    memoryUsedMiB: numberOrNull(row[4]),
    memoryTotalMiB: numberOrNull(row[5]),
  }));
  return { gpus: gpus.filter((gpu) => Number.isInteger(gpu.index)), error: null };
}

/** GPUs CUDA would show: CUDA_VISIBLE_DEVICES lists indices or UUIDs (a prefix is enough for a UUID). */
function visibleGpus(gpus: GpuInfo[], env: NodeJS.ProcessEnv): GpuInfo[] {
  const setting = env.CUDA_VISIBLE_DEVICES;
  if (setting === undefined) return gpus;
  const visible: GpuInfo[] = [];
  for (const entry of setting.split(',').map((item) => item.trim())) {
    if (entry === '') continue;
    const gpu = /^\d+$/.test(entry)
      ? gpus.find((candidate) => candidate.index === Number(entry))
      : gpus.find((candidate) => candidate.uuid.startsWith(entry));
    // CUDA stops at the first entry it cannot resolve.
    if (!gpu) break;
    if (!visible.includes(gpu)) visible.push(gpu);
  }
  return visible;
}

/** nvidia-smi indices of the GPUs CUDA would show under `env` ([] without a driver). */
export function visibleGpuIndices(options: GpuGateOptions = {}): number[] {
  const listed = listGpus(options);
  return visibleGpus(listed.gpus, options.env ?? process.env).map((gpu) => gpu.index);
}

/**
 * Check that exactly `count` GPUs are visible and idle. With `count` 0 the gate passes without asking
 * the driver (a CPU-only trial needs none).
 */
export function checkGpus(count: number, options: GpuGateOptions = {}): GpuGateResult {
  if (count <= 0) return { ok: true, reason: 'no GPU requested', gpus: [] };
  const env = options.env ?? process.env;
  const listed = listGpus(options);
  if (listed.error)
    return { ok: false, reason: `${listed.error}; the trial asks for ${count} GPU(s)`, gpus: [] };
  const gpus = visibleGpus(listed.gpus, env);
  if (gpus.length !== count) {
    const how =
      env.CUDA_VISIBLE_DEVICES === undefined ? '' : ` (CUDA_VISIBLE_DEVICES=${env.CUDA_VISIBLE_DEVICES})`;
    return {
      ok: false,
      reason: `${gpus.length} GPU(s) visible${how} but the trial asks for exactly ${count}; set CUDA_VISIBLE_DEVICES to pick them`,
      gpus,
    };
  }
  if (options.nameFilter) {
    const wanted = options.nameFilter.toLowerCase();
    const other = gpus.filter((gpu) => !gpu.name.toLowerCase().includes(wanted));
    if (other.length > 0) {
      return {
        ok: false,
        reason: `GPU ${other.map((gpu) => `${gpu.index} (${gpu.name})`).join(', ')} is not a ${options.nameFilter}`,
        gpus,
      };
    }
  }
  const smi = options.nvidiaSmi ?? findOnPath('nvidia-smi', env)!;
  const apps = runSmi(
    smi,
    ['--query-compute-apps=gpu_uuid,pid,used_memory', '--format=csv,noheader,nounits'],
    env,
  );
  if (!apps.ok) return { ok: false, reason: `nvidia-smi cannot list compute processes: ${apps.err}`, gpus };
  const busy: string[] = [];
  for (const row of parseCsvRows(apps.out)) {
    const gpu = gpus.find((candidate) => candidate.uuid === row[0]);
    if (gpu) busy.push(`pid ${row[1]} on GPU ${gpu.index}`);
  }
  if (busy.length > 0) {
    return { ok: false, reason: `GPUs are busy: ${busy.join(', ')}; wait for them or pick others`, gpus };
  }
  return {
    ok: true,
    reason: `${count} idle GPU(s): ${gpus.map((gpu) => `${gpu.index} ${gpu.name}`).join(', ')}`,
    gpus,
  };
}

/** `00000000:17:00.0` (nvidia-smi) -> `0000:17:00.0` (the kernel's name under /proc/driver/nvidia/gpus). */
function kernelBusId(busId: string): string {
  const [domain = '', rest = ''] = busId.toLowerCase().split(/:(.*)/s);
  return `${domain.slice(-4).padStart(4, '0')}:${rest}`;
}

/** The device minor of a GPU (its /dev/nvidiaN), read from the driver; null when the driver does not say. */
function deviceMinor(busId: string, procRoot: string): number | null {
  try {
    const info = readFileSync(
      join(procRoot, 'driver/nvidia/gpus', kernelBusId(busId), 'information'),
      'utf8',
    );
    const match = /^Device Minor:\s*(\d+)/m.exec(info);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

/**
 * Where the NVIDIA device nodes are: /dev, or PTB_NVIDIA_DEV_DIR for hosts that expose them elsewhere
 * (and tests, which point it at stand-in nodes on machines without NVIDIA GPUs). Sandboxes bind them
 * at /dev/<name> either way.
 */
export function nvidiaDevDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.PTB_NVIDIA_DEV_DIR || '/dev';
}

/** An NVIDIA driver is loaded: its control node exists. */
export function nvidiaDriverPresent(env: NodeJS.ProcessEnv = process.env): boolean {
  return existsSync(join(nvidiaDevDir(env), 'nvidiactl'));
}

export interface GpuDeviceOptions extends GpuGateOptions {
  /** Where /dev and /proc live (tests point these at fakes). */
  devRoot?: string;
  procRoot?: string;
}

/** Control nodes every CUDA process needs besides its own /dev/nvidiaN. */
const CONTROL_DEVICES = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset'];

/**
 * Device nodes to bind for the GPUs with these nvidia-smi indices: the shared control nodes plus each
 * GPU's own /dev/nvidiaN. N is the driver's device minor, which need not equal the index, so it is read
 * from /proc/driver/nvidia; the index is the fallback. Only nodes that exist are returned.
 */
export function gpuDevices(indices: readonly number[], options: GpuDeviceOptions = {}): string[] {
  if (indices.length === 0) return [];
  const devRoot = options.devRoot ?? nvidiaDevDir(options.env ?? process.env);
  const procRoot = options.procRoot ?? '/proc';
  const { gpus } = listGpus(options);
  const devices = CONTROL_DEVICES.map((name) => join(devRoot, name));
  for (const index of indices) {
    const gpu = gpus.find((candidate) => candidate.index === index);
    const minor = (gpu ? deviceMinor(gpu.busId, procRoot) : null) ?? index;
    devices.push(join(devRoot, `nvidia${minor}`));
  }
  return [...new Set(devices)].filter((path) => existsSync(path));
}
