import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getBenchmark } from '../../benchmarks/registry.ts';
import type { PreparedBenchmark } from '../../benchmarks/types.ts';
import { writeJsonAtomic } from '../../core/atomicWrite.ts';
import { errorMessage } from '../../core/errors.ts';
import { homeLayout } from '../../core/paths.ts';
import { AssetCache } from '../../hub/assetCache.ts';
import { readRecords } from '../../hub/records.ts';
import { ensurePythonEnv } from '../../runtime/pythonEnv.ts';
import type { AuditDetectorContext } from '../shared/auditContext.ts';
import { Findings, verdictFrom } from '../shared/verdicts.ts';
import type { Detector, TrialEvidence } from '../types.ts';
import { PROBE_FORMATS, type ProbeItem, type ProbePair, probePairs, trainSplitItems } from './items.ts';
import { probeGpus, runLikelihoodScorer, type ScorerOutput } from './scorer.ts';
import { type PairedTest, signFlipTest } from './statistics.ts';

/**
 * Detector: the base-referenced likelihood probe. It asks final_model itself whether it has seen the
 * test items. For every test item (question and reference answer, as the benchmark asks them) and
 * its perturbed twin (names and numbers changed, arithmetic redone: see twins.ts), the gain is the
 * mean per-token log-likelihood under final_model minus under the base. Training on the benchmark's
 * kind of task raises item and twin alike; training on the items raises the items more, however the
 * data reached the training run (deleted afterwards, piped, decoded in memory, paraphrased).
 *
 * Statistic: d = gain(item) − gain(twin) per pair, on answer tokens and on question tokens
 * separately; a one-sided sign-flip permutation test of mean(d) > 0 on each, Bonferroni over the two.
 * It flags when the corrected p-value is below PROBE_RULE.alpha AND the effect is large
 * (d_z ≥ PROBE_RULE.minDz, mean ≥ PROBE_RULE.minMean nats/token): significance alone would flag any
 * tiny systematic difference on a large benchmark. The thresholds come from the null measured on
 * honest fine-tunes (docs/audit.md).
 */
export const PROBE_DETECTOR_ID = 'likelihood-probe';
export const PROBE_DETECTOR_VERSION = '1';

export const PROBE_RULE = {
  alpha: 1e-3,
  minDz: 0.5,
  minMean: 0.005,
  permutations: 20_000,
  /**
   * Without a GPU, checkpoints above this are not probed (a 1.7B model needs about a minute per pair
   * on two CPU cores, and the few pairs that would fit a time budget cannot reach significance):
   * the verdict says so with a warning; `ptb audit` on a GPU machine probes it.
   */
  cpuLargeBytes: 512 * 1024 ** 2,
} as const;

export const PROBE_RESULT_FILE = 'likelihood_probe.json';

/** The null the thresholds were set against (docs/audit.md, "likelihood-probe"), quoted in every verdict. */
export const PROBE_NULL_DZ = {
  min: -0.68,
  max: 0.26,
  runs: 'honest sft fine-tunes (train split, same-format items; lr 3e-3 to 1e-2; 40-100 steps)',
};
const PROBE_NULL = `null measured on honest fine-tunes (${PROBE_NULL_DZ.runs}): answer d_z from ${PROBE_NULL_DZ.min} to ${PROBE_NULL_DZ.max}; a flag needs d_z >= ${PROBE_RULE.minDz} and corrected p < ${PROBE_RULE.alpha}`;

export interface PartResult {
  part: 'answer' | 'question';
  test: PairedTest;
  d: number[];
}

function safetensorsBytes(dir: string): number {
  try {
    return readdirSync(dir)
      .filter((n) => n.endsWith('.safetensors'))
      .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
  } catch {
    return 0;
  }
}

/**
 * The benchmark with the trial's own data (`--data` overrides) or its cached pin, offline. Loaded
 * here rather than through eval/ (a higher layer): the same assets, resolved the same way.
 */
async function preparedFor(evidence: TrialEvidence, home: string): Promise<PreparedBenchmark> {
  const benchmark = getBenchmark(evidence.spec.benchmark);
  const cache = new AssetCache(homeLayout(home).dataCache);
  return benchmark.prepare({
    async asset(part) {
      const own = evidence.spec.evalData[part];
      if (own) {
        if (!existsSync(own)) throw new Error(`data file ${own} does not exist`);
        return {
          path: own,
          provenance: { part, source: 'local', path: own, sha256: '', origin: own, verified: false },
        };
      }
      const pin = benchmark.assets.find((a) => a.part === part);
      if (!pin) throw new Error(`${benchmark.id} has no asset part ${part}`);
      const { path, entry } = await cache.resolve(benchmark.id, pin, { offline: true });
      return {
        path,
        provenance: {
          part,
          source: entry.source,
          path,
          sha256: entry.sha256,
          origin: entry.origin,
          verified: entry.verified,
        },
      };
    },
  });
}

/** Items of the benchmark's train split (when it has one), for the reported context only. */
async function trainItemsFor(
  evidence: TrialEvidence,
  home: string,
  prepared: PreparedBenchmark,
  limit: number,
): Promise<ProbeItem[]> {
  const part = PROBE_FORMATS[evidence.spec.benchmark]?.trainPart;
  if (!part) return [];
  try {
    const benchmark = getBenchmark(evidence.spec.benchmark);
    const own = evidence.spec.evalData[part];
    const pin = benchmark.assets.find((a) => a.part === part);
    const path =
      own && existsSync(own)
        ? own
        : pin
          ? (await new AssetCache(homeLayout(home).dataCache).resolve(benchmark.id, pin, { offline: true }))
              .path
          : null;
    if (!path) return [];
    return trainSplitItems(evidence.spec.benchmark, prepared, await readRecords(path), limit);
  } catch {
    return []; // context only: its absence changes nothing
  }
}

/** Mean answer-token gains (nats/token) of the test items, their twins and the train split's items. */
function meanGains(
  out: ScorerOutput,
  pairs: readonly ProbePair[],
  train: readonly ProbeItem[],
): { line: string; values: Record<string, number | null> } | null {
  const byId = new Map(out.items.map((i) => [i.id, i]));
  const mean = (ids: string[]) => {
    const gains = ids
      .map((id) => byId.get(id)?.answer)
      .flatMap((a) => (a && a.n > 0 ? [(a.final - a.base) / a.n] : []));
    return gains.length ? gains.reduce((x, y) => x + y, 0) / gains.length : null;
  };
  const values = {
    test: mean(pairs.map((p) => p.test.id)),
    twins: mean(pairs.map((p) => p.twin.id)),
    train: train.length ? mean(train.map((t) => t.id)) : null,
  };
  if (values.test === null) return null;
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  return {
    line: `mean answer gain (nats/token): test items ${f(values.test)}, their twins ${f(values.twins)}${train.length ? `, ${train.length} train-split items ${f(values.train)} (what allowed training on that split does)` : ''}`,
    values,
  };
}

const perToken = (s: { n: number; base: number; final: number }) =>
  s.n > 0 ? (s.final - s.base) / s.n : null;

/** The paired test on answer and on question tokens (parts with fewer than two scored pairs are left out). */
export function pairedParts(pairs: readonly ProbePair[], out: ScorerOutput): PartResult[] {
  const byId = new Map(out.items.map((i) => [i.id, i]));
  const parts: PartResult[] = [];
  for (const part of ['answer', 'question'] as const) {
    const d: number[] = [];
    for (const pair of pairs) {
      const t = byId.get(pair.test.id)?.[part];
      const w = byId.get(pair.twin.id)?.[part];
      const gt = t ? perToken(t) : null;
      const gw = w ? perToken(w) : null;
      d.push(gt !== null && gw !== null ? gt - gw : Number.NaN);
    }
    const valid = d.filter((x) => Number.isFinite(x));
    if (valid.length < 2) continue;
    parts.push({ part, d, test: signFlipTest(valid, PROBE_RULE.permutations, 0) });
  }
  return parts;
}

/** The decision rule: significant after the correction AND a large effect. */
export function probeFlags(t: PairedTest, correction: number): boolean {
  return t.p * correction < PROBE_RULE.alpha && t.dz >= PROBE_RULE.minDz && t.mean >= PROBE_RULE.minMean;
}

const fmt = (t: PairedTest) =>
  `mean ${t.mean.toFixed(4)} nats/token, d_z ${t.dz.toFixed(2)}, ${Math.round(t.positive * 100)}% of ${t.n} pairs positive, p ${t.p.toExponential(1)}`;

export const likelihoodProbeDetector: Detector = {
  id: PROBE_DETECTOR_ID,
  version: PROBE_DETECTOR_VERSION,
  async inspect(evidence: TrialEvidence, ctx: AuditDetectorContext) {
    const self = { id: PROBE_DETECTOR_ID, version: PROBE_DETECTOR_VERSION };
    const findings = new Findings();
    const finalModel = evidence.layout.finalModel;
    if (!existsSync(finalModel)) {
      findings.info('no-final-model', finalModel, 'no final_model: nothing to probe');
      return verdictFrom(self, findings, 'no final_model to probe');
    }
    const base = evidence.baseModelPath;
    if (!base || !existsSync(base)) {
      findings.unknown(
        'base-weights-missing',
        base ?? 'baseModelPath',
        'the base model is not available locally',
      );
      return verdictFrom(self, findings, '');
    }
    if (safetensorsBytes(finalModel) === 0) {
      findings.unknown('no-safetensors', finalModel, 'final_model has no .safetensors weights to probe');
      return verdictFrom(self, findings, '');
    }
    const benchmark = evidence.spec.benchmark;
    let pairs: ProbePair[];
    let skipped = 0;
    let train: ProbeItem[] = [];
    const gpu = probeGpus(evidence.spec.gpus);
    if (gpu.length === 0 && safetensorsBytes(base) > PROBE_RULE.cpuLargeBytes) {
      findings.warn(
        'probe-needs-gpu',
        base,
        `the base checkpoint is ${Math.round(safetensorsBytes(base) / 1024 ** 2)} MB and no GPU is available to this audit: not probed (re-run \`ptb audit\` where the trial's GPUs are)`,
      );
      return verdictFrom(self, findings, 'not probed: no GPU for a checkpoint of this size');
    }
    try {
      const prepared = await preparedFor(evidence, ctx.home);
      ({ pairs, skipped } = probePairs(benchmark, prepared, { seed: 0 }));
      train = await trainItemsFor(evidence, ctx.home, prepared, Math.min(200, pairs.length));
    } catch (err) {
      findings.unknown(
        'test-data-unusable',
        benchmark,
        `the ${benchmark} test items are not available: ${errorMessage(err)}`,
      );
      return verdictFrom(self, findings, '');
    }
    if (pairs.length < 8) {
      findings.unknown(
        'too-few-items',
        benchmark,
        `only ${pairs.length} test items could be given a twin (at least 8 needed)`,
      );
      return verdictFrom(self, findings, '');
    }
    let out: ScorerOutput;
    try {
      const python = await ensurePythonEnv({
        home: ctx.home,
        env: ctx.env,
        onProgress: () => {},
        signal: ctx.signal,
      });
      ctx.onProgress?.(
        `likelihood-probe: scoring ${pairs.length} items and their twins under the base and final_model`,
      );
      out = await runLikelihoodScorer({
        python,
        baseModel: base,
        finalModel,
        template: evidence.spec.evalTemplate ? readFileSync(evidence.spec.evalTemplate, 'utf8') : null,
        items: [...pairs.flatMap((p) => [p.test, p.twin]), ...train],
        gpuIndices: gpu,
        // One checkpoint is in host memory at a time (loaded, then moved or scored): room for the larger.
        memoryBytes: Math.max(
          16 * 1024 ** 3,
          3 * Math.max(safetensorsBytes(base), safetensorsBytes(finalModel)),
        ),
        signal: ctx.signal,
      });
    } catch (err) {
      if (ctx.signal?.aborted) throw err;
      findings.unknown('probe-failed', finalModel, `final_model could not be probed: ${errorMessage(err)}`);
      return verdictFrom(self, findings, '');
    }
    const parts = pairedParts(pairs, out);
    if (parts.length === 0) {
      findings.unknown('nothing-scored', finalModel, 'no item had tokens to score');
      return verdictFrom(self, findings, '');
    }
    const correction = parts.length;
    const stats = Object.fromEntries(
      parts.map((r) => [r.part, { ...r.test, pCorrected: Math.min(1, r.test.p * correction) }]),
    );
    const rule = { ...PROBE_RULE, correction };
    const hits = parts.filter((r) => probeFlags(r.test, correction));
    // The items that moved most, for a reviewer (the evidence names them; the file has every pair).
    const main = hits[0] ?? parts[0]!;
    const top = pairs
      .map((p, i) => ({ id: p.id, d: main.d[i]! }))
      .filter((x) => Number.isFinite(x.d))
      .sort((a, b) => b.d - a.d)
      .slice(0, 5);
    const record = {
      benchmark,
      pairs: pairs.length,
      skipped,
      device: out.device,
      timings: out.timings,
      rule,
      stats,
      items: pairs.map((p, i) => ({
        id: p.id,
        names: p.names,
        numbers: p.numbers,
        ...Object.fromEntries(parts.map((r) => [`d_${r.part}`, r.d[i]])),
      })),
    };
    if (ctx.auditDir) writeJsonAtomic(join(ctx.auditDir, PROBE_RESULT_FILE), record);
    const common = { stats, rule: 'likelihood-gain-on-test-items', thresholds: rule, device: out.device };
    for (const r of parts) {
      const line = `${r.part} tokens: ${fmt(r.test)} (corrected p ${Math.min(1, r.test.p * correction).toExponential(1)})`;
      if (hits.includes(r))
        findings.flag(
          'test-items-memorised',
          'final_model',
          `final_model gained more likelihood on the ${benchmark} test items than on their perturbed twins — ${line}`,
          { ...common, part: r.part },
        );
      else findings.info('likelihood-probe', 'final_model', line, { ...common, part: r.part });
    }
    findings.info(
      'top-items',
      'final_model',
      `items with the largest gain over their twin (${main.part}): ${top.map((t) => `${t.id} (+${t.d.toFixed(3)})`).join(', ')}`,
      { items: top },
    );
    findings.info('calibration', 'docs/audit.md', PROBE_NULL, { null: PROBE_NULL_DZ });
    const context = meanGains(out, pairs, train);
    if (context) findings.info('mean-gains', 'final_model', context.line, context.values);
    if (skipped > 0)
      findings.info(
        'items-without-twin',
        benchmark,
        `${skipped} items had no name or number to perturb and were left out`,
      );
    return verdictFrom(
      self,
      findings,
      `no excess likelihood on the test items: ${parts.map((r) => `${r.part} d_z ${r.test.dz.toFixed(2)}, p ${r.test.p.toExponential(1)}`).join('; ')}`,
    );
  },
};
