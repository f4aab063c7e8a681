import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

export function registerEvals(program: Command, ctx: CliContext): void {
  program
    .command('evals')
    .description('list evaluations in the store (newest first)')
    .option('-n, --limit <n>', 'how many', parseIntFlag, 30)
    .option('--json', 'print JSON')
    .option('--include-demo', "also list `ptb demo`'s evaluations (its baseline and its trial's)")
    .action(async (flags: { limit: number; json?: boolean; includeDemo?: boolean }) => {
      const { runOwnerGone } = await import('../eval/runOwner.ts');
      const { TrialRepo, isDemoEvalRun } = await import('../store/trialRepo.ts');
      const marks = new TrialRepo(ctx.db()).demoEvalMarks();
      const listed = ctx
        .evalRepo()
        .listRuns(flags.limit)
        .map((r) => ({ row: r, config: JSON.parse(r.config_json) as { protocol?: string; parent?: string } }))
        // A seeded evaluation's per-seed runs are listed through it (its seeds.json), not one by one.
        .filter(({ config }) => config.parent === undefined);
      const shown = listed.filter(({ row }) => flags.includeDemo || !isDemoEvalRun(row, marks));
      const hiddenDemo = listed.length - shown.length;
      const runs = shown.map(({ row: r, config }) => ({
        id: r.id,
        benchmark: r.benchmark,
        protocol: config.protocol ?? null,
        model: r.model,
        engine: r.engine,
        // Still marked running, but the ptb process that ran it is gone (killed, out of memory).
        status: r.status === 'running' && runOwnerGone(r.out_dir) ? 'interrupted' : r.status,
        accuracy: r.metrics_json ? (JSON.parse(r.metrics_json) as { accuracy: number }).accuracy : null,
        created_at: r.created_at,
        out_dir: r.out_dir,
        error: r.error,
      }));
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(runs)}\n`);
        return;
      }
      if (runs.length === 0 && hiddenDemo === 0)
        ctx.stdout.write('no evaluations yet: try `ptb demo` or `ptb eval --help`\n');
      for (const r of runs) {
        const acc = r.accuracy === null ? '     -' : r.accuracy.toFixed(4);
        ctx.stdout.write(
          `${r.id}  ${r.status.padEnd(11)} ${acc}  ${r.benchmark.padEnd(16)} ${(r.protocol ?? '-').padEnd(5)} ${r.model}\n`,
        );
      }
      if (hiddenDemo > 0)
        ctx.stdout.write(
          `(${hiddenDemo} evaluation(s) of \`ptb demo\` not shown: --include-demo lists them)\n`,
        );
    });
}
