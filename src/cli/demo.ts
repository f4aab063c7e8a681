import type { Command } from 'commander';
import { runDemoTrial } from '../trial/demoTrial.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';
import { trialSummary } from './trial.ts';
import { interruptible, trialEnvFor } from './trialEnv.ts';

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description(
      'offline demo trial on CPU: tiny base model, GSM8K-format benchmark made locally, the sft agent in the bwrap sandbox, hf engine, score table',
    )
    .option('--items <n>', 'test problems to evaluate', parseIntFlag, 40)
    .option('--train-steps <n>', 'fine-tuning steps of the sft agent', parseIntFlag, 120)
    .option('--json', 'print the result as JSON')
    .action(async (flags: { items: number; trainSteps: number; json?: boolean }) => {
      const result = await interruptible((signal) =>
        runDemoTrial(trialEnvFor(ctx, { offline: true, signal }), {
          testItems: flags.items,
          trainSteps: flags.trainSteps,
        }),
      );
      const t = result.trial;
      if (flags.json) {
        ctx.stdout.write(`${JSON.stringify({ baseline: result.baseline, trial: trialSummary(t) })}\n`);
        return;
      }
      const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(3));
      ctx.stdout.write(
        `\nptb demo: one trial, agent sft in the bwrap sandbox, ${result.testItems} GSM8K-format problems (synthetic), engine hf, CPU\n\n`,
      );
      ctx.stdout.write(`${'model'.padEnd(34)} ${'accuracy'.padStart(9)}\n`);
      ctx.stdout.write(`${'base model (zero-shot baseline)'.padEnd(34)} ${fmt(result.baseline.accuracy).padStart(9)}\n`);
      ctx.stdout.write(`${'final_model of the sft agent'.padEnd(34)} ${fmt(t.accuracy).padStart(9)}\n`);
      ctx.stdout.write(
        `\nagent: ${t.agent_outcome} after ${Math.round(t.agent_seconds ?? 0)} s; audit: ${t.audit_verdict}; ` +
          `final score ${fmt(t.final_score)}${t.substituted ? ' (base model score substituted)' : ''}\n`,
      );
      ctx.stdout.write(
        `trial ${t.id}\nfiles (prompt.txt, solve_out.txt, metrics.json, final_model/, ledgers/): ${t.dir}\n` +
          'Inspect it with `ptb trial show <id>`, or list all with `ptb trials`.\n',
      );
    });
}
