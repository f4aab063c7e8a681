import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { repoRoot } from '../core/paths.ts';
import { PROTOCOLS } from '../core/protocols.ts';
import type { TrialSpec } from '../core/trial.ts';
import { SANDBOX_PATHS, type TrialLayout } from '../core/trialLayout.ts';
import type { SandboxMount } from '../sandbox/bwrap.ts';
import { interpreterBinds } from '../sandbox/pythonRunner.ts';
import { SHARED_HF_CACHE_IN_SANDBOX } from './hfCacheView.ts';

/** Where harness-provided inputs appear inside the sandbox. */
export const SANDBOX_INPUTS = {
  baseModel: '/opt/base_model',
  /** PTB_HOME of the agent-facing evaluate.py: private and writable, with the data cache read-only. */
  ptbHome: '/opt/ptb-home',
  evalData: '/opt/ptb-data',
  inRunLedgerDir: '/run/ptb/inrun',
} as const;

export interface AgentMounts {
  /** Read-only binds; some sit inside writable ones (task/evaluate.py, task/templates): bwrap mounts parents first. */
  readOnly: SandboxMount[];
  sysfs: boolean;
  /** The host interpreter's directories among the binds (container sandboxes drop them). */
  pythonPrefixes: string[];
  /** Host program binds besides the interpreter's (ptb's own packages behind a linked node_modules). */
  hostPrograms: string[];
  writable: SandboxMount[];
  env: Record<string, string>;
}

/**
 * The agent's view of the machine: its home (with task/) writable, a private /tmp, ptb itself and
 * the Python environment read-only, the base model read-only, a private PTB_HOME for in-run
 * evaluations with the pinned data cache read-only, and the in-run ledger directory.
 */
export function agentMounts(opts: {
  spec: TrialSpec;
  layout: TrialLayout;
  python: string;
  baseModelPath: string | null;
  dataCacheDir: string;
  hfHome: string;
  /** The shared pre-seeded cache the view in `hfHome` links into (bound read-only). */
  sharedHfCache?: string | null;
  hostEnv?: NodeJS.ProcessEnv;
}): AgentMounts {
  const { spec, layout } = opts;
  const ptbHomeDir = join(layout.work.dir, 'ptb-home');
  const readOnly: SandboxMount[] = [{ source: repoRoot, target: SANDBOX_PATHS.ptb }];
  // A node_modules that is a link (a git worktree sharing another checkout's packages) must resolve in
  // the sandbox too: its target is bound read-only at its own path.
  const linkedModules = linkedNodeModules(repoRoot);
  if (linkedModules) readOnly.push({ source: linkedModules });
  // The node that runs ptb (evaluate.py calls ptb): visible at its own path when it is not under /usr.
  const nodeDir = dirname(process.execPath);
  if (!nodeDir.startsWith('/usr/')) readOnly.push({ source: nodeDir });
  const pythonPrefixes = interpreterBinds(opts.python);
  for (const prefix of pythonPrefixes) readOnly.push({ source: prefix });
  if (opts.baseModelPath) readOnly.push({ source: opts.baseModelPath, target: SANDBOX_INPUTS.baseModel });
  if (opts.sharedHfCache) readOnly.push({ source: opts.sharedHfCache, target: SHARED_HF_CACHE_IN_SANDBOX });
  mkdirSync(opts.dataCacheDir, { recursive: true }); // a bind source must exist, even when nothing is cached yet
  readOnly.push({ source: opts.dataCacheDir, target: `${SANDBOX_INPUTS.ptbHome}/cache/data` });
  // The in-run engine is already inside the agent's sandbox (which forbids nesting one): it runs there
  // with the agent's own rights and, like every engine ptb starts, an allow-listed environment.
  const evalArgs: string[] = [
    '-e',
    spec.engine === 'vllm' ? 'vllm' : 'hf',
    '--offline',
    '--engine-sandbox',
    'none',
  ];
  for (const [part, file] of Object.entries(spec.evalData)) {
    const target = `${SANDBOX_INPUTS.evalData}/${part}-${basename(file)}`;
    readOnly.push({ source: file, target });
    evalArgs.push('--data', `${part}=${target}`);
  }
  if (spec.evalTemplate)
    evalArgs.push('--template', `${SANDBOX_PATHS.task}/templates/${basename(spec.evalTemplate)}`);
  if (spec.benchmark === 'humaneval') evalArgs.push('--unsafe-no-sandbox'); // already inside the sandbox
  // The agent's evaluate.py is the reference's plain one: never the final evaluation's seeds and hardened scorers.
  evalArgs.push('--protocol', PROTOCOLS[spec.protocol].agentEvaluation);
  // The evaluation entry point and the templates stay as the harness wrote them (rule 4 enforced, not just stated).
  readOnly.push({
    source: join(layout.work.task, 'evaluate.py'),
    target: `${SANDBOX_PATHS.task}/evaluate.py`,
  });
  readOnly.push({ source: join(layout.work.task, 'templates'), target: `${SANDBOX_PATHS.task}/templates` });
  const writable: SandboxMount[] = [
    { source: layout.work.home, target: SANDBOX_PATHS.home },
    { source: layout.work.tmp, target: SANDBOX_PATHS.tmp },
    { source: ptbHomeDir, target: SANDBOX_INPUTS.ptbHome },
    { source: join(layout.work.dir, 'inrun'), target: SANDBOX_INPUTS.inRunLedgerDir },
    { source: opts.hfHome, target: SANDBOX_PATHS.hfCache },
  ];
  const pythonBin = dirname(opts.python);
  const env: Record<string, string> = {
    HOME: SANDBOX_PATHS.home,
    USER: 'agent',
    PATH: `${pythonBin}:${SANDBOX_PATHS.home}/.local/bin:/usr/local/bin:/usr/bin:/bin`,
    LANG: 'C.UTF-8',
    HF_HOME: SANDBOX_PATHS.hfCache,
    PYTHONNOUSERSITE: '1',
    NUM_GPUS: String(spec.gpus),
    PTB_HOME: SANDBOX_INPUTS.ptbHome,
    PTB_PYTHON: opts.python,
    // HumanEval answers of in-run evaluations run with the agent's own Python, as the reference's
    // evaluate.py runs them in the agent's container.
    PTB_CODE_PYTHON: opts.python,
    PTB_OFFLINE: '1',
    PTB_TASK_BENCHMARK: spec.benchmark,
    PTB_TASK_PTB: `${process.execPath} ${SANDBOX_PATHS.ptb}/bin/ptb.js`,
    ...(process.env.PTB_BUNDLE ? { PTB_BUNDLE: `${SANDBOX_PATHS.ptb}/dist/cli/ptb.mjs` } : {}),
    PTB_TASK_EVAL_ARGS: JSON.stringify(evalArgs),
    PTB_INRUN_LEDGER: `${SANDBOX_INPUTS.inRunLedgerDir}/inrun_evals.jsonl`,
    ...(opts.baseModelPath ? { PTB_BASE_MODEL_PATH: SANDBOX_INPUTS.baseModel } : {}),
  };
  if (spec.gpus > 0) {
    // CUDA needs the driver's view of the PCI devices and the host's library path to its libraries.
    for (const [k, v] of Object.entries(opts.hostEnv ?? process.env)) {
      if (v !== undefined && /^(LD_LIBRARY_PATH|CUDA_HOME|CUDA_PATH|NVIDIA_DRIVER_CAPABILITIES)$/.test(k))
        env[k] = v;
    }
  }
  const hostPrograms = linkedModules ? [linkedModules] : [];
  return { readOnly, writable, env, sysfs: spec.gpus > 0, pythonPrefixes, hostPrograms };
}

/** The real folder behind `<root>/node_modules` when that is a symbolic link, else null. */
function linkedNodeModules(root: string): string | null {
  const path = join(root, 'node_modules');
  try {
    return lstatSync(path).isSymbolicLink() ? realpathSync(path) : null;
  } catch {
    return null;
  }
}
