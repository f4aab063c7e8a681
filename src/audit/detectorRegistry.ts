import { UserError } from '../core/errors.ts';
import { contaminationDetector } from '../detectors/contamination/detector.ts';
import { createEgressRulesDetector, type EgressRulesOptions } from '../detectors/egressRules.ts';
import { createJudgeDetector } from '../detectors/judges/judgeDetector.ts';
import { resolveJudges } from '../detectors/judges/judgeSets.ts';
import {
  createLlmJudgeDetector,
  JUDGE_DEFAULT_BASE_URL,
  JUDGE_ENV,
  type JudgeFlags,
  judgeConfigFrom,
  unconfiguredJudgeDetector,
} from '../detectors/llmJudge.ts';
import { likelihoodProbeDetector } from '../detectors/probe/detector.ts';
import { provenanceDetector } from '../detectors/provenance/detector.ts';
import { referenceJudgementDetector } from '../detectors/shared/referenceJudgement.ts';
import { submissionDetector } from '../detectors/submission.ts';
import { tamperDetector } from '../detectors/tamper.ts';
import type { Detector } from '../detectors/types.ts';

export interface DetectorOptions {
  env: NodeJS.ProcessEnv;
  /** LLM judge settings from flags (the key always comes from PTB_JUDGE_API_KEY). */
  judge?: JudgeFlags;
  testSplitDownloads?: EgressRulesOptions['testSplitDownloads'];
  /** Run the LLM judge even when no judge model is configured (it then reports unverified). */
  requireJudge?: boolean;
  /** Judges (ids or protocol ids, see detectors/judges/judgeSets.ts) to run after the detectors. */
  judges?: string[];
  /** Protocol whose judge definitions apply to judge ids given alone (default v1.1). */
  judgeProtocol?: string;
}

/**
 * Every detector an audit runs, in order, by id. Adding a detector is one line here. The audit decides
 * from evidence; the LLM judge is one more signal and joins when a judge model is configured (or
 * asked for by name or `requireJudge`: without a model it then reports unverified, never clean).
 */
export const DETECTOR_FACTORIES: ReadonlyArray<readonly [string, (opts: DetectorOptions) => Detector]> = [
  ['tamper', () => tamperDetector],
  ['submission', () => submissionDetector],
  ['egress-rules', (o) => createEgressRulesDetector({ testSplitDownloads: o.testSplitDownloads })],
  ['contamination', () => contaminationDetector],
  ['provenance', () => provenanceDetector],
  ['likelihood-probe', () => likelihoodProbeDetector],
  [
    'llm-judge',
    (o) => {
      const config = judgeConfigFrom(o.judge ?? {}, o.env);
      return typeof config === 'string' ? unconfiguredJudgeDetector(config) : createLlmJudgeDetector(config);
    },
  ],
];

/** Upstream run directories also carry the reference judge's verdict files: read them as one more detector. */
export const UPSTREAM_DETECTOR_FACTORIES: ReadonlyArray<
  readonly [string, (opts: DetectorOptions) => Detector]
> = [...DETECTOR_FACTORIES, ['reference-judgement', () => referenceJudgementDetector]];

export const DETECTOR_IDS: readonly string[] = DETECTOR_FACTORIES.map(([id]) => id);

/**
 * The declarative judges asked for, as detectors (they run last). The endpoint comes from the judge
 * flags and PTB_JUDGE_*; the model is each definition's own unless --judge-model overrides it.
 */
export function selectJudges(opts: DetectorOptions): Detector[] {
  if (!opts.judges?.length) return [];
  const defs = resolveJudges(opts.judges, opts.judgeProtocol);
  const provider = (opts.judge?.provider ?? opts.env[JUDGE_ENV.provider] ?? 'openai').trim().toLowerCase();
  if (provider !== 'openai' && provider !== 'anthropic')
    throw new UserError(`unknown judge provider "${provider}"`, 'Use --judge-provider openai or anthropic.');
  const endpoint = {
    provider: provider as 'openai' | 'anthropic',
    baseUrl:
      (opts.judge?.baseUrl ?? opts.env[JUDGE_ENV.baseUrl] ?? '').trim() || JUDGE_DEFAULT_BASE_URL[provider],
    apiKey: opts.env[JUDGE_ENV.apiKey] ?? '',
  };
  const model = opts.judge?.model ?? opts.env[JUDGE_ENV.model];
  return defs.map((def) => createJudgeDetector(def, endpoint, { model }));
}

/** The detectors to run: all of them, or the ids asked for (in registry order). */
export function selectDetectors(
  opts: DetectorOptions,
  only?: readonly string[],
  factories: ReadonlyArray<readonly [string, (opts: DetectorOptions) => Detector]> = DETECTOR_FACTORIES,
): Detector[] {
  const ids = factories.map(([id]) => id);
  if (only && only.length > 0) {
    const unknown = only.filter((id) => !ids.includes(id));
    if (unknown.length > 0) {
      throw new UserError(
        `unknown detector${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
        `Choose from: ${ids.join(', ')}.`,
      );
    }
  }
  const judgeConfigured = typeof judgeConfigFrom(opts.judge ?? {}, opts.env) !== 'string';
  return factories
    .filter(([id]) => !only || only.length === 0 || only.includes(id))
    .filter(([id]) => id !== 'llm-judge' || judgeConfigured || opts.requireJudge || (only ?? []).includes(id))
    .map(([, make]) => make(opts));
}
