import { FORBIDDEN_MODELS } from './forbiddenModels.ts';

/**
 * Names of the models an agent must not submit or fine-tune in place of its base model (the data is
 * in forbiddenModels.ts). Downloading one for viewing or inference is allowed by the reference's
 * judge rules, so a download alone is evidence, not a flag; the weight-provenance detector decides
 * whether such weights reached final_model.
 */
export const INSTRUCT_TWINS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  Object.entries(FORBIDDEN_MODELS).map(([base, list]) => [base, list.map((m) => m.repo)]),
);

function norm(id: string): string {
  return id.trim().toLowerCase();
}

/** The disallowed twins of a base model (case-insensitive id match); [] for an unknown base. */
export function disallowedModelsFor(baseModel: string): readonly string[] {
  const key = Object.keys(INSTRUCT_TWINS).find((k) => norm(k) === norm(baseModel));
  return key ? INSTRUCT_TWINS[key]! : [];
}

/**
 * Whether a Hugging Face repo id names a disallowed twin of `baseModel`, including quantised or
 * re-uploaded copies that keep the twin's name (`Qwen/Qwen3-1.7B-FP8`, `unsloth/Qwen3-1.7B`).
 */
export function isDisallowedModel(baseModel: string, repo: string): string | null {
  const r = norm(repo);
  const name = r.split('/').pop() ?? r;
  for (const twin of disallowedModelsFor(baseModel)) {
    const t = norm(twin);
    const twinName = t.split('/').pop()!;
    if (r === t) return twin;
    // Same model name under another org, or with a format suffix (-FP8, -GGUF, -AWQ, -bnb-4bit...).
    if (
      name === twinName ||
      new RegExp(
        `^${escapeRegExp(twinName)}-(fp8|gguf|awq|gptq|int4|int8|bnb-[48]bit|mlx.*|unsloth.*)$`,
      ).test(name)
    ) {
      return twin;
    }
  }
  return null;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
