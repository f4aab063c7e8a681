import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../core/errors.ts';

/**
 * Models an agent must not submit, merge or fine-tune in place of its base model, per base, as data.
 * The reference's rule (its task prompt and disallowed-usage judge): only fine-tune the base; any
 * model not derived from it by the agent — first of all the official instruction-tuned twin — may
 * not be stored in final_model or fine-tuned. The instruct twin comes first; other public
 * fine-tunes of the same base follow. Each entry may pin a revision (a commit); without one the
 * harness resolves `main` at its first fetch and keeps that commit (the cache records it), so every
 * later audit compares with the same weights.
 *
 * Users add entries (or whole bases) in `PTB_HOME/forbidden-models.json`, same shape:
 *   { "Org/Base": [{ "repo": "Org/Derived", "revision": "<commit>", "relation": "fine-tune" }] }
 */
export const ForbiddenModelSchema = z.object({
  /** Hugging Face repo id. */
  repo: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'a Hugging Face repo id (org/name)'),
  /** Commit to compare with; absent: the commit `main` pointed to at the first fetch. */
  revision: z.string().min(1).optional(),
  relation: z.enum(['instruct-twin', 'fine-tune']).default('fine-tune'),
  /** Where the pin comes from, or why the model is listed. */
  note: z.string().optional(),
});
export type ForbiddenModel = z.infer<typeof ForbiddenModelSchema>;

export const ForbiddenModelTableSchema = z.record(z.string(), z.array(ForbiddenModelSchema));

/** ptb's own list, for the reference's four base models. */
export const FORBIDDEN_MODELS: Readonly<Record<string, readonly ForbiddenModel[]>> = {
  'Qwen/Qwen3-1.7B-Base': [
    {
      repo: 'Qwen/Qwen3-1.7B',
      revision: '70d244cc86ccca08cf5af4e1e306ecf908b1ad5e',
      relation: 'instruct-twin',
      note: 'the commit public projects pin for Qwen3-1.7B',
    },
  ],
  'Qwen/Qwen3-4B-Base': [
    { repo: 'Qwen/Qwen3-4B', relation: 'instruct-twin' },
    { repo: 'Qwen/Qwen3-4B-Instruct-2507', relation: 'fine-tune', note: 'official later instruct release' },
    { repo: 'Qwen/Qwen3-4B-Thinking-2507', relation: 'fine-tune', note: 'official later reasoning release' },
  ],
  'HuggingFaceTB/SmolLM3-3B-Base': [{ repo: 'HuggingFaceTB/SmolLM3-3B', relation: 'instruct-twin' }],
  'google/gemma-3-4b-pt': [{ repo: 'google/gemma-3-4b-it', relation: 'instruct-twin' }],
};

const norm = (id: string) => id.trim().toLowerCase();

/** The user's additions, validated; {} when the file is absent. */
export function readUserForbiddenModels(path: string | null): Record<string, ForbiddenModel[]> {
  if (!path || !existsSync(path)) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UserError(`${path}: not valid JSON (${(err as Error).message})`, 'fix or remove the file');
  }
  const parsed = ForbiddenModelTableSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UserError(
      `${path}: ${issue.path.join('.')}: ${issue.message}`,
      'expected {"Org/Base": [{"repo": "Org/Model", "revision": "<commit>", "relation": "fine-tune"}]}',
    );
  }
  return parsed.data;
}

/**
 * The disallowed derivatives of a base model (case-insensitive id): ptb's list, then the user's
 * additions, then `extra` (repo ids, `repo@revision`), each repo once, the instruct twin first.
 */
export function forbiddenModelsFor(
  baseModel: string,
  opts: { user?: Record<string, ForbiddenModel[]>; extra?: readonly string[] } = {},
): ForbiddenModel[] {
  const pick = (table: Readonly<Record<string, readonly ForbiddenModel[]>>) =>
    Object.entries(table)
      .filter(([base]) => norm(base) === norm(baseModel))
      .flatMap(([, list]) => list);
  const extra = (opts.extra ?? []).map((id): ForbiddenModel => {
    const [repo, revision] = id.split('@');
    return ForbiddenModelSchema.parse({
      repo,
      ...(revision ? { revision } : {}),
      note: 'named by the trial',
    });
  });
  const out: ForbiddenModel[] = [];
  for (const m of [...pick(FORBIDDEN_MODELS), ...pick(opts.user ?? {}), ...extra]) {
    if (!out.some((o) => norm(o.repo) === norm(m.repo))) out.push(m);
  }
  return out.sort((a, b) => Number(b.relation === 'instruct-twin') - Number(a.relation === 'instruct-twin'));
}
