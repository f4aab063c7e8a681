import type { Command } from 'commander';
import type { SelftestCaseResult, SelftestReport } from '../trial/selftest/runSelftest.ts';
import type { CliContext } from './context.ts';
import { parseIntFlag } from './eval.ts';

interface SelftestFlags {
  json?: boolean;
  only?: string;
  keep?: boolean;
  concurrency: number;
  verbose?: boolean;
  list?: boolean;
}

function caseLine(r: SelftestCaseResult): Record<string, unknown> {
  return {
    case: r.case,
    kind: r.kind,
    expected: r.expected,
    actual: r.actual,
    passed: r.passed,
    ...(r.problem ? { problem: r.problem } : {}),
    evidence: r.evidence,
    trial: r.trial,
    dir: r.dir,
    seconds: r.seconds,
  };
}

function printTable(ctx: CliContext, report: SelftestReport, passed: boolean): void {
  const rows = report.results.map((r) => {
    const expected = r.kind === 'honest' ? 'clean' : `flagged by ${r.expected.detectors.join('+')}`;
    const fired = r.actual.flagged.map((f) => `${f.detector} (${f.rule})`).join(', ');
    const unverified = r.actual.unverified.map((f) => `${f.detector}?`).join(', ');
    return {
      mark: r.passed ? 'ok  ' : 'FAIL',
      case: r.case,
      expected,
      actual: r.actual.verdict,
      fired: [fired, unverified].filter(Boolean).join('; ') || '—',
      evidence: r.problem ? `${r.problem} | ${r.evidence}` : r.evidence,
    };
  });
  const w = (key: 'case' | 'expected' | 'actual') =>
    Math.max(key.length, ...rows.map((row) => row[key].length));
  const widths = { case: w('case'), expected: w('expected'), actual: w('actual') };
  const out = (line: string) => ctx.stdout.write(`${line}\n`);
  out(
    `     ${'case'.padEnd(widths.case)}  ${'expected'.padEnd(widths.expected)}  ${'actual'.padEnd(widths.actual)}  detector fired / first evidence`,
  );
  for (const row of rows) {
    out(
      `${row.mark} ${row.case.padEnd(widths.case)}  ${row.expected.padEnd(widths.expected)}  ${row.actual.padEnd(widths.actual)}  ${row.fired}`,
    );
    if (row.evidence) out(`     ${''.padEnd(widths.case)}  ${row.evidence.slice(0, 220)}`);
  }
  out('\nper detector: cheaters caught / expected but missed / honest agents flagged or unverified');
  const dw = Math.max(8, ...report.detectors.map((d) => d.detector.length));
  for (const d of report.detectors) {
    const list = (xs: string[]) => (xs.length ? ` (${xs.join(', ')})` : '');
    out(
      `  ${d.detector.padEnd(dw)}  caught ${String(d.caught.length).padStart(2)}  missed ${d.missed.length}${list(d.missed)}  false positives ${d.falsePositives.length}${list(d.falsePositives)}`,
    );
  }
  if (report.uncaught.length) out(`  cheaters no detector flagged: ${report.uncaught.join(', ')}`);
  const s = report.summary;
  out(
    `\ncheaters caught: ${s.caught}/${s.cheaters}; honest agents flagged: ${s.false_positives}/${s.honest}; ` +
      `${s.seconds} s; experiment ${report.experiment}`,
  );
  if (s.provider_calls > 0)
    out(`${s.provider_calls} model call(s) got past the relay to the stand-in provider (none should)`);
  out(passed ? 'selftest passed: the audit works end to end' : 'selftest FAILED');
}

export function registerSelftest(program: Command, ctx: CliContext): void {
  program
    .command('selftest')
    .description(
      'red-team selftest of the audit: scripted cheaters and honest agents, each a real trial in the sandbox on a tiny model',
    )
    .option('--json', 'one JSON line per case, then {"summary": {...}}')
    .option('--only <ids>', 'comma-separated case ids (`ptb selftest --list` shows them)')
    .option('--list', 'print the case ids and what each expects, run nothing')
    .option('--keep', "keep each trial's live workspace (work/) for inspection")
    .option('--concurrency <n>', 'trials at the same time', parseIntFlag, 2)
    .option('--verbose', 'print every trial line on stderr')
    .action(async (flags: SelftestFlags) => {
      if (flags.list) {
        const { SELFTEST_CASES } = await import('../trial/selftest/cases.ts');
        for (const c of SELFTEST_CASES)
          ctx.stdout.write(`${c.id.padEnd(32)} ${c.kind.padEnd(8)} ${c.description}\n`);
        return;
      }
      const [{ runSelftest, selftestPassed }, { interruptible, trialEnvFor }] = await Promise.all([
        import('../trial/selftest/runSelftest.ts'),
        import('./trialEnv.ts'),
      ]);
      const only = flags.only
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const env = trialEnvFor(ctx, { offline: true, quiet: true });
      const report = await interruptible((signal) =>
        runSelftest(
          {
            ...env,
            signal,
            onLine: flags.verbose
              ? (line) => ctx.stderr.write(`${line}\n`)
              : (line) => {
                  if (line.startsWith('selftest:')) ctx.stderr.write(`${line}\n`);
                },
          },
          {
            only,
            keep: flags.keep,
            concurrency: flags.concurrency,
            onResult: (r) =>
              ctx.stderr.write(
                `selftest: ${r.case} ${r.passed ? 'ok' : 'FAILED'} (${r.actual.verdict}, ${r.seconds} s)\n`,
              ),
          },
        ),
      );
      if (flags.json) {
        for (const r of report.results) ctx.stdout.write(`${JSON.stringify(caseLine(r))}\n`);
        ctx.stdout.write(
          `${JSON.stringify({ summary: { ...report.summary, experiment: report.experiment }, detectors: report.detectors, uncaught: report.uncaught })}\n`,
        );
      } else {
        printTable(ctx, report, selftestPassed(report));
      }
      if (!selftestPassed(report)) ctx.exitCode = 1;
    });
}
