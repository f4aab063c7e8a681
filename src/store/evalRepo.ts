import type Database from 'better-sqlite3';
import { z } from 'zod';
import type { Score } from '../core/schemas.ts';
import type { Db } from './db.ts';

export const EvalRunStatusSchema = z.enum(['running', 'interrupted', 'failed', 'completed']);
export type EvalRunStatus = z.infer<typeof EvalRunStatusSchema>;

const EvalRunRowSchema = z.object({
  id: z.string(),
  benchmark: z.string(),
  model: z.string(),
  engine: z.string(),
  config_key: z.string(),
  config_json: z.string(),
  status: EvalRunStatusSchema,
  out_dir: z.string(),
  metrics_json: z.string().nullable(),
  rung: z.number().nullable(),
  error: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  finished_at: z.string().nullable(),
});
export type EvalRunRow = z.infer<typeof EvalRunRowSchema>;

const EvalSampleRowSchema = z.object({
  run_id: z.string(),
  sample_id: z.string(),
  max_tokens: z.number(),
  position: z.number(),
  request_json: z.string(),
  reply_text: z.string().nullable(),
  tool_calls_json: z.string().nullable(),
  finish_reason: z.string().nullable(),
  answer: z.string().nullable(),
  score: z.number(),
  score_json: z.string(),
  prompt_tokens: z.number().nullable(),
  completion_tokens: z.number().nullable(),
  latency_ms: z.number().nullable(),
  created_at: z.string(),
});
export type EvalSampleRow = z.infer<typeof EvalSampleRowSchema>;

export interface NewSample {
  runId: string;
  sampleId: string;
  maxTokens: number;
  position: number;
  request: unknown;
  replyText: string | null;
  toolCalls: unknown;
  finishReason: string | null;
  score: Score;
  promptTokens: number | null;
  completionTokens: number | null;
  latencyMs: number | null;
}

const now = () => new Date().toISOString();

/** Thin repository over the evaluation tables; every row read back is validated. */
export class EvalRepo {
  private readonly insertSample: Database.Statement;

  constructor(private readonly db: Db) {
    // Prepared once: recording a sample is on the hot path of every evaluation.
    this.insertSample = db.prepare(
      `INSERT OR IGNORE INTO eval_samples (run_id, sample_id, max_tokens, position, request_json, reply_text, tool_calls_json,
        finish_reason, answer, score, score_json, prompt_tokens, completion_tokens, latency_ms, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  createRun(run: {
    id: string;
    benchmark: string;
    model: string;
    engine: string;
    configKey: string;
    config: unknown;
    outDir: string;
  }): EvalRunRow {
    const t = now();
    this.db
      .prepare(
        `INSERT INTO eval_runs (id, benchmark, model, engine, config_key, config_json, status, out_dir, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)`,
      )
      .run(
        run.id,
        run.benchmark,
        run.model,
        run.engine,
        run.configKey,
        JSON.stringify(run.config),
        run.outDir,
        t,
        t,
      );
    return this.getRun(run.id)!;
  }

  getRun(id: string): EvalRunRow | undefined {
    const row = this.db.prepare('SELECT * FROM eval_runs WHERE id = ?').get(id);
    return row === undefined ? undefined : EvalRunRowSchema.parse(row);
  }

  /** Newest unfinished run with the same configuration: the one `ptb eval` resumes. */
  findResumable(configKey: string): EvalRunRow | undefined {
    const row = this.db
      .prepare(
        `SELECT * FROM eval_runs WHERE config_key = ? AND status IN ('running', 'interrupted', 'failed')
         ORDER BY created_at DESC LIMIT 1`,
      )
      .get(configKey);
    return row === undefined ? undefined : EvalRunRowSchema.parse(row);
  }

  /** Newest completed run with this configuration (a seed of a seeded evaluation done earlier). */
  findCompleted(configKey: string): EvalRunRow | undefined {
    const row = this.db
      .prepare(
        `SELECT * FROM eval_runs WHERE config_key = ? AND status = 'completed' ORDER BY created_at DESC LIMIT 1`,
      )
      .get(configKey);
    return row === undefined ? undefined : EvalRunRowSchema.parse(row);
  }

  listRuns(limit = 50): EvalRunRow[] {
    return this.db
      .prepare('SELECT * FROM eval_runs ORDER BY created_at DESC LIMIT ?')
      .all(limit)
      .map((r) => EvalRunRowSchema.parse(r));
  }

  setStatus(
    id: string,
    status: EvalRunStatus,
    fields: { error?: string | null; metrics?: unknown; rung?: number } = {},
  ): void {
    const finished = status === 'completed' || status === 'failed' ? now() : null;
    this.db
      .prepare(
        `UPDATE eval_runs SET status = ?, error = ?, metrics_json = COALESCE(?, metrics_json), rung = COALESCE(?, rung),
         updated_at = ?, finished_at = ? WHERE id = ?`,
      )
      .run(
        status,
        fields.error ?? null,
        fields.metrics === undefined ? null : JSON.stringify(fields.metrics),
        fields.rung ?? null,
        now(),
        finished,
        id,
      );
  }

  /** Number the next attempt after every earlier one of this run (attempts survive resumes). */
  startAttempt(runId: string, rung: number, maxTokens: number, logPathFor: (n: number) => string): number {
    return this.db.transaction(() => {
      const n =
        ((
          this.db.prepare('SELECT MAX(n) AS n FROM eval_attempts WHERE run_id = ?').get(runId) as {
            n: number | null;
          }
        ).n ?? 0) + 1;
      this.db
        .prepare(
          `INSERT INTO eval_attempts (run_id, n, rung, max_tokens, status, log_path, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)`,
        )
        .run(runId, n, rung, maxTokens, logPathFor(n), now());
      return n;
    })();
  }

  finishAttempt(
    runId: string,
    n: number,
    status: 'failed' | 'completed' | 'interrupted',
    error?: string,
  ): void {
    this.db
      .prepare('UPDATE eval_attempts SET status = ?, error = ?, finished_at = ? WHERE run_id = ? AND n = ?')
      .run(status, error ?? null, now(), runId, n);
  }

  attempts(
    runId: string,
  ): Array<{ n: number; rung: number; max_tokens: number; status: string; error: string | null }> {
    return this.db
      .prepare('SELECT n, rung, max_tokens, status, error FROM eval_attempts WHERE run_id = ? ORDER BY n')
      .all(runId) as Array<{
      n: number;
      rung: number;
      max_tokens: number;
      status: string;
      error: string | null;
    }>;
  }

  /** Mark attempts left `running` by a killed process as interrupted. */
  closeDanglingAttempts(runId: string): void {
    this.db
      .prepare(
        `UPDATE eval_attempts SET status = 'interrupted', finished_at = ? WHERE run_id = ? AND status = 'running'`,
      )
      .run(now(), runId);
  }

  /** Insert once: a sample recorded at a max-tokens setting is never overwritten. */
  recordSample(s: NewSample): void {
    this.insertSample.run(
      s.runId,
      s.sampleId,
      s.maxTokens,
      s.position,
      JSON.stringify(s.request),
      s.replyText,
      s.toolCalls === undefined ? null : JSON.stringify(s.toolCalls),
      s.finishReason,
      s.score.answer ?? null,
      s.score.value,
      JSON.stringify(s.score),
      s.promptTokens,
      s.completionTokens,
      s.latencyMs,
      now(),
    );
  }

  samples(runId: string, maxTokens: number): EvalSampleRow[] {
    return this.db
      .prepare('SELECT * FROM eval_samples WHERE run_id = ? AND max_tokens = ? ORDER BY position')
      .all(runId, maxTokens)
      .map((r) => EvalSampleRowSchema.parse(r));
  }
}
