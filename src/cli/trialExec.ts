import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

/**
 * `ptb trial exec`: one task of a manifest, as a batch scheduler runs it on a compute node. USR1
 * (preemption, or the time limit near) stops the trial cleanly and asks to be requeued; TERM (scancel)
 * stops it as cancelled.
 */
export function registerTrialExec(trial: Command, ctx: CliContext): void {
  trial
    .command('exec')
    .description('run task N of an experiment manifest (what each Slurm array task runs on its node)')
    .requiredOption('--manifest <file>', 'manifest.jsonl in the experiment results directory')
    .requiredOption('--index <n>', 'task index (line of the manifest, from 0)', parseIntFlag)
    .action(async (flags: { manifest: string; index: number }) => {
      const [{ EXEC_EXIT }, { execManifestTask, ResultsDirNotVisible }, { TrialStop }] = await Promise.all([
        import('../schedulers/slurm/batchScript.ts'),
        import('../trial/execTask.ts'),
        import('../trial/lostAttempt.ts'),
      ]);
      // Exit codes the batch script understands (schedulers/slurm/batchScript.ts).
      const EXIT = {
        completed: EXEC_EXIT.completed,
        failed: EXEC_EXIT.failed,
        preempted: EXEC_EXIT.requeue,
        cancelled: 143,
      };
      const controller = new AbortController();
      const stops: Array<[NodeJS.Signals, InstanceType<typeof TrialStop>]> = [
        [
          'SIGUSR1',
          new TrialStop('preempted', 'preempted: the scheduler sent USR1 (preemption or time limit near)'),
        ],
        ['SIGTERM', new TrialStop('cancelled', 'stopped by TERM (scancel, or the scheduler ending the job)')],
        ['SIGINT', new TrialStop('interrupted', 'interrupted (Ctrl-C)')],
      ];
      const handlers = stops.map(([signal, stop]) => {
        const handler = () => {
          if (controller.signal.aborted) return;
          ctx.stderr.write(`ptb: ${signal}: stopping the trial (${stop.kind})\n`);
          controller.abort(stop);
        };
        process.on(signal, handler);
        return [signal, handler] as const;
      });
      try {
        const result = await execManifestTask({
          manifest: flags.manifest,
          index: flags.index,
          home: ctx.home,
          env: ctx.env,
          signal: controller.signal,
          onLine: (line) => ctx.stderr.write(`${line}\n`),
        });
        ctx.stderr.write(
          `ptb: task ${flags.index} (trial ${result.trial?.id ?? '?'}): ${result.outcome}: ${result.message}\n`,
        );
        ctx.exitCode = EXIT[result.outcome];
      } catch (err) {
        if (!(err instanceof ResultsDirNotVisible)) throw err;
        // The batch script and `ptb run status` read this exit code as "results directory not shared".
        ctx.stderr.write(`ptb: ${err.message}\n  → ${err.hint}\n`);
        ctx.exitCode = EXEC_EXIT.resultsDirMissing;
      } finally {
        for (const [signal, handler] of handlers) process.off(signal, handler);
      }
    });
}
