import { closeSync, existsSync, fsyncSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic, writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import type { HomeLayout } from '../core/paths.ts';
import { TrialSpecSchema } from '../core/trial.ts';
import { readUserText } from '../core/userPaths.ts';
import { type Submission, SubmissionSchema } from './types.ts';

/**
 * An experiment handed to a batch scheduler keeps its own record in its results directory (shared
 * with the compute nodes):
 *   experiment.json     what was asked (grid hash, resources, where ptb and its home are on the nodes)
 *   manifest.jsonl      one line per trial: task i of the job array runs line i
 *   submissions.jsonl   every accepted submission (job id, indices), appended
 *   slurm/job.sh        the batch script every task runs
 *   logs/task-<i>.log   the scheduler's log of task i (appended across requeues and resubmissions)
 *   trials/<dir>/       the trial directories, each with its own journal
 * PTB_HOME/experiments/<name>/experiment.json is a copy, so the head finds results directories
 * kept elsewhere.
 */

const ResourcesSchema = z.object({
  partition: z.string().nullable(),
  account: z.string().nullable(),
  qos: z.string().nullable(),
  constraint: z.string().nullable(),
  gpusPerTask: z.number().int(),
  cpusPerTask: z.number().int(),
  mem: z.string(),
  timeMinutes: z.number().int(),
  signalSeconds: z.number().int(),
  extraArgs: z.array(z.string()),
});

export const ExperimentRecordSchema = z.object({
  v: z.literal(1),
  experiment: z.string(),
  executor: z.string(),
  createdAt: z.string(),
  resultsDir: z.string(),
  /** Hash of the grid's trial specs: the same name with another grid is refused. */
  gridHash: z.string(),
  trials: z.number().int(),
  resources: ResourcesSchema,
  maxConcurrent: z.number().int().nullable(),
  nodeHome: z.string(),
  ptbCommand: z.array(z.string()),
  maxRequeues: z.number().int(),
  offline: z.boolean(),
  /** Baseline scores known at submission (a flagged trial scores as its base model; nodes have no database). */
  baselines: z.array(
    z.object({
      model: z.string(),
      benchmark: z.string(),
      kind: z.enum(['base', 'instruct', 'other']),
      accuracy: z.number().nullable(),
      source: z.string(),
      /** The protocol it was scored under (null or absent: unknown). */
      protocol: z.string().nullable().optional(),
    }),
  ),
});
export type ExperimentRecord = z.infer<typeof ExperimentRecordSchema>;

/** A manifest line as the task that runs it reads it: the whole trial spec. */
export const ManifestTaskSchema = z.object({
  index: z.number().int().min(0),
  trialId: z.string(),
  dir: z.string(),
  spec: TrialSpecSchema,
});
export type ManifestTask = z.infer<typeof ManifestTaskSchema>;

/** A manifest line as listings read it (1,000 lines: only the fields a status table shows are checked). */
const ManifestLineSchema = z.object({
  index: z.number().int().min(0),
  trialId: z.string(),
  dir: z.string(),
  spec: z.object({
    agent: z.string(),
    baseModel: z.string(),
    benchmark: z.string(),
    seed: z.number(),
    hours: z.number(),
  }),
});
export type ManifestLine = z.infer<typeof ManifestLineSchema>;

/** A submission about to be made: if ptb dies before sbatch answers, the next run looks for its token. */
const PendingSubmissionSchema = z.object({
  ts: z.string(),
  pending: z.string(),
  indices: z.array(z.number()),
});

export function experimentFiles(resultsDir: string) {
  return {
    record: join(resultsDir, 'experiment.json'),
    manifest: join(resultsDir, 'manifest.jsonl'),
    submissions: join(resultsDir, 'submissions.jsonl'),
    script: join(resultsDir, 'slurm', 'job.sh'),
    logs: join(resultsDir, 'logs'),
    trials: join(resultsDir, 'trials'),
  };
}
export type ExperimentFiles = ReturnType<typeof experimentFiles>;

/** The head's pointer to an experiment (PTB_HOME/experiments/<name>/experiment.json). */
export function homeRecordPath(home: HomeLayout, experiment: string): string {
  return join(home.experiments, experiment, 'experiment.json');
}

export function defaultResultsDir(home: HomeLayout, experiment: string): string {
  return join(home.experiments, experiment);
}

function parseJsonFile<T>(path: string, schema: z.ZodType<T>, what: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserError(`cannot read the ${what} ${path}: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success)
    throw new UserError(`the ${what} ${path} is damaged: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/** The head's record of an experiment, or undefined when none was submitted under that name. */
export function findExperiment(home: HomeLayout, experiment: string): ExperimentRecord | undefined {
  const pointer = homeRecordPath(home, experiment);
  if (!existsSync(pointer)) return undefined;
  const copy = parseJsonFile(pointer, ExperimentRecordSchema, 'experiment record');
  const own = experimentFiles(copy.resultsDir).record;
  return existsSync(own) ? parseJsonFile(own, ExperimentRecordSchema, 'experiment record') : copy;
}

export function requireExperiment(home: HomeLayout, experiment: string): ExperimentRecord {
  const record = findExperiment(home, experiment);
  if (!record) {
    throw new UserError(
      `no experiment ${experiment} was submitted to a scheduler from this PTB_HOME`,
      'submit one with `ptb run --config grid.yaml --scheduler slurm`',
    );
  }
  return record;
}

export function writeExperiment(home: HomeLayout, record: ExperimentRecord): void {
  writeJsonAtomic(experimentFiles(record.resultsDir).record, record);
  writeJsonAtomic(homeRecordPath(home, record.experiment), record);
}

export function writeManifest(path: string, tasks: readonly ManifestTask[]): void {
  writeFileAtomic(path, tasks.map((t) => `${JSON.stringify(t)}\n`).join(''));
}

const MANIFEST_HINT =
  'The manifest is manifest.jsonl in the experiment results directory, written when `ptb run` submits.';

function manifestLines(path: string): string[] {
  if (!existsSync(path)) return [];
  return readUserText(path, 'manifest', { hint: MANIFEST_HINT, maxBytes: 64 * 1024 * 1024, allowEmpty: true })
    .split('\n')
    .filter((l) => l.trim() !== '');
}

function parseLine<T>(path: string, line: string | undefined, i: number, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(line ?? '');
  } catch {
    raw = undefined;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success || (parsed.data as { index: number }).index !== i) {
    throw new UserError(`line ${i + 1} of the manifest ${path} is damaged`, MANIFEST_HINT);
  }
  return parsed.data;
}

/** Every line of the manifest (trial i is line i). */
export function readManifest(path: string): ManifestLine[] {
  return manifestLines(path).map((line, i) => parseLine(path, line, i, ManifestLineSchema));
}

/** Line `index` of the manifest with its whole spec: what one array task runs. */
export function manifestTask(path: string, index: number): ManifestTask | undefined {
  const lines = manifestLines(path);
  return index < lines.length ? parseLine(path, lines[index], index, ManifestTaskSchema) : undefined;
}

function appendLine(path: string, value: unknown): void {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export function appendSubmission(files: ExperimentFiles, s: Submission): void {
  appendLine(files.submissions, s);
}

export function markSubmissionPending(
  files: ExperimentFiles,
  token: string,
  indices: readonly number[],
): void {
  appendLine(files.submissions, { ts: new Date().toISOString(), pending: token, indices });
}

export interface SubmissionLog {
  submissions: Submission[];
  /** Tokens of submissions started whose answer was never recorded. */
  unanswered: { token: string; indices: number[] }[];
}

export function readSubmissions(files: ExperimentFiles): SubmissionLog {
  if (!existsSync(files.submissions)) return { submissions: [], unanswered: [] };
  const submissions: Submission[] = [];
  const pending = new Map<string, number[]>();
  for (const line of readFileSync(files.submissions, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      continue; // a torn last line
    }
    const s = SubmissionSchema.safeParse(raw);
    if (s.success) {
      submissions.push(s.data);
      for (const token of pending.keys())
        if (s.data.command.some((a) => a.includes(token))) pending.delete(token);
      continue;
    }
    const p = PendingSubmissionSchema.safeParse(raw);
    if (p.success) pending.set(p.data.pending, p.data.indices);
  }
  return { submissions, unanswered: [...pending].map(([token, indices]) => ({ token, indices })) };
}

/** Every experiment this PTB_HOME submitted to a scheduler (damaged records are skipped). */
export function listExperiments(home: HomeLayout): ExperimentRecord[] {
  if (!existsSync(home.experiments)) return [];
  const out: ExperimentRecord[] = [];
  for (const name of readdirSync(home.experiments).sort()) {
    try {
      const record = findExperiment(home, name);
      if (record) out.push(record);
    } catch {
      // a record being written or damaged
    }
  }
  return out;
}
