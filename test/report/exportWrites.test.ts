import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkFolder,
  EXPORT_MANIFEST,
  type FileSource,
  type FolderPlan,
  writeFolder,
} from '../../src/report/exportWrites.ts';

function plan(dir: string, files: Record<string, string>, others: FolderPlan['others'] = 'exclusive') {
  return {
    dir,
    others,
    files: new Map<string, FileSource>(Object.entries(files).map(([k, text]) => [k, { text }])),
  };
}

describe('export writes', () => {
  it('writes into a new folder and records what it wrote', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptb-xw-')), 'run');
    const check = checkFolder(plan(dir, { 'a.txt': 'A\n', 'b.txt': 'B\n' }));
    expect(check.conflicts).toEqual([]);
    writeFolder(check);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('A\n');
    const manifest = JSON.parse(readFileSync(join(dir, EXPORT_MANIFEST), 'utf8'));
    expect(Object.keys(manifest.files).sort()).toEqual(['a.txt', 'b.txt']);
  });

  it('replaces and removes only files it wrote and nobody changed since', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptb-xw-')), 'run');
    writeFolder(checkFolder(plan(dir, { 'a.txt': 'A\n', 'judgement.txt': 'clean\n' })));
    // A second export: a.txt has new content, the judgement is no longer written (stale).
    const second = checkFolder(plan(dir, { 'a.txt': 'A2\n' }));
    expect(second.conflicts).toEqual([]);
    expect(second.stale).toEqual(['judgement.txt']);
    writeFolder(second);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('A2\n');
    expect(existsSync(join(dir, 'judgement.txt'))).toBe(false);
    // Someone edits a.txt: the next export refuses to overwrite it, and keeps it.
    writeFileSync(join(dir, 'a.txt'), 'edited by hand\n');
    const third = checkFolder(plan(dir, { 'a.txt': 'A3\n' }));
    expect(third.conflicts).toEqual([`${join(dir, 'a.txt')}: changed since ptb export wrote it`]);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('edited by hand\n');
  });

  it("refuses another run's folder, and a file of its own name that it did not write", () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptb-xw-')), 'run');
    mkdirSync(join(dir, 'final_model'), { recursive: true });
    writeFileSync(join(dir, 'final_model', 'model.safetensors'), 'weights');
    writeFileSync(join(dir, 'solve_out.txt'), 'the agent said');
    writeFileSync(join(dir, 'metrics.json'), '{"accuracy": 0.5}');
    const check = checkFolder(plan(dir, { 'metrics.json': '{"accuracy": 0.7}\n' }));
    expect(check.conflicts).toEqual([
      `${join(dir, 'metrics.json')}: exists, and ptb export did not write it`,
      `${dir}: holds another run's files (final_model, solve_out.txt)`,
    ]);
  });

  it('leaves unrelated files beside its own in a shared folder, and its own record alone', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'ptb-xw-')), 'baseline');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'eval.log'), 'log');
    writeFileSync(join(dir, 'metrics.json'), '{"accuracy": 0.25, "stderr": 0.01}');
    const files = new Map<string, FileSource>([
      ['metrics.json', { text: '{"accuracy": 0.25}\n', equivalent: (t) => JSON.parse(t).accuracy === 0.25 }],
      ['ptb_baseline.json', { text: '{}\n' }],
    ]);
    const check = checkFolder({ dir, files, others: 'shared' });
    expect(check.conflicts).toEqual([]);
    writeFolder(check);
    expect(readFileSync(join(dir, 'metrics.json'), 'utf8')).toBe('{"accuracy": 0.25, "stderr": 0.01}');
    expect(readFileSync(join(dir, 'eval.log'), 'utf8')).toBe('log');
    expect(existsSync(join(dir, 'ptb_baseline.json'))).toBe(true);
    // Its own record: other entries are the run's own files.
    expect(checkFolder(plan(dir, { 'ptb_trial.json': '{}\n' }, 'own')).conflicts).toEqual([]);
  });
});
