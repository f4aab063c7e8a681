import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import type { BenchmarkId } from '../core/schemas.ts';
import { assertReadableFile } from '../core/userPaths.ts';
import { BENCHMARK_IDS } from '../core/vocabulary.ts';
import { type CliContext, isOffline } from './context.ts';
import { downloadProgress, ProgressLine } from './progress.ts';

interface ScanFlags {
  against: string;
  threads?: number;
  testData?: string;
  allowed?: string;
  offline?: boolean;
  verbose?: boolean;
}

/** Scans larger than this show a progress line. */
const PROGRESS_BYTES = 64 << 20;

export function registerScan(program: Command, ctx: CliContext): void {
  program
    .command('scan')
    .description('find copies of benchmark test items in files (training data, code, traces)')
    .requiredOption(
      '--against <benchmark|file.jsonl>',
      `a benchmark (${BENCHMARK_IDS.join(', ')}) or a JSONL of items`,
    )
    .argument('<paths...>', 'files or folders (recursive); JSONL, JSON, CSV, Parquet, Arrow, text, code, .gz')
    .option(
      '--test-data <file>',
      'with a benchmark: its test file to index instead of the pinned one in the cache',
    )
    .option(
      '--allowed <file>',
      'data agents may train on (with --against gsm8k, the cached train split by default): its n-grams are not indexed',
    )
    .option(
      '--threads <n>',
      'threads to scan with (default: one per core, up to 4, for scans over 64 MB)',
      (v) => Math.max(1, Number.parseInt(v, 10) || 1),
    )
    .option('--offline', 'never download the benchmark test data')
    .option('--verbose', 'also list skipped files on stderr')
    .addHelpText(
      'after',
      '\nEvery file is read: archives (zip, tar), compressed files (gzip, zlib, bzip2, xz, zstd), tables\n' +
        '(Parquet, Arrow), numpy text arrays, pickles as raw bytes, base64 and hex blobs inside text.\n' +
        'Prints one JSON line per finding {"source", "location", "item", "score", "span"[, "via"]}, one\n' +
        '{"skipped", "reason"} line per file or member not read (weights, media, links out of the\n' +
        'folders), one {"unreadable", "message"} line per file that could not be read in full, and a final\n' +
        '{"summary": {...}} line. Exit code: 1 when a test item was found, 2 when nothing was found but\n' +
        'some files could not be read, 0 otherwise.',
    )
    .action(async (paths: string[], flags: ScanFlags) => {
      const started = performance.now();
      const [{ scanPaths }, { scanPathsParallel, startScanWorkers }] = await Promise.all([
        import('../detectors/contamination/scanFiles.ts'),
        import('../detectors/contamination/parallelScan.ts'),
      ]);
      // Large scans use every core (threads > 1), small ones stay in this thread; workers start
      // now, loading their code while this thread loads the items and the index.
      const threads = flags.threads ?? null;
      const workers = threads === 1 ? [] : startScanWorkers(paths, threads ?? undefined);
      const { index, allowed } = await scanIndex(ctx, flags).catch((err: unknown) => {
        for (const worker of workers) worker.stop();
        throw err;
      });
      const unindexable = index.unindexable();
      if (unindexable.length > 0 && flags.verbose) {
        ctx.stderr.write(
          `ptb scan: ${unindexable.length} items are too short to find: ${unindexable.slice(0, 10).join(', ')}\n`,
        );
      }
      let progress: ProgressLine | null = null;
      const skippedByReason: Record<string, number> = {};
      // Lines go out in batches (a scan of a corpus full of copies finds thousands: one write per
      // line was a tenth of its time), flushed at 64 KB, before anything goes to stderr, and at the end.
      let pending = '';
      const flush = () => {
        if (pending.length === 0) return;
        if (progress?.isTty) ctx.stderr.write('\r\x1b[2K'); // keep a drawn bar from mixing into the lines
        ctx.stdout.write(pending);
        pending = '';
      };
      const line = (value: unknown) => {
        pending += `${JSON.stringify(value)}\n`;
        if (pending.length >= 1 << 16) flush();
      };
      const scan: typeof scanPaths = (idx, ps, cb) =>
        threads === 1
          ? scanPaths(idx, ps, cb)
          : scanPathsParallel(idx, ps, cb, threads ? { threads, workers } : { workers });
      const summary = await scan(index, paths, {
        onFinding: (f) => {
          line({
            source: f.source,
            location: f.location,
            item: f.item,
            score: f.score,
            span: f.span,
            ...(f.via.length > 0 ? { via: f.via } : {}),
            ...(f.container ? { container: f.container } : {}),
          });
        },
        onError: (source, message) => {
          line({ unreadable: source, message });
          flush();
          const text = `ptb scan: cannot read ${source}: ${message}`;
          if (progress) progress.log(text);
          else ctx.stderr.write(`${text}\n`);
        },
        onSkip: (source, reason) => {
          line({ skipped: source, reason });
          const group = reason
            .replace(/ to .*, outside/, ' outside')
            .replace(/\(.*\)/, '')
            .trim();
          skippedByReason[group] = (skippedByReason[group] ?? 0) + 1;
          if (flags.verbose) {
            flush();
            ctx.stderr.write(`ptb scan: skipped ${source} (${reason})\n`);
          }
        },
        onProgress: (done, total) => {
          flush();
          if (!progress && total >= PROGRESS_BYTES) progress = new ProgressLine(ctx.stderr, 'scan');
          progress?.updateBytes(done, total);
        },
      });
      flush();
      (progress as ProgressLine | null)?.end();
      const seconds = (performance.now() - started) / 1000;
      ctx.stdout.write(
        `${JSON.stringify({
          summary: {
            against: flags.against,
            items: index.items,
            ...(allowed ? { allowed, allowedNgramsDropped: index.allowedDropped } : {}),
            unindexable: unindexable.length,
            files: summary.files,
            bytes: summary.bytes,
            skipped: summary.skipped,
            skippedByReason,
            errors: summary.errors,
            findings: summary.findings,
            itemsFound: summary.items,
            seconds: Math.round(seconds * 1000) / 1000,
            mbPerSecond: Math.round(summary.bytes / 1e6 / Math.max(summary.seconds, 1e-3)),
          },
        })}\n`,
      );
      ctx.exitCode = summary.findings > 0 ? 1 : summary.errors > 0 ? 2 : 0;
    });
}

/** The index of the items to look for (cached by the items and the allowed texts), and the allowed file. */
async function scanIndex(ctx: CliContext, flags: ScanFlags) {
  const { cachedIndex } = await import('../detectors/contamination/indexCache.ts');
  const items = await loadItems(ctx, flags);
  const allowed = await allowedFile(ctx, flags);
  const allowedTextList = allowed ? await allowedTextsOf(flags, allowed) : [];
  return { index: cachedIndex(items, allowedTextList, join(ctx.home.cache, 'ngram-index')), allowed };
}

async function loadItems(ctx: CliContext, flags: ScanFlags) {
  const against = flags.against;
  if ((BENCHMARK_IDS as readonly string[]).includes(against)) {
    const { benchmarkItems, benchmarkTestFile } = await import(
      '../detectors/contamination/benchmarkItems.ts'
    );
    if (flags.testData) {
      if (!existsSync(flags.testData))
        throw new UserError(
          `--test-data ${flags.testData} does not exist`,
          'Pass the benchmark test file to index.',
        );
      return benchmarkItems(against as BenchmarkId, flags.testData);
    }
    const line = new ProgressLine(ctx.stderr, 'data');
    const file = await benchmarkTestFile(ctx.cache, against as BenchmarkId, {
      offline: isOffline(ctx, flags.offline),
      hfToken: ctx.env.HF_TOKEN,
      onProgress: downloadProgress(line),
    });
    line.end();
    return benchmarkItems(against as BenchmarkId, file!);
  }
  if (existsSync(against)) {
    assertReadableFile(against, '--against', {
      hint: 'Give a benchmark id or a JSONL file of test items.',
      maxBytes: 512 * 1024 * 1024,
    });
  } else {
    throw new UserError(
      `--against ${against} is neither a benchmark nor a file`,
      `Use one of ${BENCHMARK_IDS.join(', ')}, or a JSONL file of test items.`,
    );
  }
  // A file of items needs no benchmark's code (itemsFile.ts loads without the benchmarks).
  const { fileItems } = await import('../detectors/contamination/itemsFile.ts');
  return fileItems(against);
}

/** Allowed training data: --allowed, else for a benchmark with an allowed split its cached copy. */
async function allowedFile(ctx: CliContext, flags: ScanFlags): Promise<string | null> {
  if (flags.allowed) {
    if (!existsSync(flags.allowed))
      throw new UserError(
        `--allowed ${flags.allowed} does not exist`,
        'Pass a JSONL/JSON/CSV/Parquet file of allowed training records.',
      );
    return flags.allowed;
  }
  if (!(BENCHMARK_IDS as readonly string[]).includes(flags.against)) return null;
  const { allowedTrainingFile } = await import('../detectors/contamination/benchmarkItems.ts');
  return allowedTrainingFile({ benchmark: flags.against as BenchmarkId, evalData: {} }, ctx.cache);
}

async function allowedTextsOf(flags: ScanFlags, file: string): Promise<string[]> {
  if ((BENCHMARK_IDS as readonly string[]).includes(flags.against)) {
    const { allowedTexts } = await import('../detectors/contamination/benchmarkItems.ts');
    return allowedTexts(flags.against as BenchmarkId, file);
  }
  const { fileItems } = await import('../detectors/contamination/itemsFile.ts');
  return (await fileItems(file)).flatMap((item) => item.texts);
}
