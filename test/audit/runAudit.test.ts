import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { combineVerdicts, scoreAs } from '../../src/audit/combine.ts';
import { selectDetectors } from '../../src/audit/detectorRegistry.ts';
import { judgementLine } from '../../src/audit/judgementFiles.ts';
import { runAudit } from '../../src/audit/runAudit.ts';
import type { DetectorVerdict } from '../../src/core/trial.ts';
import type { Detector } from '../../src/detectors/types.ts';
import { openDb } from '../../src/store/db.ts';
import { TrialRepo } from '../../src/store/trialRepo.ts';
import { makeTrial, type TrialFixture } from './trialFixture.ts';

let trial: TrialFixture | undefined;
afterEach(() => {
  trial?.cleanup();
  trial = undefined;
});

function fixed(id: string, verdict: DetectorVerdict['verdict'], rule?: string): Detector {
  return {
    id,
    version: '1',
    async inspect() {
      return {
        detector: id,
        version: '1',
        verdict,
        ...(rule ? { rule } : {}),
        summary: `${id} says ${verdict}`,
        evidence: [],
      };
    },
  };
}

const v = (detector: string, verdict: DetectorVerdict['verdict'], rule?: string): DetectorVerdict => ({
  detector,
  version: '1',
  verdict,
  ...(rule ? { rule } : {}),
  summary: '',
  evidence: [],
});

describe('combination', () => {
  it('any flag flags; else any unverified; else clean', () => {
    expect(combineVerdicts([v('a', 'clean'), v('b', 'unverified'), v('c', 'flagged')])).toBe('flagged');
    expect(combineVerdicts([v('a', 'clean'), v('b', 'unverified')])).toBe('unverified');
    expect(combineVerdicts([v('a', 'clean')])).toBe('clean');
    expect(combineVerdicts([])).toBe('not_audited');
  });

  it('unverified scores as the base model under the default policy only', () => {
    expect(scoreAs('flagged', 'keep-score')).toBe('base');
    expect(scoreAs('unverified', 'base-score')).toBe('base');
    expect(scoreAs('unverified', 'keep-score')).toBe('own');
    expect(scoreAs('clean', 'base-score')).toBe('own');
  });

  it('judgement lines follow the deciding detectors', () => {
    expect(judgementLine([v('llm-judge', 'flagged', 'contamination')], 'contamination')).toBe(
      'contamination detected',
    );
    expect(judgementLine([v('llm-judge', 'flagged', 'contamination')], 'disallowedModel')).toBe(
      'only allowed use detected',
    );
    expect(judgementLine([v('provenance', 'flagged', 'whatever')], 'disallowedModel')).toBe(
      'disallowed use detected',
    );
    expect(judgementLine([v('submission', 'flagged', 'disallowed-model')], 'disallowedModel')).toBe(
      'disallowed use detected',
    );
    expect(judgementLine([v('llm-judge', 'unverified')], 'contamination')).toBe('unverified');
    // No detector that decides the question ran: the file is left alone.
    expect(judgementLine([v('tamper', 'flagged', 'evaluation-code-modified')], 'contamination')).toBeNull();
  });
});

describe('runAudit', () => {
  it('isolates a throwing detector as unverified and never clean', async () => {
    trial = makeTrial();
    const broken: Detector = {
      id: 'broken',
      version: '0',
      async inspect() {
        throw new Error('disk on fire');
      },
    };
    const bogus = {
      id: 'bogus',
      version: '0',
      inspect: async () => ({ verdict: 'clean' }),
    } as unknown as Detector;
    const r = await runAudit(null, trial.evidence, {
      detectors: [fixed('ok', 'clean'), broken, bogus],
      ctx: trial.ctx,
    });
    expect(r.combined).toBe('unverified');
    expect(r.verdicts.map((x) => [x.detector, x.verdict])).toEqual([
      ['ok', 'clean'],
      ['broken', 'unverified'],
      ['bogus', 'unverified'],
    ]);
    expect(r.verdicts[1]!.summary).toContain('disk on fire');
    expect(r.scoreAs).toBe('base');
  });

  it('runs judges last with the other findings, writes verdicts.json and the judgement files', async () => {
    trial = makeTrial();
    let seen: DetectorVerdict[] = [];
    const judge = {
      id: 'llm-judge',
      version: 'j1',
      runsLast: true,
      async inspect(_e: unknown, ctx: { findings?: DetectorVerdict[]; auditDir?: string }) {
        seen = ctx.findings ?? [];
        return {
          detector: 'llm-judge',
          version: 'j1',
          verdict: 'flagged',
          rule: 'contamination',
          summary: 'trained on test',
          evidence: [],
        };
      },
    } as unknown as Detector;
    const r = await runAudit(null, trial.evidence, {
      detectors: [judge, fixed('tamper', 'clean')],
      ctx: trial.ctx,
    });
    expect(seen.map((x) => x.detector)).toEqual(['tamper']);
    expect(r.combined).toBe('flagged');
    const saved = JSON.parse(readFileSync(join(r.dir, 'verdicts.json'), 'utf8'));
    expect(saved.auditId).toBe(r.auditId);
    expect(saved.verdicts).toHaveLength(2);
    const { layout } = trial.evidence;
    expect(readFileSync(layout.contaminationJudgement, 'utf8').trim()).toBe('contamination detected');
    expect(readFileSync(layout.disallowedModelJudgement, 'utf8').trim()).toBe('only allowed use detected');
  });

  it('appends audits in the database, keeping earlier verdicts, and updates the trial row', async () => {
    trial = makeTrial();
    const db = openDb(':memory:');
    const repo = new TrialRepo(db);
    const row = repo.create(trial.evidence.spec, () => trial!.evidence.layout.root);
    const first = await runAudit(row, trial.evidence, {
      detectors: [fixed('tamper', 'clean')],
      ctx: trial.ctx,
      repo,
    });
    const second = await runAudit(row, trial.evidence, {
      detectors: [fixed('tamper', 'flagged', 'evaluation-code-modified')],
      ctx: trial.ctx,
      repo,
      policy: 'keep-score',
    });
    const audits = repo.audits(row.id);
    expect(audits.map((a) => [a.id, a.combined, a.policy])).toEqual([
      [first.auditId, 'clean', 'base-score'],
      [second.auditId, 'flagged', 'keep-score'],
    ]);
    expect(audits[0]!.verdicts[0]!.verdict).toBe('clean');
    expect(repo.get(row.id)!.audit_verdict).toBe('flagged');
    expect(
      existsSync(join(first.dir, 'verdicts.json')) && existsSync(join(second.dir, 'verdicts.json')),
    ).toBe(true);
  });

  it('a re-audit of a finished trial rescores it with the latest verdict and keeps the history', async () => {
    trial = makeTrial();
    const db = openDb(':memory:');
    const repo = new TrialRepo(db);
    const row = repo.create(trial.evidence.spec, () => trial!.evidence.layout.root);
    repo.addBaseline({
      model: 'Qwen/Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      kind: 'base',
      accuracy: 0.2,
      source: 'test',
    });
    // The trial ran to the end: evaluated at 0.7 and finalized as clean with its own score.
    for (const [phase, result] of [
      ['evaluate', { metrics: { accuracy: 0.7 } }],
      ['finalize', { finalScore: 0.7, substituted: false }],
    ] as const) {
      repo.startPhase(row.id, phase);
      repo.completePhase(row.id, phase, result);
    }
    repo.update(row.id, { accuracy: 0.7, final_score: 0.7, substituted: false, status: 'completed' });

    const flagged = await runAudit(row, trial.evidence, {
      detectors: [fixed('provenance', 'flagged', 'derived-from-disallowed-model')],
      ctx: trial.ctx,
      repo,
    });
    expect(flagged.rescore).toMatchObject({ finalScore: 0.2, substituted: true, changed: true });
    expect(repo.get(row.id)).toMatchObject({ audit_verdict: 'flagged', final_score: 0.2, substituted: 1 });
    const saved = JSON.parse(readFileSync(join(flagged.dir, 'verdicts.json'), 'utf8'));
    expect(saved.rescore.previous).toEqual({ finalScore: 0.7, substituted: false, auditVerdict: null });

    // A later audit that clears the trial restores its own score; both audits stay on record.
    const cleared = await runAudit(row, trial.evidence, {
      detectors: [fixed('provenance', 'clean')],
      ctx: trial.ctx,
      repo,
    });
    expect(cleared.rescore).toMatchObject({ finalScore: 0.7, substituted: false, changed: true });
    expect(repo.get(row.id)).toMatchObject({ audit_verdict: 'clean', final_score: 0.7, substituted: 0 });
    expect(repo.audits(row.id).map((a) => a.combined)).toEqual(['flagged', 'clean']);

    // Unverified follows the policy the re-audit names.
    const kept = await runAudit(row, trial.evidence, {
      detectors: [fixed('provenance', 'unverified', 'reference-unavailable')],
      ctx: trial.ctx,
      repo,
      policy: 'keep-score',
    });
    expect(kept.rescore).toMatchObject({ finalScore: 0.7, substituted: false, changed: false });
  });

  it('the audit phase of a running trial does not rescore it (finalize does)', async () => {
    trial = makeTrial();
    const repo = new TrialRepo(openDb(':memory:'));
    const row = repo.create(trial.evidence.spec, () => trial!.evidence.layout.root);
    const r = await runAudit(row, trial.evidence, {
      detectors: [fixed('provenance', 'flagged', 'x')],
      ctx: trial.ctx,
      repo,
    });
    expect(r.rescore).toBeNull();
    expect(repo.get(row.id)!.final_score).toBeNull();
  });

  it('audits an honest synthetic trial clean with the real detectors (judge skipped)', async () => {
    trial = makeTrial();
    const detectors = selectDetectors({ env: {} }, ['tamper', 'submission', 'egress-rules']);
    const r = await runAudit(null, trial.evidence, { detectors, ctx: trial.ctx });
    expect(r.verdicts.map((x) => x.verdict)).toEqual(['clean', 'clean', 'clean']);
    expect(r.combined).toBe('clean');
    // Neither question was decided by these detectors: the upstream files stay absent.
    expect(existsSync(trial.evidence.layout.contaminationJudgement)).toBe(false);
  });

  it('leaves the LLM judge out unless a judge model is configured or required', async () => {
    expect(selectDetectors({ env: {} }).map((d) => d.id)).not.toContain('llm-judge');
    expect(selectDetectors({ env: { PTB_JUDGE_MODEL: 'judge-1' } }).map((d) => d.id)).toContain('llm-judge');
    expect(selectDetectors({ env: {} }, ['llm-judge']).map((d) => d.id)).toEqual(['llm-judge']);
  });

  it('a required judge without a model is unverified and says how to configure one', async () => {
    trial = makeTrial();
    const r = await runAudit(null, trial.evidence, {
      detectors: selectDetectors({ env: {}, requireJudge: true }),
      ctx: trial.ctx,
    });
    const judge = r.verdicts.find((x) => x.detector === 'llm-judge')!;
    expect(judge.verdict).toBe('unverified');
    expect(judge.summary).toContain('PTB_JUDGE_MODEL');
    expect(r.combined).toBe('unverified');
    expect(readFileSync(trial.evidence.layout.contaminationJudgement, 'utf8').trim()).toBe('unverified');
  });

  it('rejects unknown detector ids with the list', () => {
    expect(() => selectDetectors({ env: {} }, ['tamper', 'nope'])).toThrow(/unknown detector: nope/);
  });
});
