import { existsSync, statSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { UserError } from '../core/errors.ts';
import { assertCreatableDir } from '../core/userPaths.ts';
import { PROTOCOL_IDS, REPORT_FORMATS } from '../core/vocabulary.ts';
import type { ReportFormat } from '../report/formats.ts';
import type { CliContext } from './context.ts';

/** `--x a,b --x c` → [a, b, c]. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

function collectRepeat(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const FORMAT_BY_EXTENSION: Record<string, ReportFormat> = {
  '.json': 'json',
  '.csv': 'csv',
  '.md': 'markdown',
  '.html': 'html',
  '.htm': 'html',
  '.txt': 'table',
};

interface ReportFlags {
  experiments?: string[];
  format?: ReportFormat;
  out?: string;
  plots?: string;
  weights: 'reference' | 'from-baselines';
  group?: string[];
  models?: string[];
  benchmarks?: string[];
  protocol?: string;
  includeDemo?: boolean;
}

export function registerReport(program: Command, ctx: CliContext): void {
  program
    .command('report')
    .description(
      'leaderboard over stored trials: newest trial per cell, base score for flagged/failed cells, weighted average, seeds as mean ± std',
    )
    .option(
      '--experiments <names>',
      'experiments to include (comma-separated, repeatable, * wildcards; default all)',
      collectList,
    )
    .addOption(
      new Option(
        '-f, --format <format>',
        'output format (default: from --out extension, else table)',
      ).choices([...REPORT_FORMATS]),
    )
    .option('-o, --out <file>', 'write the report to FILE instead of stdout')
    .option('--plots <dir>', 'also write the figures as SVG files into DIR')
    .addOption(
      new Option(
        '--weights <source>',
        "benchmark weights: the reference's factors, or recomputed from stored baselines",
      )
        .choices(['reference', 'from-baselines'])
        .default('reference'),
    )
    .option(
      '--group <name=experiments>',
      'put these experiments in one agent row as seeds (repeatable; default: experiments differing only in a _runN/_seedN suffix)',
      collectRepeat,
    )
    .option(
      '--models <ids>',
      'base models of the grid ("reference" = the four of the paper; default: those the trials use)',
      collectList,
    )
    .option('--benchmarks <ids>', 'benchmarks of the grid (default: those the trials use)', collectList)
    .addOption(
      new Option(
        '--protocol <version>',
        'only trials evaluated under this protocol (required when the selection holds several: scores of different protocols are never mixed)',
      ).choices([...PROTOCOL_IDS]),
    )
    .option('--include-demo', 'also the trials and baselines of `ptb demo` (left out by default)')
    .addHelpText(
      'after',
      '\nExamples:\n  ptb report\n  ptb report --experiments "claude_*" --format markdown\n' +
        '  ptb report --models reference --benchmarks aime2025,gsm8k --weights from-baselines --out board.html --plots figures/',
    )
    .action(async (flags: ReportFlags) => {
      if (flags.out) {
        const out = resolve(flags.out);
        assertCreatableDir(
          dirname(out),
          '--out folder',
          'Give --out a file path in a folder ptb can create.',
        );
        if (existsSync(out) && statSync(out).isDirectory()) {
          throw new UserError(`--out ${flags.out} is a directory`, 'Give --out a file path, e.g. board.md.');
        }
      }
      if (flags.plots) {
        assertCreatableDir(flags.plots, '--plots', 'Give --plots a directory (ptb creates it if missing).');
      }
      const [{ writeFileAtomic }, { parseGroups }, { buildReport, renderReport, writePlots }, { TrialRepo }] =
        await Promise.all([
          import('../core/atomicWrite.ts'),
          import('../report/grouping.ts'),
          import('../report/report.ts'),
          import('../store/trialRepo.ts'),
        ]);
      const { syncTrialIndex } = await import('../trial/trialIndex.ts');
      const repo = new TrialRepo(ctx.db());
      syncTrialIndex(repo, ctx.home);
      const report = buildReport(repo, {
        experiments: flags.experiments,
        weights: flags.weights,
        groups: parseGroups(flags.group ?? []),
        models: flags.models,
        benchmarks: flags.benchmarks,
        protocol: flags.protocol,
        includeDemo: flags.includeDemo,
      });
      const format =
        flags.format ??
        (flags.out ? FORMAT_BY_EXTENSION[extname(flags.out).toLowerCase()] : undefined) ??
        'table';
      const text = renderReport(report, format);
      if (flags.out) {
        writeFileAtomic(resolve(flags.out), text);
        ctx.stderr.write(`wrote ${flags.out} (${format})\n`);
      } else {
        ctx.stdout.write(text);
      }
      if (flags.plots) {
        for (const path of writePlots(report, resolve(flags.plots))) ctx.stderr.write(`wrote ${path}\n`);
      }
    });
}
