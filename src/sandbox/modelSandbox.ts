/**
 * Untrusted model code, contained: anything that loads a checkpoint an agent wrote (the final
 * evaluation's engine, which passes --trust-remote-code for Arena-Hard and HealthBench as the
 * reference does; a likelihood probe; any other reader of `final_model`) runs through here.
 *
 * What the code gets: the checkpoint read-only at /opt/model, named input files read-only under
 * /opt/inputs, the programs it needs read-only (the interpreter's directories, a server script), the
 * trial's GPUs (their device nodes only; CUDA inside numbers them from 0), a private writable scratch
 * directory as HOME (its tmp/ is /tmp: nothing else is writable but /dev/shm, a private tmpfs), and
 * an allow-listed environment: no API keys, no PTB_HOME, no
 * HF_TOKEN, nothing of the harness's. What it does not get: any network (a private namespace with only
 * its own loopback), the harness's files (PTB_HOME, credentials, other trials), the harness's
 * processes (its own pid namespace, so /proc/<harness pid> does not exist inside).
 *
 * A server (startSandboxedServer) listens on the sandbox's own loopback; the bridge forwarder offers
 * it to the harness as a Unix socket in a directory bound from the host, which the harness reaches
 * with connectPinnedSocket (src/engines/sandboxSocket.ts). A one-shot program (runUntrustedModelCode)
 * leaves its results in the scratch directory.
 *
 * Every run appends one record to a ledger: what was visible and writable, the environment's names,
 * the network, the GPUs, how it ended, what it left in its scratch, and whether the checkpoint was
 * unchanged afterwards. The code's own output goes to the caller's log.
 */
import { chownSync, createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { UserError } from '../core/errors.ts';
import {
  bridgeWrapper,
  grantSandboxRead,
  type ResourceLimits,
  type SandboxMount,
  type SandboxResult,
  type SandboxSpec,
  sandboxHostIds,
} from './bwrap.ts';
import { DEFAULT_CONTAINER_USER } from './container.ts';
import { gpuDevices } from './gpuGate.ts';
import { SANDBOXES } from './registry.ts';

export type ModelSandboxKind = 'bwrap' | 'podman';

/** Where things appear inside the sandbox. */
export const MODEL_SANDBOX_PATHS = {
  model: '/opt/model',
  inputs: '/opt/inputs',
  scratch: '/scratch',
  /** The directory holding the inbound socket of a server (bound from the host, writable). */
  serve: '/run/ptb/serve',
  /** Compile caches kept across the runs of one evaluation (ModelSandboxOptions.cacheDir). */
  cache: '/cache',
} as const;

/** Port a server listens on inside: the sandbox has its own loopback, so it never clashes. */
export const SANDBOXED_SERVER_PORT = 8000;

/** Host variables a model run may see: GPU libraries and performance knobs, never credentials or paths of ours. */
const PASSED_FROM_HOST =
  /^(LD_LIBRARY_PATH|CUDA_HOME|CUDA_PATH|NVIDIA_DRIVER_CAPABILITIES|OMP_NUM_THREADS|MKL_NUM_THREADS|TORCH_CUDA_ARCH_LIST|PYTORCH_CUDA_ALLOC_CONF|(NCCL|VLLM|TORCHINDUCTOR|TRITON)_[A-Z0-9_]+)$/;
/** Never passed, even inside an allowed family: secrets, and paths that point into the host. */
const NEVER_PASSED = /KEY|TOKEN|SECRET|PASS|CRED|AUTH|COOKIE|(_DIR|_ROOT|_HOME|_FILE|_CACHE)$/;
const PATH_VARIABLES = new Set(['LD_LIBRARY_PATH', 'CUDA_HOME', 'CUDA_PATH']);

/**
 * The whole environment of a model run: neutral defaults (HOME and TMPDIR in the scratch, Hugging
 * Face offline with its cache in the scratch, a user name torch can look up), the allow-listed host
 * variables, then `extra` (the caller's own, e.g. the engine's per-run API key).
 */
export function modelSandboxEnv(
  hostEnv: NodeJS.ProcessEnv = process.env,
  extra: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const scratch = MODEL_SANDBOX_PATHS.scratch;
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: scratch,
    USER: 'ptb',
    LOGNAME: 'ptb',
    LANG: 'C.UTF-8',
    TMPDIR: '/tmp',
    XDG_CACHE_HOME: `${scratch}/.cache`,
    HF_HOME: `${scratch}/hf`,
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    PYTHONNOUSERSITE: '1',
    VLLM_NO_USAGE_STATS: '1',
    DO_NOT_TRACK: '1',
  };
  for (const [name, value] of Object.entries(hostEnv)) {
    if (value === undefined || !PASSED_FROM_HOST.test(name)) continue;
    if (NEVER_PASSED.test(name) && !PATH_VARIABLES.has(name)) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

export interface ModelSandboxOptions {
  kind: ModelSandboxKind;
  /** Command inside the sandbox. */
  argv: readonly string[];
  /** Checkpoint directory on the host, read-only at MODEL_SANDBOX_PATHS.model. */
  model: string;
  /** Other read-only inputs by name: they appear at `/opt/inputs/<name>`. */
  inputs?: Readonly<Record<string, string>>;
  /**
   * Host paths the programs need, read-only at their own paths (the interpreter's prefixes, scripts).
   * A podman run with the image's own programs leaves them out.
   */
  programs?: readonly string[];
  /** Host directory of this run: `scratch/` (and `serve/` for a server) are made inside it. */
  workDir: string;
  /**
   * Host directory kept across runs over the same checkpoint (the attempts and seeds of one
   * evaluation), writable at /cache: torch-compile, Triton and vLLM caches go there, so a retry does
   * not compile again. Never share it between checkpoints: what one run writes, the next one loads.
   */
  cacheDir?: string;
  /** nvidia-smi indices of the GPUs the code may use ([]: none). */
  gpuIndices?: readonly number[];
  /** Where the allow-listed variables come from (default process.env). */
  hostEnv?: NodeJS.ProcessEnv;
  /** Variables of the caller's own, on top of modelSandboxEnv. */
  env?: Readonly<Record<string, string>>;
  limits?: ResourceLimits;
  timeoutMs?: number;
  /** On stop, timeout or abort: SIGTERM, then SIGKILL after this long (default 10 s). */
  killGraceMs?: number;
  /** stdout and stderr of the code are appended here. */
  logFile?: string;
  /** One JSON line per run is appended here (see ModelSandboxRecord). */
  ledgerFile?: string;
  /** What the record calls this run (e.g. the engine log's file name). */
  label?: string;
  /** podman only: the image, and whether programs come from it (default) or from the host's binds. */
  podman?: { image: string; programs?: 'image' | 'host' };
  signal?: AbortSignal;
}

/** The ledger line of one run. */
export interface ModelSandboxRecord {
  ts: string;
  label: string | null;
  sandbox: ModelSandboxKind;
  image: string | null;
  argv: string[];
  readOnly: Array<{ host: string; sandbox: string }>;
  writable: Array<{ host: string; sandbox: string }>;
  network: string;
  /** Names only: values may be per-run keys. */
  envNames: string[];
  gpus: number[];
  devices: string[];
  exit: {
    code: number | null;
    signal: string | null;
    timedOut: boolean;
    oomKilled: boolean;
    startFailed: boolean;
    stoppedByHarness: boolean;
  };
  warnings: string[];
  /** What the code left in its scratch directory (the only place it could write). */
  scratch: { files: number; bytes: number; sample: string[] };
  /** The checkpoint's files (names, sizes, modification times) are the same after the run. */
  modelUnchanged: boolean;
}

interface PreparedRun {
  spec: SandboxSpec;
  run: (spec: SandboxSpec) => Promise<SandboxResult>;
  scratch: string;
  devices: string[];
  record: Omit<ModelSandboxRecord, 'ts' | 'exit' | 'warnings' | 'scratch' | 'modelUnchanged'>;
  modelBefore: string;
}

function toMounts(list: readonly SandboxMount[]): Array<{ host: string; sandbox: string }> {
  return list.map((m) => ({ host: m.source, sandbox: m.target ?? m.source }));
}

/** Files under `dir` as `path size mtime` lines, for telling whether a run changed anything. */
function listing(dir: string): string {
  const lines: string[] = [];
  const walk = (path: string) => {
    const st = lstatSync(path);
    lines.push(`${relative(dir, path)} ${st.size} ${st.mtimeMs} ${st.mode}`);
    if (st.isDirectory()) for (const name of readdirSync(path).sort()) walk(join(path, name));
  };
  walk(dir);
  return lines.join('\n');
}

function scratchSummary(dir: string): ModelSandboxRecord['scratch'] {
  let files = 0;
  let bytes = 0;
  const sample: string[] = [];
  const walk = (path: string) => {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of readdirSync(path)) walk(join(path, name));
      return;
    }
    files++;
    bytes += st.size;
    if (sample.length < 50) sample.push(relative(dir, path));
  };
  walk(dir);
  return { files, bytes, sample };
}

/** Directories the sandbox user writes: theirs when ptb runs as root. */
function ownedBySandboxUser(dir: string, kind: ModelSandboxKind): void {
  mkdirSync(dir, { recursive: true });
  if (process.getuid?.() !== 0) return;
  const ids = kind === 'bwrap' ? sandboxHostIds() : DEFAULT_CONTAINER_USER;
  chownSync(dir, ids.uid, ids.gid);
}

function prepare(
  o: ModelSandboxOptions,
  extraWritable: SandboxMount[],
  argv: readonly string[],
  shown: { argv: readonly string[]; network: string } = { argv, network: 'none' },
): PreparedRun {
  if (!existsSync(o.model)) {
    throw new UserError(`model folder not found: ${o.model}`, 'point the model at a checkpoint folder');
  }
  const scratch = join(o.workDir, 'scratch');
  rmSync(scratch, { recursive: true, force: true });
  ownedBySandboxUser(o.workDir, o.kind);
  for (const dir of [scratch, join(scratch, 'tmp')]) ownedBySandboxUser(dir, o.kind);
  const shared: SandboxMount[] = [
    ...extraWritable,
    ...(o.cacheDir ? [{ source: o.cacheDir, target: MODEL_SANDBOX_PATHS.cache }] : []),
  ];
  for (const mount of shared) ownedBySandboxUser(mount.source, o.kind);
  const inputs = Object.entries(o.inputs ?? {}).map(([name, source]) => ({
    source,
    target: `${MODEL_SANDBOX_PATHS.inputs}/${name}`,
  }));
  const imagePrograms = o.kind === 'podman' && (o.podman?.programs ?? 'image') === 'image';
  const programs = imagePrograms ? [] : [...new Set(o.programs ?? [])];
  const readOnly: SandboxMount[] = [
    { source: o.model, target: MODEL_SANDBOX_PATHS.model },
    ...inputs,
    ...programs.map((source) => ({ source })),
  ];
  // /tmp is the scratch's tmp/ too: every place the code can write is in the scratch (and in its record).
  const writable: SandboxMount[] = [
    { source: scratch, target: MODEL_SANDBOX_PATHS.scratch },
    { source: join(scratch, 'tmp'), target: '/tmp' },
    ...shared,
  ];
  // Running as root, the sandbox user is uid 1000: it must be able to read what it is given.
  grantSandboxRead([o.model, ...inputs.map((i) => i.source)]);
  const gpus = [...(o.gpuIndices ?? [])];
  const devices = gpuDevices(gpus);
  const cacheEnv: Record<string, string> = o.cacheDir
    ? {
        TORCHINDUCTOR_CACHE_DIR: `${MODEL_SANDBOX_PATHS.cache}/torchinductor`,
        TRITON_CACHE_DIR: `${MODEL_SANDBOX_PATHS.cache}/triton`,
        VLLM_CACHE_ROOT: `${MODEL_SANDBOX_PATHS.cache}/vllm`,
      }
    : {};
  const env = modelSandboxEnv(o.hostEnv, { ...cacheEnv, ...o.env });
  const spec: SandboxSpec = {
    argv,
    system: 'full',
    readOnlyBinds: readOnly,
    writableBinds: writable,
    env,
    cwd: MODEL_SANDBOX_PATHS.scratch,
    network: 'none',
    devices,
    sysfs: gpus.length > 0,
    limits: o.limits,
    timeoutMs: o.timeoutMs,
    killGraceMs: o.killGraceMs ?? 10_000,
    captureOutput: false,
  };
  if (o.kind === 'podman' && !o.podman?.image) {
    throw new UserError('a podman model sandbox needs an image', 'build one with `ptb image build`');
  }
  const run =
    o.kind === 'bwrap'
      ? (s: SandboxSpec) => SANDBOXES.bwrap.run(s)
      : (s: SandboxSpec) =>
          SANDBOXES.podman.run(s, {
            image: o.podman!.image,
            gpuIndices: gpus,
            bridgeNode: imagePrograms ? 'node' : process.execPath,
            rootfs: 'read-only',
          });
  return {
    spec,
    run,
    scratch,
    devices,
    modelBefore: listing(o.model),
    record: {
      label: o.label ?? null,
      sandbox: o.kind,
      image: o.kind === 'podman' ? o.podman!.image : null,
      argv: [...shown.argv],
      readOnly: toMounts(readOnly),
      writable: toMounts(writable),
      network: shown.network,
      envNames: Object.keys(env).sort(),
      gpus,
      devices,
    },
  };
}

async function finishRecord(
  o: Pick<ModelSandboxOptions, 'model' | 'ledgerFile'>,
  prepared: PreparedRun,
  result: SandboxResult | null,
  stoppedByHarness: boolean,
  failure?: unknown,
): Promise<ModelSandboxRecord> {
  let modelUnchanged = false;
  try {
    modelUnchanged = listing(o.model) === prepared.modelBefore;
  } catch {
    // the model folder vanished: changed
  }
  const record: ModelSandboxRecord = {
    ts: new Date().toISOString(),
    ...prepared.record,
    exit: {
      code: result?.exitCode ?? null,
      signal: result?.signal ?? null,
      timedOut: result?.timedOut ?? false,
      oomKilled: result?.oomKilled ?? false,
      startFailed: result?.startFailed ?? failure !== undefined,
      stoppedByHarness,
    },
    warnings: [
      ...(result?.warnings ?? []),
      ...(failure !== undefined
        ? [`the sandbox could not run: ${(failure as Error).message ?? failure}`]
        : []),
    ],
    scratch: scratchSummary(prepared.scratch),
    modelUnchanged,
  };
  if (o.ledgerFile) {
    mkdirSync(dirname(o.ledgerFile), { recursive: true });
    await appendFile(o.ledgerFile, `${JSON.stringify(record)}\n`);
  }
  return record;
}

function logSink(logFile: string | undefined): {
  onOutput?: SandboxSpec['onOutput'];
  close(): Promise<void>;
} {
  if (!logFile) return { close: async () => {} };
  mkdirSync(dirname(logFile), { recursive: true });
  const stream = createWriteStream(logFile, { flags: 'a' });
  return {
    onOutput: (_stream, chunk) => stream.write(chunk),
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

export interface UntrustedRunResult {
  result: SandboxResult;
  record: ModelSandboxRecord;
  /** Host path of the scratch directory, with whatever the code left there (the caller removes it). */
  scratchDir: string;
}

/**
 * Run one untrusted program over a checkpoint (e.g. a likelihood probe) in the model sandbox, to
 * completion. Its results are whatever it leaves in MODEL_SANDBOX_PATHS.scratch (on the host:
 * `scratchDir`) and its output in the log.
 */
export async function runUntrustedModelCode(o: ModelSandboxOptions): Promise<UntrustedRunResult> {
  const prepared = prepare(o, [], o.argv);
  const log = logSink(o.logFile);
  let result: SandboxResult;
  try {
    result = await prepared.run({ ...prepared.spec, onOutput: log.onOutput, signal: o.signal });
  } catch (err) {
    await log.close();
    await finishRecord(o, prepared, null, false, err);
    throw err;
  }
  await log.close();
  const record = await finishRecord(o, prepared, result, o.signal?.aborted ?? false);
  return { result, record, scratchDir: prepared.scratch };
}

/** How a sandboxed server ended (the shape of a process exit, for health waits). */
export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SandboxedServer {
  /** Host path of the Unix socket the server is reachable on (connect with connectPinnedSocket). */
  socketPath: string;
  logFile: string;
  /** Resolves when the sandbox has ended, for whatever reason. */
  exited: Promise<ServerExit>;
  exitInfo(): ServerExit | null;
  /** SIGTERM, then SIGKILL after the grace; resolves once the sandbox is gone and its record written. */
  stop(): Promise<ModelSandboxRecord>;
}

/**
 * Start a server over an untrusted checkpoint in the model sandbox. `argvFor(port)` is its command,
 * listening on the sandbox's 127.0.0.1:`port`; the harness reaches it at `socketPath`. Resolves
 * once the sandbox is started (not once the server is healthy: the caller waits for that).
 */
export async function startSandboxedServer(
  o: Omit<ModelSandboxOptions, 'argv' | 'logFile'> & {
    argvFor(port: number): string[];
    logFile: string;
    /** Node for the in-sandbox bridge forwarder (default: the node running ptb, or `node` in an image). */
    bridgeNode?: string;
  },
): Promise<SandboxedServer> {
  const serveDir = join(o.workDir, 'serve');
  rmSync(serveDir, { recursive: true, force: true });
  const socketInside = `${MODEL_SANDBOX_PATHS.serve}/server.sock`;
  const imagePrograms = o.kind === 'podman' && (o.podman?.programs ?? 'image') === 'image';
  const node = o.bridgeNode ?? (imagePrograms ? 'node' : process.execPath);
  const nodeDir = dirname(process.execPath);
  const programs = [...(o.programs ?? [])];
  // The node that runs ptb also runs the bridge forwarder: visible at its own path when not under /usr.
  if (!imagePrograms && node === process.execPath && !nodeDir.startsWith('/usr/')) programs.push(nodeDir);
  const serverArgv = o.argvFor(SANDBOXED_SERVER_PORT);
  const argv = [
    ...bridgeWrapper([], node, [{ socketPath: socketInside, port: SANDBOXED_SERVER_PORT }]),
    ...serverArgv,
  ];
  const prepared = prepare(
    { ...o, programs, argv },
    [{ source: serveDir, target: MODEL_SANDBOX_PATHS.serve }],
    argv,
    {
      argv: serverArgv,
      network: `none: loopback only; the harness calls 127.0.0.1:${SANDBOXED_SERVER_PORT} through ${socketInside}`,
    },
  );
  const log = logSink(o.logFile);
  const stopper = new AbortController();
  const onAbort = () => stopper.abort(o.signal?.reason);
  o.signal?.addEventListener('abort', onAbort, { once: true });
  let exit: ServerExit | null = null;
  let record: Promise<ModelSandboxRecord> | null = null;
  const finished = prepared
    .run({ ...prepared.spec, onOutput: log.onOutput, signal: stopper.signal })
    .then(
      (result) => ({ result, failure: undefined as unknown }),
      (failure: unknown) => ({ result: null, failure }),
    )
    .then(async ({ result, failure }) => {
      o.signal?.removeEventListener('abort', onAbort);
      exit = result ? { code: result.exitCode, signal: result.signal } : { code: 125, signal: null };
      if (failure !== undefined) {
        await appendFile(o.logFile, `\n[ptb] the sandbox could not start: ${(failure as Error).message}\n`);
      }
      await log.close();
      const written = await finishRecord(o, prepared, result, stopper.signal.aborted, failure);
      rmSync(o.workDir, { recursive: true, force: true });
      return written;
    });
  record = finished;
  const exited = finished.then(() => exit!);
  return {
    socketPath: join(serveDir, basename(socketInside)),
    logFile: o.logFile,
    exited,
    exitInfo: () => exit,
    stop: async () => {
      stopper.abort(new Error('stopped by the harness'));
      return await record!;
    },
  };
}
