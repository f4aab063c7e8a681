import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type TrialSpec, TrialSpecSchema } from '../../src/core/trial.ts';
import { openDb } from '../../src/store/db.ts';
import { journalPath, TrialRepo } from '../../src/store/trialRepo.ts';

const spec = (seed: number): TrialSpec =>
  TrialSpecSchema.parse({
    experiment: 'journal',
    agent: 'noop',
    baseModel: 'org/base',
    benchmark: 'gsm8k',
    hours: 1,
    seed,
  });

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'ptb-journal-'));
  const trialsDir = join(root, 'trials');
  const repo = new TrialRepo(openDb(join(root, 'ptb.db')));
  return { root, trialsDir, repo, dirOf: (id: string) => join(trialsDir, id) };
}

/** Everything the index holds about a trial, minus bookkeeping that legitimately differs. */
function snapshot(repo: TrialRepo, id: string) {
  return {
    trial: repo.get(id),
    phases: repo.phases(id),
    audits: repo.audits(id),
    runs: repo.runs(id),
    lost: repo.lostAttempts(id),
  };
}

function runThrough(repo: TrialRepo, id: string): void {
  repo.update(id, { status: 'running', error: null });
  repo.recordRun(id, { executor: 'local', host: 'h1', job: null, restartCount: null, gpus: [] });
  repo.startPhase(id, 'prepare');
  repo.completePhase(id, 'prepare', { createdAtMs: 1 });
  repo.startPhase(id, 'agent');
  repo.completePhase(id, 'agent', { outcome: 'finished', seconds: 3 });
  repo.update(id, { agent_outcome: 'finished', agent_seconds: 3 });
  repo.recordAudit(id, 'flagged', 'base-score', 'one flag', [
    { detector: 'tamper', version: '1', verdict: 'flagged', rule: 'r', summary: 's', evidence: [] },
  ]);
  repo.startPhase(id, 'evaluate');
  repo.failPhase(id, 'evaluate', 'engine died');
  repo.update(id, { status: 'failed', error: 'evaluate: engine died', substituted: true });
}

describe("a trial's journal is its record and the database an index of journals", () => {
  it('a fresh database rebuilt from trial directories holds the same trials, phases, audits and runs', () => {
    const { root, trialsDir, repo, dirOf } = setup();
    const a = repo.create(spec(0), dirOf);
    const b = repo.create(spec(1), dirOf);
    runThrough(repo, a.id);
    repo.startPhase(b.id, 'prepare');
    const rebuilt = new TrialRepo(openDb(join(root, 'other.db')));
    const sync = rebuilt.syncDirs([trialsDir]);
    expect(sync).toEqual({ trials: 2, updated: 2, skippedLines: 0 });
    for (const id of [a.id, b.id]) expect(snapshot(rebuilt, id)).toEqual(snapshot(repo, id));
    expect(rebuilt.get(a.id)?.substituted).toBe(1);
    expect(rebuilt.phase(a.id, 'evaluate')?.error).toBe('engine died');
    expect(rebuilt.listExperiments().map((e) => e.name)).toEqual(['journal']);
    // Nothing new: a second sync reads nothing.
    expect(rebuilt.syncDirs([trialsDir]).updated).toBe(0);
    // A full rebuild replays every journal onto clean rows and gives the same answer.
    expect(rebuilt.syncDirs([trialsDir], { rebuild: true }).updated).toBe(2);
    expect(snapshot(rebuilt, a.id)).toEqual(snapshot(repo, a.id));
  });

  it('a store seeded from one trial directory (a compute node) appends; the head reads only what is new', () => {
    const { trialsDir, repo, dirOf } = setup();
    const t = repo.create(spec(0), dirOf);
    const node = new TrialRepo(openDb(':memory:'));
    expect(node.syncDir(t.dir).trialId).toBe(t.id);
    node.startPhase(t.id, 'prepare');
    node.completePhase(t.id, 'prepare', { ok: true });
    const lines = readFileSync(journalPath(t.dir), 'utf8').trim().split('\n');
    expect(lines.map((l) => JSON.parse(l).event)).toEqual(['created', 'phase', 'phase']);
    // The head has not read them yet; a sync applies exactly those two events.
    expect(repo.phase(t.id, 'prepare')).toBeUndefined();
    expect(repo.syncDirs([trialsDir]).updated).toBe(1);
    expect(repo.phase(t.id, 'prepare')?.status).toBe('completed');
    expect(repo.get(t.id)?.status).toBe('running');
    // The head changes the trial after the node did more: the node's events are applied first.
    node.startPhase(t.id, 'agent');
    repo.update(t.id, { error: 'noted on the head' });
    expect(repo.phase(t.id, 'agent')?.status).toBe('started');
    expect(repo.get(t.id)?.error).toBe('noted on the head');
  });

  it('a torn last line waits until it is complete; lines of unknown shape are skipped and counted', () => {
    const { trialsDir, repo, dirOf } = setup();
    const t = repo.create(spec(0), dirOf);
    const head = new TrialRepo(openDb(':memory:'));
    head.syncDirs([trialsDir]);
    const line = JSON.stringify({
      event: 'phase',
      ts: '2026-01-01T00:00:00.000Z',
      phase: 'prepare',
      status: 'started',
    });
    appendFileSync(journalPath(t.dir), line.slice(0, 20));
    expect(head.syncDirs([trialsDir]).updated).toBe(0);
    expect(head.phase(t.id, 'prepare')).toBeUndefined();
    appendFileSync(
      journalPath(t.dir),
      `${line.slice(20)}\n{"event":"from-a-newer-ptb","ts":"x"}\nnot json\n`,
    );
    expect(head.syncDirs([trialsDir])).toEqual({ trials: 1, updated: 1, skippedLines: 2 });
    expect(head.phase(t.id, 'prepare')?.started_at).toBe('2026-01-01T00:00:00.000Z');
  });

  it('a patch in a journal writes only trial columns (a journal is data read from disk)', () => {
    const { trialsDir, repo, dirOf } = setup();
    const t = repo.create(spec(0), dirOf);
    appendFileSync(
      journalPath(t.dir),
      `${JSON.stringify({ event: 'update', ts: 'x', patch: { 'id = id; DROP TABLE trials; --': 1, error: 'kept' } })}\n`,
    );
    repo.syncDirs([trialsDir]);
    expect(repo.get(t.id)?.error).toBe('kept');
  });

  it('a lost attempt is kept with its time and its phases run again', () => {
    const { trialsDir, repo, dirOf } = setup();
    const t = repo.create(spec(0), dirOf);
    repo.startPhase(t.id, 'prepare');
    repo.completePhase(t.id, 'prepare', {});
    repo.startPhase(t.id, 'agent');
    repo.recordLostAttempt(t.id, {
      phase: 'agent',
      resetFrom: 'prepare',
      reason: 'preempted',
      seconds: 42,
      startedAt: '2026-01-01T00:00:00.000Z',
      keptIn: 'attempts/1',
      restartCount: 0,
    });
    expect(repo.phases(t.id)).toEqual([]);
    expect(repo.lostAttempts(t.id)).toMatchObject([
      { n: 1, phase: 'agent', seconds: 42, reason: 'preempted' },
    ]);
    expect(repo.lostAttemptTotals().get(t.id)).toEqual({ attempts: 1, seconds: 42 });
    repo.startPhase(t.id, 'prepare');
    const rebuilt = new TrialRepo(openDb(':memory:'));
    rebuilt.syncDirs([trialsDir]);
    expect(snapshot(rebuilt, t.id)).toEqual(snapshot(repo, t.id));
  });

  it('imported trials and trials from before journals live in the rows only', () => {
    const { root, trialsDir, repo, dirOf } = setup();
    const upstream = join(root, 'upstream-run');
    const imported = repo.create(spec(0), () => upstream, { source: 'import', externalId: 'x' });
    repo.update(imported.id, { status: 'completed', accuracy: 0.5 });
    repo.recordAudit(imported.id, 'clean', 'base-score', 'ok', []);
    expect(repo.get(imported.id)?.accuracy).toBe(0.5);
    expect(repo.audits(imported.id)).toHaveLength(1);
    expect(() => readFileSync(journalPath(upstream))).toThrow();
    // A directory whose journal does not start with its creation is not a trial record.
    const stray = dirOf('stray');
    mkdirSync(stray, { recursive: true });
    writeFileSync(
      journalPath(stray),
      `${JSON.stringify({ event: 'update', ts: 'x', patch: { error: 'e' } })}\n`,
    );
    expect(repo.syncDirs([trialsDir])).toMatchObject({ trials: 1, updated: 0 });
  });
});
