import type { Command } from 'commander';
import { assertCheckpointDir } from '../core/userPaths.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';
import { trialSummary } from './trial.ts';

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description(
      'offline demo trial on CPU: tiny base model, GSM8K-format benchmark made locally, the sft agent in the bwrap sandbox, hf engine, score table',
    )
    .option('--items <n>', 'test problems to evaluate', parseIntFlag, 40)
    .option('--train-steps <n>', 'fine-tuning steps of the sft agent', parseIntFlag, 120)
    .option(
      '--base-model-path <dir>',
      'use this checkpoint as the base model (e.g. a Qwen3-1.7B-shaped model on a GPU)',
    )
    .option('--gpus <n>', 'GPUs for the agent (the GPU gate applies)', parseIntFlag, 0)
    .option('--batch-size <n>', 'training batch size of the sft agent', parseIntFlag, 16)
    .option('--max-tokens <n>', 'max new tokens per reply in the evaluations', parseIntFlag, 32)
    .option(
      '--nproc-per-node <n>',
      'run the sft agent under torchrun with this many data-parallel processes (default: one per GPU when several)',
      parseIntFlag,
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (flags: {
        items: number;
        trainSteps: number;
        baseModelPath?: string;
        gpus: number;
        batchSize: number;
        maxTokens: number;
        nprocPerNode?: number;
        json?: boolean;
      }) => {
        if (flags.baseModelPath) assertCheckpointDir(flags.baseModelPath, '--base-model-path');
        const [{ runDemoTrial }, { interruptible, trialEnvFor }, { DEMO_EXPERIMENT }] = await Promise.all([
          import('../trial/demoTrial.ts'),
          import('./trialEnv.ts'),
          import('../core/demoNamespace.ts'),
        ]);
        const result = await interruptible((signal) =>
          runDemoTrial(trialEnvFor(ctx, { offline: true, signal }), {
            testItems: flags.items,
            trainSteps: flags.trainSteps,
            baseModelPath: flags.baseModelPath,
            gpus: flags.gpus,
            batchSize: flags.batchSize,
            maxTokens: flags.maxTokens,
            processes: flags.nprocPerNode,
          }),
        );
        const t = result.trial;
        if (flags.json) {
          ctx.stdout.write(`${JSON.stringify({ baseline: result.baseline, trial: trialSummary(t) })}\n`);
          return;
        }
        const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(3));
        ctx.stdout.write(
          `\nptb demo: one trial, agent sft in the bwrap sandbox, ${result.testItems} GSM8K-format problems (synthetic), engine hf, ${flags.gpus > 0 ? `${flags.gpus} GPU(s)` : 'CPU'}\n\n`,
        );
        ctx.stdout.write(`${'model'.padEnd(34)} ${'accuracy'.padStart(9)}\n`);
        ctx.stdout.write(
          `${'base model (zero-shot baseline)'.padEnd(34)} ${fmt(result.baseline.accuracy).padStart(9)}\n`,
        );
        ctx.stdout.write(`${'final_model of the sft agent'.padEnd(34)} ${fmt(t.accuracy).padStart(9)}\n`);
        ctx.stdout.write(
          `\nagent: ${t.agent_outcome} after ${Math.round(t.agent_seconds ?? 0)} s; audit: ${t.audit_verdict}; ` +
            `final score ${fmt(t.final_score)}${t.substituted ? ' (base model score substituted)' : ''}\n`,
        );
        ctx.stdout.write(
          `trial ${t.id}\nfiles (prompt.txt, solve_out.txt, metrics.json, final_model/, ledgers/): ${t.dir}\n` +
            'Inspect it with `ptb trial show <id>`, or list all with `ptb trials`.\n' +
            `The demo's trials and baselines (experiment ${DEMO_EXPERIMENT}) stay out of \`ptb report\`, \`ptb export\`, \`ptb evals\` and the dashboard's results unless you add --include-demo.\n`,
        );
      },
    );
}
