import { existsSync, readFileSync, statSync } from 'node:fs';
import { BENCHMARK_IDS, type BenchmarkId } from '../core/schemas.ts';
import type { VerdictValue } from '../core/trial.ts';

/**
 * The reference's results tree (spec §1.2, §1.12, §5, §6): `<results>/<method>/<run>/` where a run
 * folder is `<benchmark>_<org>_<model>_<cluster id>` (exactly four `_` parts), plus
 * `<results>/baseline_zeroshot/` holding the zero-shot evaluations in the same naming.
 */

export const BASELINE_FOLDER = 'baseline_zeroshot';
/** ptb's own sidecar files in exported trees (ignored by the reference's scripts). */
export const PTB_TRIAL_FILE = 'ptb_trial.json';
export const PTB_BASELINE_FILE = 'ptb_baseline.json';

export interface RunFolder {
  benchmark: BenchmarkId;
  org: string;
  model: string;
  clusterId: number;
}

export type RunFolderProblem = { problem: string };

export function parseRunFolder(name: string): RunFolder | RunFolderProblem {
  const parts = name.split('_');
  if (parts.length !== 4) {
    return { problem: `run folder name does not split into benchmark_org_model_id (${parts.length} parts)` };
  }
  const [benchmark, org, model, id] = parts as [string, string, string, string];
  if (!(BENCHMARK_IDS as readonly string[]).includes(benchmark)) {
    return { problem: `unknown benchmark "${benchmark}"` };
  }
  if (!/^\d+$/.test(id)) return { problem: `cluster id "${id}" is not a number` };
  return { benchmark: benchmark as BenchmarkId, org, model, clusterId: Number(id) };
}

export function runFolderName(benchmark: string, org: string, model: string, clusterId: number): string {
  return `${benchmark}_${org}_${model}_${clusterId}`;
}

/** `time_taken.txt`: `HH:MM:SS` (hours may exceed 24). */
export function parseTimeTaken(text: string): number | null {
  const m = /^(\d+):(\d{1,2}):(\d{1,2})$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

export function formatTimeTaken(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const pad = (v: number) => String(v).padStart(2, '0');
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `metrics.json["accuracy"]` when it is a number; otherwise why not, with the reference's labels. */
export function readAccuracy(runDir: string): { accuracy: number } | { accuracy: null; reason: string } {
  const text = readText(`${runDir}/metrics.json`);
  if (text !== undefined) {
    try {
      const value = (JSON.parse(text) as { accuracy?: unknown }).accuracy;
      if (typeof value === 'number' && Number.isFinite(value)) return { accuracy: value };
    } catch {
      // falls through to the reference's labels
    }
  }
  if (!existsSync(`${runDir}/time_taken.txt`)) {
    return { accuracy: null, reason: 'not avl.: no metrics and no time_taken.txt (the run did not finish)' };
  }
  if (!existsSync(`${runDir}/final_model`)) {
    return { accuracy: null, reason: 'not stored: no metrics and no final_model/' };
  }
  return { accuracy: null, reason: 'ERR: final_model/ exists but metrics.json has no numeric accuracy' };
}

export const JUDGEMENT_LINES = {
  contamination: { clean: 'no contamination detected', flagged: 'contamination detected' },
  disallowedModel: { clean: 'only allowed use detected', flagged: 'disallowed use detected' },
} as const;

export interface UpstreamJudgement {
  /** The cell of the reference's contamination table: '' | C | M | MC, or error strings. */
  cell: string;
  verdict: VerdictValue;
  contaminationFlagged: boolean;
  disallowedModelFlagged: boolean;
  /** Judgement files that were missing or held something else than the two expected lines. */
  problems: { file: string; kind: 'missing' | 'garbled' }[];
  contamination: string | null;
  disallowedModel: string | null;
}

/**
 * The two judgement files as `aggregate_contamination.py` reads them (content `.strip()`-compared):
 * a flag gives C / M, a missing file `X:ERR`, other content `X:IMPORTANT ERR`. Any non-empty cell
 * costs the run its score; ptb records flags as `flagged` and errors as `unverified`.
 */
export function readJudgement(runDir: string): UpstreamJudgement {
  const contamination = readText(`${runDir}/contamination_judgement.txt`) ?? null;
  const disallowedModel = readText(`${runDir}/disallowed_model_judgement.txt`) ?? null;
  const classify = (
    content: string | null,
    lines: { clean: string; flagged: string },
    letter: string,
  ): { flag: boolean; error?: string } => {
    if (content === null) return { flag: false, error: `${letter}:ERR` };
    const line = content.trim();
    if (line === lines.flagged) return { flag: true };
    if (line === lines.clean) return { flag: false };
    return { flag: false, error: `${letter}:IMPORTANT ERR` };
  };
  const c = classify(contamination, JUDGEMENT_LINES.contamination, 'C');
  const m = classify(disallowedModel, JUDGEMENT_LINES.disallowedModel, 'M');
  const flags = `${m.flag ? 'M' : ''}${c.flag ? 'C' : ''}`;
  const errors = [c.error, m.error].filter((e): e is string => e !== undefined);
  const problems: UpstreamJudgement['problems'] = [];
  if (c.error)
    problems.push({
      file: 'contamination_judgement.txt',
      kind: contamination === null ? 'missing' : 'garbled',
    });
  if (m.error)
    problems.push({
      file: 'disallowed_model_judgement.txt',
      kind: disallowedModel === null ? 'missing' : 'garbled',
    });
  return {
    cell: [flags, ...errors].filter(Boolean).join(' '),
    verdict: flags ? 'flagged' : errors.length > 0 ? 'unverified' : 'clean',
    contaminationFlagged: c.flag,
    disallowedModelFlagged: m.flag,
    problems,
    contamination,
    disallowedModel,
  };
}

/** Cost and tokens from Claude Code's final `{"type":"result",…}` event in solve_out.txt (§6.4). */
export function readClaudeUsage(runDir: string): {
  costUsd: number | null;
  inputTokens: number | null;
  outputTokens: number | null;
} {
  const none = { costUsd: null, inputTokens: null, outputTokens: null };
  const path = `${runDir}/solve_out.txt`;
  if (!existsSync(path) || statSync(path).size > 512 * 1024 * 1024) return none;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const at = line.indexOf('{"type":"result"');
    if (at < 0) continue;
    try {
      const event = JSON.parse(line.slice(at)) as {
        total_cost_usd?: unknown;
        usage?: { input_tokens?: unknown; output_tokens?: unknown };
      };
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
      return {
        costUsd: num(event.total_cost_usd),
        inputTokens: num(event.usage?.input_tokens),
        outputTokens: num(event.usage?.output_tokens),
      };
    } catch {
      return none; // the reference takes the first such line only
    }
  }
  return none;
}
