/**
 * Model names as the reference's aggregation sees them. Cells are keyed by the short name (the last
 * path segment: `Qwen3-1.7B-Base`), which is what upstream run folder names carry; ptb trials carry
 * Hugging Face ids or local paths, so both sides are reduced to the same key.
 */

/** The four base models of the reference, with the official instruct model of each. */
export const REFERENCE_MODELS = [
  { base: 'Qwen/Qwen3-1.7B-Base', instruct: 'Qwen/Qwen3-1.7B' },
  { base: 'Qwen/Qwen3-4B-Base', instruct: 'Qwen/Qwen3-4B' },
  { base: 'HuggingFaceTB/SmolLM3-3B-Base', instruct: 'HuggingFaceTB/SmolLM3-3B' },
  { base: 'google/gemma-3-4b-pt', instruct: 'google/gemma-3-4b-it' },
] as const;

export type ModelKind = 'base' | 'instruct' | 'other';

/** Cell key of a model id, path or upstream short name (`_` becomes `-` so names survive run folder names). */
export function shortModelName(model: string): string {
  const trimmed = model.replace(/[/\\]+$/, '');
  const last = trimmed.split(/[/\\]/).pop() ?? trimmed;
  return last.replace(/[_:[\]]/g, '-');
}

export const REFERENCE_BASE_SHORT: readonly string[] = REFERENCE_MODELS.map((m) => shortModelName(m.base));

/** The reference's kinds: `*-Base` / `*-pt` checkpoints are base models, the four twins are instruct. */
export function modelKind(model: string): ModelKind {
  const short = shortModelName(model);
  if (REFERENCE_MODELS.some((m) => shortModelName(m.instruct) === short)) return 'instruct';
  if (/-(base|pt)$/i.test(short)) return 'base';
  return 'other';
}

/** Short name of the official instruct twin of a base model, when the reference names one. */
export function instructTwin(baseModel: string): string | undefined {
  const short = shortModelName(baseModel);
  const pair = REFERENCE_MODELS.find((m) => shortModelName(m.base) === short);
  return pair ? shortModelName(pair.instruct) : undefined;
}

/**
 * `org_model` as in upstream run folder names (RESULT_PREFIX_SAFE): a Hugging Face id keeps its org;
 * a local checkpoint path becomes `local_<name>`. `_` inside either part would break the reference's
 * 4-way split of run folder names, so it becomes `-`.
 */
export function upstreamModelPart(model: string): { org: string; name: string } {
  const clean = (s: string) => s.replace(/[_:[\]/\\]/g, '-');
  const hfId = /^([\w.-]+)\/([\w.-]+)$/.exec(model);
  if (hfId && !model.startsWith('.')) return { org: clean(hfId[1]!), name: clean(hfId[2]!) };
  return { org: 'local', name: shortModelName(model) };
}
