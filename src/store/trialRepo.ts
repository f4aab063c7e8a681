import { z } from 'zod';
import { newId } from '../core/ids.ts';
import {
  type AgentOutcome,
  type DetectorVerdict,
  type Phase,
  type TrialSpec,
  TrialSpecSchema,
  type TrialStatus,
  TrialStatusSchema,
  type VerdictValue,
} from '../core/trial.ts';
import type { Db } from './db.ts';

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

/** Thin repository over the trial tables; every row read is validated. */
export class TrialRepo {
  constructor(private readonly db: Db) {}

  ensureExperiment(name: string, config?: unknown): void {
    this.db
      .prepare('INSERT OR IGNORE INTO experiments (name, config_json, created_at) VALUES (?, ?, ?)')
      .run(name, config === undefined ? null : JSON.stringify(config), now());
  }

  listExperiments(): { name: string; created_at: string; trials: number }[] {
    return this.db
      .prepare(
        `SELECT e.name, e.created_at, COUNT(t.id) AS trials FROM experiments e
         LEFT JOIN trials t ON t.experiment = e.name GROUP BY e.name ORDER BY e.created_at`,
      )
      .all() as { name: string; created_at: string; trials: number }[];
  }

  /** Create a trial in `pending` state. `dir` is where its files live. */
  create(
    spec: TrialSpec,
    dir: (id: string) => string,
    opts: { id?: string; source?: 'ptb' | 'import'; externalId?: string; runNumber?: number } = {},
  ): Trial {
    const id = opts.id ?? newId('trial');
    this.ensureExperiment(spec.experiment);
    const t = now();
    this.db
      .prepare(
        `INSERT INTO trials (id, experiment, agent, agent_config, base_model, benchmark, hours, gpus, seed,
          sandbox, spec_json, dir, source, external_id, run_number, status, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
      )
      .run(
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
        dir(id),
        opts.source ?? 'ptb',
        opts.externalId ?? null,
        opts.runNumber ?? null,
        t,
        t,
      );
    return this.get(id)!;
  }

  get(id: string): Trial | undefined {
    const row = this.db.prepare('SELECT * FROM trials WHERE id = ?').get(id);
    return row ? toTrial(row) : undefined;
  }

  /** Find by id or unique id prefix (what users type). */
  find(idOrPrefix: string): Trial | undefined {
    const exact = this.get(idOrPrefix);
    if (exact) return exact;
    const rows = this.db.prepare('SELECT * FROM trials WHERE id LIKE ? LIMIT 2').all(`${idOrPrefix}%`);
    return rows.length === 1 ? toTrial(rows[0]) : undefined;
  }

  findExternal(experiment: string, externalId: string): Trial | undefined {
    const row = this.db
      .prepare('SELECT * FROM trials WHERE experiment = ? AND external_id = ?')
      .get(experiment, externalId);
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
    return this.db
      .prepare(sql)
      .all(...args)
      .map(toTrial);
  }

  update(id: string, patch: TrialPatch): void {
    const cols = Object.entries(patch).filter(([, v]) => v !== undefined);
    if (cols.length === 0) return;
    const sets = cols.map(([k]) => `${k} = ?`).join(', ');
    const values = cols.map(([, v]) => (typeof v === 'boolean' ? (v ? 1 : 0) : v));
    this.db.prepare(`UPDATE trials SET ${sets}, updated_at = ? WHERE id = ?`).run(...values, now(), id);
  }

  // ---- phases ----

  phases(trialId: string): PhaseRow[] {
    return this.db
      .prepare('SELECT * FROM trial_phases WHERE trial_id = ? ORDER BY started_at')
      .all(trialId)
      .map((r) => PhaseRowSchema.parse(r));
  }

  phase(trialId: string, phase: Phase): PhaseRow | undefined {
    const row = this.db
      .prepare('SELECT * FROM trial_phases WHERE trial_id = ? AND phase = ?')
      .get(trialId, phase);
    return row ? PhaseRowSchema.parse(row) : undefined;
  }

  /** Mark a phase started (again, after a crash: the earlier start is replaced, a completed phase never is). */
  startPhase(trialId: string, phase: Phase): void {
    const existing = this.phase(trialId, phase);
    if (existing?.status === 'completed')
      throw new Error(`phase ${phase} of ${trialId} is already completed`);
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO trial_phases (trial_id, phase, status, started_at) VALUES (?, ?, 'started', ?)
           ON CONFLICT (trial_id, phase) DO UPDATE SET status = 'started', error = NULL, finished_at = NULL`,
        )
        .run(trialId, phase, now());
      this.update(trialId, { phase, status: 'running' });
    })();
  }

  completePhase(trialId: string, phase: Phase, result: unknown): void {
    this.db
      .prepare(
        `UPDATE trial_phases SET status = 'completed', result_json = ?, finished_at = ? WHERE trial_id = ? AND phase = ?`,
      )
      .run(JSON.stringify(result ?? null), now(), trialId, phase);
  }

  failPhase(trialId: string, phase: Phase, error: string): void {
    this.db
      .prepare(
        `UPDATE trial_phases SET status = 'failed', error = ?, finished_at = ? WHERE trial_id = ? AND phase = ?`,
      )
      .run(error, now(), trialId, phase);
  }

  phaseResult<T>(trialId: string, phase: Phase, schema: z.ZodType<T>): T | undefined {
    const row = this.phase(trialId, phase);
    if (row?.status !== 'completed' || row.result_json === null) return undefined;
    return schema.parse(JSON.parse(row.result_json));
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
    const created = now();
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT INTO audits (id, trial_id, combined, policy, summary, created_at) VALUES (?, ?, ?, ?, ?, ?)',
        )
        .run(id, trialId, combined, policy, summary, created);
      const insert = this.db.prepare(
        'INSERT INTO verdicts (audit_id, detector, version, verdict, rule, summary, evidence_json) VALUES (?, ?, ?, ?, ?, ?, ?)',
      );
      for (const v of verdicts) {
        insert.run(
          id,
          v.detector,
          v.version,
          v.verdict,
          v.rule ?? null,
          v.summary,
          JSON.stringify(v.evidence),
        );
      }
    })();
    return { id, trial_id: trialId, combined, policy, summary, created_at: created };
  }

  audits(trialId: string): AuditWithVerdicts[] {
    const audits = this.db
      .prepare('SELECT * FROM audits WHERE trial_id = ? ORDER BY created_at, id')
      .all(trialId)
      .map((r) => AuditRowSchema.parse(r));
    const verdicts = this.db.prepare('SELECT * FROM verdicts WHERE audit_id = ? ORDER BY detector');
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
  }): void {
    this.db
      .prepare(
        'INSERT INTO baselines (model, benchmark, kind, accuracy, source, eval_run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(b.model, b.benchmark, b.kind, b.accuracy, b.source, b.evalRunId ?? null, now());
  }

  /** Newest baseline per (model, benchmark). */
  baselines(): BaselineRow[] {
    return this.db
      .prepare(
        `SELECT * FROM baselines b WHERE id = (SELECT id FROM baselines c WHERE c.model = b.model
           AND c.benchmark = b.benchmark ORDER BY created_at DESC, id DESC LIMIT 1) ORDER BY model, benchmark`,
      )
      .all()
      .map((r) => BaselineRowSchema.parse(r));
  }
}
