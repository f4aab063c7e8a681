import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../src/core/paths.ts';
import { PHASES, type Phase } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { isBwrapAvailable } from '../../src/sandbox/bwrap.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';
import type { PhaseRow, Trial } from '../../src/store/trialRepo.ts';
import { createTrial, runTrial } from '../../src/trial/runTrial.ts';
import { pidIsRunning } from '../helpers/processes.ts';
import { addCheapBaseline, type TrialFixture, trialFixture } from '../helpers/trialFixtures.ts';

/**
 * Crash and resume: one trial runs uninterrupted; its twin's harness (a separate process) is killed
 * with SIGKILL once in every phase and resumed each time with `ptb trial resume`. The twin must end
 * with the same result, no completed phase may run again, the killed agent is recorded as
 * interrupted, and nothing the killed harnesses started (sandbox, engine server) may outlive the resume.
 *
 * Phases that take milliseconds (prepare, collect, audit, finalize) are killed from inside the harness
 * the moment they are marked started (test/helpers/killingHarness.ts); the agent and the evaluation are
 * killed from outside, mid-way, in a real `ptb trial resume` process.
 */

const killingHarness = join(repoRoot, 'test', 'helpers', 'killingHarness.ts');
const ptbBin = join(repoRoot, 'bin', 'ptb.js');

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function treeHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir).sort()) out[name] = sha256(join(dir, name));
  return out;
}

/** Host pids of live processes whose command line contains every one of `parts`. */
function processesWith(...parts: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (parts.every((p) => cmdline.includes(p)) && pidIsRunning(Number(entry))) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

async function waitFor(what: string, check: () => boolean, timeoutMs: number, child?: ChildProcess) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (child && child.exitCode !== null)
      throw new Error(`the harness exited (${child.exitCode}) before ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.skipIf(!isBwrapAvailable())('a trial whose harness is killed in every phase', () => {
  const runTag = randomBytes(4).toString('hex');
  const agentMarker = `ptb-kill-agent-${runTag}`;
  const referenceMarker = `ptb-reference-agent-${runTag}`;
  let fixture: TrialFixture;
  let reference: Trial;
  let crashed: Trial;
  let logFile: string;
  const kills: Array<{ phase: Phase; exit: Exit; rows: PhaseRow[] }> = [];
  const strayAfterKill: { sandbox: number[]; engines: number[] } = { sandbox: [], engines: [] };
  let enginesAfterResume: number[] = [];
  let finalRun: { exit: Exit; stdout: string };
  /** Phase rows as first seen completed: they must never change afterwards. */
  const completedRows = new Map<string, PhaseRow>();
  const rewrites: string[] = [];

  const launch = (args: string[]): { child: ChildProcess; exit: Promise<Exit>; stdout: () => string } => {
    const out = openSync(logFile, 'a');
    let stdout = '';
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: fixture.env,
      stdio: ['ignore', 'pipe', out],
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exit = new Promise<Exit>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    return { child, exit, stdout: () => stdout };
  };
  const resumeCli = () => launch([ptbBin, 'trial', 'resume', crashed.id, '--offline', '--json']);
  const killAtStart = (phase: Phase) => launch(['--import', 'tsx', killingHarness, crashed.id, phase]);
  const phaseRow = (phase: Phase) => fixture.trials.phase(crashed.id, phase);

  const checkCompletedRows = () => {
    for (const row of fixture.trials.phases(crashed.id)) {
      if (row.status !== 'completed') continue;
      const first = completedRows.get(row.phase);
      if (!first) completedRows.set(row.phase, row);
      else if (JSON.stringify(first) !== JSON.stringify(row)) rewrites.push(`${row.phase} was redone`);
    }
  };
  const recordKill = async (phase: Phase, exit: Promise<Exit>) => {
    kills.push({ phase, exit: await exit, rows: fixture.trials.phases(crashed.id) });
    checkCompletedRows();
  };

  beforeAll(async () => {
    fixture = await trialFixture({ greedy: true }); // replies comparable sample by sample
    logFile = join(fixture.home.root, 'harness.log');
    addCheapBaseline(fixture.trials);
    // The copy-base agent's work, then a pause: the killed twin's outlasts every wait below, so a
    // sandbox that survived its harness is still there to be found; the uninterrupted twin's is short.
    // Each pause carries its own name, so one twin's agent is never mistaken for the other's.
    const specFor = (marker: string, pauseSeconds: number) =>
      fixture.spec({
        agent: 'command',
        agentCommand: [
          'bash',
          '-c',
          `cp -rL "$PTB_BASE_MODEL_PATH" final_model && echo "agent: copied the base model" && exec -a ${marker} sleep ${pauseSeconds}`,
        ],
      });
    const env = fixture.trialEnv();
    // The uninterrupted twin runs in this process meanwhile (its own trial directory and evaluation).
    const referenceRun = runTrial(
      env,
      createTrial(env, { ...specFor(referenceMarker, 2), experiment: 'reference' }).id,
    );
    referenceRun.catch(() => {}); // awaited (and its failure reported) at the end
    crashed = createTrial(env, { ...specFor(agentMarker, 120), experiment: 'crashed' });
    const layout = trialLayout(crashed.dir);

    await recordKill('prepare', killAtStart('prepare').exit);

    const agentRun = resumeCli();
    await waitFor(
      'the agent to copy the model',
      () => {
        try {
          return (
            phaseRow('agent')?.status === 'started' &&
            readFileSync(layout.solveOut, 'utf8').includes('copied')
          );
        } catch {
          return false;
        }
      },
      60_000,
      agentRun.child,
    );
    agentRun.child.kill('SIGKILL');
    await recordKill('agent', agentRun.exit);
    // The sandbox goes down with its harness (parent-death signal, pid namespace).
    await waitFor(
      'the agent sandbox to go down with its harness',
      () => processesWith(agentMarker).length === 0,
      10_000,
    ).catch(() => {});
    strayAfterKill.sandbox = processesWith(agentMarker);

    await recordKill('collect', killAtStart('collect').exit);
    await recordKill('audit', killAtStart('audit').exit);

    // The final evaluation's engine runs in the model sandbox: its bwrap binds final_model at /opt/model.
    const engineSandbox = () => processesWith('bwrap', layout.finalModel);
    const evalRun = resumeCli();
    await waitFor(
      'the engine server of the final evaluation',
      () => phaseRow('evaluate')?.status === 'started' && engineSandbox().length > 0,
      60_000,
      evalRun.child,
    );
    await sleep(500);
    evalRun.child.kill('SIGKILL');
    await recordKill('evaluate', evalRun.exit);
    // The sandbox goes down with its harness (parent-death signal, pid namespace).
    await waitFor(
      'the engine sandbox to go down with its harness',
      () => engineSandbox().length === 0,
      10_000,
    ).catch(() => {});
    strayAfterKill.engines = engineSandbox();

    await recordKill('finalize', killAtStart('finalize').exit);
    enginesAfterResume = engineSandbox();

    const last = resumeCli();
    finalRun = { exit: await last.exit, stdout: last.stdout() };
    reference = await referenceRun;
    checkCompletedRows();
    crashed = fixture.trials.get(crashed.id)!;
  }, 600_000);

  afterAll(() => {
    for (const pid of [
      ...processesWith(agentMarker),
      ...processesWith(referenceMarker),
      ...enginesAfterResume,
    ]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fixture?.close();
  });

  it('kills the harness once inside every phase', () => {
    const log = () => readFileSync(logFile, 'utf8').slice(-3000);
    expect(kills.map((k) => k.phase)).toEqual([...PHASES]);
    for (const { phase, exit, rows } of kills) {
      expect(exit.signal, `${phase}: ${JSON.stringify(exit)}\n${log()}`).toBe('SIGKILL');
      const statuses = Object.fromEntries(rows.map((r) => [r.phase, r.status]));
      const index = PHASES.indexOf(phase);
      expect(statuses, phase).toEqual(
        Object.fromEntries(
          PHASES.slice(0, index + 1).map((p, i) => [p, i < index ? 'completed' : 'started']),
        ),
      );
    }
  });

  it('resumes to the same result as the uninterrupted trial', () => {
    expect(finalRun.exit.code, readFileSync(logFile, 'utf8').slice(-3000)).toBe(0);
    expect(JSON.parse(finalRun.stdout.trim().split('\n').at(-1)!).status).toBe('completed');
    expect(reference.status).toBe('completed');
    expect(crashed.status).toBe('completed');
    for (const key of ['accuracy', 'final_score', 'substituted', 'audit_verdict'] as const) {
      expect(crashed[key], key).toEqual(reference[key]);
    }
    expect(typeof crashed.accuracy).toBe('number');
    const ref = trialLayout(reference.dir);
    const got = trialLayout(crashed.dir);
    expect(readFileSync(got.metrics, 'utf8')).toBe(readFileSync(ref.metrics, 'utf8'));
    const modelFiles = treeHashes(got.finalModel);
    expect(modelFiles).toEqual(treeHashes(ref.finalModel));
    expect(modelFiles).toEqual(treeHashes(fixture.baseModelPath));
    // Sample by sample: the resumed evaluation produced the same replies and scores.
    const evals = new EvalRepo(fixture.db);
    const samples = (trial: Trial) => {
      const result = JSON.parse(fixture.trials.phase(trial.id, 'evaluate')!.result_json!) as {
        runId: string;
        maxTokens: number;
      };
      return evals.samples(result.runId, result.maxTokens).map((s) => [s.sample_id, s.reply_text, s.score]);
    };
    expect(samples(crashed)).toEqual(samples(reference));
    expect(samples(crashed)).toHaveLength(2);
  });

  it('never redoes a completed phase', () => {
    expect(rewrites).toEqual([]);
    expect([...completedRows.keys()].sort()).toEqual([...PHASES].sort());
  });

  it('records the killed agent as interrupted, keeping what it produced', () => {
    const agent = JSON.parse(fixture.trials.phase(crashed.id, 'agent')!.result_json!) as { outcome: string };
    expect(agent.outcome).toBe('interrupted');
    expect(crashed.agent_outcome).toBe('interrupted');
    expect(reference.agent_outcome).toBe('finished');
    expect(readFileSync(trialLayout(crashed.dir).timeTaken, 'utf8')).toMatch(/^\d\d:\d\d:\d\d\n$/);
  });

  it('leaves nothing running that a killed harness started', () => {
    expect(strayAfterKill.sandbox).toEqual([]);
    // The final evaluation's engine ran in the model sandbox, which died with the SIGKILLed harness
    // (a host engine outlives it and the resume reaps it: test/cli/evalEndToEnd.test.ts).
    expect(strayAfterKill.engines).toEqual([]);
    expect(enginesAfterResume).toEqual([]);
  });
});
