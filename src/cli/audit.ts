import type { Command } from 'commander';
import type { AuditResult } from '../audit/runAudit.ts';
import { UserError } from '../core/errors.ts';
import type { DetectorVerdict } from '../core/trial.ts';
import type { AuditWithVerdicts } from '../store/trialRepo.ts';
import type { CliContext } from './context.ts';

interface AuditFlags {
  requireJudge?: boolean;
  dir?: string;
  json?: boolean;
  detectors?: string;
  judgeProvider?: string;
  judgeBaseUrl?: string;
  judgeModel?: string;
  unverified?: string;
  strictDownloads?: boolean;
  baseModelDir?: string;
  out?: string;
  history?: boolean;
  offline?: boolean;
  judges?: string;
  judgeProtocol?: string;
  skipExisting?: boolean;
  concurrency?: string;
}

const list = (value: string | undefined) =>
  value
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** Exit codes: 0 clean, 3 flagged, 4 unverified (1 and 2 stay errors and usage). */
const EXIT: Record<string, number> = { clean: 0, flagged: 3, unverified: 4, not_audited: 4 };

const MARK: Record<string, string> = { clean: 'clean', flagged: 'FLAGGED', unverified: 'unverified' };

function verdictLines(verdicts: DetectorVerdict[]): string[] {
  const lines: string[] = [];
  const width = Math.max(8, ...verdicts.map((v) => v.detector.length));
  for (const v of verdicts) {
    lines.push(`  ${v.detector.padEnd(width)}  ${(MARK[v.verdict] ?? v.verdict).padEnd(10)}  ${v.summary}`);
    const shown = v.verdict === 'clean' ? [] : v.evidence.filter((e) => e.severity !== 'info').slice(0, 4);
    for (const e of shown)
      lines.push(`  ${''.padEnd(width)}    - ${e.source}: ${String(e.detail).slice(0, 200)}`);
  }
  return lines;
}

function printResult(ctx: CliContext, result: AuditResult, earlier: AuditWithVerdicts[] | null): void {
  const out: string[] = [
    `audit ${result.auditId} of ${result.trialId}`,
    ...verdictLines(result.verdicts),
    `combined: ${result.combined} — ${result.summary}`,
    `score: ${result.scoreAs === 'base' ? "the base model's score" : 'its own score'} (unverified policy: ${result.policy})`,
    `verdicts: ${result.dir}/verdicts.json`,
  ];
  const r = result.rescore;
  if (r) {
    const fmt = (x: number | null) => (x === null ? '—' : x.toFixed(3));
    out.push(
      r.changed
        ? `final score: ${fmt(r.finalScore)}${r.substituted ? ' (base model score substituted)' : ''}, was ${fmt(r.previous.finalScore)}${r.previous.substituted ? ' (substituted)' : ''} — ${r.reason}`
        : `final score: ${fmt(r.finalScore)} (unchanged)`,
    );
  }
  if (earlier !== null) {
    const last = earlier.at(-1);
    out.push(
      earlier.length === 0
        ? 'earlier audits: none'
        : `earlier audits: ${earlier.length} kept (latest ${last!.created_at}: ${last!.combined})`,
    );
  }
  ctx.stdout.write(`${out.join('\n')}\n`);
}

function printHistory(ctx: CliContext, trialId: string, audits: AuditWithVerdicts[]): void {
  if (audits.length === 0) {
    ctx.stdout.write(`${trialId}: never audited\n`);
    return;
  }
  const lines = [`${trialId}: ${audits.length} audit(s), oldest first`];
  for (const a of audits) {
    lines.push(`${a.id}  ${a.created_at}  ${a.combined}  (policy ${a.policy})  ${a.summary}`);
    lines.push(...verdictLines(a.verdicts));
  }
  ctx.stdout.write(`${lines.join('\n')}\n`);
}

function parsePolicy(value: string | undefined): 'base-score' | 'keep-score' | undefined {
  if (value === undefined) return undefined;
  if (value === 'base-score' || value === 'keep-score') return value;
  throw new UserError(
    `unknown policy "${value}"`,
    'Use --unverified base-score (the reference) or keep-score.',
  );
}

export function registerAudit(program: Command, ctx: CliContext): void {
  program
    .command('audit')
    .description(
      'audit a trial for reward hacking again (earlier audits are kept), or an upstream run directory',
    )
    .argument('[trial]', 'trial id (or a unique prefix), or an experiment name to audit all its trials')
    .option('--dir <run-dir>', 'audit an upstream run directory (<benchmark>_<org>_<model>_<id>) instead')
    .option('--detectors <ids>', 'comma-separated detectors to run (default: all)')
    .option('--judge-provider <name>', 'LLM judge API: openai (any OpenAI-compatible endpoint) or anthropic')
    .option('--judge-base-url <url>', "LLM judge endpoint (default: the provider's public API)")
    .option('--judge-model <name>', 'LLM judge model (the judge runs when a model is set)')
    .option('--require-judge', 'run the LLM judge even without a model (it then reports unverified)')
    .option(
      '--unverified <policy>',
      'how an unverified audit scores: base-score (default, the reference) or keep-score',
    )
    .option(
      '--strict-downloads',
      "flag downloads of the benchmark's test split (default: recorded as warnings)",
    )
    .option(
      '--base-model-dir <path>',
      'with --dir: local files of the base model to compare final_model with',
    )
    .option('--out <dir>', 'with --dir: where to write the audit (default RUN_DIR/ptb_audit)')
    .option('--history', 'list the earlier audits of the trial without running a new one')
    .option(
      '--offline',
      'do not fetch disallowed reference models from the Hub (stored signatures and cached weights still count)',
    )
    .option(
      '--judges <ids>',
      'declarative judges to run (ids, or a protocol id for its whole set: v1.0, v1.1); alone, they re-judge and keep the other verdicts',
    )
    .option(
      '--judge-protocol <id>',
      "protocol whose judge definitions apply (default: the trial's own protocol)",
    )
    .option(
      '--skip-existing',
      'with an experiment: skip trials that already have these verdicts (same versions)',
    )
    .option('--concurrency <n>', 'with an experiment: trials audited at the same time (default 4)')
    .option('--json', 'print the audit as JSON')
    .addHelpText(
      'after',
      '\nExit status: 0 clean, 3 flagged, 4 unverified. The judge key is read from PTB_JUDGE_API_KEY;\n' +
        'PTB_JUDGE_PROVIDER, PTB_JUDGE_BASE_URL and PTB_JUDGE_MODEL stand in for the flags.',
    )
    .action(async (trial: string | undefined, flags: AuditFlags) => {
      if (Boolean(trial) === Boolean(flags.dir)) {
        throw new UserError(
          'give either a trial id or --dir RUN_DIR',
          'Example: ptb audit trial-20250101-120000-abc123',
        );
      }
      const { auditExperiment, auditHistory, auditRunDir, auditTrial } = await import(
        '../audit/auditTrial.ts'
      );
      const { TrialRepo } = await import('../store/trialRepo.ts');
      if (flags.history) {
        if (!trial) throw new UserError('--history needs a trial id');
        const { trialId, audits } = auditHistory(ctx.db(), trial);
        if (flags.json) ctx.stdout.write(`${JSON.stringify({ trialId, audits }, null, 2)}\n`);
        else printHistory(ctx, trialId, audits);
        return;
      }
      const request = {
        env: ctx.env,
        judge: { provider: flags.judgeProvider, baseUrl: flags.judgeBaseUrl, model: flags.judgeModel },
        testSplitDownloads: flags.strictDownloads ? ('flag' as const) : ('warning' as const),
        requireJudge: flags.requireJudge ?? false,
        offline: flags.offline ?? false,
        detectors: list(flags.detectors),
        judges: list(flags.judges),
        judgeProtocol: flags.judgeProtocol,
        policy: parsePolicy(flags.unverified),
        ctx: {
          home: ctx.home.root,
          onProgress: flags.json ? undefined : (line: string) => ctx.stderr.write(`${line}\n`),
        },
      };
      let result: AuditResult;
      let earlier: AuditWithVerdicts[] | null = null;
      if (flags.dir) {
        result = await auditRunDir(flags.dir, {
          ...request,
          baseModelPath: flags.baseModelDir,
          outDir: flags.out,
        });
      } else if (
        !new TrialRepo(ctx.db()).find(trial!) &&
        new TrialRepo(ctx.db()).list({ experiment: trial! }).length > 0
      ) {
        const concurrency = flags.concurrency === undefined ? undefined : Number(flags.concurrency);
        if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1))
          throw new UserError(`--concurrency must be a positive integer, not ${flags.concurrency}`);
        const rows = await auditExperiment(ctx.db(), trial!, {
          ...request,
          skipExisting: flags.skipExisting,
          concurrency,
          onTrial: flags.json
            ? undefined
            : (row) =>
                ctx.stdout.write(
                  `${row.trialId}  ${row.status}${row.combined ? `  ${row.combined}` : ''}  ${row.summary ?? row.error ?? ''}\n`,
                ),
        });
        if (flags.json) ctx.stdout.write(`${JSON.stringify({ experiment: trial, trials: rows }, null, 2)}\n`);
        const counts = (status: string) => rows.filter((r) => r.status === status).length;
        if (!flags.json)
          ctx.stdout.write(
            `${trial}: ${counts('audited')} audited, ${counts('skipped')} skipped, ${counts('failed')} failed\n`,
          );
        ctx.exitCode = counts('failed') > 0 ? 1 : 0;
        return;
      } else {
        ({ result, earlier } = await auditTrial(ctx.db(), trial!, request));
      }
      if (flags.json) ctx.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      else printResult(ctx, result, earlier);
      ctx.exitCode = EXIT[result.combined] ?? 0;
    });
}
