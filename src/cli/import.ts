import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { collectList } from './report.ts';

export function registerImport(program: Command, ctx: CliContext): void {
  program
    .command('import')
    .description(
      'read a reference results tree (method folders, run folders, baseline_zeroshot/) into the store; re-running is safe',
    )
    .argument('<dir>', 'the reference results directory')
    .option(
      '--experiments <names>',
      'only these method folders (comma-separated, repeatable, * wildcards)',
      collectList,
    )
    .option('--json', 'print the summary as one JSON object')
    .addHelpText('after', '\nExample:\n  ptb import ./results && ptb report --experiments "claude_*"')
    .action(async (dir: string, flags: { experiments?: string[]; json?: boolean }) => {
      const [{ importUpstream }, { TrialRepo }] = await Promise.all([
        import('../report/importUpstream.ts'),
        import('../store/trialRepo.ts'),
      ]);
      const summary = importUpstream(new TrialRepo(ctx.db()), dir, { experiments: flags.experiments });
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(summary)}\n`);
        return;
      }
      ctx.stdout.write(
        `imported ${summary.experiments.length} experiment(s): ${summary.created} new trial(s), ${summary.updated} updated, ` +
          `${summary.unchanged} unchanged, ${summary.audits} audit(s) recorded; ` +
          `${summary.baselinesAdded} baseline(s) added, ${summary.baselinesUnchanged} unchanged\n`,
      );
      for (const s of summary.skipped) ctx.stderr.write(`skipped ${s.path}: ${s.reason}\n`);
    });
}
