import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homeLayout } from '../../src/core/paths.ts';
import { tinyChatTemplatePath } from '../../src/runtime/tinyModel.ts';
import { experimentFiles } from '../../src/schedulers/experimentRecord.ts';
import type { ExperimentStatus } from '../../src/schedulers/experimentRun.ts';
import { scheduledTrialStates } from '../../src/schedulers/scheduledTrials.ts';
import { openDb } from '../../src/store/db.ts';
import { journalPath, TrialRepo } from '../../src/store/trialRepo.ts';
import { syncTrialIndex } from '../../src/trial/trialIndex.ts';
import { startViewServer } from '../../src/web/server.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import {
  canRunSlurm,
  loseNode,
  maxConcurrent,
  SLURM_CONF,
  sacctRows,
  slurm,
  startCluster,
  stopCluster,
  waitFor,
} from '../helpers/slurmCluster.ts';
import { ensureTinyModel, testPython } from '../helpers/tinyModel.ts';
import { writeSyntheticGsm8k } from '../helpers/trialFixtures.ts';

/**
 * ptb's Slurm executor against a real Slurm (slurmctld, slurmd, slurmdbd with MariaDB for sacct,
 * munge) started on this machine, with a fake `gpu` gres of 2 GPUs. Trials use the scripted agents
 * (noop, and the command agent sleeping a few seconds to have something to cancel, preempt or lose).
 */

const BENCHMARKS = ['gsm8k', 'aime2025', 'humaneval'];
type StatusJson = Omit<ExperimentStatus, 'record'> & { experiment: string };

describe.skipIf(!canRunSlurm)('ptb on a real Slurm cluster', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let tinyModel: string;
  let evalData: Record<string, string>;
  const cli = (...args: string[]) => runCli(args, env);

  const sleeper = (seconds: number) => ({ id: 'command', command: ['sleep', String(seconds)] });

  function gridFile(experiment: string, o: Record<string, unknown> = {}): string {
    const grid = {
      experiment,
      agents: ['noop'],
      models: ['ptb-test/tiny-base'],
      benchmarks: ['gsm8k'],
      hours: 0.05,
      gpus_per_trial: 0,
      engine: 'hf',
      network: 'none',
      ...o,
      scheduler: {
        cpus_per_trial: 1,
        mem: '1G',
        max_concurrent: 2,
        time_slack_minutes: 5,
        node_home: join(home, 'node-home'),
        ...(o.scheduler as object),
      },
    };
    const path = join(home, `${experiment}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, JSON.stringify(grid));
    return path;
  }

  async function status(experiment: string): Promise<StatusJson> {
    const out = await cli('run', 'status', experiment, '--json');
    expect(out.code, out.stderr).toBe(0);
    return JSON.parse(out.stdout) as StatusJson;
  }

  async function waitStatus(experiment: string, what: string, ok: (s: StatusJson) => boolean, ms = 120_000) {
    let last: StatusJson | undefined;
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      last = await status(experiment);
      if (ok(last)) return last;
      await new Promise((r) => setTimeout(r, 1000));
    }
    throw new Error(
      `timed out waiting for ${what}: ${JSON.stringify(last?.counts)} ${JSON.stringify(last?.trials.map((t) => [t.state, t.reason]))}`,
    );
  }

  function resultsDir(experiment: string): string {
    return join(homeLayout(home).experiments, experiment);
  }

  function submissions(dir: string): { job?: string; indices: number[] }[] {
    const path = experimentFiles(dir).submissions;
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((s) => s.job);
  }

  function journalOf(trialDir: string): Array<Record<string, unknown>> {
    if (!existsSync(journalPath(trialDir))) return [];
    return readFileSync(journalPath(trialDir), 'utf8')
      .split('\n')
      .filter((l) => l.endsWith('}'))
      .map((l) => JSON.parse(l));
  }

  const agentStarted = (dir: string) =>
    journalOf(dir).some((e) => e.event === 'phase' && e.phase === 'agent' && e.status === 'started');

  function repo(): TrialRepo {
    return new TrialRepo(openDb(homeLayout(home).db));
  }

  beforeAll(async () => {
    startCluster();
    home = tempHome();
    tinyModel = await ensureTinyModel();
    evalData = writeSyntheticGsm8k(join(home, 'gsm8k-data'));
    env = { PTB_HOME: home, PTB_PYTHON: await testPython(), PTB_OFFLINE: '1', SLURM_CONF };
    // Zero-shot baselines of the base model: noop submits nothing, so its cells score as the base model.
    const r = repo();
    for (const b of BENCHMARKS) {
      r.addBaseline({
        model: 'ptb-test/tiny-base',
        benchmark: b,
        kind: 'base',
        accuracy: 0.25,
        source: 'test',
      });
    }
  }, 600_000);

  afterAll(() => {
    stopCluster();
  });

  it('submits a 6-trial grid as one array of at most 2 at once; all complete; the head reports every cell; a re-run submits nothing', async () => {
    const grid = gridFile('sweep', { benchmarks: BENCHMARKS, seeds: 2 });
    const sub = await cli('run', '--config', grid, '--scheduler', 'slurm');
    expect(sub.code, sub.stderr).toBe(0);
    const job = sub.stdout.trim();
    expect(job).toMatch(/^\d+$/);
    expect(submissions(resultsDir('sweep'))).toEqual([
      expect.objectContaining({ job, indices: [0, 1, 2, 3, 4, 5] }),
    ]);
    const done = await waitStatus('sweep', 'six completed trials', (s) => s.counts.completed === 6);
    expect(done.trials.map((t) => t.job)).toEqual([0, 1, 2, 3, 4, 5].map((i) => `${job}_${i}`));
    // The tasks ran with their node-local PTB_HOME and opened no SQLite file there (nor the head's).
    expect(existsSync(join(home, 'node-home'))).toBe(true);
    expect(readdirSync(join(home, 'node-home')).filter((n) => n.includes('.db'))).toEqual([]);
    // A trial records completion a moment before its task ends, and accounting lags behind slurmctld.
    const rows = await waitFor(
      'accounting to show six ended tasks',
      () => {
        const r = sacctRows(job);
        return r.length === 6 && r.every((x) => x.state === 'COMPLETED') && r;
      },
      60_000,
    );
    expect(maxConcurrent(rows)).toBeLessThanOrEqual(2);
    // Each task ran on the node under its own array task, recorded in the trial's own journal.
    for (const t of done.trials) {
      const runs = journalOf(t.dir).filter((e) => e.event === 'run');
      expect(runs).toEqual([expect.objectContaining({ executor: 'slurm', job: `${job}_${t.index}` })]);
      expect(readFileSync(t.log, 'utf8')).toMatch(/completed/);
    }
    const report = await cli('report', '--experiments', 'sweep*', '--format', 'json');
    expect(report.code, report.stderr).toBe(0);
    const board = JSON.parse(report.stdout) as {
      rows: { runs: { complete: boolean; cells: { benchmark: string; value: number | null }[] }[] }[];
    };
    const runs = board.rows.flatMap((r) => r.runs);
    expect(runs).toHaveLength(2);
    for (const run of runs) {
      expect(run.complete).toBe(true);
      expect(run.cells.map((c) => c.benchmark).sort()).toEqual([...BENCHMARKS].sort());
      expect(run.cells.map((c) => c.value)).toEqual([0.25, 0.25, 0.25]);
    }
    const again = await cli('run', '--config', grid, '--scheduler', 'slurm');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/submitted already .*nothing submitted/);
    expect(submissions(resultsDir('sweep'))).toHaveLength(1);
    const local = await cli('run', '--config', grid, '--scheduler', 'local');
    expect(local.code).toBe(1);
    expect(local.stderr).toMatch(/experiment sweep was submitted to slurm; it does not run here/);
    // The same name with another grid is refused, and nothing is submitted for it.
    const other = await cli(
      'run',
      '--config',
      gridFile('sweep', { benchmarks: ['gsm8k'] }),
      '--scheduler',
      'slurm',
    );
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/experiment sweep exists already with a different grid/);
    expect(submissions(resultsDir('sweep'))).toHaveLength(1);
    // The head's database is only an index: without it, the trial directories give the same trials back.
    for (const f of readdirSync(home).filter((n) => n.startsWith('ptb.db'))) rmSync(join(home, f));
    const listed = await cli('trials', '--experiment', 'sweep', '--json');
    const trials = listed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { status: string });
    expect(trials.map((t) => t.status)).toEqual(Array(6).fill('completed'));
    // Later tests need the baselines again.
    const r = repo();
    for (const b of BENCHMARKS) {
      r.addBaseline({
        model: 'ptb-test/tiny-base',
        benchmark: b,
        kind: 'base',
        accuracy: 0.25,
        source: 'test',
      });
    }
  }, 300_000);

  it('scancel of one task shows it cancelled; resume resubmits that trial only, which then completes', async () => {
    // Beside the task to cancel, copy-base submits the tiny model: its final evaluation runs on the node.
    const grid = gridFile('cancel', {
      agents: ['copy-base', sleeper(15)],
      models: [{ id: 'ptb-test/tiny-base', path: tinyModel }],
      eval_data: evalData,
      eval_template: tinyChatTemplatePath,
      eval_limit: 2,
      eval_max_tokens: 8,
    });
    const sub = await cli('run', '--config', grid, '--scheduler', 'slurm');
    expect(sub.code, sub.stderr).toBe(0);
    const first = await status('cancel');
    const target = first.trials.find((t) => t.agent === 'command')!;
    await waitFor('the sleeping agent to start', () => agentStarted(target.dir), 60_000);
    const cancel = await cli('run', 'cancel', 'cancel', '--trial', target.trialId);
    expect(cancel.code, cancel.stderr).toBe(0);
    const cancelled = await waitStatus(
      'cancel',
      'the cancelled task',
      (s) => s.trials[target.index]?.state === 'cancelled' && s.counts.completed === 1,
    );
    expect(cancelled.trials[target.index]!.schedulerState).toMatch(/^CANCELLED/);
    // `ptb trials` and `ptb view` show the same state and link the task's Slurm log.
    const listed = (await cli('trials', '--experiment', 'cancel', '--json')).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; state: string; scheduler: { log: string } | null });
    expect(listed.find((t) => t.id === target.trialId)).toMatchObject({
      state: 'cancelled',
      scheduler: { log: target.log },
    });
    const r = repo();
    const view = await startViewServer({
      db: openDb(homeLayout(home).db),
      refreshIndex: () => syncTrialIndex(r, homeLayout(home)),
      scheduledStates: () => scheduledTrialStates(homeLayout(home), r, env).states,
    });
    try {
      const api = (await (await fetch(`${view.url}api/trials?experiment=cancel`)).json()) as {
        id: string;
        status: string;
      }[];
      expect(api.find((t) => t.id === target.trialId)?.status).toBe('cancelled');
      const page = await (await fetch(`${view.url}trials/${target.trialId}`)).text();
      expect(page).toContain(`/trials/${target.trialId}/log`);
      const log = await (await fetch(`${view.url}trials/${target.trialId}/log`)).text();
      expect(log).toMatch(/ptb: task \d+_1 on /);
      expect(log).toMatch(/stopping the trial \(cancelled\)/);
    } finally {
      await view.close();
    }
    const resume = await cli('run', 'resume', 'cancel', '--json');
    expect(resume.code, resume.stderr).toBe(0);
    expect(JSON.parse(resume.stdout)).toMatchObject({ indices: [target.index] });
    const done = await waitStatus('cancel', 'both completed', (s) => s.counts.completed === 2, 240_000);
    expect(done.trials[target.index]!.lostAttempts).toBe(1);
    const copied = repo().get(done.trials.find((t) => t.agent === 'copy-base')!.trialId)!;
    expect(copied.accuracy).not.toBeNull(); // evaluated on the node, not substituted
    expect(existsSync(join(copied.dir, 'metrics.json'))).toBe(true);
    // The resumed agent ran again in full: its second solve_out has the whole sleep.
    expect(readdirSync(join(target.dir, 'attempts'))).toEqual(['1']);
    const again = await cli('run', 'resume', 'cancel');
    expect(again.stderr).toMatch(/nothing to resume: 2 completed/);
  }, 300_000);

  it('preemption during the agent (USR1, then requeue) restarts the agent fresh; the restart shows in trials and the report', async () => {
    const grid = gridFile('preempt', { agents: [sleeper(10)] });
    const sub = await cli('run', '--config', grid, '--scheduler', 'slurm');
    const job = sub.stdout.trim();
    const [trial] = (await status('preempt')).trials;
    await waitFor('the agent to start', () => agentStarted(trial!.dir), 60_000);
    slurm('scancel', ['--signal=USR1', '--batch', `${job}_0`]);
    await waitFor(
      'the preempted attempt in the journal',
      () => journalOf(trial!.dir).some((e) => e.event === 'attempt-lost'),
      30_000,
    );
    slurm('scontrol', ['requeue', `${job}_0`], true); // ptb's batch script may have requeued it already
    const done = await waitStatus(
      'preempt',
      'the requeued trial to complete',
      (s) => s.counts.completed === 1,
      180_000,
    );
    expect(done.trials[0]).toMatchObject({ lostAttempts: 1, restartCount: 1 });
    const journal = journalOf(trial!.dir);
    expect(journal.find((e) => e.event === 'attempt-lost')).toMatchObject({
      phase: 'agent',
      resetFrom: 'prepare',
      reason: 'preempted',
      keptIn: 'attempts/1',
    });
    const runs = journal.filter((e) => e.event === 'run');
    expect(runs.map((e) => e.restartCount)).toEqual([null, 1]);
    // The second agent had its full budget: its solve_out is fresh, the first one is kept aside.
    expect(existsSync(join(trial!.dir, 'attempts', '1', 'solve_out.txt'))).toBe(true);
    // The trial records completion a moment before its task ends.
    await waitFor(
      'the requeued task to end',
      () =>
        sacctRows(`${job}_0`, true)
          .map((r) => r.state)
          .join(',') === 'REQUEUED,COMPLETED',
      30_000,
    );
    const trials = await cli('trials', '--experiment', 'preempt');
    expect(trials.stdout).toMatch(/ 1 \([\d.]+m lost\)/);
    const report = await cli('report', '--experiments', 'preempt');
    expect(report.stdout).toMatch(/1 attempt\(s\) restarted after preemption or node loss/);
  }, 300_000);

  it('a node lost under a running trial (slurmd and the job killed): the trial finishes after resume', async () => {
    const grid = gridFile('nodefail', { agents: [sleeper(10)] });
    const sub = await cli('run', '--config', grid, '--scheduler', 'slurm');
    const job = sub.stdout.trim();
    const [trial] = (await status('nodefail')).trials;
    await waitFor('the agent to start', () => agentStarted(trial!.dir), 60_000);
    loseNode(`${job}_0`);
    await waitFor(
      'Slurm to notice the node is gone',
      () => /NODE_FAIL|PENDING|REQUEUED/.test(sacctRows(`${job}_0`)[0]?.state ?? ''),
      120_000,
      1000,
    );
    startCluster(); // the node comes back
    const resume = await cli('run', 'resume', 'nodefail');
    expect(resume.code, resume.stderr).toBe(0);
    const done = await waitStatus(
      'nodefail',
      'the trial to complete',
      (s) => s.counts.completed === 1,
      240_000,
    );
    expect(done.trials[0]!.lostAttempts).toBe(1);
    expect(journalOf(trial!.dir).find((e) => e.event === 'attempt-lost')).toMatchObject({
      phase: 'agent',
      reason: expect.stringMatching(/node lost/),
    });
  }, 420_000);

  it('GPUs: more than any node has is refused at submission; a node whose sandbox has no GPU fails the trial at prepare', async () => {
    const tooMany = await cli(
      'run',
      '--config',
      gridFile('gpus3', { gpus_per_trial: 3 }),
      '--scheduler',
      'slurm',
    );
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(
      /sbatch refused the job array: .*Requested node configuration is not available/,
    );
    expect(tooMany.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(experimentFiles(resultsDir('gpus3')).record)).toBe(false);
    expect(existsSync(experimentFiles(resultsDir('gpus3')).manifest)).toBe(false);
    expect((await cli('run', 'status', 'gpus3')).stderr).toMatch(/no experiment gpus3/);
    // One fake GPU each: Slurm assigns them; bwrap on this node cannot give a GPU, so prepare refuses.
    const sub = await cli(
      'run',
      '--config',
      gridFile('gpus1', { gpus_per_trial: 1, seeds: 2 }),
      '--scheduler',
      'slurm',
    );
    expect(sub.code, sub.stderr).toBe(0);
    const failed = await waitStatus('gpus1', 'both trials to fail', (s) => s.counts.failed === 2);
    for (const t of failed.trials) {
      expect(t.reason).toMatch(/^prepare: .*bwrap sandbox cannot give GPUs here/);
      const runs = journalOf(t.dir).filter((e) => e.event === 'run');
      expect(runs).toHaveLength(1);
      expect((runs[0]!.gpus as number[]).length).toBe(1);
      expect([0, 1]).toContain((runs[0]!.gpus as number[])[0]);
    }
  }, 300_000);

  it('bad input: unknown scheduler keys, no sbatch, an option sbatch rejects: clear errors, nothing submitted', async () => {
    const typo = await cli(
      'run',
      '--config',
      gridFile('typo', { scheduler: { partiton: 'gpu' } }),
      '--scheduler',
      'slurm',
    );
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/partiton/);
    expect(typo.stderr).toMatch(/scheduler/);
    expect(existsSync(resultsDir('typo'))).toBe(false);

    const noSlurm = await runCli(['run', '--config', gridFile('nosbatch'), '--scheduler', 'slurm'], {
      ...env,
      PATH: '/nonexistent',
    });
    expect(noSlurm.code).toBe(1);
    expect(noSlurm.stderr).toMatch(/sbatch is not installed or not on PATH/);
    expect(existsSync(resultsDir('nosbatch'))).toBe(false);

    const rejected = await cli(
      'run',
      '--config',
      gridFile('badopt', { scheduler: { extra_args: ['--no-such-option'] } }),
      '--scheduler',
      'slurm',
    );
    expect(rejected.code).toBe(1);
    expect(rejected.stderr).toMatch(/sbatch refused the job array: .*unrecognized option '--no-such-option'/);
    expect((await cli('trials', '--experiment', 'badopt', '--json')).stdout).toBe('');
    // Fixed, the same experiment name submits once.
    const fixed = await cli('run', '--config', gridFile('badopt'), '--scheduler', 'slurm');
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(submissions(resultsDir('badopt'))).toHaveLength(1);
    await waitStatus('badopt', 'the fixed trial', (s) => s.counts.completed === 1);
    // Without Slurm (here: not on PATH) status still reads the trials' records, and says why; resume
    // and cancel, which must know what still runs, refuse.
    const noSlurmEnv = { ...env, PATH: '/nonexistent' };
    const blind = await runCli(['run', 'status', 'badopt', '--json'], noSlurmEnv);
    expect(blind.code, blind.stderr).toBe(0);
    expect(JSON.parse(blind.stdout)).toMatchObject({
      counts: { completed: 1 },
      schedulerProblem: expect.stringMatching(/sacct is not installed or not on PATH/),
    });
    const blindResume = await runCli(['run', 'resume', 'badopt'], noSlurmEnv);
    expect(blindResume.code).toBe(1);
    expect(blindResume.stderr).toMatch(/sacct is not installed or not on PATH/);
  }, 300_000);

  it('a results directory the compute nodes cannot see: every task fails saying so; resume after the fix loses nothing', async () => {
    const results = join(home, 'shared-results');
    const grid = gridFile('hidden', {
      seeds: 2,
      scheduler: { results_dir: results, extra_args: ['--hold'] },
    });
    const sub = await cli('run', '--config', grid, '--scheduler', 'slurm');
    expect(sub.code, sub.stderr).toBe(0);
    const job = sub.stdout.trim();
    // The nodes cannot see it: here, it is gone before the held tasks start.
    renameSync(results, `${results}.away`);
    slurm('scontrol', ['release', job]);
    await waitFor(
      'both tasks to fail',
      () => sacctRows(job).every((r) => r.state === 'FAILED') && sacctRows(job).length === 2,
      60_000,
    );
    renameSync(`${results}.away`, results);
    const failed = await status('hidden');
    expect(failed.counts.failed).toBe(2);
    for (const t of failed.trials) expect(t.reason).toMatch(/results directory .*not visible on node/);
    const resume = await cli('run', 'resume', 'hidden', '--json');
    expect(resume.code, resume.stderr).toBe(0);
    const again = JSON.parse(resume.stdout) as { job: string; indices: number[] };
    expect(again.indices).toEqual([0, 1]);
    // Cancelling the whole experiment cancels its live (here: held) array; resume submits it once more.
    const cancel = await cli('run', 'cancel', 'hidden');
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(new RegExp(`cancelled ${again.job};`));
    await waitStatus('hidden', 'both cancelled', (s) => s.counts.cancelled === 2);
    const third = JSON.parse((await cli('run', 'resume', 'hidden', '--json')).stdout) as {
      job: string;
      indices: number[];
    };
    expect(third.indices).toEqual([0, 1]);
    slurm('scontrol', ['release', third.job]);
    await waitStatus('hidden', 'both trials after the fix', (s) => s.counts.completed === 2);
    expect(submissions(results).map((s) => s.job)).toEqual([job, again.job, third.job]);
    expect((await cli('run', 'cancel', 'hidden')).stdout).toMatch(/nothing to cancel/);
  }, 300_000);
});
