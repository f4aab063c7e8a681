import { closeSync, fstatSync, fsyncSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { z } from 'zod';
import { DetectorVerdictSchema, PhaseSchema, TrialSpecSchema } from '../core/trial.ts';

/**
 * A trial's durable record: `journal.jsonl` in its directory (trialLayout's `journal`), one event per line, appended only.
 * Every change the trial store makes to a trial is an event here first; the SQLite rows are an index
 * rebuilt by replaying journals. A compute node that shares only the results directory with the head
 * writes its trial's journal and never opens the head's database.
 */
export const JOURNAL_VERSION = 1;

const ts = z.string();

const CreatedEventSchema = z.object({
  event: z.literal('created'),
  ts,
  v: z.number().int(),
  id: z.string().min(1),
  spec: TrialSpecSchema,
});

const UpdateEventSchema = z.object({
  event: z.literal('update'),
  ts,
  patch: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});

const PhaseEventSchema = z.object({
  event: z.literal('phase'),
  ts,
  phase: PhaseSchema,
  status: z.enum(['started', 'completed', 'failed']),
  result: z.unknown().optional(),
  error: z.string().optional(),
});

const AuditEventSchema = z.object({
  event: z.literal('audit'),
  ts,
  id: z.string(),
  combined: z.enum(['clean', 'flagged', 'unverified', 'not_audited']),
  policy: z.string(),
  summary: z.string(),
  verdicts: z.array(DetectorVerdictSchema),
});

/** One execution of the trial's harness (a local run, or one start of a Slurm array task). */
const RunEventSchema = z.object({
  event: z.literal('run'),
  ts,
  executor: z.string(),
  host: z.string(),
  /** Executor job reference (`<array job>_<task>` on Slurm); null locally. */
  job: z.string().nullable(),
  /** SLURM_RESTART_COUNT: how often the scheduler requeued this task before this start. */
  restartCount: z.number().int().nullable(),
  gpus: z.array(z.number().int()),
});

/**
 * A phase attempt whose work is thrown away (the agent was preempted): the phases from `phase` on are
 * reset from `resetFrom` and run again, from a fresh workspace with the full budget. `seconds` is the time
 * the lost attempt had used.
 */
const AttemptLostEventSchema = z.object({
  event: z.literal('attempt-lost'),
  ts,
  phase: PhaseSchema,
  /** First phase that runs again (prepare: a fresh workspace). */
  resetFrom: PhaseSchema,
  reason: z.string(),
  seconds: z.number(),
  startedAt: z.string(),
  /** Where the lost attempt's files were kept (relative to the trial directory). */
  keptIn: z.string().nullable(),
  restartCount: z.number().int().nullable(),
});

export const JournalEventSchema = z.discriminatedUnion('event', [
  CreatedEventSchema,
  UpdateEventSchema,
  PhaseEventSchema,
  AuditEventSchema,
  RunEventSchema,
  AttemptLostEventSchema,
]);
export type JournalEvent = z.infer<typeof JournalEventSchema>;
export type CreatedEvent = z.infer<typeof CreatedEventSchema>;
export type RunEvent = z.infer<typeof RunEventSchema>;
export type AttemptLostEvent = z.infer<typeof AttemptLostEventSchema>;

/** Event without its timestamp (the journal stamps it). */
export type NewJournalEvent = JournalEvent extends infer E
  ? E extends JournalEvent
    ? Omit<E, 'ts'>
    : never
  : never;

/**
 * Append one event as one write of one line. `durable` waits until it is on disk (phase boundaries:
 * a resumed trial must never redo a phase it recorded as completed). Returns the journal's new size.
 */
export function appendJournal(path: string, event: JournalEvent, durable: boolean): number {
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, `${JSON.stringify(event)}\n`);
    if (durable) fsyncSync(fd);
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

export interface JournalRead {
  events: JournalEvent[];
  /** Offset after the last complete line: where the next read starts. */
  end: number;
  /** Complete lines that were not events of this version (skipped, counted). */
  skipped: number;
}

/**
 * Events from byte `from` on. A last line without its newline is a write in progress (or torn by a
 * crash) and is left for the next read; the offset never moves past it.
 */
export function readJournal(path: string, from = 0): JournalRead {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return { events: [], end: from, skipped: 0 };
  }
  if (size <= from) return { events: [], end: from, skipped: 0 };
  const buf = Buffer.alloc(size - from);
  const fd = openSync(path, 'r');
  let read = 0;
  try {
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, from + read);
      if (n === 0) break;
      read += n;
    }
  } finally {
    closeSync(fd);
  }
  const lastNewline = buf.lastIndexOf(0x0a, read - 1);
  if (lastNewline < 0) return { events: [], end: from, skipped: 0 };
  const events: JournalEvent[] = [];
  let skipped = 0;
  for (const line of buf.subarray(0, lastNewline).toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    let parsed: ReturnType<typeof JournalEventSchema.safeParse>;
    try {
      parsed = JournalEventSchema.safeParse(JSON.parse(line));
    } catch {
      skipped++;
      continue;
    }
    if (parsed.success) events.push(parsed.data);
    else skipped++;
  }
  return { events, end: from + lastNewline + 1, skipped };
}
