import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManifestEntrySchema } from '../../src/core/trial.ts';
import { buildManifest, diffManifests } from '../../src/ledgers/manifest.ts';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('buildManifest', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ptb-manifest-'));
    mkdirSync(join(dir, 'templates'));
    mkdirSync(join(dir, 'final_model', 'nested'), { recursive: true });
    mkdirSync(join(dir, '.cache', 'pip'), { recursive: true });
    writeFileSync(join(dir, 'evaluate.py'), 'print("score")\n');
    writeFileSync(join(dir, 'templates', 'qwen3.jinja'), '{{ messages }}');
    writeFileSync(join(dir, 'final_model', 'nested', 'weights.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    writeFileSync(join(dir, '.cache', 'pip', 'wheel.whl'), 'cached');
    writeFileSync(join(dir, 'empty.txt'), '');
    symlinkSync('/etc/passwd', join(dir, 'outside-link'));
    symlinkSync('does/not/exist', join(dir, 'dangling'));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hashes every file, records links without following them, and never opens a FIFO', async () => {
    const manifest = await buildManifest(dir);
    for (const entry of manifest) ManifestEntrySchema.parse(entry);
    expect(manifest.map((entry) => entry.path)).toEqual([
      '.cache/pip/wheel.whl',
      'dangling',
      'empty.txt',
      'evaluate.py',
      'final_model/nested/weights.bin',
      'outside-link',
      'pipe',
      'templates/qwen3.jinja',
    ]);
    const byPath = new Map(manifest.map((entry) => [entry.path, entry]));
    expect(byPath.get('evaluate.py')).toEqual({
      path: 'evaluate.py',
      size: 15,
      sha256: sha256('print("score")\n'),
    });
    expect(byPath.get('empty.txt')?.sha256).toBe(sha256(''));
    expect(byPath.get('final_model/nested/weights.bin')).toEqual({
      path: 'final_model/nested/weights.bin',
      size: 3 * 1024 * 1024,
      sha256: sha256(Buffer.alloc(3 * 1024 * 1024, 7)),
    });
    expect(byPath.get('outside-link')).toEqual({
      path: 'outside-link',
      size: 11,
      sha256: 'symlink:/etc/passwd',
    });
    expect(byPath.get('dangling')?.sha256).toBe('symlink:does/not/exist');
    expect(byPath.get('pipe')?.sha256).toBe('special:fifo');
  });

  it('skips what the caller leaves out, without entering skipped directories', async () => {
    const visited: string[] = [];
    const manifest = await buildManifest(dir, {
      skip: (path, isDirectory) => {
        visited.push(path);
        return (isDirectory && path === '.cache') || path.endsWith('.bin');
      },
    });
    expect(manifest.map((entry) => entry.path)).not.toContain('.cache/pip/wheel.whl');
    expect(manifest.map((entry) => entry.path)).not.toContain('final_model/nested/weights.bin');
    expect(visited).not.toContain('.cache/pip');
  });

  it('returns an empty manifest for a missing directory', async () => {
    expect(await buildManifest(join(dir, 'absent'))).toEqual([]);
  });
});

describe('diffManifests', () => {
  it('finds added, removed and changed files between two real snapshots', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-manifest-diff-'));
    try {
      writeFileSync(join(dir, 'evaluate.py'), 'original');
      writeFileSync(join(dir, 'keep.txt'), 'same');
      writeFileSync(join(dir, 'gone.txt'), 'bye');
      const start = await buildManifest(dir);
      writeFileSync(join(dir, 'evaluate.py'), 'tampered');
      unlinkSync(join(dir, 'gone.txt'));
      writeFileSync(join(dir, 'new.txt'), 'hello');
      const end = await buildManifest(dir);
      const diff = diffManifests(start, end);
      expect(diff.added.map((entry) => entry.path)).toEqual(['new.txt']);
      expect(diff.removed.map((entry) => entry.path)).toEqual(['gone.txt']);
      expect(diff.changed).toEqual([
        {
          path: 'evaluate.py',
          before: { path: 'evaluate.py', size: 8, sha256: sha256('original') },
          after: { path: 'evaluate.py', size: 8, sha256: sha256('tampered') },
        },
      ]);
      expect(diff.unchanged).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
