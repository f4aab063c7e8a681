import type { TaskState, TaskStatus } from '../types.ts';

/** Slurm's job states (sacct/squeue `State`) in ptb's words. Unlisted states read as `unknown`. */
const SLURM_STATES: Readonly<Record<string, TaskState>> = {
  PENDING: 'pending',
  CONFIGURING: 'pending',
  REQUEUE_HOLD: 'pending',
  RESV_DEL_HOLD: 'pending',
  RUNNING: 'running',
  COMPLETING: 'running',
  SIGNALING: 'running',
  STAGE_OUT: 'running',
  SUSPENDED: 'running',
  STOPPED: 'running',
  RESIZING: 'running',
  REQUEUED: 'requeued',
  REQUEUE_FED: 'requeued',
  COMPLETED: 'completed',
  FAILED: 'failed',
  BOOT_FAIL: 'failed',
  DEADLINE: 'failed',
  SPECIAL_EXIT: 'failed',
  REVOKED: 'failed',
  CANCELLED: 'cancelled',
  TIMEOUT: 'timeout',
  OUT_OF_MEMORY: 'out_of_memory',
  NODE_FAIL: 'node_fail',
  PREEMPTED: 'preempted',
};

export function taskState(raw: string): TaskState {
  // sacct writes `CANCELLED by 1000`; squeue abbreviates nothing with %T.
  const word = raw.trim().split(/\s+/)[0]?.toUpperCase() ?? '';
  return SLURM_STATES[word] ?? 'unknown';
}

/**
 * Array task indices named by a Slurm job id: `12_3` → [3]; `12_[0-4,7%2]` (tasks not started yet)
 * → [0,1,2,3,4,7]; `12` (not an array) → []. Returns null for another job's id.
 */
export function arrayTasks(jobId: string, arrayJob: string): number[] | null {
  const match = /^(\d+)_(?:(\d+)|\[([^\]]*)\])$/.exec(jobId.trim());
  if (!match || match[1] !== arrayJob) return null;
  if (match[2] !== undefined) return [Number(match[2])];
  const out: number[] = [];
  for (const part of (match[3] ?? '').split('%')[0]!.split(',')) {
    const range = /^(\d+)(?:-(\d+))?(?::(\d+))?$/.exec(part.trim());
    if (!range) continue;
    const from = Number(range[1]);
    const to = range[2] === undefined ? from : Number(range[2]);
    const step = range[3] === undefined ? 1 : Math.max(1, Number(range[3]));
    for (let i = from; i <= to; i += step) out.push(i);
  }
  return out;
}

/** `--array` value for these indices: ranges where they are consecutive, then `%K`. */
export function arraySpec(indices: readonly number[], maxConcurrent: number | null): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return `${parts.join(',')}${maxConcurrent ? `%${maxConcurrent}` : ''}`;
}

const dateOrNull = (v: string | undefined) =>
  v === undefined || v === '' || v === 'Unknown' || v === 'None' || v === 'N/A' ? null : v;

/** The columns ptb asks sacct for (`--format`), in order. */
export const SACCT_FIELDS = ['JobID', 'State', 'ExitCode', 'NodeList', 'Start', 'End', 'Reason'] as const;

/**
 * Rows of `sacct --parsable2 --noheader -X --format=<SACCT_FIELDS>` for these array jobs, as task
 * states keyed by array index. Rows of later submissions replace earlier ones for the same index.
 */
export function parseSacct(text: string, jobs: readonly string[]): Map<number, TaskStatus> {
  const out = new Map<number, TaskStatus>();
  const rows = text.split('\n').filter((l) => l.trim() !== '');
  for (const job of jobs) {
    for (const row of rows) {
      const [jobId = '', state = '', exitCode, node, start, end, reason] = row.split('|');
      const tasks = arrayTasks(jobId, job);
      if (!tasks) continue;
      for (const index of tasks) {
        out.set(index, {
          index,
          state: taskState(state),
          raw: state,
          job: `${job}_${index}`,
          node: node && node !== 'None assigned' && !node.startsWith('(') ? node : null,
          exitCode: exitCode || null,
          reason: reason && reason !== 'None' ? reason : null,
          startedAt: dateOrNull(start),
          endedAt: dateOrNull(end),
        });
      }
    }
  }
  return out;
}

/** The columns ptb asks squeue for (`--format`), when accounting is off. */
export const SQUEUE_FORMAT = '%F|%K|%T|%N|%r|%S';

/** Rows of `squeue --noheader --array --format=<SQUEUE_FORMAT>` for these array jobs. */
export function parseSqueue(text: string, jobs: readonly string[]): Map<number, TaskStatus> {
  const out = new Map<number, TaskStatus>();
  const rows = text.split('\n').filter((l) => l.trim() !== '');
  for (const job of jobs) {
    for (const row of rows) {
      const [arrayJob = '', taskId = '', state = '', node, reason, start] = row.split('|');
      if (arrayJob !== job) continue;
      const tasks = arrayTasks(`${job}_${/^\d+$/.test(taskId) ? taskId : `[${taskId}]`}`, job) ?? [];
      for (const index of tasks) {
        out.set(index, {
          index,
          state: taskState(state),
          raw: state,
          job: `${job}_${index}`,
          node: node ? node : null,
          exitCode: null,
          reason: reason && reason !== 'None' ? reason : null,
          startedAt: dateOrNull(start),
          endedAt: null,
        });
      }
    }
  }
  return out;
}
