import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { repoRoot } from '../core/paths.ts';
import { grantSandboxRead, runInSandbox } from '../sandbox/bwrap.ts';
import { interpreterBinds } from '../sandbox/pythonRunner.ts';
import { readJsonObject } from './shared/modelFiles.ts';
import { clip, type Findings } from './shared/verdicts.ts';

/**
 * What a tokenizer does, compared between final_model and its base: the parts of tokenizer.json
 * that act on text (normalizer, pre-tokenizer, post-processor, decoder, the model's vocabulary),
 * every added token with its flags, the slow-tokenizer files, the encoding settings of
 * tokenizer_config.json, and every chat template from every file a loader reads one from. Then
 * behaviour itself: the benchmark's evaluation prompts encoded by both tokenizers (see
 * python/ptb_tokenizer_behaviour.py).
 */

const COMPONENTS = ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder'] as const;
/** Components that rewrite the text a model reads or the text it outputs. */
const TEXT_REWRITING = new Set(['normalizer', 'post_processor', 'decoder']);
/** Files other than tokenizer.json that define a tokenizer (slow tokenizers, extra tokens). */
const TOKENIZER_FILES = [
  'vocab.json',
  'merges.txt',
  'vocab.txt',
  'tokenizer.model',
  'spiece.model',
  'added_tokens.json',
  'special_tokens_map.json',
];
/** tokenizer_config.json settings that change how text is encoded or decoded. */
const ENCODING_SETTINGS = [
  'tokenizer_class',
  'add_bos_token',
  'add_eos_token',
  'add_prefix_space',
  'legacy',
  'do_lower_case',
  'clean_up_tokenization_spaces',
  'split_special_tokens',
  'tokenizer_file',
  'vocab_file',
  'merges_file',
];

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const keys = Object.keys(value as object).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

function fileDigest(path: string): string | null {
  try {
    return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}

interface TokenizerParts {
  components: Record<string, string>;
  model: string | null;
  added: Map<string, string>;
}

function partsOf(dir: string): TokenizerParts | null {
  const json = readJsonObject(join(dir, 'tokenizer.json'));
  if (!json) return null;
  const components: Record<string, string> = {};
  for (const c of COMPONENTS) components[c] = canonical(json[c]);
  const added = new Map<string, string>();
  for (const entry of Array.isArray(json.added_tokens) ? json.added_tokens : []) {
    const e = entry as Record<string, unknown>;
    if (typeof e.content === 'string') added.set(e.content, canonical({ ...e }));
  }
  return { components, model: json.model ? digest(canonical(json.model)) : null, added };
}

/** Structural comparison of the tokenizers (flags and warnings into `findings`). */
export function compareTokenizerRules(finalDir: string, baseDir: string, findings: Findings): void {
  const fin = partsOf(finalDir);
  const base = partsOf(baseDir);
  if (fin && base) {
    for (const c of COMPONENTS) {
      if (fin.components[c] === base.components[c]) continue;
      const detail = `tokenizer.json ${c} differs from the base's: ${clip(fin.components[c]!, 240)} (base: ${clip(base.components[c]!, 160)})`;
      if (TEXT_REWRITING.has(c))
        findings.flag('tokenizer-rules-changed', `final_model/tokenizer.json#${c}`, detail, { component: c });
      else
        findings.warn('tokenizer-rules-changed', `final_model/tokenizer.json#${c}`, detail, { component: c });
    }
    if (fin.model !== base.model) {
      findings.flag(
        'tokenizer-vocabulary-changed',
        'final_model/tokenizer.json#model',
        "the tokenizer's vocabulary or merges differ from the base's",
      );
    }
    for (const [content, entry] of fin.added) {
      const was = base.added.get(content);
      if (was !== undefined && was !== entry) {
        findings.flag(
          'added-token-changed',
          'final_model/tokenizer.json#added_tokens',
          `added token ${JSON.stringify(content)} changed its definition: ${clip(entry, 200)} (base: ${clip(was, 200)})`,
        );
      }
    }
  } else if (!fin && base) {
    findings.warn(
      'tokenizer-json-missing',
      'final_model/tokenizer.json',
      'the base has a tokenizer.json, the submission does not (loaders then build one from other files)',
    );
  }
  for (const file of TOKENIZER_FILES) {
    const a = existsSync(join(finalDir, file)) ? fileDigest(join(finalDir, file)) : null;
    const b = existsSync(join(baseDir, file)) ? fileDigest(join(baseDir, file)) : null;
    if (a === b || file === 'special_tokens_map.json') continue;
    const what = a === null ? 'is missing' : b === null ? 'is not in the base' : 'differs from the base';
    findings.warn('tokenizer-file-changed', `final_model/${file}`, `${file} ${what}`);
  }
  const fc = readJsonObject(join(finalDir, 'tokenizer_config.json')) ?? {};
  const bc = readJsonObject(join(baseDir, 'tokenizer_config.json')) ?? {};
  for (const key of ENCODING_SETTINGS) {
    if (canonical(fc[key]) === canonical(bc[key])) continue;
    findings.warn(
      'tokenizer-setting-changed',
      'final_model/tokenizer_config.json',
      `${key} = ${clip(canonical(fc[key]), 120)} (base: ${clip(canonical(bc[key]), 120)})`,
      { key },
    );
  }
}

export interface NamedTemplate {
  name: string;
  source: string;
  text: string;
}

function namedTemplates(value: unknown, source: string): NamedTemplate[] {
  if (typeof value === 'string') return [{ name: 'default', source, text: value }];
  if (Array.isArray(value)) {
    return value
      .filter(
        (v): v is { name: string; template: string } =>
          typeof v?.name === 'string' && typeof v?.template === 'string',
      )
      .map((v) => ({ name: v.name, source, text: v.template }));
  }
  return [];
}

/**
 * Every chat template a loader could pick, from every file that holds one: chat_template.jinja,
 * chat_template.json, tokenizer_config.json (a string or named templates), and the
 * additional_chat_templates/ folder newer transformers save named templates in.
 */
export function allChatTemplates(dir: string): NamedTemplate[] {
  const out: NamedTemplate[] = [];
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja))
    out.push({ name: 'default', source: 'chat_template.jinja', text: readFileSync(jinja, 'utf8') });
  out.push(
    ...namedTemplates(readJsonObject(join(dir, 'chat_template.json'))?.chat_template, 'chat_template.json'),
  );
  out.push(
    ...namedTemplates(
      readJsonObject(join(dir, 'tokenizer_config.json'))?.chat_template,
      'tokenizer_config.json',
    ),
  );
  const extra = join(dir, 'additional_chat_templates');
  if (existsSync(extra) && statSync(extra).isDirectory()) {
    for (const file of readdirSync(extra).sort()) {
      if (!file.endsWith('.jinja')) continue;
      out.push({
        name: file.replace(/\.jinja$/, ''),
        source: `additional_chat_templates/${file}`,
        text: readFileSync(join(extra, file), 'utf8'),
      });
    }
  }
  return out;
}

/**
 * A submission's chat templates never reach the final evaluation: the harness renders every prompt
 * with the benchmark's pinned template for the model family (the reference passes `--chat-template`
 * to vLLM, so the tokenizer's own template is ignored; src/eval/chatTemplates.ts). A changed
 * template is therefore evidence, not a flag: honest trainers routinely save the template they
 * trained with. Test items written into a template are the contamination detector's (it scans
 * final_model's text files), and a template that changes the family the harness picks by is
 * `architecture-changed`.
 */
const NOT_EVALUATED =
  "; the final evaluation renders prompts with the harness's pinned template, not this one";

/**
 * Every template of the submission against the base's template of the same name (all of the
 * submission's copies, wherever they sit: a loader may pick any one), and templates the base does
 * not have. Compared after trimming outer whitespace, as the reference compares them. Warnings:
 * see NOT_EVALUATED.
 */
export function compareChatTemplates(finalDir: string, baseDir: string, findings: Findings): number {
  const submitted = allChatTemplates(finalDir);
  const base = allChatTemplates(baseDir);
  const baseByName = new Map<string, NamedTemplate>();
  for (const t of base) if (!baseByName.has(t.name)) baseByName.set(t.name, t);
  let differing = 0;
  for (const t of submitted) {
    const original = baseByName.get(t.name);
    if (!original) {
      differing++;
      findings.warn(
        'chat-template-changed',
        `final_model/${t.source}`,
        `the submission adds a chat template${t.name === 'default' ? '' : ` named ${t.name}`} the base does not have${NOT_EVALUATED}`,
        { template: t.name },
      );
    } else if (t.text.trim() !== original.text.trim()) {
      differing++;
      findings.warn(
        'chat-template-changed',
        `final_model/${t.source}`,
        `chat template${t.name === 'default' ? '' : ` ${t.name}`} differs from the base's (${t.text.trim().length} vs ${original.text.trim().length} characters): ${firstDifference(t.text.trim(), original.text.trim())}${NOT_EVALUATED}`,
        { template: t.name },
      );
    }
  }
  const names = new Set(submitted.map((t) => t.name));
  for (const [name, t] of baseByName) {
    if (names.has(name)) continue;
    differing++;
    findings.warn(
      'chat-template-changed',
      'final_model',
      `the base has a chat template${name === 'default' ? '' : ` named ${name}`} (${t.source}) but the submission has none${NOT_EVALUATED}`,
      { template: name },
    );
  }
  return differing;
}

function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `first difference at character ${i}: submitted "${clip(a.slice(Math.max(0, i - 20), i + 60), 90)}" vs base "${clip(b.slice(Math.max(0, i - 20), i + 60), 90)}"`;
}

export const BEHAVIOUR_SCRIPT = join(repoRoot, 'python', 'ptb_tokenizer_behaviour.py');

const Difference = z.object({
  id: z.string(),
  at: z.number().optional(),
  base: z.string().optional(),
  final: z.string().optional(),
  special_tokens: z.boolean().optional(),
  base_tokens: z.number().optional(),
  final_tokens: z.number().optional(),
});
export const BehaviourSchema = z.object({
  items: z.number(),
  encode: z.object({
    differs: z.array(Difference),
    differs_count: z.number(),
    same_text: z.array(Difference),
    same_text_count: z.number(),
  }),
  own_template: z.object({
    base: z.boolean(),
    final: z.boolean(),
    differs: z.array(Difference),
    differs_count: z.number(),
  }),
  seconds: z.number(),
});
export type Behaviour = z.infer<typeof BehaviourSchema>;

/** Encode the evaluation prompts with both tokenizers inside the sandbox (no network, folders read-only). */
export async function runTokenizerBehaviour(req: {
  python: string;
  baseModel: string;
  finalModel: string;
  template: string | null;
  items: Array<{ id: string; messages: unknown[] }>;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<Behaviour> {
  grantSandboxRead([req.baseModel, req.finalModel, BEHAVIOUR_SCRIPT]);
  const IN = {
    script: '/opt/ptb/tokenizer_behaviour.py',
    base: '/opt/models/base',
    final: '/opt/models/final',
  };
  const result = await runInSandbox({
    argv: [req.python, '-I', IN.script],
    system: 'usr',
    readOnlyBinds: [
      ...interpreterBinds(req.python).map((p) => ({ source: p })),
      { source: BEHAVIOUR_SCRIPT, target: IN.script },
      { source: req.baseModel, target: IN.base },
      { source: req.finalModel, target: IN.final },
    ],
    network: 'none',
    env: {
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      HF_HOME: '/tmp/hf',
      TOKENIZERS_PARALLELISM: 'false',
    },
    stdin: JSON.stringify({ base: IN.base, final: IN.final, template: req.template, items: req.items }),
    timeoutMs: req.timeoutMs ?? 10 * 60_000,
    limits: { memoryBytes: 8 * 1024 ** 3 },
    maxOutputBytes: 16 * 1024 ** 2,
    signal: req.signal,
  });
  if (result.exitCode !== 0) {
    const why = result.timedOut
      ? 'timed out'
      : result.oomKilled
        ? 'ran out of memory'
        : `exited with ${result.exitCode ?? result.signal}`;
    const tail = result.stderr.toString('utf8').trim().split('\n').slice(-4).join(' | ');
    throw new Error(`the tokenizer comparison ${why}: ${tail.slice(-600)}`);
  }
  const parsed = BehaviourSchema.safeParse(JSON.parse(result.stdout.toString('utf8')));
  if (!parsed.success)
    throw new Error(`the tokenizer comparison's output is malformed: ${parsed.error.message}`);
  return parsed.data;
}
