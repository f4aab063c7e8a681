import { type Command, InvalidArgumentError, Option } from 'commander';
import type { Sampling } from '../core/schemas.ts';
import { DEFAULT_PROTOCOL, PROTOCOL_IDS } from '../core/vocabulary.ts';
import type { BaselineEvent } from '../report/baselines.ts';
import type { ModelKind } from '../report/models.ts';
import { type CliContext, isOffline } from './context.ts';
import { parseFloatFlag, parseIntFlag } from './eval.ts';
import { downloadProgress, formatSeconds, ProgressLine } from './progress.ts';
import { collectList } from './report.ts';

/** `--data gsm8k:test=file` for one benchmark, `--data test=file` for all of them. */
function collectBenchmarkData(
  value: string,
  previous: Record<string, Record<string, string>> = {},
): Record<string, Record<string, string>> {
  const m = /^(?:([a-z0-9]+):)?([\w-]+)=(.+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected [benchmark:]part=file');
  const [, benchmark = '*', part, file] = m;
  return { ...previous, [benchmark]: { ...previous[benchmark], [part!]: file! } };
}

interface BaselineFlags {
  models: string[];
  benchmarks: string[];
  kind?: ModelKind;
  engine: 'hf' | 'vllm' | 'openai';
  limit: number;
  concurrency?: number;
  maxTokens?: number;
  template?: string;
  data?: Record<string, Record<string, string>>;
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
  fresh?: boolean;
  offline?: boolean;
  unsafeNoSandbox?: boolean;
  healthTimeout: number;
  json?: boolean;
}

export function registerBaseline(program: Command, ctx: CliContext): void {
  program
    .command('baseline')
    .description(
      'evaluate models directly (zero-shot, chat template, benchmark defaults) and record them as baselines for ptb report',
    )
    .requiredOption(
      '--models <ids>',
      'Hugging Face ids or checkpoint directories (comma-separated, repeatable)',
      collectList,
    )
    .requiredOption('--benchmarks <ids>', 'benchmarks (comma-separated, repeatable)', collectList)
    .addOption(
      new Option(
        '--kind <kind>',
        'record as this kind (default: *-Base/*-pt base, the four official instruct models instruct)',
      ).choices(['base', 'instruct', 'other']),
    )
    .addOption(
      new Option('-e, --engine <engine>', 'what serves the model')
        .choices(['vllm', 'hf', 'openai'])
        .default('vllm'),
    )
    .option('-l, --limit <n>', 'evaluate the first N samples (-1: all, as the reference)', parseIntFlag, -1)
    .option('-c, --concurrency <n>', "requests in flight (default: the benchmark's)", parseIntFlag)
    .option('--max-tokens <n>', 'first rung of the max-tokens ladder', parseIntFlag)
    .option('--template <file>', 'chat template to use instead of the reference rule')
    .option('--data <[benchmark:]part=file>', 'local data file for a part (repeatable)', collectBenchmarkData)
    .addOption(
      new Option(
        '--protocol <version>',
        'evaluation protocol the baselines are scored under (recorded with them)',
      )
        .choices([...PROTOCOL_IDS])
        .default(DEFAULT_PROTOCOL),
    )
    .option('--seed <n>', 'seed for GPQA choice shuffling', parseIntFlag, 0)
    .option('--unseeded', 'shuffle GPQA choices without a seed, like the reference')
    .option('--temperature <t>', 'override sampling temperature', parseFloatFlag)
    .option('--top-p <p>', 'override top_p', parseFloatFlag)
    .option('--top-k <k>', 'override top_k', parseIntFlag)
    .option('--grader-base-url <url>', 'OpenAI-compatible endpoint of the LLM grader')
    .option('--grader-model <name>', 'grader model (default gpt-5-mini)')
    .option('--base-url <url>', 'with --engine openai: the endpoint (…/v1); the model id is the served name')
    .option(
      '--api-key-env <var>',
      'with --engine openai: environment variable holding the key',
      'PTB_OPENAI_API_KEY',
    )
    .option('--fresh', 'start new evaluations even where an unfinished one with the same settings exists')
    .option('--offline', 'never download; use cached data and templates only')
    .option('--unsafe-no-sandbox', 'run HumanEval code without bubblewrap')
    .option('--health-timeout <s>', 'seconds to wait for the engine to become healthy', parseIntFlag, 600)
    .option('--json', 'print the outcomes as one JSON object')
    .addHelpText(
      'after',
      '\nExample:\n  ptb baseline --models Qwen/Qwen3-1.7B-Base,Qwen/Qwen3-1.7B --benchmarks gsm8k,humaneval --engine vllm',
    )
    .action(async (flags: BaselineFlags) => {
      const [{ getBenchmark }, { runBaselines }, { TrialRepo }] = await Promise.all([
        import('../benchmarks/registry.ts'),
        import('../report/baselines.ts'),
        import('../store/trialRepo.ts'),
      ]);
      for (const b of flags.benchmarks) getBenchmark(b);
      const sampling: Sampling = {};
      if (flags.temperature !== undefined) sampling.temperature = flags.temperature;
      if (flags.topP !== undefined) sampling.top_p = flags.topP;
      if (flags.topK !== undefined) sampling.top_k = flags.topK;
      const controller = new AbortController();
      const onSigint = () => controller.abort(new Error('interrupted'));
      process.once('SIGINT', onSigint);
      let line: ProgressLine | undefined;
      const onEvent = (e: BaselineEvent) => {
        if (e.type === 'start') {
          line?.end();
          line = new ProgressLine(ctx.stderr, `${e.benchmark} · ${e.model}`, { json: flags.json });
          line.log(`[${e.index + 1}/${e.total}] ${e.model} on ${e.benchmark}`);
        } else if (e.type === 'eval' && line) {
          if (e.event.type === 'sample') line.update(e.event.done, e.event.total);
          else if (e.event.type === 'engine-ready')
            line.log(`engine ready after ${formatSeconds(e.event.ms / 1000)}`);
          else if (e.event.type === 'attempt-failed')
            line.log(`attempt ${e.event.n} failed: ${e.event.error}`);
        } else if (e.type === 'done') {
          line?.end();
        }
      };
      try {
        const outcomes = await runBaselines(
          new TrialRepo(ctx.db()),
          ctx.evalRepo(),
          ctx.cache,
          {
            models: flags.models,
            benchmarks: flags.benchmarks,
            kind: flags.kind,
            engine:
              flags.engine === 'openai'
                ? { id: 'openai', baseUrl: flags.baseUrl, apiKey: ctx.env[flags.apiKeyEnv] }
                : { id: flags.engine },
            limit: flags.limit,
            concurrency: flags.concurrency,
            maxTokens: flags.maxTokens,
            template: flags.template,
            data: flags.data,
            sampling,
            seed: flags.unseeded ? null : flags.seed,
            protocol: flags.protocol,
            grader: { baseUrl: flags.graderBaseUrl, model: flags.graderModel },
            resume: flags.fresh ? 'fresh' : 'auto',
            unsafeNoSandbox: flags.unsafeNoSandbox,
            healthTimeoutMs: flags.healthTimeout * 1000,
            offline: isOffline(ctx, flags.offline),
            hfToken: ctx.env.HF_TOKEN,
            onProgress: (p) => (line ? downloadProgress(line)(p) : undefined),
            env: ctx.env,
            evalsDir: ctx.home.evals,
            venvHome: ctx.home.root,
          },
          onEvent,
          controller.signal,
        );
        const failed = outcomes.filter((o) => o.error !== undefined);
        if (failed.length > 0) ctx.exitCode = 1;
        if (flags.json) {
          ctx.stdout.write(`${JSON.stringify({ baselines: outcomes })}\n`);
          return;
        }
        for (const o of outcomes) {
          ctx.stdout.write(
            o.error === undefined
              ? `${o.benchmark}  ${o.model}  ${o.kind}  accuracy ${o.accuracy!.toFixed(4)}  (run ${o.runId})\n`
              : `${o.benchmark}  ${o.model}  failed: ${o.error}\n`,
          );
        }
      } finally {
        line?.end();
        process.removeListener('SIGINT', onSigint);
      }
    });
}
