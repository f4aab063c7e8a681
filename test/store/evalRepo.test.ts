import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDb } from '../../src/store/db.ts';
import { EvalRepo } from '../../src/store/evalRepo.ts';

function repo() {
  const path = join(mkdtempSync(join(tmpdir(), 'ptb-db-')), 'ptb.db');
  return { path, repo: new EvalRepo(openDb(path)) };
}

/** A gsm8k run on the hf engine with configuration key 'k'. */
function createRun(r: EvalRepo, id: string): void {
  r.createRun({
    id,
    benchmark: 'gsm8k',
    model: '/m',
    engine: 'hf',
    configKey: 'k',
    config: {},
    outDir: '/o',
  });
}

const sample = (sampleId: string, value: number, maxTokens = 100) => ({
  runId: 'r1',
  sampleId,
  maxTokens,
  position: Number(sampleId),
  request: { messages: [] },
  replyText: `reply ${sampleId}`,
  toolCalls: undefined,
  finishReason: 'stop',
  score: { value, answer: String(value) },
  promptTokens: 3,
  completionTokens: 4,
  latencyMs: 5,
});

describe('EvalRepo', () => {
  it('uses WAL and survives reopening', () => {
    const { path, repo: r } = repo();
    createRun(r, 'r1');
    const db = openDb(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(new EvalRepo(db).getRun('r1')?.status).toBe('running');
  });

  it('never overwrites a recorded sample and keeps rungs apart', () => {
    const { repo: r } = repo();
    createRun(r, 'r1');
    r.recordSample(sample('0', 1));
    r.recordSample({ ...sample('0', 0), replyText: 'other' });
    r.recordSample(sample('1', 0));
    r.recordSample(sample('0', 0, 50));
    const rows = r.samples('r1', 100);
    expect(rows.map((x) => [x.sample_id, x.score, x.reply_text])).toEqual([
      ['0', 1, 'reply 0'],
      ['1', 0, 'reply 1'],
    ]);
    expect(r.samples('r1', 50)).toHaveLength(1);
  });

  it('finds the newest unfinished run with the same configuration to resume', () => {
    const { repo: r } = repo();
    createRun(r, 'a');
    r.setStatus('a', 'completed', { metrics: { accuracy: 1 } });
    expect(r.findResumable('k')).toBeUndefined();
    createRun(r, 'b');
    r.setStatus('b', 'interrupted');
    expect(r.findResumable('k')?.id).toBe('b');
    expect(r.findResumable('other')).toBeUndefined();
  });

  it('numbers attempts across resumes and closes the ones a crash left open', () => {
    const { repo: r } = repo();
    createRun(r, 'r1');
    expect(r.startAttempt('r1', 0, 100, (n) => `/o/final_eval_${n}.txt`)).toBe(1);
    r.closeDanglingAttempts('r1');
    expect(r.startAttempt('r1', 0, 100, (n) => `/o/final_eval_${n}.txt`)).toBe(2);
    r.finishAttempt('r1', 2, 'failed', 'boom');
    expect(r.attempts('r1').map((a) => [a.n, a.status])).toEqual([
      [1, 'interrupted'],
      [2, 'failed'],
    ]);
  });
});
