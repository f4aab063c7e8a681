import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Statement, Transaction } from 'better-sqlite3';
import { z } from 'zod';
import { isDemoBaseline, isDemoTrial } from '../core/demoNamespace.ts';
import { newId } from '../core/ids.ts';
import {
  type AgentOutcome,
  type DetectorVerdict,
  PHASES,
  type Phase,
  PhaseSchema,
  type TrialSpec,
  TrialSpecSchema,
  type TrialStatus,
  TrialStatusSchema,
  type VerdictValue,
} from '../core/trial.ts';
import { trialLayout } from '../core/trialLayout.ts';
import type { Db } from './db.ts';
import {
  type AttemptLostEvent,
  appendJournal,
  JOURNAL_VERSION,
  type JournalEvent,
  type NewJournalEvent,
  type RunEvent,
  readJournal,
} from './trialJournal.ts';

type Row = Record<string, unknown>;
type JournalRow = { trial_id: string; path: string; offset: number };

function statSafeSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

const TrialRowSchema = z.object({
  id: z.string(),
  experiment: z.string(),
  agent: z.string(),
  agent_config: z.string(),
  base_model: z.string(),
  benchmark: z.string(),
  hours: z.number(),
  gpus: z.number(),
  seed: z.number(),
  sandbox: z.string(),
  spec_json: z.string(),
  dir: z.string(),
  source: z.enum(['ptb', 'import']),
  external_id: z.string().nullable(),
  run_number: z.number().nullable(),
  status: TrialStatusSchema,
  phase: z.string().nullable(),
  agent_outcome: z.string().nullable(),
  agent_seconds: z.number().nullable(),
  accuracy: z.number().nullable(),
  final_score: z.number().nullable(),
  substituted: z.number().nullable(),
  audit_verdict: z.string().nullable(),
  input_tokens: z.number().nullable(),
  output_tokens: z.number().nullable(),
  cost_usd: z.number().nullable(),
  error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
});
export type TrialRow = z.infer<typeof TrialRowSchema>;

export interface Trial extends TrialRow {
  spec: TrialSpec;
}

/** Fields a phase may update on the trial row. */
export interface TrialPatch {
  status?: TrialStatus;
  phase?: Phase | null;
  agent_outcome?: AgentOutcome | null;
  agent_seconds?: number | null;
  accuracy?: number | null;
  final_score?: number | null;
  substituted?: boolean | null;
  audit_verdict?: VerdictValue | 'not_audited' | null;
  input_tokens?: number | null;
  output_tokens?: number | null;
  cost_usd?: number | null;
  error?: string | null;
  finished_at?: string | null;
}

const PhaseRowSchema = z.object({
  trial_id: z.string(),
  phase: z.string(),
  status: z.enum(['started', 'completed', 'failed']),
  result_json: z.string().nullable(),
  error: z.string().nullable(),
  started_at: z.string(),
  finished_at: z.string().nullable(),
});
export type PhaseRow = z.infer<typeof PhaseRowSchema>;

const AuditRowSchema = z.object({
  id: z.string(),
  trial_id: z.string(),
  combined: z.enum(['clean', 'flagged', 'unverified', 'not_audited']),
  policy: z.string(),
  summary: z.string(),
  created_at: z.string(),
});
export type AuditRow = z.infer<typeof AuditRowSchema>;

export interface AuditWithVerdicts extends AuditRow {
  verdicts: DetectorVerdict[];
}

const BaselineRowSchema = z.object({
  id: z.number(),
  model: z.string(),
  benchmark: z.string(),
  kind: z.enum(['base', 'instruct', 'other']),
  accuracy: z.number().nullable(),
  source: z.string(),
  eval_run_id: z.string().nullable(),
  created_at: z.string(),
  protocol: z.string().nullable(),
});
export type BaselineRow = z.infer<typeof BaselineRowSchema>;

export interface TrialFilter {
  experiment?: string;
  status?: TrialStatus;
  benchmark?: string;
  agent?: string;
}

function now(): string {
  return new Date().toISOString();
}

function toTrial(row: unknown): Trial {
  const parsed = TrialRowSchema.parse(row);
  return { ...parsed, spec: TrialSpecSchema.parse(JSON.parse(parsed.spec_json)) };
}

/** Columns a patch may set (journal events name them, so only these are ever written); one per TrialPatch field. */
const PATCH_COLUMNS = new Set(
  Object.keys({
    status: true,
    phase: true,
    agent_outcome: true,
    agent_seconds: true,
    accuracy: true,
    final_score: true,
    substituted: true,
    audit_verdict: true,
    input_tokens: true,
    output_tokens: true,
    cost_usd: true,
    error: true,
    finished_at: true,
  } satisfies Record<keyof TrialPatch, true>),
);

export type TrialBrief = Pick<TrialRow, 'id' | 'status' | 'phase' | 'final_score' | 'error'>;

export interface TrialRun {
  n: number;
  executor: string;
  host: string;
  job: string | null;
  restartCount: number | null;
  gpus: number[];
  startedAt: string;
}

export interface LostAttempt {
  n: number;
  phase: Phase;
  resetFrom: Phase;
  reason: string;
  seconds: number;
  startedAt: string;
  lostAt: string;
  keptIn: string | null;
  restartCount: number | null;
}

/** What re-indexing trial directories did. */
export interface IndexSync {
  /** Trial journals found. */
  trials: number;
  /** Journals that had new events (or were indexed for the first time). */
  updated: number;
  /** Lines that were not events this ptb knows (skipped). */
  skippedLines: number;
}

function runFromRow(r: Row): TrialRun {
  return {
    n: Number(r.n),
    executor: String(r.executor),
    host: String(r.host),
    job: r.job === null ? null : String(r.job),
    restartCount: r.restart_count === null ? null : Number(r.restart_count),
    gpus: JSON.parse(String(r.gpus_json)) as number[],
    startedAt: String(r.started_at),
  };
}

export interface DemoEvalMarks {
  runIds: ReadonlySet<string>;
  trialDirs: readonly string[];
}

/** Whether an evaluation run is `ptb demo`'s (see `TrialRepo.demoEvalMarks`). */
export function isDemoEvalRun(run: { id: string; out_dir: string }, marks: DemoEvalMarks): boolean {
  return marks.runIds.has(run.id) || marks.trialDirs.some((dir) => run.out_dir.startsWith(`${dir}/`));
}

export function journalPath(trialDir: string): string {
  return trialLayout(trialDir).journal;
}

/**
 * Repository over the trial tables; every row read is validated. A trial ptb runs keeps its record
 * in its own directory (journal.jsonl): each change is appended there first and then applied to the
 * rows, and `syncDirs` re-applies what other processes (compute nodes) appended. Imported trials
 * (an upstream tree is theirs, never written) live in the rows only.
 */
export class TrialRepo {
  /** Prepared statements by their SQL (preparing costs more than running them: grids create thousands of rows). */
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Db) {
    this.txn = db.transaction((fn: () => unknown) => fn());
  }

  private sql(text: string): Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  /** One transaction wrapper, made once (better-sqlite3 prepares BEGIN/COMMIT for every wrapper it makes). */
  private readonly txn: Transaction<(fn: () => unknown) => unknown>;

  private inTxn<T>(fn: () => T, mode: 'deferred' | 'immediate' = 'deferred'): T {
    return (mode === 'immediate' ? this.txn.immediate(fn) : this.txn(fn)) as T;
  }

  ensureExperiment(name: string, config?: unknown): void {
    this.sql('INSERT OR IGNORE INTO experiments (name, config_json, created_at) VALUES (?, ?, ?)').run(
      name,
      config === undefined ? null : JSON.stringify(config),
      now(),
    );
  }

  listExperiments(): { name: string; created_at: string; trials: number }[] {
    return this.sql(
      `SELECT e.name, e.created_at, COUNT(t.id) AS trials FROM experiments e
         LEFT JOIN trials t ON t.experiment = e.name GROUP BY e.name ORDER BY e.created_at`,
    ).all() as { name: string; created_at: string; trials: number }[];
  }

  /**
   * Create a trial in `pending` state. `dir` is where its files live; a ptb trial's directory is made
   * and its journal started (`durable: false` skips the fsync, for grids that create many at once).
   */
  create(
    spec: TrialSpec,
    dir: (id: string) => string,
    opts: {
      id?: string;
      source?: 'ptb' | 'import';
      externalId?: string;
      runNumber?: number;
      durable?: boolean;
    } = {},
  ): Trial {
    const id = opts.id ?? newId('trial');
    const trialDir = dir(id);
    if ((opts.source ?? 'ptb') === 'ptb') {
      mkdirSync(trialDir, { recursive: true });
      this.record(id, trialDir, { event: 'created', v: JOURNAL_VERSION, id, spec }, opts.durable ?? true);
      return this.get(id)!;
    }
    this.insertTrial(id, spec, trialDir, now(), {
      source: 'import',
      externalId: opts.externalId ?? null,
      runNumber: opts.runNumber ?? null,
    });
    return this.get(id)!;
  }

  get(id: string): Trial | undefined {
    const row = this.sql('SELECT * FROM trials WHERE id = ?').get(id);
    return row ? toTrial(row) : undefined;
  }

  /** Find by id or unique id prefix (what users type). */
  find(idOrPrefix: string): Trial | undefined {
    const exact = this.get(idOrPrefix);
    if (exact) return exact;
    const rows = this.sql('SELECT * FROM trials WHERE id LIKE ? LIMIT 2').all(`${idOrPrefix}%`);
    return rows.length === 1 ? toTrial(rows[0]) : undefined;
  }

  findExternal(experiment: string, externalId: string): Trial | undefined {
    const row = this.sql('SELECT * FROM trials WHERE experiment = ? AND external_id = ?').get(
      experiment,
      externalId,
    );
    return row ? toTrial(row) : undefined;
  }

  list(filter: TrialFilter = {}): Trial[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const [col, value] of Object.entries(filter)) {
      if (value === undefined) continue;
      where.push(`${col} = ?`);
      args.push(value);
    }
    const sql = `SELECT * FROM trials ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at, id`;
    return this.sql(sql)
      .all(...args)
      .map(toTrial);
  }

  update(id: string, patch: TrialPatch): void {
    const cols = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (cols.length === 0) return;
    this.change(id, { event: 'update', patch: Object.fromEntries(cols) });
  }

  // ---- phases ----

  phases(trialId: string): PhaseRow[] {
    return this.sql('SELECT * FROM trial_phases WHERE trial_id = ? ORDER BY started_at')
      .all(trialId)
      .map((r) => PhaseRowSchema.parse(r));
  }

  phase(trialId: string, phase: Phase): PhaseRow | undefined {
    const row = this.sql('SELECT * FROM trial_phases WHERE trial_id = ? AND phase = ?').get(trialId, phase);
    return row ? PhaseRowSchema.parse(row) : undefined;
  }

  /** Mark a phase started (again, after a crash: the earlier start is replaced, a completed phase never is). */
  startPhase(trialId: string, phase: Phase): void {
    const existing = this.phase(trialId, phase);
    if (existing?.status === 'completed')
      throw new Error(`phase ${phase} of ${trialId} is already completed`);
    this.change(trialId, { event: 'phase', phase, status: 'started' });
  }

  completePhase(trialId: string, phase: Phase, result: unknown): void {
    this.change(trialId, { event: 'phase', phase, status: 'completed', result: result ?? null });
  }

  failPhase(trialId: string, phase: Phase, error: string): void {
    this.change(trialId, { event: 'phase', phase, status: 'failed', error });
  }

  phaseResult<T>(trialId: string, phase: Phase, schema: z.ZodType<T>): T | undefined {
    const row = this.phase(trialId, phase);
    if (row?.status !== 'completed' || row.result_json === null) return undefined;
    return schema.parse(JSON.parse(row.result_json));
  }

  // ---- executions and lost attempts ----

  /** Record one start of the trial's harness (where, which job, after how many requeues). */
  recordRun(trialId: string, run: Omit<RunEvent, 'event' | 'ts'>): void {
    this.change(trialId, { event: 'run', ...run });
  }

  /** Throw away a phase attempt: phases from `resetFrom` on run again; the attempt and its time are kept. */
  recordLostAttempt(trialId: string, lost: Omit<AttemptLostEvent, 'event' | 'ts'>): void {
    this.change(trialId, { event: 'attempt-lost', ...lost });
  }

  runs(trialId: string): TrialRun[] {
    return (this.sql('SELECT * FROM trial_runs WHERE trial_id = ? ORDER BY n').all(trialId) as Row[]).map(
      (r) => ({
        n: Number(r.n),
        executor: String(r.executor),
        host: String(r.host),
        job: r.job === null ? null : String(r.job),
        restartCount: r.restart_count === null ? null : Number(r.restart_count),
        gpus: JSON.parse(String(r.gpus_json)) as number[],
        startedAt: String(r.started_at),
      }),
    );
  }

  lostAttempts(trialId: string): LostAttempt[] {
    return (
      this.sql('SELECT * FROM trial_lost_attempts WHERE trial_id = ? ORDER BY n').all(trialId) as Row[]
    ).map((r) => ({
      n: Number(r.n),
      phase: PhaseSchema.parse(r.phase),
      resetFrom: PhaseSchema.parse(r.reset_from),
      reason: String(r.reason),
      seconds: Number(r.seconds),
      startedAt: String(r.started_at),
      lostAt: String(r.lost_at),
      keptIn: r.kept_in === null ? null : String(r.kept_in),
      restartCount: r.restart_count === null ? null : Number(r.restart_count),
    }));
  }

  /** Lost attempts per trial (count and seconds) for listings: one query for all trials. */
  lostAttemptTotals(): Map<string, { attempts: number; seconds: number }> {
    const rows = this.sql(
      'SELECT trial_id, COUNT(*) AS attempts, SUM(seconds) AS seconds FROM trial_lost_attempts GROUP BY trial_id',
    ).all() as { trial_id: string; attempts: number; seconds: number }[];
    return new Map(rows.map((r) => [r.trial_id, { attempts: r.attempts, seconds: r.seconds }]));
  }

  /** Status fields of an experiment's trials by id (one query and no spec parsing: status of 1,000 trials). */
  briefs(experiment: string): Map<string, TrialBrief> {
    const rows = this.sql(
      'SELECT id, status, phase, final_score, error FROM trials WHERE experiment = ?',
    ).all(experiment) as TrialBrief[];
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** The latest start of every trial that has one (one query, for listings). */
  latestRuns(): Map<string, TrialRun> {
    const rows = this.sql(
      `SELECT r.* FROM trial_runs r JOIN (SELECT trial_id, MAX(n) AS n FROM trial_runs GROUP BY trial_id) m
           ON m.trial_id = r.trial_id AND m.n = r.n`,
    ).all() as Row[];
    return new Map(rows.map((r) => [String(r.trial_id), runFromRow(r)]));
  }

  /** Run `fn` in one transaction (many trials created at once commit once). */
  inTransaction<T>(fn: () => T): T {
    return this.inTxn(fn);
  }

  /**
   * Drop trials from the index (their directories are the caller's business): only for trials that
   * never ran, e.g. a submission the scheduler refused.
   */
  forgetNeverRun(ids: readonly string[]): void {
    this.inTxn(() => {
      for (const id of ids) {
        const t = this.get(id);
        if (t?.status !== 'pending' || this.phases(id).length > 0) {
          throw new Error(`trial ${id} has run; it is kept`);
        }
        this.forgetDerived(id);
        this.sql('DELETE FROM trial_journals WHERE trial_id = ?').run(id);
        this.sql('DELETE FROM trials WHERE id = ?').run(id);
      }
    });
  }

  // ---- the index over trial directories ----

  /**
   * Bring the rows up to date with the journals in `roots/<trial dir>/journal.jsonl` (each journal is
   * read from where the last sync stopped). `rebuild` forgets what was read and replays everything.
   */
  syncDirs(roots: readonly string[], opts: { rebuild?: boolean } = {}): IndexSync {
    if (opts.rebuild) this.sql('DELETE FROM trial_journals').run();
    const known = new Map(
      (this.sql('SELECT trial_id, path, offset FROM trial_journals').all() as JournalRow[]).map((r) => [
        r.path,
        r,
      ]),
    );
    const result: IndexSync = { trials: 0, updated: 0, skippedLines: 0 };
    const stale: string[] = [];
    for (const root of roots) {
      let names: string[];
      try {
        names = readdirSync(root);
      } catch {
        continue;
      }
      for (const name of names) {
        const dir = join(root, name);
        let size: number;
        try {
          size = statSync(journalPath(dir)).size;
        } catch {
          continue;
        }
        result.trials++;
        if (known.get(journalPath(dir))?.offset !== size) stale.push(dir);
      }
    }
    // Batches keep each write transaction short (a running trial may be waiting to record a phase).
    for (let i = 0; i < stale.length; i += 100) {
      this.inTxn(() => {
        for (const dir of stale.slice(i, i + 100)) {
          const synced = this.syncDir(dir);
          if (synced.updated) result.updated++;
          result.skippedLines += synced.skippedLines;
        }
      });
    }
    return result;
  }

  /** Apply what is new in one trial directory's journal; returns the trial id (null: no journal). */
  syncDir(dir: string): { trialId: string | null; updated: boolean; skippedLines: number } {
    const path = journalPath(dir);
    return this.inTxn(() => {
      const row = this.sql('SELECT trial_id, path, offset FROM trial_journals WHERE path = ?').get(path) as
        | JournalRow
        | undefined;
      const from = row && statSafeSize(path) >= row.offset ? row.offset : 0;
      const read = readJournal(path, from);
      if (from === 0) {
        const created = read.events[0];
        if (created?.event !== 'created')
          return { trialId: null, updated: false, skippedLines: read.skipped };
        // First sight of this journal (or it was replaced): replay it onto a clean slate.
        this.forgetDerived(created.id);
        this.insertTrial(created.id, created.spec, dir, created.ts, {
          source: 'ptb',
          externalId: null,
          runNumber: null,
        });
        for (const event of read.events.slice(1)) this.apply(created.id, dir, event);
        this.setOffset(created.id, path, read.end);
        return { trialId: created.id, updated: true, skippedLines: read.skipped };
      }
      for (const event of read.events) this.apply(row!.trial_id, dir, event);
      this.setOffset(row!.trial_id, path, read.end);
      return { trialId: row!.trial_id, updated: read.events.length > 0, skippedLines: read.skipped };
    });
  }

  /** A change to a trial: journal first (ptb trials), then the rows. */
  private change(trialId: string, event: NewJournalEvent, durable = true): void {
    const where = this.sql('SELECT dir, source FROM trials WHERE id = ?').get(trialId) as
      | { dir: string; source: string }
      | undefined;
    if (!where) return;
    if (where.source !== 'ptb' || !this.hasJournal(trialId)) {
      this.apply(trialId, where.dir, { ...event, ts: now() } as JournalEvent);
      return;
    }
    this.record(trialId, where.dir, event, durable);
  }

  /** Trials created before journals existed keep living in the rows only. */
  private hasJournal(trialId: string): boolean {
    return this.sql('SELECT 1 FROM trial_journals WHERE trial_id = ?').get(trialId) !== undefined;
  }

  private record(trialId: string, dir: string, event: NewJournalEvent, durable: boolean): void {
    const full = { ts: now(), ...event } as JournalEvent;
    const path = journalPath(dir);
    this.inTxn(() => {
      // Events another process appended since this index last read the journal come first.
      if (event.event !== 'created') this.syncDir(dir);
      const end = appendJournal(path, full, durable);
      this.apply(trialId, dir, full);
      this.setOffset(trialId, path, end);
    }, 'immediate');
  }

  private setOffset(trialId: string, path: string, offset: number): void {
    this.sql(
      `INSERT INTO trial_journals (trial_id, path, offset) VALUES (?, ?, ?)
         ON CONFLICT (trial_id) DO UPDATE SET path = excluded.path, offset = excluded.offset`,
    ).run(trialId, path, offset);
  }

  /** Rows derived from a trial's journal, dropped before the journal is replayed from its start. */
  private forgetDerived(trialId: string): void {
    this.sql('DELETE FROM verdicts WHERE audit_id IN (SELECT id FROM audits WHERE trial_id = ?)').run(
      trialId,
    );
    for (const table of ['audits', 'trial_phases', 'trial_runs', 'trial_lost_attempts']) {
      this.sql(`DELETE FROM ${table} WHERE trial_id = ?`).run(trialId);
    }
  }

  private insertTrial(
    id: string,
    spec: TrialSpec,
    dir: string,
    at: string,
    origin: { source: 'ptb' | 'import'; externalId: string | null; runNumber: number | null },
  ): void {
    this.ensureExperiment(spec.experiment);
    this.sql(
      `INSERT INTO trials (id, experiment, agent, agent_config, base_model, benchmark, hours, gpus, seed,
          sandbox, spec_json, dir, source, external_id, run_number, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)
         ON CONFLICT (id) DO UPDATE SET experiment = excluded.experiment, agent = excluded.agent,
          agent_config = excluded.agent_config, base_model = excluded.base_model, benchmark = excluded.benchmark,
          hours = excluded.hours, gpus = excluded.gpus, seed = excluded.seed, sandbox = excluded.sandbox,
          spec_json = excluded.spec_json, dir = excluded.dir, status = 'pending', phase = NULL,
          agent_outcome = NULL, agent_seconds = NULL, accuracy = NULL, final_score = NULL, substituted = NULL,
          audit_verdict = NULL, input_tokens = NULL, output_tokens = NULL, cost_usd = NULL, error = NULL,
          created_at = excluded.created_at, updated_at = excluded.updated_at, finished_at = NULL`,
    ).run(
      id,
      spec.experiment,
      spec.agent,
      spec.agentConfig,
      spec.baseModel,
      spec.benchmark,
      spec.hours,
      spec.gpus,
      spec.seed,
      spec.sandbox,
      JSON.stringify(spec),
      dir,
      origin.source,
      origin.externalId,
      origin.runNumber,
      at,
      at,
    );
  }

  /** One event onto the rows; replaying a journal's events in order rebuilds the trial's rows. */
  private apply(trialId: string, dir: string, e: JournalEvent): void {
    switch (e.event) {
      case 'created':
        // Only a journal's first line creates; a repeated creation (two writers) never resets a trial.
        if (!this.get(e.id)) {
          this.insertTrial(e.id, e.spec, dir, e.ts, { source: 'ptb', externalId: null, runNumber: null });
        }
        return;
      case 'update':
        this.applyPatch(trialId, e.patch, e.ts);
        return;
      case 'phase':
        this.applyPhase(trialId, e);
        return;
      case 'audit':
        this.applyAudit(trialId, e);
        return;
      case 'run':
        this.sql(
          `INSERT INTO trial_runs (trial_id, n, executor, host, job, restart_count, gpus_json, started_at)
             VALUES (?, (SELECT COALESCE(MAX(n), 0) + 1 FROM trial_runs WHERE trial_id = ?), ?, ?, ?, ?, ?, ?)`,
        ).run(trialId, trialId, e.executor, e.host, e.job, e.restartCount, JSON.stringify(e.gpus), e.ts);
        return;
      case 'attempt-lost': {
        this.sql(
          `INSERT INTO trial_lost_attempts (trial_id, n, phase, reset_from, reason, seconds, started_at, lost_at,
               kept_in, restart_count)
             VALUES (?, (SELECT COALESCE(MAX(n), 0) + 1 FROM trial_lost_attempts WHERE trial_id = ?), ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          trialId,
          trialId,
          e.phase,
          e.resetFrom,
          e.reason,
          e.seconds,
          e.startedAt,
          e.ts,
          e.keptIn,
          e.restartCount,
        );
        this.applyPatch(trialId, { phase: null }, e.ts);
        const redone = PHASES.slice(PHASES.indexOf(e.resetFrom));
        this.sql(
          `DELETE FROM trial_phases WHERE trial_id = ? AND phase IN (${redone.map(() => '?').join(', ')})`,
        ).run(trialId, ...redone);
        return;
      }
    }
  }

  private applyPatch(trialId: string, patch: Record<string, unknown>, at: string): void {
    const cols = Object.entries(patch).filter(([k, v]) => v !== undefined && PATCH_COLUMNS.has(k));
    if (cols.length === 0) return;
    const sets = cols.map(([k]) => `${k} = ?`).join(', ');
    const values = cols.map(([, v]) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
    this.sql(`UPDATE trials SET ${sets}, updated_at = ? WHERE id = ?`).run(...values, at, trialId);
  }

  private applyPhase(trialId: string, e: Extract<JournalEvent, { event: 'phase' }>): void {
    if (e.status === 'started') {
      this.sql(
        `INSERT INTO trial_phases (trial_id, phase, status, started_at) VALUES (?, ?, 'started', ?)
           ON CONFLICT (trial_id, phase) DO UPDATE SET status = 'started', error = NULL, finished_at = NULL`,
      ).run(trialId, e.phase, e.ts);
      this.applyPatch(trialId, { phase: e.phase, status: 'running' }, e.ts);
      return;
    }
    if (e.status === 'completed') {
      this.sql(
        `UPDATE trial_phases SET status = 'completed', result_json = ?, finished_at = ? WHERE trial_id = ? AND phase = ?`,
      ).run(JSON.stringify(e.result ?? null), e.ts, trialId, e.phase);
      return;
    }
    this.sql(
      `UPDATE trial_phases SET status = 'failed', error = ?, finished_at = ? WHERE trial_id = ? AND phase = ?`,
    ).run(e.error ?? null, e.ts, trialId, e.phase);
  }

  private applyAudit(trialId: string, e: Extract<JournalEvent, { event: 'audit' }>): void {
    const inserted = this.sql(
      'INSERT OR IGNORE INTO audits (id, trial_id, combined, policy, summary, created_at) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(e.id, trialId, e.combined, e.policy, e.summary, e.ts);
    if (inserted.changes === 0) return;
    const insert = this.sql(
      'INSERT INTO verdicts (audit_id, detector, version, verdict, rule, summary, evidence_json) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (const v of e.verdicts) {
      insert.run(
        e.id,
        v.detector,
        v.version,
        v.verdict,
        v.rule ?? null,
        v.summary,
        JSON.stringify(v.evidence),
      );
    }
  }

  // ---- audits (append-only: a re-audit adds a row, earlier verdicts stay) ----

  recordAudit(
    trialId: string,
    combined: AuditRow['combined'],
    policy: string,
    summary: string,
    verdicts: DetectorVerdict[],
    id: string = newId('audit'),
  ): AuditRow {
    this.change(trialId, { event: 'audit', id, combined, policy, summary, verdicts });
    const row = this.sql('SELECT * FROM audits WHERE id = ?').get(id);
    return AuditRowSchema.parse(row);
  }

  audits(trialId: string): AuditWithVerdicts[] {
    const audits = this.sql('SELECT * FROM audits WHERE trial_id = ? ORDER BY created_at, id')
      .all(trialId)
      .map((r) => AuditRowSchema.parse(r));
    const verdicts = this.sql('SELECT * FROM verdicts WHERE audit_id = ? ORDER BY detector');
    return audits.map((a) => ({
      ...a,
      verdicts: (verdicts.all(a.id) as Record<string, unknown>[]).map((v) => ({
        detector: String(v.detector),
        version: String(v.version),
        verdict: v.verdict as VerdictValue,
        ...(v.rule ? { rule: String(v.rule) } : {}),
        summary: String(v.summary),
        evidence: JSON.parse(String(v.evidence_json)),
      })),
    }));
  }

  latestAudit(trialId: string): AuditWithVerdicts | undefined {
    return this.audits(trialId).at(-1);
  }

  // ---- baselines (zero-shot scores of models evaluated directly) ----

  addBaseline(b: {
    model: string;
    benchmark: string;
    kind: BaselineRow['kind'];
    accuracy: number | null;
    source: string;
    evalRunId?: string;
    /** The protocol it was evaluated under (null: unknown). */
    protocol?: string | null;
  }): void {
    this.sql(
      'INSERT INTO baselines (model, benchmark, kind, accuracy, source, eval_run_id, created_at, protocol) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    ).run(b.model, b.benchmark, b.kind, b.accuracy, b.source, b.evalRunId ?? null, now(), b.protocol ?? null);
  }

  /**
   * What marks an evaluation run as `ptb demo`'s: the runs of the demo's baselines (every one, not
   * only the newest) and the directories of the demo's trials (a trial's evaluations lie inside it),
   * among `trials` when the caller has listed them already.
   */
  demoEvalMarks(trials: readonly Trial[] = this.list()): DemoEvalMarks {
    const runIds = new Set<string>();
    for (const b of this.sql(
      'SELECT model, source, eval_run_id FROM baselines WHERE eval_run_id IS NOT NULL',
    ).all() as {
      model: string;
      source: string;
      eval_run_id: string;
    }[])
      if (isDemoBaseline(b)) runIds.add(b.eval_run_id);
    const trialDirs = trials.filter((t) => isDemoTrial(t)).map((t) => t.dir);
    return { runIds, trialDirs };
  }

  /**
   * The newest baseline per model and benchmark. With a protocol: of that protocol, else one recorded
   * before protocols existed; never one of another protocol (its score is not comparable).
   */
  baselines(protocol?: string): BaselineRow[] {
    if (protocol === undefined) {
      return this.sql(
        `SELECT * FROM baselines b WHERE id = (SELECT id FROM baselines c WHERE c.model = b.model
             AND c.benchmark = b.benchmark ORDER BY created_at DESC, id DESC LIMIT 1) ORDER BY model, benchmark`,
      )
        .all()
        .map((r) => BaselineRowSchema.parse(r));
    }
    return this.sql(
      `SELECT * FROM baselines b WHERE id = (SELECT id FROM baselines c WHERE c.model = b.model
           AND c.benchmark = b.benchmark AND (c.protocol = ? OR c.protocol IS NULL)
           ORDER BY c.protocol IS NULL, created_at DESC, id DESC LIMIT 1) ORDER BY model, benchmark`,
    )
      .all(protocol)
      .map((r) => BaselineRowSchema.parse(r));
  }
}
