import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  TASK_CONTEXT_COMMIT,
  TASK_CONTEXT_REPO,
  taskContextFiles,
  taskContextGroup,
} from '../benchmarks/taskContext.ts';
import type { Benchmark } from '../benchmarks/types.ts';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { UserError } from '../core/errors.ts';
import { repoRoot } from '../core/paths.ts';
import type { TrialSpec } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import { TEMPLATE_GROUP, TEMPLATE_PINS } from '../eval/chatTemplates.ts';
import type { AssetCache } from '../hub/assetCache.ts';
import { buildManifest } from '../ledgers/manifest.ts';
import { timerScript } from './timer.ts';

/** The agent-facing evaluation entry point (same interface and file name as the reference's). */
export const AGENT_EVALUATE_SCRIPT = join(repoRoot, 'python', 'task', 'evaluate.py');

/** `org/name` → `org_name`, as the reference names result folders (`/ : [ ]` → `_`). */
export function safeModelName(model: string): string {
  const isPath = model.startsWith('/') || model.startsWith('.');
  return (isPath ? basename(model) : model).replace(/[/:[\]_]/g, (c) => (c === '_' ? '-' : '_'));
}

/**
 * The trial directory name, in the reference's run-folder shape `<benchmark>_<org>_<model>_<id>`: the
 * final model's path then contains the base model's name, which the reference's template rule reads.
 */
export function trialDirName(spec: TrialSpec, id: string): string {
  const model = safeModelName(spec.baseModel);
  return `${spec.benchmark}_${model.includes('_') ? model : `local_${model}`}_${id}`;
}

export interface PreparedWorkspace {
  /** Files the harness wrote into task/ (relative paths), hashed in ledgers/pristine_manifest.json. */
  pristineFiles: string[];
  createdAtMs: number;
  /** The reference's task-folder files that could not be had (offline and not cached, or a failed fetch). */
  missingTaskContext: string[];
}

/**
 * Build the agent's workspace: `task/` with evaluate.py, templates/, timer.sh, the reference's
 * task-folder files of the benchmark (evaluation_code/ for Arena-Hard and HealthBench, BFCL's
 * helper; ledgers/task_context.json says which were placed) and the task files,
 * a private /tmp, and the prompt. Everything the harness wrote is hashed so the audit can prove it
 * unchanged; the whole task directory is hashed as the start manifest.
 */
export async function prepareWorkspace(opts: {
  spec: TrialSpec;
  benchmark: Benchmark;
  layout: TrialLayout;
  cache: AssetCache;
  prompt: string;
  offline: boolean;
  now?: number;
  onLine?: (line: string) => void;
}): Promise<PreparedWorkspace> {
  const { spec, layout } = opts;
  const createdAtMs = opts.now ?? Date.now();
  for (const dir of [
    layout.work.task,
    join(layout.work.task, 'templates'),
    layout.work.tmp,
    layout.ledgers.dir,
    join(layout.work.dir, 'inrun'),
  ]) {
    mkdirSync(dir, { recursive: true });
  }
  const task = layout.work.task;
  const written: string[] = [];
  const put = (rel: string, write: (path: string) => void) => {
    const path = join(task, rel);
    mkdirSync(join(path, '..'), { recursive: true });
    write(path);
    written.push(rel);
  };

  put('evaluate.py', (p) => copyFileSync(AGENT_EVALUATE_SCRIPT, p));
  put('timer.sh', (p) => writeFileSync(p, timerScript(createdAtMs, spec.hours), { mode: 0o755 }));
  // The reference's four templates, when they are in the cache (or can be fetched).
  for (const pin of TEMPLATE_PINS) {
    const asset = opts.offline
      ? await opts.cache.cached(TEMPLATE_GROUP, pin)
      : await opts.cache.resolve(TEMPLATE_GROUP, pin, {}).catch(() => undefined);
    if (asset) put(`templates/${pin.fileName}`, (p) => copyFileSync(asset.path, p));
  }
  // The reference's extra files for this benchmark (evaluation_code/, BFCL's helper), as it lays them out.
  const group = taskContextGroup(spec.benchmark);
  const missingTaskContext: string[] = [];
  for (const pin of taskContextFiles(spec.benchmark)) {
    const asset = await (opts.offline
      ? opts.cache.cached(group, pin)
      : opts.cache.resolve(group, pin, {})
    ).catch((err: unknown) => {
      missingTaskContext.push(`${pin.dest} (${(err as Error).message})`);
      return undefined;
    });
    if (asset) put(pin.dest, (p) => copyFileSync(asset.path, p));
    else if (!missingTaskContext.some((m) => m.startsWith(`${pin.dest} `)))
      missingTaskContext.push(`${pin.dest} (not in the cache and ptb is offline)`);
  }
  writeJsonAtomic(join(layout.ledgers.dir, 'task_context.json'), {
    source: `${TASK_CONTEXT_REPO}@${TASK_CONTEXT_COMMIT}`,
    placed: taskContextFiles(spec.benchmark).length - missingTaskContext.length,
    missing: missingTaskContext,
  });
  if (missingTaskContext.length > 0) {
    opts.onLine?.(
      `the task folder lacks ${missingTaskContext.length} of the reference's ${spec.benchmark} files (run \`ptb data pull ${group}\`): ${missingTaskContext.slice(0, 3).join('; ')}`,
    );
  }
  if (spec.evalTemplate) {
    put(`templates/${basename(spec.evalTemplate)}`, (p) => copyFileSync(spec.evalTemplate!, p));
  }
  for (const [name, source] of Object.entries(spec.taskFiles)) {
    if (name.includes('..') || name.startsWith('/'))
      throw new UserError(`task file name ${name} must be relative`);
    if (!existsSync(source)) throw new UserError(`task file ${source} (for ${name}) does not exist`);
    if (statSync(source).isDirectory()) {
      put(name, (p) => cpSync(source, p, { recursive: true }));
    } else {
      put(name, (p) => copyFileSync(source, p));
    }
  }
  writeFileSync(layout.prompt, opts.prompt);
  // Before the agent starts, the task directory holds only what the harness wrote: one hash pass is
  // both the pristine manifest (what the tamper check compares) and the start manifest.
  const manifest = await buildManifest(task);
  writeJsonAtomic(join(layout.ledgers.dir, 'pristine_manifest.json'), manifest);
  writeJsonAtomic(layout.ledgers.manifestStart, manifest);
  return { pristineFiles: written.sort(), createdAtMs, missingTaskContext };
}

/** Folders that hold model weights, which the task snapshot leaves out (the reference's rule). */
export function isModelFolder(dir: string): boolean {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return false;
  }
  if (names.some((n) => n.endsWith('.safetensors'))) return true;
  const markers = ['config.json', 'pytorch_model.bin', 'tokenizer_config.json'];
  return markers.filter((m) => names.includes(m)).length >= 2;
}
