import { type Command, Option } from 'commander';
import { DEFAULT_PROTOCOL, PROTOCOL_IDS } from '../core/vocabulary.ts';
import { type CliContext, isOffline } from './context.ts';
import { collectData, parseIntFlag } from './eval.ts';
import { downloadProgress, ProgressLine } from './progress.ts';

interface ScoreFlags {
  benchmark: string;
  responses: string;
  seed: number;
  unseeded?: boolean;
  data?: Record<string, string>;
  graderBaseUrl?: string;
  graderModel?: string;
  concurrency: number;
  offline?: boolean;
  unsafeNoSandbox?: boolean;
  json?: boolean;
  protocol: string;
}

export function registerScore(program: Command, ctx: CliContext): void {
  program
    .command('score')
    .description('regrade recorded replies with a benchmark scorer (no engine)')
    .requiredOption('-b, --benchmark <id>', 'benchmark id')
    .requiredOption('-r, --responses <file.jsonl>', 'one {"id", "response", "tool_calls"?} per line')
    .option('--seed <n>', 'GPQA choice order seed used when the replies were generated', parseIntFlag, 0)
    .option(
      '--unseeded',
      'GPQA: replies were generated with unseeded shuffles (refused: their choice order is unknown)',
    )
    .option('--data <part=file>', 'use a local data file for a part (repeatable)', collectData)
    .option('--grader-base-url <url>', 'LLM grader endpoint (arenahardwriting, healthbench)')
    .option('--grader-model <name>', 'LLM grader model')
    .option('-c, --concurrency <n>', 'samples graded at once', parseIntFlag, 16)
    .option('--offline', 'never download')
    .option('--unsafe-no-sandbox', 'run HumanEval code without bubblewrap')
    .addOption(
      new Option('--protocol <version>', 'scoring rules of this protocol (v1.1: exact numeric match, …)')
        .choices([...PROTOCOL_IDS])
        .default(DEFAULT_PROTOCOL),
    )
    .option('--json', 'print {accuracy, n, samples: [{id, score}]}')
    .action(async (flags: ScoreFlags) => {
      const { scoreResponses } = await import('../eval/scoreResponses.ts');
      const line = new ProgressLine(ctx.stderr, 'data', { json: flags.json });
      const report = await scoreResponses(ctx.cache, {
        benchmark: flags.benchmark,
        responsesFile: flags.responses,
        seed: flags.unseeded ? null : flags.seed,
        data: flags.data,
        grader: { baseUrl: flags.graderBaseUrl, model: flags.graderModel },
        concurrency: flags.concurrency,
        offline: isOffline(ctx, flags.offline),
        hfToken: ctx.env.HF_TOKEN,
        onProgress: downloadProgress(line),
        unsafeNoSandbox: flags.unsafeNoSandbox,
        env: ctx.env,
        venvHome: ctx.home.root,
        protocol: flags.protocol,
      });
      line.end();
      if (flags.json) {
        ctx.stdout.write(
          `${JSON.stringify({ benchmark: report.benchmark, accuracy: report.accuracy, n: report.n, metrics: report.metrics, samples: report.samples })}\n`,
        );
      } else {
        const correct = report.samples.filter((s) => s.score >= 1).length;
        ctx.stdout.write(
          `${report.benchmark}: accuracy ${report.accuracy.toFixed(4)} over ${report.n} responses (${correct} fully correct)\n`,
        );
      }
    });
}
