import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from '../../core/errors.ts';
import type { Executor, Submission, SubmitRequest, TaskStatus } from '../types.ts';
import { arraySpec, parseSacct, parseSqueue, SACCT_FIELDS, SQUEUE_FORMAT } from './jobStates.ts';

const CLIENT_HINT =
  "Slurm's client commands (sbatch, sacct, squeue, scancel) must be on PATH: run ptb on a login node of the cluster (or `module load slurm`)";

interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

function runSlurm(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Ran {
  const out = spawnSync(cmd, args, {
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (out.error) {
    const code = (out.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${cmd} is not installed or not on PATH`, CLIENT_HINT);
    throw new UserError(
      `${cmd} did not answer: ${out.error.message}`,
      'check that slurmctld is reachable (scontrol ping)',
    );
  }
  return { status: out.status ?? 1, stdout: out.stdout ?? '', stderr: out.stderr ?? '' };
}

/** Slurm's own words, without its `sbatch: error:` prefixes. */
function slurmMessage(r: Ran): string {
  const text = (r.stderr.trim() || r.stdout.trim() || `exit status ${r.status}`)
    .split('\n')
    .map((l) => l.replace(/^(sbatch|sacct|squeue|scancel): (error: )?/, '').trim())
    .filter(Boolean);
  return text.join('; ');
}

/** sacct's answers when the cluster keeps no accounting (then squeue is asked instead). */
const NO_ACCOUNTING =
  /accounting storage is disabled|slurmdbd|accounting_storage\/none|not running a supported accounting_storage plugin/i;

function onPath(cmd: string, env: NodeJS.ProcessEnv): boolean {
  return (env.PATH ?? '').split(delimiter).some((dir) => {
    if (!dir) return false;
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Slurm: one job array per submission; states from one sacct call (squeue where accounting is off). */
export class SlurmExecutor implements Executor {
  readonly id = 'slurm';
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  checkClient(): void {
    for (const cmd of ['sbatch', 'sacct', 'scancel']) {
      if (!onPath(cmd, this.env)) throw new UserError(`${cmd} is not installed or not on PATH`, CLIENT_HINT);
    }
  }

  async submit(req: SubmitRequest): Promise<Submission> {
    if (!req.script) throw new Error('the Slurm executor needs a batch script');
    const command = [
      'sbatch',
      '--parsable',
      `--array=${arraySpec(req.indices, req.maxConcurrent)}`,
      ...(req.token ? [`--comment=${req.token}`] : []),
      req.script,
    ];
    const ran = runSlurm(command[0]!, command.slice(1), this.env);
    const job = /^(\d+)(;\S+)?$/.exec(ran.stdout.trim())?.[1];
    if (ran.status !== 0 || !job) {
      throw new UserError(
        `sbatch refused the job array: ${slurmMessage(ran)}`,
        `nothing was submitted. Each task asks for what the batch script's #SBATCH lines say (${req.script}); ` +
          'fix the scheduler block of the grid (partition, GPUs, memory, extra_args) and run again',
      );
    }
    return { ts: new Date().toISOString(), executor: this.id, job, indices: [...req.indices], command };
  }

  poll(submissions: readonly Submission[]): Map<number, TaskStatus> {
    const jobs = submissions.map((s) => s.job);
    if (jobs.length === 0) return new Map();
    const sacct = runSlurm(
      'sacct',
      ['--parsable2', '--noheader', '-X', `--jobs=${jobs.join(',')}`, `--format=${SACCT_FIELDS.join(',')}`],
      this.env,
    );
    if (sacct.status === 0) {
      const states = parseSacct(sacct.stdout, jobs);
      // Accounting learns of a job a moment after sbatch answers: a job it does not know yet is asked
      // of slurmctld (squeue) instead.
      const unseen = jobs.filter((job) => !sacct.stdout.split('\n').some((row) => row.startsWith(`${job}_`)));
      if (unseen.length === 0) return states;
      const squeue = this.squeue();
      if (squeue.status !== 0) return states;
      for (const [index, task] of parseSqueue(squeue.stdout, unseen)) {
        // A later submission's task replaces an earlier one's.
        if (
          !states.has(index) ||
          jobs.indexOf(task.job.split('_')[0]!) >= jobs.indexOf(states.get(index)!.job.split('_')[0]!)
        ) {
          states.set(index, task);
        }
      }
      return states;
    }
    // No accounting (or its database is down): only tasks slurmctld still holds are known; finished
    // ones are read from the trials' own records.
    const squeue = this.squeue();
    if (squeue.status !== 0) {
      throw new UserError(
        `sacct and squeue failed: ${slurmMessage(sacct)}; ${slurmMessage(squeue)}`,
        NO_ACCOUNTING.test(sacct.stderr)
          ? 'check that slurmctld answers (squeue)'
          : 'check that Slurm answers (sinfo, sacct)',
      );
    }
    return parseSqueue(squeue.stdout, jobs);
  }

  findByToken(token: string): Submission | null {
    const ran = runSlurm('squeue', ['--noheader', '--me', '--states=all', '--format=%F|%k'], this.env);
    if (ran.status !== 0) return null;
    const row = ran.stdout.split('\n').find((l) => l.split('|')[1]?.trim() === token);
    const job = row?.split('|')[0]?.trim();
    if (!job) return null;
    return {
      ts: new Date().toISOString(),
      executor: this.id,
      job,
      indices: [],
      command: ['sbatch', `--comment=${token}`],
    };
  }

  private squeue(): Ran {
    return runSlurm(
      'squeue',
      ['--noheader', '--array', '--me', '--states=all', `--format=${SQUEUE_FORMAT}`],
      this.env,
    );
  }

  cancel(submission: Submission, index: number | null): void {
    const target = index === null ? submission.job : `${submission.job}_${index}`;
    const ran = runSlurm('scancel', [target], this.env);
    if (ran.status !== 0) throw new UserError(`scancel ${target} failed: ${slurmMessage(ran)}`);
  }
}
