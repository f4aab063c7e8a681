import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerBenchmarks(program: Command, ctx: CliContext): void {
  program
    .command('benchmarks')
    .description('list the benchmarks with their reference settings')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const { BENCHMARKS } = await import('../benchmarks/registry.ts');
      const rows = Object.values(BENCHMARKS).map((b) => ({
        id: b.id,
        name: b.displayName,
        sample_id: b.sampleId,
        weight: b.weight,
        max_tokens_ladder: b.defaults.maxTokensLadder,
        agent_limit: b.defaults.agentLimit,
        reference_concurrency: b.defaults.referenceConcurrency,
        concurrency: b.defaults.concurrency,
        grader: b.needsGrader,
        tools: b.usesTools,
        parts: b.assets.map((a) => a.part),
      }));
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify(rows)}\n`);
        return;
      }
      for (const r of rows) {
        ctx.stdout.write(
          `${r.id.padEnd(17)} w=${r.weight.toFixed(4)}  ladder ${r.max_tokens_ladder.join('/')}  ` +
            `${r.grader ? 'LLM grader  ' : ''}${r.name}\n`,
        );
      }
    });
}
