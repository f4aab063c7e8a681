import { basename } from 'node:path';
import { type FileOpenRecord, FileOpenRecordSchema } from '../../ledgers/fileOpens.ts';
import { readJsonLines } from '../shared/files.ts';
import { readTrajectory, toolCallParts } from '../shared/trace.ts';

/**
 * What the file-open ledger says about training: which processes trained (wrote model weights),
 * what each read, what reached them through a pipe, and the command the agent ran for each.
 *
 * A training process is one that opened a weights file for writing (`*.safetensors`, `*.bin`,
 * `*.pt`, …), unless it is a file utility (cp, mv, tar, rsync…) that only moved weights about.
 * Threads and forked workers (data-loader processes that did not exec) count as their process.
 */
export interface ProcessInfo {
  pid: number;
  ppid: number | null;
  argv: string[];
  /** The shell command line the agent ran that started this process (nearest `sh -c`). */
  command: string | null;
  /** Weight files it wrote. */
  weights: string[];
  stdin: string | null;
  stdout: string | null;
}

export interface OpenRead {
  pid: number;
  ts: number;
  path: string;
  host: string | null;
  key: string | null;
}

export interface ScanRecord {
  status: 'scanned' | 'skipped' | 'incomplete' | 'vanished';
  reason?: string;
  findings: Array<{
    item: string;
    score: number;
    source: string;
    location: Record<string, number>;
    span: string;
  }>;
}

export interface OpenLedger {
  mechanism: 'strace' | 'none' | 'missing';
  detail: string;
  /** The watcher finished (an end record): every open up to the agent's end is in. */
  complete: boolean;
  processes: Map<number, ProcessInfo>;
  /** Reads, per process (forked workers folded into the process that exec'd). */
  reads: Map<number, OpenRead[]>;
  scans: Map<string, ScanRecord>;
  training: ProcessInfo[];
  unscanned: number;
}

const WEIGHTS = /\.(safetensors|bin|pt|pth|ckpt|gguf|h5|onnx|msgpack)$/i;
const FILE_TOOLS = new Set([
  'cp',
  'mv',
  'rsync',
  'tar',
  'ln',
  'install',
  'dd',
  'cat',
  'tee',
  'git',
  'zip',
  'unzip',
  'gzip',
  'gunzip',
  'xz',
  'zstd',
  'bzip2',
  '7z',
  'pigz',
  'curl',
  'wget',
  'scp',
  'huggingface-cli',
  'hf',
  'sh',
  'bash',
  'dash',
]);
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh']);

function programOf(argv: string[]): string {
  return basename(argv[0] ?? '');
}

export function readOpenLedger(path: string): OpenLedger {
  const ledger = readJsonLines(path, FileOpenRecordSchema);
  const out: OpenLedger = {
    mechanism: 'missing',
    detail: 'no file-open ledger (trial recorded before it existed, or not a ptb sandbox run)',
    complete: false,
    processes: new Map(),
    reads: new Map(),
    scans: new Map(),
    training: [],
    unscanned: 0,
  };
  if (!ledger.exists) return out;
  // Forked children that never exec'd run the same program: fold them into the process that did.
  const owner = new Map<number, number>();
  const ownerOf = (pid: number) => owner.get(pid) ?? pid;
  /** Path → the process that last opened it for writing. */
  const writers = new Map<string, number>();
  const proc = (pid: number): ProcessInfo => {
    let p = out.processes.get(pid);
    if (!p) {
      p = { pid, ppid: null, argv: [], command: null, weights: [], stdin: null, stdout: null };
      out.processes.set(pid, p);
    }
    return p;
  };
  for (const { event } of ledger.events) {
    const r = event as FileOpenRecord;
    switch (r.t) {
      case 'start':
        out.mechanism = r.mechanism;
        out.detail = r.detail;
        break;
      case 'proc': {
        // strace may print a child's first calls before its parent's clone returns: what the child
        // already did (a dup2 onto stdin, an exec) wins over what it inherits.
        const parent = proc(ownerOf(r.ppid ?? r.pid));
        const known = out.processes.has(r.pid);
        const child = proc(r.pid);
        child.ppid = r.ppid;
        if (!known) {
          child.stdin = parent.stdin;
          child.stdout = parent.stdout;
          child.argv = parent.argv;
          owner.set(r.pid, ownerOf(r.ppid ?? r.pid));
        }
        break;
      }
      case 'exec': {
        owner.delete(r.pid);
        const p = proc(r.pid);
        p.argv = r.argv;
        break;
      }
      case 'stdio': {
        const p = proc(r.pid);
        if (r.fd === 0) p.stdin = r.target;
        else p.stdout = r.target;
        break;
      }
      case 'open': {
        const pid = ownerOf(r.pid);
        if (r.mode !== 'r') writers.set(r.path, pid);
        if (r.mode !== 'r' && WEIGHTS.test(r.path)) proc(pid).weights.push(r.path);
        if (r.mode !== 'w') {
          const list = out.reads.get(pid) ?? [];
          list.push({ pid, ts: r.ts, path: r.path, host: r.host, key: r.key });
          out.reads.set(pid, list);
        }
        break;
      }
      case 'rename': {
        // Weights written under a temporary name, then renamed into place.
        const writer = writers.get(r.from);
        if (writer !== undefined && WEIGHTS.test(r.to)) proc(writer).weights.push(r.to);
        break;
      }
      case 'scan':
        out.scans.set(r.key, { status: r.status, reason: r.reason, findings: r.findings });
        break;
      case 'end':
        out.complete = true;
        out.unscanned = r.unscanned;
        break;
    }
  }
  for (const p of out.processes.values()) p.command = shellCommand(out.processes, p.pid);
  out.training = [...out.processes.values()].filter(
    (p) => p.weights.length > 0 && !FILE_TOOLS.has(programOf(p.argv)),
  );
  return out;
}

/** The `sh -c` command line a process descends from (itself included). */
function shellCommand(processes: Map<number, ProcessInfo>, pid: number): string | null {
  const seen = new Set<number>();
  for (
    let p = processes.get(pid);
    p && !seen.has(p.pid);
    p = p.ppid !== null ? processes.get(p.ppid) : undefined
  ) {
    seen.add(p.pid);
    const c = p.argv.indexOf('-c');
    if (SHELLS.has(programOf(p.argv)) && c >= 1 && p.argv[c + 1]) return p.argv[c + 1]!;
    if (/^-\w*c$/.test(p.argv[1] ?? '') && SHELLS.has(programOf(p.argv)) && p.argv[2]) return p.argv[2];
  }
  return null;
}

/** The first tool call of the trajectory whose command holds this command line (or its script). */
export function traceEventOf(trajectoryPath: string, command: string | null, argv: string[]): number | null {
  const trajectory = readTrajectory(trajectoryPath);
  if (!trajectory) return null;
  const needles = [command, argv.find((a) => /\.(py|sh)$/.test(a))].filter((n): n is string => Boolean(n));
  if (needles.length === 0) return null;
  for (const event of trajectory.events) {
    if (event.kind !== 'tool_call' || !event.tool) continue;
    const { commands, text } = toolCallParts(event.tool.input);
    const hay = commands.join('\n') || text;
    if (needles.some((n) => hay.includes(n))) return event.index;
  }
  return null;
}

/** A short description of a process for evidence. */
export function describeProcess(p: ProcessInfo): string {
  const argv = p.argv.join(' ');
  return argv.length > 200 ? `${argv.slice(0, 199)}…` : argv || `pid ${p.pid}`;
}
