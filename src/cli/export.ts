import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { collectList } from './report.ts';

export function registerExport(program: Command, ctx: CliContext): void {
  program
    .command('export')
    .description(
      "write finished trials and baselines in the reference's results layout (model weights are not copied)",
    )
    .argument('<dir>', 'output directory (created if needed)')
    .option(
      '--experiments <names>',
      'only these experiments (comma-separated, repeatable, * wildcards)',
      collectList,
    )
    .option('--include-demo', 'also the trials and baselines of `ptb demo` (left out by default)')
    .option('--json', 'print the summary as one JSON object')
    .action(async (dir: string, flags: { experiments?: string[]; includeDemo?: boolean; json?: boolean }) => {
      const [{ exportUpstream }, { TrialRepo }] = await Promise.all([
        import('../report/exportUpstream.ts'),
        import('../store/trialRepo.ts'),
      ]);
      const summary = exportUpstream(new TrialRepo(ctx.db()), resolve(dir), {
        experiments: flags.experiments,
        includeDemo: flags.includeDemo,
      });
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(summary)}\n`);
        return;
      }
      ctx.stdout.write(
        `exported ${summary.runs} run(s) in ${summary.methods.length} method folder(s) and ${summary.baselines} baseline(s) to ${dir}` +
          `${summary.skippedUnfinished > 0 ? `; ${summary.skippedUnfinished} unfinished trial(s) left out` : ''}\n`,
      );
    });
}
