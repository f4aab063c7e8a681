import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAgent } from '../../src/agents/lookup.ts';
import type { AgentRunContext } from '../../src/agents/types.ts';
import type { TrialSpec } from '../../src/core/trial.ts';
import { SANDBOX_PATHS, trialLayout } from '../../src/core/trialLayout.ts';
import { isBwrapAvailable } from '../../src/sandbox/bwrap.ts';
import type { Trial } from '../../src/store/trialRepo.ts';
import { type AgentPhaseResult, agentTimeoutMs, runAgentPhase } from '../../src/trial/agentPhase.ts';
import { agentMounts } from '../../src/trial/agentSandbox.ts';
import { createTrial, runTrial } from '../../src/trial/runTrial.ts';
import { pidIsRunning } from '../helpers/processes.ts';
import { type TrialFixture, trialFixture } from '../helpers/trialFixtures.ts';

/**
 * The wall-clock limit kills every descendant of the agent: ones that left its session (setsid),
 * ignore hang-ups (nohup), were re-parented by a double fork, ignore SIGTERM, or do all of that at
 * once (a Python daemon), while the agent's own loop ignores SIGTERM too.
 *
 * The trial's limit is hours×60+5 minutes; to see it fire in seconds, the agent phase runs on a
 * prepared trial with a spec whose `hours` puts the limit at LIMIT_S (a negative number of hours,
 * which only a direct call can pass; the spec schema refuses it).
 */

const LIMIT_S = 3;
const KINDS = ['setsid', 'nohup', 'doublefork', 'noterm', 'pydaemon'] as const;

class StopAfterPrepare extends Error {}

function spawnerScript(marker: string): string {
  return `#!/bin/bash
# Leaves processes behind in every way a shell can, then loops ignoring SIGTERM.
setsid bash -c 'exec -a ${marker}-setsid sleep 1000' &
nohup bash -c 'exec -a ${marker}-nohup sleep 1000' > /dev/null 2>&1 &
( ( exec -a ${marker}-doublefork sleep 1000 ) & )
( trap '' TERM HUP INT; exec -a ${marker}-noterm sleep 1000 ) &
python3 - ${marker}-pydaemon <<'PY'
import os, signal, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
while True:
    time.sleep(1)
PY
trap '' TERM
echo "spawner: all descendants started"
while :; do sleep 1; done
`;
}

/** Host pids whose command line carries the marker (zombies excluded: they hold nothing). */
function markedProcesses(marker: string): Map<number, string> {
  const found = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (!cmdline.includes(marker)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      found.set(Number(entry), cmdline.trim());
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

describe.skipIf(!isBwrapAvailable())('the agent’s wall-clock limit', () => {
  const marker = `ptb-timeout-marker-${randomBytes(4).toString('hex')}`;
  let fixture: TrialFixture;
  let trial: Trial;
  let result: AgentPhaseResult;
  const seenAlive = new Map<number, string>();
  let wallMs = 0;

  beforeAll(async () => {
    fixture = await trialFixture();
    const script = join(fixture.home.root, 'spawner.sh');
    writeFileSync(script, spawnerScript(marker));
    const env = fixture.trialEnv({
      afterPhase: (phase) => {
        if (phase === 'prepare') throw new StopAfterPrepare('prepared');
      },
    });
    trial = createTrial(
      env,
      fixture.spec({
        agent: 'command',
        agentCommand: ['bash', 'spawner.sh'],
        taskFiles: { 'spawner.sh': script },
      }),
    );
    await expect(runTrial(env, trial.id)).rejects.toBeInstanceOf(StopAfterPrepare);

    const layout = trialLayout(trial.dir);
    mkdirSync(fixture.home.dataCache, { recursive: true }); // runTrial makes it after prepare
    const spec: TrialSpec = { ...trial.spec, hours: (LIMIT_S / 60 - 5) / 60 };
    expect(agentTimeoutMs(spec.hours)).toBe(LIMIT_S * 1000);
    const agent = findAgent('command');
    const context: AgentRunContext = {
      prompt: readFileSync(layout.prompt, 'utf8'),
      agentConfig: '',
      benchmark: spec.benchmark,
      baseModel: spec.baseModel,
      hours: spec.hours,
      gpus: 0,
      home: SANDBOX_PATHS.home,
      taskDir: SANDBOX_PATHS.task,
      relayUrls: {},
      relayTokens: {},
      credentialFiles: [],
      agentCommand: spec.agentCommand,
    };
    const mounts = agentMounts({
      spec,
      layout,
      python: fixture.python,
      baseModelPath: fixture.baseModelPath,
      dataCacheDir: fixture.home.dataCache,
      hfHome: join(layout.work.dir, 'hf_home'),
    });
    // Watch the descendants appear while the agent runs (proof that there was something to kill).
    const watch = setInterval(() => {
      for (const [pid, cmd] of markedProcesses(marker)) seenAlive.set(pid, cmd);
    }, 100);
    const started = Date.now();
    try {
      result = await runAgentPhase({
        spec,
        home: fixture.home,
        layout,
        agent,
        context,
        mounts,
        bridges: [],
        env: {},
        redact: (text) => text,
      });
    } finally {
      clearInterval(watch);
    }
    wallMs = Date.now() - started;
  }, 120_000);

  afterAll(() => {
    // Never leave a marked process behind, whatever the assertions say.
    for (const pid of markedProcesses(marker).keys()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    fixture?.close();
  });

  it('records a timeout, the time taken and the trace', () => {
    expect(result.outcome).toBe('timeout');
    expect(result.detail).toMatch(/time limit/);
    expect(result.seconds).toBeGreaterThanOrEqual(LIMIT_S - 0.5);
    // Everything died at TERM or with the sandbox's pid namespace, well before the 30 s KILL grace.
    expect(wallMs).toBeLessThan((LIMIT_S + 20) * 1000);
    const layout = trialLayout(trial.dir);
    expect(readFileSync(layout.timeTaken, 'utf8')).toMatch(/^00:00:0\d\n$/);
    expect(readFileSync(layout.solveOut, 'utf8')).toMatch(
      /^\[[\dT:Z-]+\] spawner: all descendants started$/m,
    );
  });

  it('leaves no descendant alive, however it detached', () => {
    const kinds = [...seenAlive.values()].map(
      (cmd) => /-(\w+)\b/.exec(cmd.slice(cmd.indexOf(marker) + marker.length))?.[1],
    );
    expect(new Set(kinds)).toEqual(new Set(KINDS));
    expect([...markedProcesses(marker).values()]).toEqual([]);
    for (const pid of seenAlive.keys()) expect(pidIsRunning(pid), `pid ${pid}`).toBe(false);
  });
});
