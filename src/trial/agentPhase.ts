import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { agentInstallDir, agentSandboxPaths, installAgent } from '../agents/install.ts';
import { writeAgentHome } from '../agents/solveScript.ts';
import type { AgentDefinition, AgentRunContext } from '../agents/types.ts';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import { repoRoot } from '../core/paths.ts';
import type { AgentOutcome, TrialSpec } from '../core/trial.ts';
import { SANDBOX_PATHS, type TrialLayout } from '../core/trialLayout.ts';
import { allowedTrainingFile, contaminationTestFile } from '../detectors/contamination/benchmarkItems.ts';
import { AssetCache } from '../hub/assetCache.ts';
import { FILE_OPENS_LEDGER, FileOpenWatcher } from '../ledgers/fileOpens.ts';
import { type Monitor, startMonitor } from '../ledgers/monitor.ts';
import { FILE_OPENS_UNRECORDED } from '../ledgers/straceParser.ts';
import {
  AGENT_KILL_GRACE_MS,
  assertBwrapAvailable,
  fileOpenTracer,
  runInSandbox,
  type SandboxBridge,
  type SandboxSpec,
  sandboxHostIds,
} from '../sandbox/bwrap.ts';
import { checkGpus, gpuDevices } from '../sandbox/gpuGate.ts';
import { defaultImage } from '../sandbox/imageBuild.ts';
import { SANDBOXES } from '../sandbox/registry.ts';
import type { AgentMounts } from './agentSandbox.ts';
import { ptbScanScanner } from './captureScanner.ts';
import { formatHms, TimestampedLineWriter } from './traceWriter.ts';

export interface AgentPhaseResult {
  outcome: AgentOutcome;
  exitCode: number | null;
  seconds: number;
  oomKilled: boolean;
  detail: string;
}

export interface AgentRunOptions {
  spec: TrialSpec;
  home: HomeLayout;
  layout: TrialLayout;
  agent: AgentDefinition;
  context: AgentRunContext;
  mounts: AgentMounts;
  /** Harness channels exposed on the sandbox's loopback (egress proxy, model relay, HF pass-through). */
  bridges: SandboxBridge[];
  /** Extra environment (proxy variables, relay URLs) on top of the mounts' environment. */
  env: Record<string, string>;
  redact: (text: string) => string;
  signal?: AbortSignal;
  /** Resolves when the model-call budget is spent: the agent is stopped. */
  budgetExceeded?: Promise<void>;
  /** The agent's output line by line as solve_out.txt records it (redacted), while it runs. */
  onLine?: (line: string) => void;
  /** GPUs the scheduler assigned (default: any visible). */
  gpuIndices?: number[];
  /** Override the hard limit (default hours×60+5 min) and the TERM→KILL grace (tests, short smoke runs). */
  timeoutMs?: number;
  killGraceMs?: number;
  /** Subscription login files copied into the agent's home (they enter the sandbox by design). */
  credentialFiles?: Array<{ source: string; homePath: string }>;
}

/** Inside the agent image its own programs run: its PATH, its Python, its copy of ptb at /opt/ptb. */
const IMAGE_ENV: Record<string, string> = {
  PATH: `${SANDBOX_PATHS.home}/.local/bin:/usr/local/bin:/usr/bin:/bin`,
  PTB_PYTHON: 'python3',
  PTB_TASK_PTB: `node ${SANDBOX_PATHS.ptb}/bin/ptb.js`,
};

/** The hard limit around the agent, as the reference: hours×60+5 minutes, then TERM, then KILL 30 s later. */
export function agentTimeoutMs(hours: number): number {
  return Math.round((hours * 60 + 5) * 60_000);
}

/**
 * Run the agent once, inside the sandbox, with its output streamed into solve_out.txt. The GPU gate
 * runs first: with the wrong number of visible, idle GPUs the agent never starts and the trial
 * records `gpu_unavailable` (a harness outcome, not a model failure).
 */
export async function runAgentPhase(o: AgentRunOptions): Promise<AgentPhaseResult> {
  const { spec, layout } = o;
  // Refuse before anything is written (a trial created elsewhere may be resumed on this machine).
  if (spec.sandbox !== 'bwrap' && spec.sandbox !== 'podman') {
    throw new UserError(
      `sandbox ${spec.sandbox} cannot run agents in this version of ptb`,
      'use --sandbox bwrap (the local default) or podman',
    );
  }
  const inImage = spec.sandbox === 'podman';
  if (!inImage) assertBwrapAvailable();
  const started = Date.now();
  // Every ledger exists from the start: an empty one is evidence that nothing of its kind happened.
  for (const ledger of [layout.ledgers.egress, layout.ledgers.modelCalls, layout.ledgers.downloads]) {
    if (!existsSync(ledger)) writeFileSync(ledger, '');
  }
  const writer = new TimestampedLineWriter(layout.solveOut, o.redact, undefined, o.onLine);
  const finish = (r: Omit<AgentPhaseResult, 'seconds'>): AgentPhaseResult => {
    writer.close();
    const ms = Date.now() - started;
    writeFileSync(layout.timeTaken, `${formatHms(ms)}\n`);
    return { ...r, seconds: ms / 1000 };
  };
  let devices: string[] = [];
  let gpuIndices: number[] = [];
  if (spec.gpus > 0) {
    const gate = checkGpus(
      spec.gpus,
      o.gpuIndices ? { env: { ...process.env, CUDA_VISIBLE_DEVICES: o.gpuIndices.join(',') } } : {},
    );
    if (!gate.ok) {
      writeJsonAtomic(layout.ledgers.gpus, {
        requested: spec.gpus,
        assigned: o.gpuIndices ?? null,
        ok: false,
        reason: gate.reason,
      });
      writeFileSync(join(layout.work.task, 'cuda_not_available'), `${gate.reason}\n`);
      writer.write(`ptb: GPU gate failed: ${gate.reason}\n`);
      return finish({ outcome: 'gpu_unavailable', exitCode: null, oomKilled: false, detail: gate.reason });
    }
    gpuIndices = gate.gpus.map((g) => g.index);
    // Only these GPUs' device nodes exist inside, so CUDA there numbers them from 0.
    devices = gpuDevices(gpuIndices);
    writeJsonAtomic(layout.ledgers.gpus, {
      requested: spec.gpus,
      assigned: o.gpuIndices ?? null,
      ok: true,
      reason: gate.reason,
      gpus: gate.gpus.map(({ index, name, uuid, busId }) => ({ index, name, uuid, busId })),
      devices,
    });
  }
  // A CLI scaffold runs from its pinned npm install, bound read-only and put first on PATH.
  const readOnly = [...o.mounts.readOnly];
  const pathPrepend: string[] = [];
  if (o.agent.install) {
    await installAgent(o.agent, o.home, { onProgress: (m) => writer.write(`ptb: ${m}\n`) });
    const inside = agentSandboxPaths(o.agent);
    readOnly.push({ source: agentInstallDir(o.agent, o.home), target: inside.dir });
    pathPrepend.push(inside.binDir);
  }
  for (const file of o.credentialFiles ?? []) {
    const target = join(layout.work.home, file.homePath);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file.source, target);
  }
  const owner = process.getuid?.() === 0 ? sandboxHostIds() : undefined;
  writeAgentHome({ def: o.agent, ctx: o.context, hostHome: layout.work.home, owner, pathPrepend });

  const stop = new AbortController();
  const onAbort = () => stop.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let budgetHit = false;
  void o.budgetExceeded?.then(() => {
    budgetHit = true;
    writer.write('ptb: model-call budget reached; stopping the agent\n');
    stop.abort(new Error('budget exceeded'));
  });
  let monitor: Monitor | undefined;
  const opens = await startFileOpenLedger(o, readOnly, inImage);
  try {
    const run = (sandboxSpec: SandboxSpec) =>
      inImage
        ? SANDBOXES.podman.run(sandboxSpec, {
            image: spec.image ?? defaultImage('podman', o.home),
            gpuIndices,
            // The image brings its own ptb, Python and node: the host's are not mounted.
            dropSources: [
              repoRoot,
              dirname(process.execPath),
              ...o.mounts.pythonPrefixes,
              ...o.mounts.hostPrograms,
            ],
            bridgeNode: 'node',
            rootfs: 'ephemeral',
          })
        : runInSandbox(sandboxSpec);
    const result = await run({
      onSpawn: (info) => {
        monitor = startMonitor({
          ledgerPath: layout.ledgers.monitor,
          logPath: layout.systemMonitorLog,
          workspaceDir: layout.work.task,
          cgroups: info.cgroups,
          rootPid: info.pid,
          gpus: gpuIndices,
        });
      },
      argv: ['bash', `${SANDBOX_PATHS.home}/agent_solve.sh`],
      system: 'full',
      cwd: SANDBOX_PATHS.task,
      readOnlyBinds: readOnly,
      writableBinds: o.mounts.writable,
      env: { ...o.mounts.env, ...o.env, ...(inImage ? IMAGE_ENV : {}) },
      network: o.bridges.length > 0 ? { bridges: o.bridges } : 'none',
      devices,
      sysfs: o.mounts.sysfs,
      // The node running ptb also runs the in-sandbox bridge (its directory is bound when outside /usr).
      bridgeNode: process.execPath,
      timeoutMs: o.timeoutMs ?? agentTimeoutMs(spec.hours),
      killGraceMs: o.killGraceMs ?? AGENT_KILL_GRACE_MS,
      limits: {
        ...(spec.memoryBytes ? { memoryBytes: spec.memoryBytes } : {}),
        ...(spec.pids ? { pids: spec.pids } : {}),
        ...(spec.cpus ? { cpus: spec.cpus } : {}),
      },
      captureOutput: false,
      onOutput: (_stream, chunk) => {
        writer.write(chunk);
      },
      signal: stop.signal,
      ...(opens ? { traceFileOpens: { outputPath: opens.fifoPath } } : {}),
    });
    if (opens && result.fileOpensTraced === false)
      opens.watcher.untraced(
        result.warnings.find((w) => w.startsWith(FILE_OPENS_UNRECORDED)) ?? 'strace did not run',
      );
    const outcome: AgentOutcome = budgetHit
      ? 'budget_exceeded'
      : result.timedOut
        ? 'timeout'
        : result.aborted
          ? 'interrupted'
          : result.exitCode === 0
            ? 'finished'
            : 'failed';
    const detail = result.timedOut
      ? `killed by the time limit (${spec.hours} h + 5 min)`
      : result.oomKilled
        ? 'the memory limit was reached (OOM kill)'
        : result.startFailed
          ? `the sandbox failed to start: ${result.stderr.toString().slice(0, 500)}`
          : `exit code ${result.exitCode}`;
    return finish({ outcome, exitCode: result.exitCode, oomKilled: result.oomKilled, detail });
  } finally {
    await monitor?.stop();
    await opens?.watcher.stop();
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** Sandbox paths whose opens are not worth recording: the system, ptb's code, the interpreter. */
const SYSTEM_PATHS = [
  '/usr',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/bin',
  '/sbin',
  '/etc',
  '/proc',
  '/sys',
  '/dev',
  '/run',
  '/newroot',
  SANDBOX_PATHS.ptb,
];

/**
 * Start the file-open ledger for a bwrap run (strace around the sandbox, a watcher that scans what
 * the agent's processes read when they read it). Records why when there is none.
 */
async function startFileOpenLedger(
  o: AgentRunOptions,
  readOnly: AgentMounts['readOnly'],
  inImage: boolean,
): Promise<{ watcher: FileOpenWatcher; fifoPath: string } | null> {
  const ledgerPath = join(o.layout.ledgers.dir, FILE_OPENS_LEDGER);
  const tracer = fileOpenTracer();
  // In the podman sandbox strace starts the container's processes through the runtime (runtimeTrace.ts).
  const support = inImage ? { ...tracer, detail: `${tracer.detail}, through podman's runtime` } : tracer;
  if (!support.ok) {
    FileOpenWatcher.unavailable(ledgerPath, support.detail);
    return null;
  }
  const cache = new AssetCache(o.home.dataCache);
  const testFile = await contaminationTestFile(o.spec, cache).catch(() => null);
  const allowed = await allowedTrainingFile(o.spec, cache).catch(() => null);
  const rawPath = join(o.layout.ledgers.dir, 'strace.log');
  const fifoPath = join(o.layout.ledgers.dir, 'strace.pipe');
  const mounts = [...readOnly, ...o.mounts.writable].map((m) => ({
    source: m.source,
    target: m.target ?? m.source,
  }));
  const watcher = new FileOpenWatcher({
    fifoPath,
    rawPath,
    ledgerPath,
    trialRoot: o.layout.root,
    mounts,
    writable: o.mounts.writable.map((m) => m.target ?? m.source),
    ignore: [
      ...SYSTEM_PATHS,
      // The OCI runtime's own setup under podman (traced from its `create`): the container's storage.
      ...(inImage ? ['/var/lib/containers'] : []),
      ...o.mounts.pythonPrefixes,
      ...o.mounts.hostPrograms,
      dirname(process.execPath),
    ],
    captureDir: join(o.layout.ledgers.dir, 'opened'),
    scanner: testFile ? ptbScanScanner(o.spec.benchmark, testFile, process.env, allowed) : null,
    mechanismDetail: support.detail,
  });
  watcher.start();
  return { watcher, fifoPath };
}
