import { z } from 'zod';

/**
 * Executors run "task i of this manifest" and report what the scheduler knows about each task; ptb
 * decides what is finished and what is retried (from each trial's own record). The local pool runs
 * tasks in this process; Slurm runs them as one job array; Kubernetes Indexed Jobs and HTCondor are
 * one more file each (an Executor plus a line in schedulers/registry.ts).
 */

/** What a scheduler says about one task, in ptb's words. */
export const TASK_STATES = [
  'pending',
  'running',
  'requeued',
  'completed',
  'failed',
  'cancelled',
  'timeout',
  'out_of_memory',
  'node_fail',
  'preempted',
  /** The scheduler no longer knows the task (purged, or accounting off and the task gone from the queue). */
  'unknown',
] as const;
export const TaskStateSchema = z.enum(TASK_STATES);
export type TaskState = z.infer<typeof TaskStateSchema>;

/** States in which the scheduler will still run the task by itself. */
export const LIVE_TASK_STATES: ReadonlySet<TaskState> = new Set(['pending', 'running', 'requeued']);

export interface TaskStatus {
  index: number;
  state: TaskState;
  /** The scheduler's own name for the state (`OUT_OF_MEMORY`, `CANCELLED by 0`). */
  raw: string;
  /** The scheduler's job reference of this task (`1234_7`). */
  job: string;
  node: string | null;
  exitCode: string | null;
  reason: string | null;
  startedAt: string | null;
  endedAt: string | null;
}

/** One accepted submission: a job of the scheduler running these manifest indices. */
export const SubmissionSchema = z.object({
  ts: z.string(),
  executor: z.string(),
  /** The scheduler's job id (Slurm: the array job id). */
  job: z.string(),
  indices: z.array(z.number().int().min(0)),
  /** The command that submitted it, for the record and for doing it again by hand. */
  command: z.array(z.string()),
});
export type Submission = z.infer<typeof SubmissionSchema>;

/** Tasks of a manifest to run, and how the grid sized them. */
export interface SubmitRequest {
  /** Manifest indices to run. */
  indices: readonly number[];
  /** GPUs each task needs. */
  gpusPerTask: number;
  /** At most this many tasks at once (null: as many as the resources allow). */
  maxConcurrent: number | null;
  /** The batch script a batch scheduler runs for each task (its options are the resources). */
  script?: string;
  /** Attached to the job (Slurm: --comment) so a submission whose answer was lost can be found again. */
  token?: string;
}

export interface Executor {
  readonly id: string;
  /**
   * Run tasks. A batch scheduler resolves once it accepted them (the user may log out); the local pool
   * resolves when they have finished.
   */
  submit(req: SubmitRequest): Promise<Submission>;
  /** The state of every task of these submissions, from one scheduler query; newer submissions win. */
  poll(submissions: readonly Submission[]): Map<number, TaskStatus>;
  /** Cancel a whole submission, or one of its tasks. */
  cancel(submission: Submission, index: number | null): void;
  /** Refuse early (before anything is written) when the scheduler's commands are not here. */
  checkClient?(): void;
  /** The job submitted with this token, if the scheduler still knows it. */
  findByToken?(token: string): Submission | null;
}
