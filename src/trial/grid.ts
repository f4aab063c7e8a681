import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UserError } from '../core/errors.ts';
import { DEFAULT_PROTOCOL, ProtocolIdSchema } from '../core/protocols.ts';
import { BENCHMARK_IDS, BenchmarkIdSchema } from '../core/schemas.ts';
import { SandboxKindSchema, type TrialSpecInput } from '../core/trial.ts';
import { readUserText } from '../core/userPaths.ts';
import { describeIssues } from '../core/zodIssues.ts';
import { SchedulerBlockSchema } from '../schedulers/schedulerConfig.ts';

const list = <T extends z.ZodTypeAny>(item: T) =>
  z.union([item, z.array(item)]).transform((v) => (Array.isArray(v) ? v : [v]));

const AgentEntrySchema = z.union([
  z.string().transform((id) => ({ id, config: '' })),
  z
    .object({ id: z.string(), config: z.string().default(''), command: z.array(z.string()).optional() })
    .strict(),
]);

const BaseModelEntrySchema = z.union([
  z.string().transform((id) => ({ id, path: undefined as string | undefined })),
  z.object({ id: z.string(), path: z.string().optional() }).strict(),
]);

/** A grid file: agents × base models × benchmarks × seeds × hours, with shared settings. */
export const GridSchema = z
  .object({
    experiment: z.string().min(1),
    agents: list(AgentEntrySchema),
    models: list(BaseModelEntrySchema),
    benchmarks: z
      .union([z.literal('all'), list(BenchmarkIdSchema)])
      .transform((v) => (v === 'all' ? [...BENCHMARK_IDS] : v)),
    seeds: z
      .union([
        z
          .number()
          .int()
          .min(1)
          .transform((n) => Array.from({ length: n }, (_, i) => i)),
        z.array(z.number().int().min(0)),
      ])
      .default([0]),
    hours: list(z.number().positive()).default([10]),
    gpus_per_trial: z.number().int().min(0).default(1),
    sandbox: SandboxKindSchema.default('bwrap'),
    image: z.string().optional(),
    engine: z.enum(['vllm', 'hf']).default('vllm'),
    protocol: ProtocolIdSchema.default(DEFAULT_PROTOCOL),
    eval_limit: z.number().int().default(-1),
    eval_max_tokens: z.number().int().positive().optional(),
    eval_template: z.string().optional(),
    eval_data: z.record(z.string(), z.string()).default({}),
    task_files: z.record(z.string(), z.string()).default({}),
    prompt_file: z.string().optional(),
    budget_usd: z.number().positive().optional(),
    network: z.enum(['open', 'none', 'allowlist']).default('open'),
    allow_hosts: z.array(z.string()).default([]),
    /** Where the trials run (`ptb run --scheduler` overrides `kind`); see docs/slurm.md. */
    scheduler: SchedulerBlockSchema.optional(),
  })
  .strict();
export type Grid = z.infer<typeof GridSchema>;

/** Read and validate a grid file; relative paths in it are relative to the file. */
export function loadGrid(path: string): Grid {
  const text = readUserText(path, 'grid file', { hint: 'Pass a grid YAML file (see docs/grid.md).' });
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new UserError(
      `the grid file ${path} is not valid YAML: ${(err as Error).message}`,
      'see docs/grid.md for the format',
    );
  }
  const parsed = GridSchema.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(
      `invalid grid file ${path}: ${describeIssues(parsed.error.issues, raw).join('; ')}`,
      'see docs/grid.md for the format',
    );
  }
  const base = dirname(resolve(path));
  const abs = (p: string | undefined) => (p === undefined ? undefined : resolve(base, p));
  const g = parsed.data;
  return {
    ...g,
    models: g.models.map((m) => ({ ...m, path: abs(m.path) })),
    eval_template: abs(g.eval_template),
    prompt_file: abs(g.prompt_file),
    eval_data: Object.fromEntries(Object.entries(g.eval_data).map(([k, v]) => [k, abs(v)!])),
    task_files: Object.fromEntries(Object.entries(g.task_files).map(([k, v]) => [k, abs(v)!])),
    ...(g.scheduler ? { scheduler: { ...g.scheduler, results_dir: abs(g.scheduler.results_dir) } } : {}),
  };
}

/** Every trial of the grid, in a stable order. */
export function expandGrid(g: Grid): TrialSpecInput[] {
  const out: TrialSpecInput[] = [];
  for (const seed of g.seeds)
    for (const hours of g.hours)
      for (const agent of g.agents)
        for (const model of g.models)
          for (const benchmark of g.benchmarks)
            out.push({
              experiment: g.experiment,
              agent: agent.id,
              agentConfig: agent.config,
              agentCommand: 'command' in agent ? agent.command : undefined,
              baseModel: model.id,
              baseModelPath: model.path,
              benchmark,
              hours,
              gpus: g.gpus_per_trial,
              seed,
              sandbox: g.sandbox,
              image: g.image,
              engine: g.engine,
              protocol: g.protocol,
              evalLimit: g.eval_limit,
              evalMaxTokens: g.eval_max_tokens,
              evalTemplate: g.eval_template,
              evalData: g.eval_data,
              taskFiles: g.task_files,
              promptFile: g.prompt_file,
              budgetUsd: g.budget_usd,
              network: g.network,
              allowHosts: g.allow_hosts,
            });
  return out;
}

/** The identity of a grid cell: a re-run of the grid finds the same trial by it. */
export function cellKey(s: TrialSpecInput): string {
  return JSON.stringify([
    s.experiment,
    s.agent,
    s.agentConfig ?? '',
    s.baseModel,
    s.benchmark,
    s.hours,
    s.seed ?? 0,
    s.protocol ?? DEFAULT_PROTOCOL,
  ]);
}
