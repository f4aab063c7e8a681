import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../core/errors.ts';
import { assertReadableFile } from '../core/userPaths.ts';
import type { AssetCache, AssetCacheOptions } from '../hub/assetCache.ts';
import { type AssetPin, githubRawUrl } from '../hub/assetPin.ts';
import { sha256File } from '../hub/sha256.ts';

/** The reference repository commit whose `src/eval/templates/` ptb evaluates with. */
export const REFERENCE_REPO = 'aisa-group/PostTrainBench';
export const REFERENCE_COMMIT = '9082063a62e10e040f1acacdec2ccfc1467e0c00';

export type TemplateName = 'qwen3' | 'gemma3' | 'gemma3_tool_calling' | 'smollm' | 'llama3';

const SHIPPED: readonly TemplateName[] = ['qwen3', 'gemma3', 'gemma3_tool_calling', 'smollm'];

/** Pins for the four templates the reference ships (fetched at run time, never vendored). */
export const TEMPLATE_PINS: readonly AssetPin[] = SHIPPED.map((name) => ({
  part: name,
  description: `chat template ${name}.jinja of the reference`,
  url: githubRawUrl(REFERENCE_REPO, REFERENCE_COMMIT, `src/eval/templates/${name}.jinja`),
  sha256: null,
  format: 'text' as const,
  fileName: `${name}.jinja`,
}));

export const TEMPLATE_GROUP = 'templates';

type Family = 'qwen' | 'llama' | 'gemma' | 'smollm';

/** The reference checks the model path first, in this order ... */
const PATH_ORDER: readonly Family[] = ['qwen', 'llama', 'gemma', 'smollm'];
/** ... and only then `config.json` architectures[0], in this order. */
const ARCH_ORDER: readonly Family[] = ['gemma', 'llama', 'qwen', 'smollm'];

function templateFor(family: Family, usesTools: boolean): TemplateName {
  if (family === 'qwen') return 'qwen3';
  if (family === 'gemma') return usesTools ? 'gemma3_tool_calling' : 'gemma3';
  if (family === 'smollm') return 'smollm';
  return 'llama3';
}

export interface TemplateChoice {
  name: TemplateName;
  /** `path` when the model path decided, `config` when config.json did. */
  reason: 'path' | 'config';
}

/**
 * The reference's selection rule (spec §3.0): a lower-cased substring of the model path decides
 * first, so `.../gsm8k_Qwen_Qwen3-1.7B-Base_1/final_model` gets qwen3 whatever its config says.
 */
export function chooseTemplate(modelPath: string, usesTools: boolean): TemplateChoice {
  const lower = modelPath.toLowerCase();
  for (const family of PATH_ORDER) {
    if (lower.includes(family)) return { name: templateFor(family, usesTools), reason: 'path' };
  }
  const configPath = join(modelPath, 'config.json');
  if (existsSync(configPath)) {
    let arch = '';
    try {
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as { architectures?: unknown };
      arch = Array.isArray(config.architectures) ? String(config.architectures[0] ?? '').toLowerCase() : '';
    } catch {
      throw new UserError(
        `${configPath} is not valid JSON`,
        'Repair the checkpoint or pass --template FILE.',
      );
    }
    for (const family of ARCH_ORDER) {
      if (arch.includes(family)) return { name: templateFor(family, usesTools), reason: 'config' };
    }
  }
  throw new UserError(
    `cannot choose a chat template for ${modelPath}: neither its path nor config.json names qwen, llama, gemma or smollm`,
    'Pass --template FILE (a Jinja chat template); the choice is recorded with the results.',
  );
}

export interface ResolvedTemplate {
  name: string;
  path: string;
  sha256: string;
  /** `server`: an external endpoint applies its own template (engine `openai`). */
  source: 'reference' | 'override' | 'server';
  reason: 'path' | 'config' | 'flag' | 'engine';
}

/** For an endpoint ptb does not start, the template is the server's business; record that. */
export const SERVER_SIDE_TEMPLATE: ResolvedTemplate = {
  name: 'server-side',
  path: '',
  sha256: '',
  source: 'server',
  reason: 'engine',
};

/** The template file for an evaluation: the explicit override, or the reference's pinned choice. */
export async function resolveTemplate(
  modelPath: string,
  usesTools: boolean,
  override: string | undefined,
  cache: AssetCache,
  opts: AssetCacheOptions,
): Promise<ResolvedTemplate> {
  if (override) {
    const path = resolve(override);
    assertReadableFile(path, '--template', { hint: 'Pass a Jinja chat template file (e.g. qwen3.jinja).' });
    return { name: path, path, sha256: await sha256File(path), source: 'override', reason: 'flag' };
  }
  const choice = chooseTemplate(modelPath, usesTools);
  const pin = TEMPLATE_PINS.find((p) => p.part === choice.name);
  if (!pin) {
    throw new UserError(
      `the reference selects ${choice.name}.jinja for ${modelPath}, but does not ship that template`,
      'Pass --template FILE.',
    );
  }
  const asset = await cache.resolve(TEMPLATE_GROUP, pin, opts);
  return {
    name: choice.name,
    path: asset.path,
    sha256: asset.entry.sha256,
    source: 'reference',
    reason: choice.reason,
  };
}
