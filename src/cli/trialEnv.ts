import type { EvalEvent } from '../eval/runEval.ts';
import { TrialRepo } from '../store/trialRepo.ts';
import type { TrialEnv } from '../trial/runTrial.ts';
import { type CliContext, isOffline } from './context.ts';
import { ProgressLine } from './progress.ts';

/** The trial environment of a CLI command: store, cache, home, progress on stderr. */
export function trialEnvFor(
  ctx: CliContext,
  opts: { offline?: boolean; signal?: AbortSignal; quiet?: boolean } = {},
): TrialEnv {
  const bars = new Map<string, ProgressLine>();
  return {
    trials: new TrialRepo(ctx.db()),
    evals: ctx.evalRepo(),
    cache: ctx.cache,
    home: ctx.home,
    env: ctx.env,
    offline: isOffline(ctx, opts.offline),
    signal: opts.signal,
    onLine: opts.quiet ? undefined : (line) => ctx.stderr.write(`${line}\n`),
    onEvalEvent: opts.quiet
      ? undefined
      : (e: EvalEvent) => {
          const key = 'eval';
          const bar = bars.get(key) ?? new ProgressLine(ctx.stderr, 'evaluation');
          bars.set(key, bar);
          if (e.type === 'sample') bar.update(e.done, e.total);
          if (e.type === 'completed') bar.end();
          if (e.type === 'attempt-failed') bar.log(`attempt ${e.n} failed: ${e.error}`);
        },
  };
}

/** Abort on the first Ctrl-C (the trial is marked interrupted and can be resumed). */
export function interruptible<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort(new Error('interrupted (resume with `ptb trial resume`)'));
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  return run(controller.signal).finally(() => {
    process.removeListener('SIGINT', onSigint);
    process.removeListener('SIGTERM', onSigint);
  });
}
