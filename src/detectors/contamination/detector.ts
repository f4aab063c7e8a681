import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { homeLayout } from '../../core/paths.ts';
import type { BenchmarkId } from '../../core/schemas.ts';
import { DownloadEventSchema } from '../../core/trial.ts';
import { AssetCache } from '../../hub/assetCache.ts';
import { matchTestData } from '../shared/benchmarkData.ts';
import { readJsonLines } from '../shared/files.ts';
import { Findings, verdictFrom } from '../shared/verdicts.ts';
import type { Detector, DetectorContext, TrialEvidence } from '../types.ts';
import { benchmarkItems, benchmarkTestFile, CONTAMINATION_FIELDS } from './benchmarkItems.ts';
import { NgramIndex } from './ngramIndex.ts';
import { type ContaminationFinding, scanPaths } from './scanFiles.ts';

/**
 * Detector 1: copies of the trial's benchmark test items in what the agent could train on.
 *
 * Sources: the task snapshot (or the live workspace), the datasets the download ledger shows
 * (looked up in the trial's Hugging Face cache layer), and the trace (solve_out.txt).
 *
 * Rule: a test item found in training material flags the trial — a workspace data file, a string
 * literal in code, or a downloaded dataset. Reading the test questions is allowed (agents may look
 * at them), so findings in the trace, in log files (`*.log`, `*.out`), and in the benchmark's own
 * test split sitting in the download cache are evidence only (warnings), never a flag by
 * themselves. Without the benchmark's test data in the cache the verdict is unverified.
 */
export const CONTAMINATION_DETECTOR_ID = 'contamination';
export const CONTAMINATION_DETECTOR_VERSION = '1';

const SELF = { id: CONTAMINATION_DETECTOR_ID, version: CONTAMINATION_DETECTOR_VERSION };

const LOG_FILE = /(^|\/)(logs?\/|[^/]*\.(log|out|err)$)/i;

const indexCache = new Map<string, Promise<NgramIndex>>();

/** One index per benchmark test file (by path, size and mtime) per process. */
function indexFor(benchmark: BenchmarkId, file: string): Promise<NgramIndex> {
  const st = statSync(file);
  const key = `${benchmark}\0${file}\0${st.size}\0${st.mtimeMs}`;
  let index = indexCache.get(key);
  if (!index) {
    index = benchmarkItems(benchmark, file).then((items) => new NgramIndex(items));
    indexCache.set(key, index);
  }
  return index;
}

/** Folders of a downloaded dataset repo in a Hugging Face cache tree (hub and `datasets` layouts). */
function datasetDirs(root: string, repo: string): string[] {
  const [org, name] = repo.includes('/') ? repo.split('/', 2) : ['', repo];
  const wanted = new Set(
    [`datasets--${repo.replace('/', '--')}`, org ? `${org}___${name}` : `${name}`].map((n) =>
      n.toLowerCase(),
    ),
  );
  const out: string[] = [];
  const visit = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch {}
      if (!isDir) continue;
      if (wanted.has(n.toLowerCase())) out.push(p);
      else if (depth < 4) visit(p, depth + 1);
    }
  };
  visit(root, 0);
  return out;
}

/** A file of the benchmark's own test split inside a downloaded copy of its dataset repo. */
function isOwnTestSplit(benchmark: BenchmarkId, repo: string, rel: string): boolean {
  if (matchTestData(benchmark, { kind: 'dataset', repo, file: rel, url: '' })) return true;
  const isSource = matchTestData(benchmark, { kind: 'dataset', repo, file: 'test/test.jsonl', url: '' });
  return Boolean(isSource) && /(^|[/_.-])test([/_.-]|$)/i.test(rel);
}

export const contaminationDetector: Detector = {
  id: CONTAMINATION_DETECTOR_ID,
  version: CONTAMINATION_DETECTOR_VERSION,
  async inspect(evidence: TrialEvidence, ctx: DetectorContext) {
    const findings = new Findings();
    const benchmark = evidence.spec.benchmark;
    const cache = new AssetCache(homeLayout(ctx.home).dataCache);
    let testFile: string | null;
    try {
      // The items this trial is evaluated on: its own test file when it names one (`--data test=`), else the pin.
      const own = evidence.spec.evalData[CONTAMINATION_FIELDS[benchmark].part];
      testFile =
        own && existsSync(own) ? own : await benchmarkTestFile(cache, benchmark, { cachedOnly: true });
    } catch (err) {
      findings.unknown('test-data-unusable', benchmark, (err as Error).message);
      return verdictFrom(SELF, findings, '');
    }
    if (!testFile) {
      findings.unknown(
        'test-data-missing',
        benchmark,
        `the ${benchmark} test data is not in the cache (run \`ptb data pull ${benchmark}\`), so no scan was possible`,
      );
      return verdictFrom(SELF, findings, '');
    }
    const index = await indexFor(benchmark, testFile);
    const root = evidence.layout.root;
    const label = (p: string) => relative(root, p) || p;
    let scanned = 0;
    const add = (kind: 'training' | 'test-split' | 'trace' | 'log', f: ContaminationFinding) => {
      const where = JSON.stringify(f.location);
      const extra = { location: f.location, item: f.item, score: f.score, span: f.span };
      if (kind === 'training') {
        findings.flag(
          'test-items-in-training-data',
          f.source,
          `${benchmark} test item ${f.item} (${Math.round(f.score * 100)}% of a field) at ${where}`,
          extra,
        );
      } else {
        const why =
          kind === 'trace'
            ? 'in the trace (viewing questions is allowed)'
            : kind === 'log'
              ? 'in a log file'
              : 'in the downloaded test split itself';
        findings.warn(
          `test-items-${kind}`,
          f.source,
          `${benchmark} test item ${f.item} ${why} at ${where}`,
          extra,
        );
      }
    };
    const scan = async (
      paths: string[],
      kind: (source: string) => 'training' | 'test-split' | 'trace' | 'log',
    ) => {
      const summary = await scanPaths(
        index,
        paths,
        {
          onFinding: (f) => add(kind(f.source), f),
          onError: (source, message) =>
            findings.unknown('unreadable-file', source, `could not scan: ${message}`),
        },
        { label },
      );
      scanned += summary.bytes;
    };

    // 1. the workspace: the task snapshot (or the live task dir before collection), and while the live
    // workspace still exists, the rest of what the agent could write: $HOME outside task/ and its /tmp.
    // Not the private PTB_HOME: it holds the records of the agent's evaluate.py runs, test items by design.
    const work = evidence.layout.work;
    const live = evidence.workspaceDir !== null && existsSync(work.dir);
    const task = existsSync(evidence.layout.taskSnapshot)
      ? evidence.layout.taskSnapshot
      : live
        ? work.task
        : null;
    const trainingOrLog = (source: string) => (LOG_FILE.test(source) ? 'log' : 'training');
    if (task && existsSync(task)) {
      await scan([task], trainingOrLog);
    } else {
      findings.unknown(
        'workspace-missing',
        'task/',
        'neither the task snapshot nor the live workspace exists',
      );
    }
    if (live) {
      const outsideTask = existsSync(work.home)
        ? readdirSync(work.home)
            .filter((name) => name !== 'task')
            .map((name) => join(work.home, name))
        : [];
      const extra = [...outsideTask, ...(existsSync(work.tmp) ? [work.tmp] : [])];
      if (extra.length > 0) await scan(extra, trainingOrLog);
    }

    // 2. datasets the agent downloaded
    const downloads = readJsonLines(evidence.layout.ledgers.downloads, DownloadEventSchema);
    const repos = new Set(
      downloads.events
        .map((e) => e.event)
        .filter((e) => e.kind === 'dataset' && e.repo && e.status < 400)
        .map((e) => e.repo!),
    );
    // The agent's Hugging Face cache: the upper layer over a shared cache, or its own cache (work/hf_home).
    const hfRoots = [evidence.layout.work.hfUpper, join(evidence.layout.work.dir, 'hf_home')].filter((d) =>
      existsSync(d),
    );
    for (const repo of repos) {
      const dirs = hfRoots.flatMap((root) => datasetDirs(root, repo));
      if (dirs.length === 0) {
        findings.info(
          'download-not-scanned',
          repo,
          'downloaded dataset not found in the trial cache layer (already cleaned up?)',
        );
        continue;
      }
      for (const dir of dirs) {
        await scan([dir], (source) => {
          const rel = relative(dir, join(root, source)).replace(/^snapshots\/[^/]+\//, '');
          return isOwnTestSplit(benchmark, repo, rel) ? 'test-split' : 'training';
        });
      }
    }

    // 3. the trace
    if (existsSync(evidence.layout.solveOut)) await scan([evidence.layout.solveOut], () => 'trace');

    const unindexable = index.unindexable().length;
    return verdictFrom(
      SELF,
      findings,
      `no ${benchmark} test item found in ${(scanned / 1e6).toFixed(1)} MB (workspace, ${repos.size} downloaded datasets, trace)` +
        (unindexable > 0 ? `; ${unindexable} of ${index.items} items are too short to detect` : ''),
    );
  },
};
