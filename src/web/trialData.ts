import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { z } from 'zod';
import { DEMO_EXPERIMENT, isDemoTrial } from '../core/demoNamespace.ts';
import {
  DownloadEventSchema,
  EgressEventSchema,
  InRunEvalEventSchema,
  ManifestEntrySchema,
  ModelCallEventSchema,
  type MonitorSample,
  MonitorSampleSchema,
  PHASES,
  type Phase,
} from '../core/trial.ts';
import { trialLayout } from '../core/trialLayout.ts';
import type { Db } from '../store/db.ts';
import { EvalRepo, type EvalRunRow } from '../store/evalRepo.ts';
import {
  type AuditWithVerdicts,
  isDemoEvalRun,
  type PhaseRow,
  type Trial,
  TrialRepo,
} from '../store/trialRepo.ts';
import { type LineIndex, LineIndexCache, MAX_LINE_BYTES } from './lineIndex.ts';

/** Text files shown inline are cut here; the full file stays on disk. */
const MAX_INLINE_BYTES = 256 * 1024;
/** Search results per request; the client asks again from `nextFrom` for more. */
export const SEARCH_CAP = 200;
export const MAX_PAGE = 500;

/** Ledgers the dashboard shows; the URL names one of these keys, never a path. */
export const LEDGERS = {
  egress: { title: 'Egress', file: 'egress', schema: EgressEventSchema, format: 'jsonl' },
  model_calls: { title: 'Model calls', file: 'modelCalls', schema: ModelCallEventSchema, format: 'jsonl' },
  downloads: { title: 'Downloads', file: 'downloads', schema: DownloadEventSchema, format: 'jsonl' },
  inrun_evals: {
    title: 'In-run evaluations',
    file: 'inRunEvals',
    schema: InRunEvalEventSchema,
    format: 'jsonl',
  },
  monitor: { title: 'Resource monitor', file: 'monitor', schema: MonitorSampleSchema, format: 'jsonl' },
  manifest_start: {
    title: 'Manifest (start)',
    file: 'manifestStart',
    schema: ManifestEntrySchema,
    format: 'json',
  },
  manifest_end: { title: 'Manifest (end)', file: 'manifestEnd', schema: ManifestEntrySchema, format: 'json' },
} as const satisfies Record<
  string,
  {
    title: string;
    file: keyof ReturnType<typeof trialLayout>['ledgers'];
    schema: z.ZodType;
    format: 'jsonl' | 'json';
  }
>;
export type LedgerName = keyof typeof LEDGERS;

export function isLedgerName(name: string): name is LedgerName {
  return Object.hasOwn(LEDGERS, name);
}

export interface GpuUse {
  ts: string;
  gpus: number;
  utilPercent: number | null;
  memoryUsedMiB: number | null;
  memoryTotalMiB: number | null;
}

export interface LiveStatus {
  /** The trial's status, or for a trial run by a batch scheduler its merged state (`ptb run status`). */
  status: string;
  phase: string | null;
  /** Seconds of the agent's budget left while the agent phase runs; null otherwise. */
  timeLeftSeconds: number | null;
  /** Seconds the agent has used (running: so far; finished: total). */
  agentSeconds: number | null;
  gpu: GpuUse | null;
  score: { value: number; source: 'final' | 'evaluated' | 'in-run' } | null;
}

export interface TrialSummary {
  id: string;
  experiment: string;
  agent: string;
  agentConfig: string;
  baseModel: string;
  benchmark: string;
  hours: number;
  seed: number;
  status: string;
  phase: string | null;
  agentOutcome: string | null;
  auditVerdict: string | null;
  finalScore: number | null;
  accuracy: number | null;
  substituted: boolean | null;
  costUsd: number | null;
  createdAt: string;
  live: LiveStatus;
}

type JsonRecord = Record<string, unknown>;

export type SampleFilter = 'all' | 'right' | 'wrong';

/** Evaluation runs listed at most (newest first). */
const MAX_EVAL_RUNS = 2000;

export interface EvalRunSummary {
  id: string;
  benchmark: string;
  model: string;
  engine: string;
  status: EvalRunRow['status'];
  accuracy: number | null;
  /** Lines of samples.jsonl (null when the run wrote none). */
  samples: number | null;
  error: string | null;
  outDir: string;
  createdAt: string;
  finishedAt: string | null;
  /** The trial whose final evaluation this is, or null for `ptb eval` and baselines. */
  trialId: string | null;
  demo: boolean;
}

/** What a batch scheduler says about a trial it runs (schedulers/experimentRun.ts TrialRunStatus). */
export interface ScheduledView {
  state: string;
  schedulerState: string | null;
  job: string | null;
  node: string | null;
  log: string;
  reason: string | null;
}

/** Read access to the store and trial files for the dashboard. Never writes. */
export class TrialData {
  /** Trials run by a batch scheduler, by id (set by the server; none otherwise). */
  scheduled: (id: string) => ScheduledView | undefined = () => undefined;

  readonly trials: TrialRepo;
  readonly evals: EvalRepo;
  readonly indexes = new LineIndexCache();
  private readonly jsonCache = new Map<string, { key: string; value: unknown }>();

  constructor(db: Db) {
    this.trials = new TrialRepo(db);
    this.evals = new EvalRepo(db);
  }

  /** Exact id, or a unique prefix (what users paste). */
  find(id: string): Trial | undefined {
    return this.trials.find(id);
  }

  /** Experiments with their trial counts; the demo's (src/core/demoNamespace.ts) only with `includeDemo`. */
  experiments(opts: { includeDemo?: boolean } = {}): {
    name: string;
    createdAt: string;
    trials: number;
    byStatus: Record<string, number>;
    demo: boolean;
  }[] {
    const all = this.trials.list();
    return this.trials
      .listExperiments()
      .map((e) => {
        const byStatus: Record<string, number> = {};
        const own = all.filter((t) => t.experiment === e.name);
        for (const t of own) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1;
        const demo = e.name === DEMO_EXPERIMENT || (own.length > 0 && own.every(isDemoTrial));
        return { name: e.name, createdAt: e.created_at, trials: e.trials, byStatus, demo };
      })
      .filter((e) => opts.includeDemo || !e.demo);
  }

  /**
   * Trial summaries. The demo's trials are left out unless `includeDemo`, or the filter names their
   * experiment (then they were asked for).
   */
  summaries(
    filter: { experiment?: string; status?: Trial['status']; includeDemo?: boolean } = {},
    now = Date.now(),
  ): TrialSummary[] {
    const { includeDemo, ...where } = filter;
    return this.trials
      .list(where)
      .filter((t) => includeDemo || where.experiment !== undefined || !isDemoTrial(t))
      .map((t) => this.summary(t, now));
  }

  /** How many of the stored trials are the demo's (the pages say they are hidden). */
  demoTrialCount(): number {
    return this.trials.list().filter(isDemoTrial).length;
  }

  summary(t: Trial, now = Date.now()): TrialSummary {
    return {
      id: t.id,
      experiment: t.experiment,
      agent: t.agent,
      agentConfig: t.agent_config,
      baseModel: t.base_model,
      benchmark: t.benchmark,
      hours: t.hours,
      seed: t.seed,
      status: this.scheduled(t.id)?.state ?? t.status,
      phase: t.phase,
      agentOutcome: t.agent_outcome,
      auditVerdict: t.audit_verdict,
      finalScore: t.final_score,
      accuracy: t.accuracy,
      substituted: t.substituted === null ? null : t.substituted === 1,
      costUsd: t.cost_usd,
      createdAt: t.created_at,
      live: this.live(t, now),
    };
  }

  live(t: Trial, now = Date.now()): LiveStatus {
    const layout = trialLayout(t.dir);
    const agent = this.trials.phase(t.id, 'agent');
    let timeLeftSeconds: number | null = null;
    let agentSeconds: number | null = t.agent_seconds;
    if (agent?.status === 'started' && t.status === 'running') {
      const elapsed = (now - Date.parse(agent.started_at)) / 1000;
      agentSeconds = elapsed;
      timeLeftSeconds = Math.max(0, t.hours * 3600 - elapsed);
    }
    const active = t.status === 'running';
    const gpu = active ? gpuUse(lastJsonLine(layout.ledgers.monitor)) : null;
    let score: LiveStatus['score'] = null;
    if (t.final_score !== null) score = { value: t.final_score, source: 'final' };
    else if (t.accuracy !== null) score = { value: t.accuracy, source: 'evaluated' };
    else {
      const last = this.lastInRunAccuracy(layout.ledgers.inRunEvals);
      if (last !== null) score = { value: last, source: 'in-run' };
    }
    return {
      status: this.scheduled(t.id)?.state ?? t.status,
      phase: t.phase,
      timeLeftSeconds,
      agentSeconds,
      gpu,
      score,
    };
  }

  /** Accuracy of the newest in-run evaluation that produced one (ledgers are short: read it all). */
  private lastInRunAccuracy(path: string): number | null {
    if (!existsSync(path)) return null;
    const index = this.indexes.get(path);
    for (let n = index.count - 1; n >= 0 && n >= index.count - 200; n--) {
      const [line] = index.read(n, 1);
      const parsed = parseJson(line?.text ?? '');
      const ev = InRunEvalEventSchema.safeParse(parsed);
      if (ev.success && ev.data.accuracy !== null) return ev.data.accuracy;
    }
    return null;
  }

  detail(t: Trial, now = Date.now()) {
    const layout = trialLayout(t.dir);
    // In phase order (rows started in the same millisecond would otherwise tie).
    const phases: PhaseRow[] = this.trials
      .phases(t.id)
      .sort((a, b) => PHASES.indexOf(a.phase as Phase) - PHASES.indexOf(b.phase as Phase));
    const audits: AuditWithVerdicts[] = this.trials.audits(t.id);
    const prompt = readTextCapped(layout.prompt, MAX_INLINE_BYTES);
    const metrics = this.readJson(layout.metrics, 4 * 1024 * 1024);
    const samples = this.samplesFile(t);
    return {
      trial: this.summary(t, now),
      spec: t.spec,
      dir: t.dir,
      source: t.source,
      error: t.error,
      agentSeconds: t.agent_seconds,
      inputTokens: t.input_tokens,
      outputTokens: t.output_tokens,
      finishedAt: t.finished_at,
      updatedAt: t.updated_at,
      phases,
      audits,
      prompt,
      metrics,
      ledgers: this.ledgerSummaries(t),
      trace: {
        solveOutBytes: fileSize(layout.solveOut),
        trajectoryBytes: fileSize(layout.trajectory),
      },
      samples: samples ? { path: samples, count: this.indexes.get(samples).count } : null,
    };
  }

  // ---- ledgers ----

  ledgerSummaries(t: Trial) {
    const layout = trialLayout(t.dir);
    const out: Record<string, { title: string; exists: boolean; count: number; extra: JsonRecord }> = {};
    for (const [name, def] of Object.entries(LEDGERS)) {
      const path = layout.ledgers[def.file];
      const exists = existsSync(path);
      let count = 0;
      const extra: JsonRecord = {};
      if (exists && def.format === 'jsonl') {
        count = this.indexes.get(path).count;
        if (name === 'model_calls') Object.assign(extra, this.modelCallTotals(path));
        if (name === 'egress') extra.denied = this.countWhere(path, (r) => r.allowed === false);
      } else if (exists) {
        const arr = this.readJson(path, 256 * 1024 * 1024);
        count = Array.isArray(arr) ? arr.length : 0;
      }
      out[name] = { title: def.title, exists, count, extra };
    }
    return out;
  }

  private modelCallTotals(path: string) {
    return this.cached(`totals:${path}`, path, () => {
      let inputTokens = 0;
      let outputTokens = 0;
      let costUsd = 0;
      let unpriced = 0;
      let calls = 0;
      for (const row of this.allJsonl(path)) {
        const ev = ModelCallEventSchema.safeParse(row);
        if (!ev.success) continue;
        calls++;
        inputTokens += ev.data.inputTokens;
        outputTokens += ev.data.outputTokens;
        if (ev.data.costUsd === null) unpriced++;
        else costUsd += ev.data.costUsd;
      }
      return { calls, inputTokens, outputTokens, costUsd, unpriced };
    });
  }

  private countWhere(path: string, pred: (row: JsonRecord) => boolean): number {
    return this.cached(`count:${path}`, path, () => {
      let n = 0;
      for (const row of this.allJsonl(path))
        if (row && typeof row === 'object' && pred(row as JsonRecord)) n++;
      return n;
    });
  }

  private *allJsonl(path: string): Generator<unknown> {
    const index = this.indexes.get(path);
    for (let n = 0; n < index.count; n += MAX_PAGE) {
      for (const line of index.read(n, MAX_PAGE)) yield parseJson(line.text);
    }
  }

  /** The resource monitor's valid samples, in order (one a minute: a 10-hour trial has about 600). */
  monitorSamples(t: Trial): MonitorSample[] {
    const path = trialLayout(t.dir).ledgers.monitor;
    if (!existsSync(path)) return [];
    return this.cached(`monitor:${path}`, path, () => {
      const out: MonitorSample[] = [];
      for (const row of this.allJsonl(path)) {
        const parsed = MonitorSampleSchema.safeParse(row);
        if (parsed.success) out.push(parsed.data);
      }
      return out;
    });
  }

  ledgerPage(t: Trial, name: LedgerName, offset: number, limit: number) {
    const def = LEDGERS[name];
    const path = trialLayout(t.dir).ledgers[def.file];
    if (!existsSync(path)) return { name, title: def.title, exists: false, total: 0, offset, rows: [] };
    if (def.format === 'json') {
      const arr = this.readJson(path, 256 * 1024 * 1024);
      const list = Array.isArray(arr) ? arr : [];
      const rows = list
        .slice(offset, offset + limit)
        .map((value, i) => validated(def.schema, value, offset + i));
      return { name, title: def.title, exists: true, total: list.length, offset, rows };
    }
    const index = this.indexes.get(path);
    const rows = index.read(offset, limit).map((line) => {
      if (line.truncated) return { n: line.n, ok: false, error: 'line too long to show', raw: line.text };
      return validated(def.schema, parseJson(line.text), line.n, line.text);
    });
    return { name, title: def.title, exists: true, total: index.count, offset, rows };
  }

  // ---- trajectory ----

  /**
   * The raw trace (solve_out.txt): a page of lines. Only the lines up to the page are indexed before
   * answering; the rest of the index is built in the background, and `total` is null until it is.
   */
  tracePage(t: Trial, offset: number, limit: number) {
    const path = trialLayout(t.dir).solveOut;
    if (!existsSync(path)) {
      return { source: 'solve_out' as const, exists: false, total: 0, known: 0, bytes: 0, offset, lines: [] };
    }
    const index = this.indexes.lazy(path);
    const lines = index.read(offset, limit).map(splitTimestamp);
    if (!index.complete) void index.completeInBackground();
    return {
      source: 'solve_out' as const,
      exists: true,
      total: index.complete ? index.count : null,
      known: index.count,
      bytes: index.bytes,
      offset,
      lines,
    };
  }

  traceSearch(t: Trial, q: string, from: number) {
    const path = trialLayout(t.dir).solveOut;
    if (!existsSync(path))
      return { source: 'solve_out' as const, exists: false, q, total: 0, matches: [], nextFrom: null };
    const index = this.indexes.get(path);
    const found = index.search(q, from, SEARCH_CAP);
    const matches = found.matches.map((n) => splitTimestamp(index.read(n, 1)[0]!));
    return {
      source: 'solve_out' as const,
      exists: true,
      q,
      total: index.count,
      matches,
      nextFrom: found.nextFrom,
    };
  }

  private trajectoryDoc(t: Trial) {
    const path = trialLayout(t.dir).trajectory;
    const doc = existsSync(path) ? this.readJson(path, 1024 * 1024 * 1024) : undefined;
    const meta = doc && typeof doc === 'object' ? (doc as JsonRecord) : {};
    const events = Array.isArray(meta.events) ? (meta.events as unknown[]) : [];
    return {
      events,
      header: {
        source: 'events' as const,
        exists: doc !== undefined,
        format: typeof meta.format === 'string' ? meta.format : null,
        model: typeof meta.model === 'string' ? meta.model : null,
        totals: meta.totals ?? null,
        total: events.length,
      },
    };
  }

  /** The parsed trajectory (trajectory.json), a page of events. */
  eventsPage(t: Trial, offset: number, limit: number) {
    const { events, header } = this.trajectoryDoc(t);
    return {
      ...header,
      offset,
      events: events
        .slice(offset, offset + limit)
        .map((event, i) => ({ n: offset + i, event: capEvent(event) })),
    };
  }

  /** Events whose JSON text contains `q` (case-insensitive), from event `from`, at most SEARCH_CAP. */
  eventsSearch(t: Trial, q: string, from: number) {
    const { events, header } = this.trajectoryDoc(t);
    const needle = q.toLowerCase();
    const matches: { n: number; event: unknown }[] = [];
    let nextFrom: number | null = null;
    for (let n = Math.max(0, from); n < events.length; n++) {
      if (!JSON.stringify(events[n]).toLowerCase().includes(needle)) continue;
      if (matches.length === SEARCH_CAP) {
        nextFrom = n;
        break;
      }
      matches.push({ n, event: capEvent(events[n]) });
    }
    return { ...header, q, matches, nextFrom };
  }

  // ---- per-sample results ----

  /** samples.jsonl of the final evaluation: the run named by the evaluate phase, else the newest under eval/. */
  samplesFile(t: Trial): string | null {
    const result = this.trials.phase(t.id, 'evaluate' satisfies Phase)?.result_json;
    const parsed = result ? parseJson(result) : null;
    if (parsed && typeof parsed === 'object') {
      const r = parsed as JsonRecord;
      for (const key of ['evalRunId', 'runId']) {
        const id = r[key];
        const run = typeof id === 'string' ? this.evals.getRun(id) : undefined;
        if (run && existsSync(join(run.out_dir, 'samples.jsonl'))) return join(run.out_dir, 'samples.jsonl');
      }
    }
    const evalDir = trialLayout(t.dir).evalDir;
    const direct = join(evalDir, 'samples.jsonl');
    if (existsSync(direct)) return direct;
    let best: { path: string; mtime: number } | null = null;
    if (existsSync(evalDir)) {
      for (const entry of readdirSync(evalDir, { withFileTypes: true })) {
        if (!entry.isDirectory()) continue;
        const p = join(evalDir, entry.name, 'samples.jsonl');
        if (!existsSync(p)) continue;
        const mtime = statSync(p).mtimeMs;
        if (!best || mtime > best.mtime) best = { path: p, mtime };
      }
    }
    return best?.path ?? null;
  }

  samplesPage(t: Trial, offset: number, limit: number, filter: SampleFilter = 'all', q = '') {
    return this.samplesPageOf(this.samplesFile(t), offset, limit, filter, q);
  }

  /** A page of the samples in `path` (a samples.jsonl), filtered by score and a search string. */
  samplesPageOf(path: string | null, offset: number, limit: number, filter: SampleFilter = 'all', q = '') {
    if (!path || !existsSync(path))
      return { exists: false, total: 0, matched: 0, offset, rows: [] as SampleRow[] };
    const all = this.allSamples(path);
    const needle = q.toLowerCase();
    const selected = all.filter(
      (s) =>
        (filter === 'all' || (filter === 'right' ? s.score > 0 : s.score <= 0)) &&
        (!needle || `${s.id}\n${s.answer ?? ''}\n${s.response ?? ''}`.toLowerCase().includes(needle)),
    );
    return {
      exists: true,
      total: all.length,
      matched: selected.length,
      offset,
      rows: selected.slice(offset, offset + limit),
    };
  }

  /** Mean score over every sample in `path`, or null without samples. */
  meanScoreOf(path: string | null): number | null {
    if (!path || !existsSync(path)) return null;
    const all = this.allSamples(path);
    return all.length ? all.reduce((a, s) => a + s.score, 0) / all.length : null;
  }

  // ---- evaluations (`ptb eval` runs, baselines and trials' final evaluations) ----

  /**
   * Every evaluation run, newest first, with the trial it belongs to (its directory lies inside the
   * trial's). The demo's runs (its baseline and its trial's evaluation) only with `includeDemo`.
   */
  evalRuns(opts: { includeDemo?: boolean } = {}): EvalRunSummary[] {
    const trials = this.trials.list();
    const marks = this.trials.demoEvalMarks(trials);
    return this.evals
      .listRuns(MAX_EVAL_RUNS)
      .map((run) => {
        const trial = trials.find((t) => run.out_dir.startsWith(`${t.dir}/`)) ?? null;
        return this.evalRunSummary(run, trial?.id ?? null, isDemoEvalRun(run, marks));
      })
      .filter((r) => opts.includeDemo || !r.demo);
  }

  evalRun(id: string): EvalRunRow | undefined {
    return this.evals.getRun(id);
  }

  evalRunSummary(run: EvalRunRow, trialId: string | null = null, demo = false): EvalRunSummary {
    const metrics = parseJson(run.metrics_json ?? '') as JsonRecord | null;
    const samples = this.evalSamplesFile(run);
    return {
      id: run.id,
      benchmark: run.benchmark,
      model: run.model,
      engine: run.engine,
      status: run.status,
      accuracy: metrics && typeof metrics.accuracy === 'number' ? metrics.accuracy : null,
      samples: samples ? this.indexes.get(samples).count : null,
      error: run.error,
      outDir: run.out_dir,
      createdAt: run.created_at,
      finishedAt: run.finished_at,
      trialId,
      demo,
    };
  }

  evalSamplesFile(run: EvalRunRow): string | null {
    const path = join(run.out_dir, 'samples.jsonl');
    return existsSync(path) ? path : null;
  }

  /** Every sample (id, score, answer, response cut to MAX_LINE_BYTES) of a trial's final evaluation. */
  samples(t: Trial): SampleRow[] {
    const path = this.samplesFile(t);
    return path ? this.allSamples(path) : [];
  }

  private allSamples(path: string): SampleRow[] {
    return this.cached(`samples:${path}`, path, () => {
      const index = this.indexes.get(path);
      const rows: SampleRow[] = [];
      for (let n = 0; n < index.count; n += MAX_PAGE) {
        for (const line of index.read(n, MAX_PAGE)) {
          const v = parseJson(line.text);
          if (!v || typeof v !== 'object') {
            if (line.text.trim())
              rows.push({
                n: line.n,
                id: `line ${line.n + 1}`,
                score: 0,
                answer: null,
                response: line.text,
                finishReason: null,
                bad: true,
              });
            continue;
          }
          const r = v as JsonRecord;
          rows.push({
            n: line.n,
            id: String(r.id ?? `line ${line.n + 1}`),
            score: typeof r.score === 'number' ? r.score : 0,
            answer: r.answer === null || r.answer === undefined ? null : String(r.answer),
            response: typeof r.response === 'string' ? r.response : null,
            finishReason: typeof r.finish_reason === 'string' ? r.finish_reason : null,
            bad: false,
          });
        }
      }
      return rows;
    });
  }

  // ---- small caches keyed by file size + mtime ----

  private cached<T>(key: string, path: string, compute: () => T): T {
    const st = statSync(path, { throwIfNoEntry: false });
    const stamp = st ? `${st.size}:${st.mtimeMs}:${st.ino}` : 'missing';
    const hit = this.jsonCache.get(key);
    if (hit && hit.key === stamp) return hit.value as T;
    const value = compute();
    this.jsonCache.set(key, { key: stamp, value });
    if (this.jsonCache.size > 256) this.jsonCache.delete(this.jsonCache.keys().next().value as string);
    return value;
  }

  /** Parsed JSON file, or undefined when missing, too large or invalid. */
  readJson(path: string, maxBytes: number): unknown {
    return this.cached(`json:${path}`, path, () => {
      const text = readTextCapped(path, maxBytes);
      if (text === null || text.truncated) return undefined;
      return parseJson(text.text) ?? undefined;
    });
  }
}

export interface SampleRow {
  n: number;
  id: string;
  score: number;
  answer: string | null;
  response: string | null;
  finishReason: string | null;
  bad: boolean;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function validated(schema: z.ZodType, value: unknown, n: number, rawText?: string) {
  const parsed = schema.safeParse(value);
  if (parsed.success) return { n, ok: true, row: parsed.data };
  return { n, ok: false, error: 'does not match the ledger schema', raw: rawText ?? JSON.stringify(value) };
}

const TS_PREFIX = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\] ?/;

function splitTimestamp(line: { n: number; text: string; bytes: number; truncated: boolean }) {
  const m = TS_PREFIX.exec(line.text);
  return m
    ? { n: line.n, ts: m[1]!, text: line.text.slice(m[0].length), truncated: line.truncated }
    : { n: line.n, ts: null, text: line.text, truncated: line.truncated };
}

/** Long event texts are cut so one giant tool result cannot stall the page. */
function capEvent(event: unknown): unknown {
  const json = JSON.stringify(event);
  if (json.length <= MAX_LINE_BYTES * 4) return event;
  if (event && typeof event === 'object') {
    const e = { ...(event as JsonRecord) };
    for (const k of Object.keys(e)) {
      const v = JSON.stringify(e[k]) ?? '';
      if (v.length > MAX_LINE_BYTES) e[k] = `${v.slice(0, MAX_LINE_BYTES)}… (${v.length} characters, cut)`;
    }
    return e;
  }
  return `${json.slice(0, MAX_LINE_BYTES)}… (cut)`;
}

export function fileSize(path: string): number | null {
  const st = statSync(path, { throwIfNoEntry: false });
  return st?.isFile() ? st.size : null;
}

/** The first `maxBytes` of a text file; null when it does not exist. */
export function readTextCapped(
  path: string,
  maxBytes: number,
): { text: string; bytes: number; truncated: boolean } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const take = Math.min(size, maxBytes);
    const buf = Buffer.allocUnsafe(take);
    const n = take > 0 ? readSync(fd, buf, 0, take, 0) : 0;
    return { text: buf.subarray(0, n).toString('utf8'), bytes: size, truncated: size > take };
  } finally {
    closeSync(fd);
  }
}

/** The last `maxBytes` of a file (a log's newest lines), or null when it cannot be read. */
export function readTailCapped(
  path: string,
  maxBytes: number,
): { text: string; bytes: number; truncated: boolean } | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const take = Math.min(size, maxBytes);
    const buf = Buffer.allocUnsafe(take);
    const n = take > 0 ? readSync(fd, buf, 0, take, size - take) : 0;
    return { text: buf.subarray(0, n).toString('utf8'), bytes: size, truncated: size > take };
  } finally {
    closeSync(fd);
  }
}

/** The last complete JSON line of a file, reading only its tail. */
export function lastJsonLine(path: string, tailBytes = 64 * 1024): unknown {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const size = fstatSync(fd).size;
    const take = Math.min(size, tailBytes);
    const buf = Buffer.allocUnsafe(take);
    readSync(fd, buf, 0, take, size - take);
    const lines = buf.toString('utf8').split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const v = parseJson(lines[i]!.trim());
      if (v !== null) return v;
    }
    return null;
  } finally {
    closeSync(fd);
  }
}

function gpuUse(sample: unknown): GpuUse | null {
  const parsed = MonitorSampleSchema.safeParse(sample);
  if (!parsed.success) return null;
  const gpus = parsed.data.gpus;
  const nums = (xs: (number | null)[]) => xs.filter((x): x is number => x !== null);
  const util = nums(gpus.map((g) => g.utilPercent));
  const used = nums(gpus.map((g) => g.memoryUsedMiB));
  const total = nums(gpus.map((g) => g.memoryTotalMiB));
  return {
    ts: parsed.data.ts,
    gpus: gpus.length,
    utilPercent: util.length ? util.reduce((a, b) => a + b, 0) / util.length : null,
    memoryUsedMiB: used.length ? used.reduce((a, b) => a + b, 0) : null,
    memoryTotalMiB: total.length ? total.reduce((a, b) => a + b, 0) : null,
  };
}

export type { LineIndex };
