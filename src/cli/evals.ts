import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

export function registerEvals(program: Command, ctx: CliContext): void {
  program
    .command('evals')
    .description('list evaluations in the store (newest first)')
    .option('-n, --limit <n>', 'how many', parseIntFlag, 30)
    .option('--json', 'print JSON')
    .action(async (flags: { limit: number; json?: boolean }) => {
      const { runOwnerGone } = await import('../eval/runOwner.ts');
      const runs = ctx
        .evalRepo()
        .listRuns(flags.limit)
        .map((r) => ({ row: r, config: JSON.parse(r.config_json) as { protocol?: string; parent?: string } }))
        // A seeded evaluation's per-seed runs are listed through it (its seeds.json), not one by one.
        .filter(({ config }) => config.parent === undefined)
        .map(({ row: r, config }) => ({
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
      if (runs.length === 0) ctx.stdout.write('no evaluations yet: try `ptb demo` or `ptb eval --help`\n');
      for (const r of runs) {
        const acc = r.accuracy === null ? '     -' : r.accuracy.toFixed(4);
        ctx.stdout.write(
          `${r.id}  ${r.status.padEnd(11)} ${acc}  ${r.benchmark.padEnd(16)} ${(r.protocol ?? '-').padEnd(5)} ${r.model}\n`,
        );
      }
    });
}
