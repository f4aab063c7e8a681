import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Sampling } from '../core/schemas.ts';
import { DEFAULT_PROTOCOL, PROTOCOL_IDS } from '../core/vocabulary.ts';
import type { EngineIsolation } from '../engines/types.ts';
import type { EvalEvent } from '../eval/runEval.ts';
import { type CliContext, isOffline } from './context.ts';
import { downloadProgress, formatSeconds, ProgressLine } from './progress.ts';

export function parseIntFlag(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected an integer');
  return n;
}

export function parseFloatFlag(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('expected a number');
  return n;
}

/** `--data test=file.jsonl` (repeatable); a bare FILE means the `test` part. */
export function collectData(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  const [part, file] = eq > 0 ? [value.slice(0, eq), value.slice(eq + 1)] : ['test', value];
  return { ...previous, [part]: file };
}

interface EvalFlags {
  model: string;
  benchmark: string;
  engine: 'hf' | 'vllm' | 'openai';
  limit: number;
  concurrency?: number;
  maxTokens?: number;
  template?: string;
  data?: Record<string, string>;
  seed: number;
  unseeded?: boolean;
  protocol: string;
  temperature?: number;
  topP?: number;
  topK?: number;
  graderBaseUrl?: string;
  graderModel?: string;
  baseUrl?: string;
  apiKeyEnv: string;
  servedModel?: string;
  resume?: string;
  fresh?: boolean;
  offline?: boolean;
  unsafeNoSandbox?: boolean;
  engineSandbox?: 'bwrap' | 'podman' | 'none';
  engineImage?: string;
  healthTimeout: number;
  json?: boolean;
}

export function registerEval(program: Command, ctx: CliContext): void {
  program
    .command('eval')
    .description('evaluate a model on one benchmark, the way the reference scores final_model (resumable)')
    .requiredOption('-m, --model <path|hf-id>', 'checkpoint directory or Hugging Face id')
    .requiredOption(
      '-b, --benchmark <id>',
      'aime2025 | arenahardwriting | bfcl | gpqamain | gsm8k | healthbench | humaneval',
    )
    .addOption(
      new Option('-e, --engine <engine>', 'what serves the model')
        .choices(['vllm', 'hf', 'openai'])
        .default('vllm'),
    )
    .option(
      '-l, --limit <n>',
      'evaluate the first N samples (-1: all, like the final evaluation)',
      parseIntFlag,
      -1,
    )
    .option(
      '-c, --concurrency <n>',
      "requests in flight (default: the benchmark's, sized to keep the engine busy)",
      parseIntFlag,
    )
    .option(
      '--max-tokens <n>',
      'first rung of the max-tokens ladder (lower rungs scale with it)',
      parseIntFlag,
    )
    .option('--template <file>', 'chat template to use instead of the reference rule (recorded in results)')
    .option(
      '--data <part=file>',
      'use a local data file for a part (repeatable; recorded as local data)',
      collectData,
    )
    .addOption(
      new Option(
        '--protocol <version>',
        "evaluation protocol: v1.1 = the reference's current final evaluation (5 seeds, exact numeric match), v1.0 = the paper's",
      )
        .choices([...PROTOCOL_IDS])
        .default(DEFAULT_PROTOCOL),
    )
    .option(
      '--seed <n>',
      'seed for GPQA choice shuffling (protocol v1.0; v1.1 uses its fixed seeds)',
      parseIntFlag,
      0,
    )
    .option('--unseeded', "shuffle GPQA choices without a seed, like the reference's inspect task")
    .option(
      '--temperature <t>',
      'override sampling temperature (default: the checkpoint generation config)',
      parseFloatFlag,
    )
    .option('--top-p <p>', 'override top_p', parseFloatFlag)
    .option('--top-k <k>', 'override top_k', parseIntFlag)
    .option(
      '--grader-base-url <url>',
      'OpenAI-compatible endpoint of the LLM grader (arenahardwriting, healthbench)',
    )
    .option('--grader-model <name>', 'grader model (default gpt-5-mini, as the reference)')
    .option('--base-url <url>', 'with --engine openai: the endpoint (…/v1)')
    .option(
      '--api-key-env <var>',
      'with --engine openai: environment variable holding the key',
      'PTB_OPENAI_API_KEY',
    )
    .option('--served-model <name>', 'with --engine openai: the model name to request (default: --model)')
    .option(
      '--resume <run-id>',
      'continue this evaluation (default: resume an unfinished one with the same settings)',
    )
    .option('--fresh', 'start a new evaluation even if an unfinished one with the same settings exists')
    .option('--offline', 'never download; use cached data and templates only')
    .option('--unsafe-no-sandbox', 'run HumanEval code without bubblewrap (only on machines without it)')
    .addOption(
      new Option(
        '--engine-sandbox <kind>',
        'where the engine that loads the model runs: bwrap (default for a local checkpoint: the model read-only, no network, no host environment), podman, or none (on the host: trusted models, machines without bwrap; recorded with the run)',
      ).choices(['bwrap', 'podman', 'none']),
    )
    .option(
      '--engine-image <image>',
      'with --engine-sandbox podman: the image (default: the one `ptb image build` makes)',
    )
    .option('--health-timeout <s>', 'seconds to wait for the engine to become healthy', parseIntFlag, 600)
    .option('--json', 'print the result as one JSON object')
    .addHelpText(
      'after',
      '\nExamples:\n  ptb eval -m ./final_model -b gsm8k --engine vllm\n  ptb eval -m Qwen/Qwen3-1.7B-Base -b humaneval --engine hf --limit 20 --json',
    )
    .action(async (flags: EvalFlags) => {
      const { evaluate } = await import('../eval/evaluate.ts');
      const sampling: Sampling = {};
      if (flags.temperature !== undefined) sampling.temperature = flags.temperature;
      if (flags.topP !== undefined) sampling.top_p = flags.topP;
      if (flags.topK !== undefined) sampling.top_k = flags.topK;
      const line = new ProgressLine(ctx.stderr, flags.benchmark, { json: flags.json });
      const controller = new AbortController();
      const onSigint = () => controller.abort(new Error('interrupted'));
      process.once('SIGINT', onSigint);
      const engine =
        flags.engine === 'openai'
          ? {
              id: 'openai' as const,
              baseUrl: flags.baseUrl,
              apiKey: ctx.env[flags.apiKeyEnv],
              servedModel: flags.servedModel ?? flags.model,
            }
          : { id: flags.engine };
      try {
        const result = await evaluate(
          ctx.evalRepo(),
          ctx.cache,
          {
            model: flags.model,
            benchmark: flags.benchmark,
            engine,
            limit: flags.limit,
            concurrency: flags.concurrency,
            maxTokens: flags.maxTokens,
            template: flags.template,
            data: flags.data,
            sampling,
            seed: flags.unseeded ? null : flags.seed,
            protocol: flags.protocol,
            grader: { baseUrl: flags.graderBaseUrl, model: flags.graderModel },
            resume: flags.resume ? { runId: flags.resume } : flags.fresh ? 'fresh' : 'auto',
            unsafeNoSandbox: flags.unsafeNoSandbox,
            engineSandbox: flags.engineSandbox,
            engineImage: flags.engineImage,
            healthTimeoutMs: flags.healthTimeout * 1000,
            offline: isOffline(ctx, flags.offline),
            hfToken: ctx.env.HF_TOKEN,
            onProgress: downloadProgress(line),
            env: ctx.env,
            evalsDir: ctx.home.evals,
            venvHome: ctx.home.root,
          },
          (e) => renderEvent(line, e),
          controller.signal,
        );
        line.end();
        if (flags.json) {
          ctx.stdout.write(
            `${JSON.stringify({ run_id: result.runId, out_dir: result.outDir, benchmark: flags.benchmark, protocol: result.protocol, max_tokens: result.maxTokens, attempts: result.attempts, resumed: result.resumed, reused: result.reused ?? false, engine_isolation: result.isolation ?? null, seeds: result.seeds.map((o) => ({ seed: o.seed, status: o.status, max_tokens_stage: o.rung, accuracy: o.metrics?.accuracy ?? null })), metrics: result.metrics })}\n`,
          );
        } else {
          const { accuracy, stderr } = result.metrics;
          const succeeded = result.seeds.filter((o) => o.status === 'completed').length;
          const seeds =
            result.seeds.length > 0 ? `, mean over ${succeeded} of ${result.seeds.length} seeds` : '';
          ctx.stdout.write(
            `${flags.benchmark}: accuracy ${accuracy.toFixed(4)}${stderr !== undefined ? ` ± ${stderr.toFixed(4)}` : ''} ` +
              `(protocol ${result.protocol}${seeds}, max tokens ${result.maxTokens}, ${result.attempts} attempt${result.attempts === 1 ? '' : 's'})\n` +
              `run ${result.runId}\nresults in ${result.outDir}\n` +
              (result.reused
                ? 'already evaluated with these settings and this checkpoint: nothing was run (--fresh evaluates again)\n'
                : '') +
              (result.isolation ? `engine ran ${describeIsolation(result.isolation)}\n` : ''),
          );
        }
      } finally {
        line.end();
        process.removeListener('SIGINT', onSigint);
      }
    });
}

function describeIsolation(isolation: EngineIsolation): string {
  return isolation.sandbox === 'none'
    ? `on the host, unsandboxed (${isolation.reason})`
    : `in the ${isolation.sandbox} sandbox (${isolation.reason})`;
}

function renderEvent(line: ProgressLine, e: EvalEvent): void {
  switch (e.type) {
    case 'run':
      line.log(`${e.resumed ? 'resuming' : 'starting'} evaluation ${e.runId} (${e.total} samples)`);
      break;
    case 'attempt':
      line.log(
        `attempt ${e.n}: max tokens ${e.maxTokens}, ${e.done}/${e.total} samples already recorded; starting engine`,
      );
      break;
    case 'engine-ready':
      line.log(`engine ready after ${formatSeconds(e.ms / 1000)}`);
      break;
    case 'sample':
      line.update(e.done, e.total);
      break;
    case 'attempt-failed':
      line.log(`attempt ${e.n} failed: ${e.error}${e.skipRung ? ' (moving to lower max tokens)' : ''}`);
      break;
    case 'seed':
      line.log(
        `seed ${e.seed} (${e.index + 1} of ${e.total})${e.startRung > 0 ? `, from ladder rung ${e.startRung + 1}` : ''}`,
      );
      break;
    case 'seed-failed':
      line.log(
        `seed ${e.seed} failed at every rung${e.first ? '; skipping the other seeds (no score: the base model scores)' : '; left out of the mean'}`,
      );
      break;
    case 'completed':
      break;
  }
}
