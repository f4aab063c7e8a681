/**
 * Per-run cgroups written directly to cgroupfs (there is no systemd to ask). Each run gets one group
 * per hierarchy, nested under this process's own group in that hierarchy, so a limit set on ptb as a
 * whole still applies. Hybrid v1 (memory, pids, cpu as separate mounts, plus a controller-less v2 mount
 * that offers `cgroup.kill`) and pure v2 (one mount, controllers enabled through subtree_control) are
 * both handled. When a controller cannot be used (not root, read-only cgroupfs, v2 without delegation)
 * the run goes ahead without that limit and the scope records a warning and `enforced.<limit> = false`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.ts';

export interface ResourceLimits {
  /** Hard memory limit of the whole process tree (RAM + swap), in bytes. */
  memoryBytes?: number;
  /** Most processes/threads the tree may hold at once (fork bombs stop here). */
  pids?: number;
  /** CPU quota in cores (1.5 = one and a half cores' worth of time per period). */
  cpus?: number;
}

/** Which protections a run actually had; tests and results report it rather than assume it. */
export interface EnforcedLimits {
  memory: boolean;
  pids: boolean;
  cpu: boolean;
  /** The whole tree can be killed through the cgroup (v2 `cgroup.kill` or v1 procs sweep). */
  treeKill: boolean;
}

type Controller = 'memory' | 'pids' | 'cpu';

export interface V1Hierarchy {
  /** Directory of this process's own group in the hierarchy (new groups go below it). */
  ownDir: string;
}

export interface CgroupLayout {
  v1: Partial<Record<Controller, V1Hierarchy>>;
  /** Own group directory on the v2 mount, when there is one. */
  v2OwnDir: string | null;
  /** Controllers usable for children of v2OwnDir (enabled in its subtree_control). */
  v2Controllers: Set<string>;
}

interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function parseMountInfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const rightFields = right.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (root === undefined || mountPoint === undefined) continue;
    mounts.push({
      root: unescapeMountPath(root),
      mountPoint: unescapeMountPath(mountPoint),
      fsType: rightFields[0] ?? '',
      superOptions: (rightFields[2] ?? '').split(','),
    });
  }
  return mounts;
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Path of a group inside a mount whose root may itself be a sub-group (cgroup namespaces, bind mounts). */
function dirInMount(mount: MountEntry, groupPath: string): string | null {
  const root = mount.root === '/' ? '' : mount.root;
  if (root && groupPath !== root && !groupPath.startsWith(`${root}/`)) return null;
  const dir = join(mount.mountPoint, groupPath.slice(root.length));
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

/** Work out where this process sits in each hierarchy. Pure: takes the two /proc files as text. */
export function detectCgroupLayout(procSelfCgroup: string, mountInfo: string): CgroupLayout {
  const mounts = parseMountInfo(mountInfo);
  const layout: CgroupLayout = { v1: {}, v2OwnDir: null, v2Controllers: new Set() };
  for (const line of procSelfCgroup.split('\n')) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!match) continue;
    const controllers = match[2]!;
    const groupPath = match[3]!;
    if (controllers === '') {
      const mount = mounts.find((m) => m.fsType === 'cgroup2');
      const dir = mount ? dirInMount(mount, groupPath) : null;
      if (dir) layout.v2OwnDir = dir;
      continue;
    }
    for (const controller of controllers.split(',')) {
      if (controller !== 'memory' && controller !== 'pids' && controller !== 'cpu') continue;
      const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes(controller));
      const dir = mount ? dirInMount(mount, groupPath) : null;
      if (dir) layout.v1[controller] = { ownDir: dir };
    }
  }
  return layout;
}

let cachedLayout: CgroupLayout | undefined;

function currentLayout(): CgroupLayout {
  if (cachedLayout) return cachedLayout;
  let layout: CgroupLayout;
  try {
    layout = detectCgroupLayout(
      readFileSync('/proc/self/cgroup', 'utf8'),
      readFileSync('/proc/self/mountinfo', 'utf8'),
    );
  } catch {
    layout = { v1: {}, v2OwnDir: null, v2Controllers: new Set() };
  }
  if (layout.v2OwnDir) {
    try {
      const enabled = readFileSync(join(layout.v2OwnDir, 'cgroup.subtree_control'), 'utf8').trim();
      for (const name of enabled.split(/\s+/)) if (name) layout.v2Controllers.add(name);
    } catch {
      // no subtree_control: the v2 group can still hold processes and offer cgroup.kill
    }
  }
  cachedLayout = layout;
  return layout;
}

const GROUP_PREFIX = 'ptb-';
let groupCounter = 0;
const sweptParents = new Set<string>();
/** Scopes not yet disposed; killed if ptb exits while they still hold processes. */
const liveScopes = new Set<CgroupScope>();
let exitHookInstalled = false;

function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove groups left behind by ptb processes that died before cleaning up. */
function sweepStaleGroups(parent: string): void {
  if (sweptParents.has(parent)) return;
  sweptParents.add(parent);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const match = /^ptb-(\d+)-/.exec(name);
    if (!match || Number(match[1]) === process.pid || isPidAlive(Number(match[1]))) continue;
    const dir = join(parent, name);
    killGroupProcesses(dir);
    try {
      rmdirSync(dir);
    } catch {
      // still busy or already gone: the next ptb run tries again
    }
  }
}

function readProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function killGroupProcesses(dir: string): void {
  const killFile = join(dir, 'cgroup.kill');
  if (existsSync(killFile)) {
    try {
      writeFileSync(killFile, '1');
      return;
    } catch {
      // fall through to the per-process sweep
    }
  }
  for (const pid of readProcs(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function readNumberField(file: string, field: string): number | null {
  try {
    const text = readFileSync(file, 'utf8');
    const match = new RegExp(`^${field} (\\d+)$`, 'm').exec(text);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

function readNumber(file: string): number | null {
  try {
    const value = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

/** The groups made for one run. Put the child in with `procsFiles`, then `dispose()` when it is done. */
export class CgroupScope {
  readonly enforced: EnforcedLimits = { memory: false, pids: false, cpu: false, treeKill: false };
  readonly warnings: string[] = [];
  /** Every group directory created, in creation order. */
  private readonly dirs: string[] = [];
  private readonly v1MemoryDir: string | null = null;
  private readonly v2Dir: string | null = null;
  private disposed = false;

  constructor(limits: ResourceLimits, layout: CgroupLayout = currentLayout()) {
    const name = `${GROUP_PREFIX}${process.pid}-${++groupCounter}`;
    const wanted: Controller[] = [];
    if (limits.memoryBytes !== undefined) wanted.push('memory');
    if (limits.pids !== undefined) wanted.push('pids');
    if (limits.cpus !== undefined) wanted.push('cpu');

    // v2 group first: it gives cgroup.kill, and on pure-v2 hosts it carries the limits too.
    if (layout.v2OwnDir) {
      const dir = this.makeGroup(layout.v2OwnDir, name, wanted.length > 0);
      if (dir) {
        this.v2Dir = dir;
        this.enforced.treeKill = existsSync(join(dir, 'cgroup.kill'));
        for (const controller of wanted) {
          if (layout.v1[controller] || !layout.v2Controllers.has(controller)) continue;
          this.enforced[controller] = this.applyV2(dir, controller, limits);
        }
      }
    }
    for (const controller of wanted) {
      const hierarchy = layout.v1[controller];
      if (!hierarchy) continue;
      const dir = this.makeGroup(hierarchy.ownDir, name, true);
      if (!dir) continue;
      this.enforced[controller] = this.applyV1(dir, controller, limits);
      if (controller === 'memory') this.v1MemoryDir = dir;
    }
    if (this.dirs.length > 0 && !this.enforced.treeKill) this.enforced.treeKill = true; // procs sweep
    for (const controller of wanted) {
      if (!this.enforced[controller]) {
        this.warnings.push(`${controller} limit not enforced: no writable ${controller} cgroup controller`);
      }
    }
    if (this.dirs.length > 0) {
      liveScopes.add(this);
      installExitHook();
    }
  }

  /** cgroup.procs files the child's pid must be written to before it runs anything untrusted. */
  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  private makeGroup(parent: string, name: string, reportFailure: boolean): string | null {
    sweepStaleGroups(parent);
    const dir = join(parent, name);
    try {
      mkdirSync(dir);
      this.dirs.push(dir);
      return dir;
    } catch (err) {
      if (reportFailure) this.warnings.push(`cannot create cgroup ${dir}: ${errorMessage(err)}`);
      return null;
    }
  }

  private write(dir: string, file: string, value: string): boolean {
    try {
      writeFileSync(join(dir, file), value);
      return true;
    } catch (err) {
      this.warnings.push(`cannot write ${join(dir, file)}: ${errorMessage(err)}`);
      return false;
    }
  }

  private applyV1(dir: string, controller: Controller, limits: ResourceLimits): boolean {
    if (controller === 'memory') {
      const bytes = String(Math.floor(limits.memoryBytes!));
      if (!this.write(dir, 'memory.limit_in_bytes', bytes)) return false;
      // memsw (RAM + swap) must be set after the RAM limit; absent when swap accounting is off.
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes')))
        this.write(dir, 'memory.memsw.limit_in_bytes', bytes);
      return true;
    }
    if (controller === 'pids')
      return this.write(dir, 'pids.max', String(Math.max(1, Math.floor(limits.pids!))));
    const period = 100_000;
    const quota = Math.max(1000, Math.round(limits.cpus! * period));
    return (
      this.write(dir, 'cpu.cfs_period_us', String(period)) &&
      this.write(dir, 'cpu.cfs_quota_us', String(quota))
    );
  }

  private applyV2(dir: string, controller: Controller, limits: ResourceLimits): boolean {
    if (controller === 'memory') {
      if (!this.write(dir, 'memory.max', String(Math.floor(limits.memoryBytes!)))) return false;
      if (existsSync(join(dir, 'memory.swap.max'))) this.write(dir, 'memory.swap.max', '0');
      return true;
    }
    if (controller === 'pids')
      return this.write(dir, 'pids.max', String(Math.max(1, Math.floor(limits.pids!))));
    const period = 100_000;
    return this.write(dir, 'cpu.max', `${Math.max(1000, Math.round(limits.cpus! * period))} ${period}`);
  }

  /** Whether the kernel's OOM killer fired inside the memory group. */
  oomKilled(): boolean {
    if (this.v1MemoryDir)
      return (readNumberField(join(this.v1MemoryDir, 'memory.oom_control'), 'oom_kill') ?? 0) > 0;
    if (this.v2Dir) return (readNumberField(join(this.v2Dir, 'memory.events'), 'oom_kill') ?? 0) > 0;
    return false;
  }

  /** Highest memory use of the tree, in bytes, where the kernel records it. */
  peakMemoryBytes(): number | null {
    if (this.v1MemoryDir) return readNumber(join(this.v1MemoryDir, 'memory.max_usage_in_bytes'));
    if (this.v2Dir) return readNumber(join(this.v2Dir, 'memory.peak'));
    return null;
  }

  /** SIGKILL every process still in the groups (descendants that left the pid namespace included). */
  killAll(): void {
    for (const dir of this.dirs) killGroupProcesses(dir);
  }

  /** Kill what is left and remove the groups. Retries briefly while the kernel finishes reaping. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    for (let attempt = 0; attempt < 50; attempt++) {
      this.killAll();
      const remaining = this.dirs.filter((dir) => {
        try {
          rmdirSync(dir);
          return false;
        } catch (err) {
          return (err as NodeJS.ErrnoException).code !== 'ENOENT';
        }
      });
      this.dirs.splice(0, this.dirs.length, ...remaining);
      if (remaining.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    liveScopes.delete(this);
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const scope of liveScopes) scope.killAll();
  });
}

/** Create the groups for one run. Never throws: what could not be set up is in `warnings`. */
export function createCgroupScope(limits: ResourceLimits): CgroupScope {
  return new CgroupScope(limits);
}
