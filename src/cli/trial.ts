import { existsSync, rmSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { UserError } from '../core/errors.ts';
import type { TrialSpecInput } from '../core/trial.ts';
import { trialLayout } from '../core/trialLayout.ts';
import { BENCHMARK_IDS, SANDBOX_KINDS } from '../core/vocabulary.ts';
import type { Trial } from '../store/trialRepo.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

/** The trial flows and the store, loaded by the commands that run or read trials. */
async function trialModules() {
  const [{ splitShellWords }, { createTrial, runTrial }, { interruptible, trialEnvFor }] = await Promise.all([
    import('../runtime/pythonEnv.ts'),
    import('../trial/runTrial.ts'),
    import('./trialEnv.ts'),
  ]);
  return { splitShellWords, createTrial, runTrial, interruptible, trialEnvFor };
}

import { registerTrialExec } from './trialExec.ts';

interface TrialRunFlags {
  agent: string;
  agentConfig: string;
  agentCommand?: string;
  model: string;
  baseModelPath?: string;
  benchmark: string;
  hours: number;
  gpus: number;
  seed: number;
  experiment: string;
  sandbox: string;
  image?: string;
  engine: string;
  evalLimit: number;
  promptFile?: string;
  budgetUsd?: number;
  network: string;
  unsafeNoSandbox?: boolean;
  offline?: boolean;
  json?: boolean;
}

function parseFloatFlag(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UserError(`expected a number, got ${v}`);
  return n;
}

export function trialSummary(trial: Trial) {
  return {
    id: trial.id,
    experiment: trial.experiment,
    agent: trial.agent,
    agent_config: trial.agent_config,
    base_model: trial.base_model,
    benchmark: trial.benchmark,
    hours: trial.hours,
    status: trial.status,
    phase: trial.phase,
    agent_outcome: trial.agent_outcome,
    agent_seconds: trial.agent_seconds,
    accuracy: trial.accuracy,
    final_score: trial.final_score,
    substituted: trial.substituted === null ? null : trial.substituted === 1,
    audit_verdict: trial.audit_verdict,
    cost_usd: trial.cost_usd,
    error: trial.error,
    dir: trial.dir,
  };
}

/** The final score; for an imported run, which has none of its own, its recorded accuracy (†). */
function scoreCell(r: Trial): string {
  if (r.final_score !== null) return `${r.final_score.toFixed(3)}${r.substituted ? '*' : ''}`;
  if (r.source === 'import' && r.accuracy !== null) return `${r.accuracy.toFixed(3)}†`;
  return '—';
}

/** Columns as wide as their longest cell (headers are the keys); `right` columns align right. */
export function formatTable(
  rows: ReadonlyArray<Record<string, string>>,
  right: readonly string[] = [],
): string {
  const keys = Object.keys(rows[0] ?? {});
  const width = (k: string) => Math.max(k.length, ...rows.map((r) => (r[k] ?? '').length));
  const widths = new Map(keys.map((k) => [k, width(k)]));
  const line = (cells: (k: string) => string) =>
    `${keys
      .map((k) => (right.includes(k) ? cells(k).padStart(widths.get(k)!) : cells(k).padEnd(widths.get(k)!)))
      .join('  ')
      .trimEnd()}\n`;
  return line((k) => k) + rows.map((r) => line((k) => r[k] ?? '')).join('');
}

function printTrial(ctx: CliContext, trial: Trial, json?: boolean): void {
  if (json) {
    ctx.stdout.write(`${JSON.stringify(trialSummary(trial))}\n`);
    return;
  }
  const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(4));
  ctx.stdout.write(
    `trial ${trial.id}: ${trial.status}${trial.phase ? ` (phase ${trial.phase})` : ''}\n` +
      `  agent ${trial.agent}${trial.agent_config ? ` [${trial.agent_config}]` : ''}: ${trial.agent_outcome ?? '—'}` +
      `${trial.agent_seconds !== null ? ` after ${Math.round(trial.agent_seconds)} s` : ''}\n` +
      `  accuracy ${fmt(trial.accuracy)}, final score ${fmt(trial.final_score)}${trial.substituted ? ' (base model score substituted)' : ''}\n` +
      `  audit ${trial.audit_verdict ?? '—'}\n` +
      (trial.error ? `  error: ${trial.error}\n` : '') +
      `  files: ${trial.dir}\n`,
  );
}

export function registerTrial(program: Command, ctx: CliContext): void {
  const trial = program.command('trial').description('run, resume and inspect single trials');
  trial
    .command('run')
    .description('create a trial (agent × base model × benchmark × budget) and run it')
    .requiredOption(
      '-a, --agent <id>',
      'agent (see `ptb agents`): claude, codex, gemini, opencode, command, sft, copy-base, noop',
    )
    .option(
      '--agent-config <text>',
      "the agent's model or configuration (e.g. claude-opus-4-6; flags for sft)",
      '',
    )
    .option('--agent-command <command>', 'with --agent command: the executable and its arguments')
    .requiredOption('-m, --model <hf-id>', 'base model (Hugging Face id as shown to the agent)')
    .option('--base-model-path <dir>', 'local weights of the base model (default: the Hugging Face cache)')
    .requiredOption('-b, --benchmark <id>', BENCHMARK_IDS.join(' | '))
    .option('--hours <h>', 'time budget of the agent', parseFloatFlag, 10)
    .option('--gpus <n>', 'GPUs the agent gets (exactly this many must be visible and idle)', parseIntFlag, 1)
    .option('--seed <n>', 'seed (also the experiment run index)', parseIntFlag, 0)
    .option('--experiment <name>', 'experiment the trial belongs to', 'default')
    .addOption(
      new Option('--sandbox <kind>', 'where the agent runs').choices([...SANDBOX_KINDS]).default('bwrap'),
    )
    .option(
      '--image <ref>',
      'with --sandbox podman: the agent image (default: the one `ptb image build` makes)',
    )
    .addOption(
      new Option('-e, --engine <engine>', 'engine of the final evaluation')
        .choices(['vllm', 'hf'])
        .default('vllm'),
    )
    .option('--eval-limit <n>', 'samples in the final evaluation (-1: all)', parseIntFlag, -1)
    .option(
      '--prompt-file <file>',
      'prompt template with {model} {benchmark} {num_hours} {gpu_info} {setup_other}',
    )
    .option('--budget-usd <dollars>', 'stop the agent when its model calls cost this much', parseFloatFlag)
    .addOption(
      new Option('--network <policy>', 'egress policy')
        .choices(['open', 'none', 'allowlist'])
        .default('open'),
    )
    .option('--unsafe-no-sandbox', 'allow --sandbox none')
    .option('--offline', 'never download')
    .option('--json', 'print the trial summary as JSON')
    .action(async (flags: TrialRunFlags) => {
      const { splitShellWords, createTrial, runTrial, interruptible, trialEnvFor } = await trialModules();
      const input: TrialSpecInput = {
        experiment: flags.experiment,
        agent: flags.agent,
        agentConfig: flags.agentConfig,
        agentCommand: flags.agentCommand ? splitShellWords(flags.agentCommand) : undefined,
        baseModel: flags.model,
        baseModelPath: flags.baseModelPath,
        benchmark: flags.benchmark as TrialSpecInput['benchmark'],
        hours: flags.hours,
        gpus: flags.gpus,
        seed: flags.seed,
        sandbox: flags.sandbox as TrialSpecInput['sandbox'],
        image: flags.image,
        engine: flags.engine as TrialSpecInput['engine'],
        evalLimit: flags.evalLimit,
        promptFile: flags.promptFile,
        budgetUsd: flags.budgetUsd,
        network: flags.network as TrialSpecInput['network'],
        unsafeNoSandbox: flags.unsafeNoSandbox ?? false,
      };
      await interruptible(async (signal) => {
        const env = trialEnvFor(ctx, { offline: flags.offline, signal, quiet: flags.json });
        const created = createTrial(env, input);
        ctx.stderr.write(`trial ${created.id} in ${created.dir}\n`);
        const done = await runTrial(env, created.id);
        printTrial(ctx, done, flags.json);
      });
    });
  trial
    .command('resume <id>')
    .description('continue a trial after the harness stopped, from its last completed phase')
    .option('--offline', 'never download')
    .option('--json', 'print the trial summary as JSON')
    .action(async (id: string, flags: { offline?: boolean; json?: boolean }) => {
      const { runTrial, interruptible, trialEnvFor } = await trialModules();
      await interruptible(async (signal) => {
        const env = trialEnvFor(ctx, { offline: flags.offline, signal, quiet: flags.json });
        printTrial(ctx, await runTrial(env, id), flags.json);
      });
    });
  registerTrialExec(trial, ctx);
  trial
    .command('show <id>')
    .description('status, phases, scores and verdicts of one trial')
    .option('--json', 'as JSON (with phases and audits)')
    .action(async (id: string, flags: { json?: boolean }) => {
      const [{ trialEnvFor }, { syncTrialIndex }] = await Promise.all([
        import('./trialEnv.ts'),
        import('../trial/trialIndex.ts'),
      ]);
      const env = trialEnvFor(ctx, { quiet: true });
      syncTrialIndex(env.trials, ctx.home);
      const found = env.trials.find(id);
      if (!found) throw new UserError(`no trial ${id}`, 'list trials with `ptb trials`');
      if (flags.json) {
        ctx.stdout.write(
          `${JSON.stringify({ ...trialSummary(found), spec: found.spec, phases: env.trials.phases(found.id), audits: env.trials.audits(found.id) })}\n`,
        );
        return;
      }
      printTrial(ctx, found);
      for (const p of env.trials.phases(found.id)) {
        ctx.stdout.write(
          `  ${p.phase.padEnd(9)} ${p.status.padEnd(9)} ${p.started_at}${p.error ? `  ${p.error}` : ''}\n`,
        );
      }
    });

  trial
    .command('clean <id>')
    .description(
      "delete a finished trial's live workspace (work/: checkpoints, caches); results and ledgers stay",
    )
    .action(async (id: string) => {
      const { trialEnvFor } = await import('./trialEnv.ts');
      const env = trialEnvFor(ctx, { quiet: true });
      const found = env.trials.find(id);
      if (!found) throw new UserError(`no trial ${id}`, 'list trials with `ptb trials`');
      if (found.status === 'running' || found.status === 'pending') {
        throw new UserError(
          `trial ${found.id} is ${found.status}`,
          'clean only finished or interrupted trials',
        );
      }
      const work = trialLayout(found.dir).work.dir;
      const existed = existsSync(work);
      rmSync(work, { recursive: true, force: true });
      ctx.stdout.write(existed ? `removed ${work}\n` : `nothing to remove: ${work} is gone already\n`);
    });

  program
    .command('trials')
    .description('list trials with phase, time used and score')
    .option('--experiment <name>', 'only this experiment')
    .option('--status <status>', 'pending | running | interrupted | completed | failed')
    .option('--json', 'one JSON object per line')
    .action(async (flags: { experiment?: string; status?: string; json?: boolean }) => {
      const [{ trialEnvFor }, { syncTrialIndex }, { scheduledTrialStates }] = await Promise.all([
        import('./trialEnv.ts'),
        import('../trial/trialIndex.ts'),
        import('../schedulers/scheduledTrials.ts'),
      ]);
      const { TrialStatusSchema } = await import('../core/trial.ts');
      if (
        flags.status !== undefined &&
        !TrialStatusSchema.options.includes(flags.status as Trial['status'])
      ) {
        throw new UserError(
          `unknown trial status "${flags.status}"`,
          `Use one of: ${TrialStatusSchema.options.join(', ')}.`,
        );
      }
      const env = trialEnvFor(ctx, { quiet: true });
      syncTrialIndex(env.trials, ctx.home);
      const rows = env.trials.list({
        experiment: flags.experiment,
        status: flags.status as Trial['status'] | undefined,
      });
      // Trials run by a scheduler show its state (one query per experiment), as `ptb run status` does.
      const scheduled = scheduledTrialStates(ctx.home, env.trials, ctx.env, { experiment: flags.experiment });
      const lost = env.trials.lostAttemptTotals();
      if (flags.json) {
        for (const r of rows) {
          const sched = scheduled.states.get(r.id);
          ctx.stdout.write(
            `${JSON.stringify({
              ...trialSummary(r),
              state: sched?.state ?? r.status,
              lost_attempts: lost.get(r.id)?.attempts ?? 0,
              lost_seconds: lost.get(r.id)?.seconds ?? 0,
              scheduler: sched
                ? {
                    state: sched.schedulerState,
                    job: sched.job,
                    node: sched.node,
                    log: sched.log,
                    reason: sched.reason,
                  }
                : null,
            })}\n`,
          );
        }
        return;
      }
      if (rows.length === 0) {
        const filtered = flags.experiment !== undefined || flags.status !== undefined;
        const all = filtered ? env.trials.list({}) : [];
        ctx.stdout.write(
          filtered && all.length > 0
            ? `no trials match${flags.experiment !== undefined ? ` --experiment ${flags.experiment}` : ''}${flags.status !== undefined ? ` --status ${flags.status}` : ''} ` +
                `(${all.length} trial(s) in experiments ${[...new Set(all.map((t) => t.experiment))].join(', ')})\n`
            : 'no trials yet (start one with `ptb trial run` or `ptb run --config grid.yaml`)\n',
        );
        return;
      }
      const withLogs = rows.some((r) => scheduled.states.has(r.id));
      const table = rows.map((r) => {
        const sched = scheduled.states.get(r.id);
        const l = lost.get(r.id);
        return {
          id: r.id,
          experiment: r.experiment,
          agent: r.agent,
          model: r.base_model.split('/').pop()!,
          benchmark: r.benchmark,
          status: sched?.state ?? r.status,
          phase: r.phase ?? '',
          time: r.agent_seconds === null ? '—' : `${(r.agent_seconds / 60).toFixed(1)}m`,
          score: scoreCell(r),
          restarts: l ? `${l.attempts} (${(l.seconds / 60).toFixed(1)}m lost)` : '0',
          ...(withLogs ? { log: sched?.log ?? '' } : {}),
        };
      });
      ctx.stdout.write(formatTable(table, ['time', 'score']));
      for (const p of scheduled.problems) ctx.stdout.write(`${p}\n`);
      if (rows.some((r) => r.substituted))
        ctx.stdout.write('* base model score substituted (flagged, unverified or no metrics)\n');
      if (rows.some((r) => r.final_score === null && r.accuracy !== null && r.source === 'import'))
        ctx.stdout.write(
          '† accuracy recorded by an imported run; `ptb report` decides its score with the judgement files\n',
        );
    });
}
