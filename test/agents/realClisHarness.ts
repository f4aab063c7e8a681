/**
 * Runs a real, pinned agent CLI the way a trial does: installed from npm (cached across test runs in
 * PTB_AGENTS_CACHE, default /tmp/ptb-agents-cache), started by its generated agent_solve.sh inside the
 * bwrap sandbox, reaching the model-call relay on a Unix socket through the sandbox's network bridge,
 * the relay forwarding to a stand-in of the provider's API that plays a three-turn session.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { agentInstallDir, agentSandboxPaths, installAgent } from '../../src/agents/install.ts';
import { getAgent } from '../../src/agents/registry.ts';
import { writeAgentHome } from '../../src/agents/solveScript.ts';
import { parseTrace } from '../../src/agents/traces/registry.ts';
import type { AgentDefinition, AgentRunContext, ProviderId } from '../../src/agents/types.ts';
import { type ModelCallEvent, ModelCallEventSchema, type Trajectory } from '../../src/core/trial.ts';
import { SANDBOX_PATHS } from '../../src/core/trialLayout.ts';
import { type RelayTotals, startModelRelay } from '../../src/ledgers/modelRelay.ts';
import {
  isBwrapAvailable,
  runInSandbox,
  type SandboxResult,
  sandboxHostIds,
} from '../../src/sandbox/bwrap.ts';
import { timerScript } from '../../src/trial/timer.ts';
import { type StandInApi, type StandInProvider, startStandInProvider } from '../helpers/standInProviders.ts';

export const AGENTS_CACHE = process.env.PTB_AGENTS_CACHE ?? '/tmp/ptb-agents-cache';
/** First installs download hundreds of MB (Gemini CLI: minutes on a busy machine). */
export const INSTALL_TIMEOUT_MS = 15 * 60 * 1000;

export const REAL_KEY = `sk-real-${randomBytes(12).toString('hex')}`;
const DECOY_KEY = `sk-decoy-${randomBytes(12).toString('hex')}`;
/** The relay's port on the sandbox's own loopback. */
const RELAY_PORT = 18080;

export const SESSION = {
  commands: ['echo hello > note.txt && cat note.txt', 'python3 evaluate.py --limit 1'],
  finalMessage: 'All done: note.txt written and evaluate.py run.',
};

/** The task's evaluate.py: records that it ran and with which arguments. */
const EVALUATE_PY = `import json, sys
print("evaluate.py ran with", " ".join(sys.argv[1:]))
with open("evaluate_ran.json", "w") as f:
    json.dump({"argv": sys.argv[1:]}, f)
`;

const runDirs: string[] = [];

/** Remove the run directories of this file's tests (kept until then for inspecting a failure). */
export function removeRunDirs(): void {
  for (const dir of runDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export async function ensureInstalled(agentId: string): Promise<{ def: AgentDefinition; seconds: number }> {
  const def = getAgent(agentId);
  const started = performance.now();
  await installAgent(def, { agents: AGENTS_CACHE });
  return { def, seconds: (performance.now() - started) / 1000 };
}

/** A suite for one real CLI: installed once (cached), run dirs removed afterwards; needs bwrap. */
export function describeRealCli(agentId: string, title: string, body: () => void): void {
  describe.skipIf(!isBwrapAvailable())(title, () => {
    beforeAll(async () => {
      const { seconds } = await ensureInstalled(agentId);
      console.info(`${agentId}: install ready in ${seconds.toFixed(1)} s`);
    }, INSTALL_TIMEOUT_MS);
    afterAll(removeRunDirs);
    body();
  });
}

export interface RealCliRun {
  def: AgentDefinition;
  result: SandboxResult;
  stdout: string;
  stderr: string;
  trajectory: Trajectory;
  ledger: ModelCallEvent[];
  ledgerText: string;
  totals: RelayTotals;
  standIn: StandInProvider;
  hostHome: string;
  taskDir: string;
  tracePath: string;
}

function giveTree(path: string, ids: { uid: number; gid: number }): void {
  chownSync(path, ids.uid, ids.gid);
  if (statSync(path).isDirectory()) for (const name of readdirSync(path)) giveTree(join(path, name), ids);
}

export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}

export async function runRealCli(options: {
  agentId: string;
  api: StandInApi;
  provider: ProviderId;
  agentConfig: string;
  /** Model names the stand-in accepts (default: the config without an `x/` prefix). */
  models?: string[];
  /** timer.sh contents (default: one hour from now). */
  timer?: string;
  timeoutMs?: number;
}): Promise<RealCliRun> {
  const def = getAgent(options.agentId);
  const ids = sandboxHostIds();
  const root = mkdtempSync(join('/tmp', `ptb-real-${options.agentId}-`));
  chmodSync(root, 0o755);
  runDirs.push(root);
  const hostHome = join(root, 'home');
  const taskDir = join(hostHome, 'task');
  mkdirSync(taskDir, { recursive: true });
  writeFileSync(join(taskDir, 'evaluate.py'), EVALUATE_PY);
  writeFileSync(join(taskDir, 'timer.sh'), options.timer ?? timerScript(Date.now(), 1));
  giveTree(hostHome, ids);

  const standIn = await startStandInProvider(options.api, {
    expectedKey: REAL_KEY,
    script: SESSION,
    models: options.models ?? [options.agentConfig.split('/').pop()!],
  });
  const runDir = join(root, 'run');
  mkdirSync(runDir, { mode: 0o755 });
  chmodSync(runDir, 0o755);
  const socketPath = join(runDir, 'relay.sock');
  const ledgerPath = join(root, 'ledgers', 'model_calls.jsonl');
  const relayToken = `ptb-${randomBytes(16).toString('hex')}`;
  const relay = await startModelRelay({
    listen: { socketPath },
    upstreams: { [options.provider]: standIn.url },
    realKeys: { [options.provider]: REAL_KEY },
    relayToken,
    decoyKeys: [DECOY_KEY],
    ledgerPath,
  });
  try {
    const ctx: AgentRunContext = {
      prompt: 'Write note.txt, run evaluate.py with --limit 1, then stop.',
      agentConfig: options.agentConfig,
      benchmark: 'gsm8k',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      hours: 1,
      gpus: 0,
      home: SANDBOX_PATHS.home,
      taskDir: SANDBOX_PATHS.task,
      relayUrls: { [options.provider]: `http://127.0.0.1:${RELAY_PORT}/${options.provider}` },
      relayTokens: { [options.provider]: relayToken },
      credentialFiles: [],
    };
    const sandboxPaths = agentSandboxPaths(def);
    writeAgentHome({ def, ctx, hostHome, owner: ids, pathPrepend: [sandboxPaths.binDir] });
    const result = await runInSandbox({
      argv: ['bash', `${SANDBOX_PATHS.home}/agent_solve.sh`],
      readOnlyBinds: [{ source: agentInstallDir(def, { agents: AGENTS_CACHE }), target: sandboxPaths.dir }],
      writableBinds: [{ source: hostHome, target: SANDBOX_PATHS.home }],
      env: { HOME: SANDBOX_PATHS.home, PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' },
      cwd: SANDBOX_PATHS.task,
      network: { bridges: [{ listenPort: RELAY_PORT, socketPath }] },
      timeoutMs: options.timeoutMs ?? 240_000,
      maxOutputBytes: 16 << 20,
    });
    const stdout = result.stdout.toString('utf8');
    const stderr = result.stderr.toString('utf8');
    // Keep what the CLI printed, as the trial does (solve_out.txt), and parse that file's lines.
    const tracePath = join(root, 'solve_out.txt');
    writeFileSync(tracePath, stdout);
    const trajectory = parseTrace(def.traceFormat, readFileSync(tracePath, 'utf8').split('\n'));
    let ledgerText = '';
    try {
      ledgerText = readFileSync(ledgerPath, 'utf8');
    } catch {
      // no calls reached the relay
    }
    const ledger = ledgerText
      .split('\n')
      .filter(Boolean)
      .map((line) => ModelCallEventSchema.parse(JSON.parse(line)));
    return {
      def,
      result,
      stdout,
      stderr,
      trajectory,
      ledger,
      ledgerText,
      totals: relay.totals(),
      standIn,
      hostHome,
      taskDir,
      tracePath,
    };
  } finally {
    await relay.close();
    await standIn.close();
  }
}

/** A readable account of a run for failing assertions. */
export function describeRun(run: RealCliRun): string {
  return [
    `exit ${run.result.exitCode} signal ${run.result.signal} timedOut ${run.result.timedOut}`,
    `stand-in problems: ${JSON.stringify(run.standIn.problems)}`,
    `requests: ${run.standIn.requests.map((r) => `${r.method} ${r.path} ${r.role}:${r.answer}`).join(' | ')}`,
    `stderr: ${run.stderr.slice(-2000)}`,
    `stdout: ${run.stdout.slice(-3000)}`,
  ].join('\n');
}

/**
 * What every real-CLI session must show: the commands ran in the sandbox, the stand-in saw well-formed
 * requests carrying the real key (swapped in by the relay) and got the tool results back, the trace
 * parses with the shell calls in it, and the ledger accounts for every call and token.
 */
export function expectScriptedSession(run: RealCliRun): void {
  const info = describeRun(run);
  expect(run.result.exitCode, info).toBe(0);
  expect(run.standIn.problems, info).toEqual([]);
  expect(readFileSync(join(run.taskDir, 'note.txt'), 'utf8'), info).toBe('hello\n');
  expect(JSON.parse(readFileSync(join(run.taskDir, 'evaluate_ran.json'), 'utf8')).argv).toEqual([
    '--limit',
    '1',
  ]);

  const main = run.standIn.requests.filter((r) => r.role === 'main');
  expect(
    main.map((r) => r.answer),
    info,
  ).toEqual([...SESSION.commands, 'final']);
  const lastResults = main.at(-1)!.toolResults.join('\n');
  expect(lastResults).toContain('hello');
  expect(lastResults).toContain('evaluate.py ran with --limit 1');

  // The trace the CLI printed: its shell calls are there.
  const calls = run.trajectory.events.filter((e) => e.kind === 'tool_call');
  const callText = calls.map((e) => JSON.stringify(e.tool?.input ?? e.text ?? '')).join('\n');
  expect(calls.length, info).toBeGreaterThanOrEqual(2);
  expect(callText).toContain('note.txt');
  expect(callText).toContain('evaluate.py --limit 1');
  expect(run.trajectory.events.some((e) => (e.text ?? '').includes(SESSION.finalMessage))).toBe(true);

  // The ledger: one line per request that reached the stand-in, all with the relay token, and the
  // tokens the stand-in reported.
  expect(run.ledger).toHaveLength(run.standIn.requests.length);
  expect(run.ledger.every((e) => e.credential === 'relay-token' && e.status === 200 && !e.refused)).toBe(
    true,
  );
  expect(run.standIn.requests.every((r) => r.credential === REAL_KEY)).toBe(true);
  const reported = run.standIn.reportedUsage();
  const sum = (pick: (e: ModelCallEvent) => number) => run.ledger.reduce((n, e) => n + pick(e), 0);
  expect(sum((e) => e.inputTokens)).toBe(reported.inputTokens);
  expect(sum((e) => e.outputTokens)).toBe(reported.outputTokens);
  expect(sum((e) => e.cacheReadTokens)).toBe(reported.cachedTokens);
  expect(reported.inputTokens).toBeGreaterThan(0);

  // The real key never entered the sandbox or anything written.
  for (const text of [run.stdout, run.stderr, run.ledgerText]) expect(text).not.toContain(REAL_KEY);
  for (const file of filesUnder(run.hostHome))
    expect(readFileSync(file).includes(REAL_KEY), file).toBe(false);
}
