/**
 * A real single-node Slurm cluster for the tests (scripts/slurmLocal.sh): munged, MariaDB, slurmdbd,
 * slurmctld and slurmd on this machine with a fake `gpu` gres of 2 GPUs. Needs root.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from '../../src/core/paths.ts';

const script = join(repoRoot, 'scripts', 'slurmLocal.sh');
export const SLURM_DIR = process.env.PTB_SLURM_DIR ?? '/tmp/ptb-slurm';
export const SLURM_CONF = join(SLURM_DIR, 'etc', 'slurm.conf');

export const canRunSlurm = process.getuid?.() === 0;

export function slurmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, SLURM_CONF, PTB_SLURM_DIR: SLURM_DIR, ...extra };
}

export function startCluster(): void {
  const out = spawnSync(script, ['start'], { env: slurmEnv(), encoding: 'utf8', timeout: 600_000 });
  if (out.status !== 0) throw new Error(`slurmLocal.sh start failed:\n${out.stderr}\n${out.stdout}`);
}

export function stopCluster(): void {
  spawnSync(script, ['stop'], { env: slurmEnv(), encoding: 'utf8', timeout: 120_000 });
}

/** Run a Slurm client command; throws with its stderr when it fails (unless `allowFail`). */
export function slurm(cmd: string, args: string[], allowFail = false): string {
  const out = spawnSync(cmd, args, { env: slurmEnv(), encoding: 'utf8', timeout: 60_000 });
  if (out.status !== 0 && !allowFail) throw new Error(`${cmd} ${args.join(' ')}: ${out.stderr}`);
  return out.stdout ?? '';
}

export interface SacctRow {
  jobId: string;
  state: string;
  start: number | null;
  end: number | null;
  exitCode: string;
}

export function sacctRows(job: string, duplicates = false): SacctRow[] {
  return slurm('sacct', [
    '--parsable2',
    '--noheader',
    '-X',
    ...(duplicates ? ['--duplicates'] : []),
    `--jobs=${job}`,
    '--format=JobID,State,Start,End,ExitCode',
  ])
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [jobId = '', state = '', start = '', end = '', exitCode = ''] = line.split('|');
      const time = (v: string) => (/^\d{4}-/.test(v) ? Date.parse(`${v}Z`) : null);
      return { jobId, state, start: time(start), end: time(end), exitCode };
    });
}

/** The most tasks of these rows that ran at the same moment (end exclusive, second resolution). */
export function maxConcurrent(rows: readonly SacctRow[]): number {
  const events = rows
    .filter((r) => r.start !== null && r.end !== null)
    .flatMap((r) => [
      { t: r.start!, d: 1 },
      { t: r.end!, d: -1 },
    ])
    .sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let most = 0;
  for (const e of events) {
    now += e.d;
    most = Math.max(most, now);
  }
  return most;
}

export async function waitFor<T>(
  what: string,
  check: () => T | undefined | null | false,
  timeoutMs: number,
  everyMs = 500,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Lose the node under a running job, as a power cut would: slurmd, the job's slurmstepd and every
 * process of the job are killed with SIGKILL. Only this job's processes and this cluster's slurmd.
 */
export function loseNode(arrayTask: string): void {
  const raw = slurm('squeue', ['--noheader', `--jobs=${arrayTask}`, '--format=%A']).trim();
  const jobPids = slurm('scontrol', ['listpids', raw])
    .split('\n')
    .slice(1)
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((p) => Number.isInteger(p) && p > 0);
  const stepds: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.startsWith(`slurmstepd: [${raw}.`)) stepds.push(Number(entry));
    } catch {
      // gone
    }
  }
  const slurmd = Number(readFileSync(join(SLURM_DIR, 'run', 'slurmd.pid'), 'utf8').trim());
  for (const pid of [slurmd, ...stepds, ...jobPids]) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited already
    }
  }
}
