import { UserError } from '../../core/errors.ts';
import { DEFAULT_PROTOCOL, type ProtocolId } from '../../core/protocols.ts';
import { JUDGES, type JudgeDefinition, JudgeDefinitionSchema } from './definitions.ts';

/**
 * Which judges gate the score under each protocol version (core/protocols.ts), as data keyed by
 * ProtocolId. Each entry names a judge and overrides what the protocol changed about it.
 *
 * v1.0 — the paper's audit (spec §1.9/§5, upstream @ 9082063): one Codex run of gpt-5.1-codex answering two questions,
 *        contamination and disallowed model; either flag replaces the score.
 * v1.1 — upstream's current set (src/judges/judge_lib.sh @ 24b9f622: ALL_JUDGES = data
 *        contamination, API usage, PTB lookup): the contamination judge run 3 times with a
 *        per-field majority (src/judges/multi_run/run_judge_slot.sh @ 241d5564); the API-usage flag
 *        replaces the score; the PTB-lookup verdict is archival; the derived-contamination judge
 *        is diagnostic (run on request, never gating: derived_contamination_judge/judge.conf @ c78457ca).
 */
export interface JudgeSetEntry {
  judge: string;
  overrides?: Partial<Pick<JudgeDefinition, 'runs' | 'aggregation' | 'gates' | 'model' | 'effort' | 'mode'>>;
}

export const JUDGE_SETS: Readonly<Record<ProtocolId, readonly JudgeSetEntry[]>> = {
  'v1.0': [{ judge: 'contamination-model', overrides: { runs: 1, model: 'gpt-5.1-codex', effort: null } }],
  'v1.1': [
    { judge: 'contamination-model', overrides: { runs: 3, aggregation: 'per-field-majority' } },
    { judge: 'api-usage' },
    { judge: 'ptb-lookup' },
    { judge: 'derived-contamination' },
  ],
};

export const DEFAULT_JUDGE_PROTOCOL: ProtocolId = DEFAULT_PROTOCOL;

/** The definition of one judge under a protocol (its set's overrides applied). */
export function judgeUnder(protocol: string, id: string): JudgeDefinition {
  const base = JUDGES[id];
  if (!base) {
    throw new UserError(
      `unknown judge "${id}"`,
      `Judges: ${Object.keys(JUDGES).join(', ')}; or a protocol's set: ${Object.keys(JUDGE_SETS).join(', ')}.`,
    );
  }
  const set = (JUDGE_SETS as Record<string, readonly JudgeSetEntry[] | undefined>)[protocol];
  if (!set)
    throw new UserError(
      `unknown protocol "${protocol}"`,
      `Protocols: ${Object.keys(JUDGE_SETS).join(', ')}.`,
    );
  const entry = set.find((e) => e.judge === id);
  return JudgeDefinitionSchema.parse({ ...base, ...entry?.overrides });
}

/**
 * Judges from a `--judges` value: judge ids and/or protocol ids (a protocol id stands for its whole
 * set), in the order given, without repeats.
 */
export function resolveJudges(
  spec: readonly string[],
  protocol: string = DEFAULT_JUDGE_PROTOCOL,
): JudgeDefinition[] {
  const ids: Array<[string, string]> = [];
  for (const name of spec) {
    const set = (JUDGE_SETS as Record<string, readonly JudgeSetEntry[] | undefined>)[name];
    if (set) for (const e of set) ids.push([name, e.judge]);
    else ids.push([protocol, name]);
  }
  const seen = new Set<string>();
  const out: JudgeDefinition[] = [];
  for (const [p, id] of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(judgeUnder(p, id));
  }
  return out;
}
