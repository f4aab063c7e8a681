import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TrialSpecSchema } from '../../src/core/trial.ts';
import type { BaselineRow } from '../../src/store/trialRepo.ts';
import { copyFinalModel, hostPathOf, snapshotTask } from '../../src/trial/collect.ts';
import { finalScore } from '../../src/trial/finalize.ts';
import { safeModelName, trialDirName } from '../../src/trial/workspace.ts';

function tree(): { root: string; home: string; cache: string } {
  const root = mkdtempSync(join(tmpdir(), 'ptb-collect-'));
  const home = join(root, 'home');
  const cache = join(root, 'hfcache');
  mkdirSync(join(home, 'task', 'final_model'), { recursive: true });
  mkdirSync(join(cache, 'blobs'), { recursive: true });
  return { root, home, cache };
}

describe('collect', () => {
  it('maps sandbox paths back through the mounts, longest mount first', () => {
    const mounts = [
      { source: '/host/home', target: '/home/agent' },
      { source: '/host/hf', target: '/home/agent/hf_cache' },
    ];
    expect(hostPathOf('/home/agent/task/x', mounts)).toBe('/host/home/task/x');
    expect(hostPathOf('/home/agent/hf_cache/blobs/abc', mounts)).toBe('/host/hf/blobs/abc');
    expect(hostPathOf('/etc/passwd', mounts)).toBeNull();
  });

  it('resolves symlinks as the sandbox saw them and refuses links out of the agent files', () => {
    const { home, cache } = tree();
    const fm = join(home, 'task', 'final_model');
    writeFileSync(join(fm, 'config.json'), '{"a":1}');
    writeFileSync(join(cache, 'blobs', 'w'), 'weights');
    writeFileSync(join(home, 'task', 'tok.json'), 'tok');
    symlinkSync('/home/agent/hf_cache/blobs/w', join(fm, 'model.safetensors')); // absolute, sandbox path
    symlinkSync('../tok.json', join(fm, 'tokenizer.json')); // relative
    symlinkSync('/etc/hostname', join(fm, 'leak.txt')); // outside every mount
    const dest = join(home, '..', 'out', 'final_model');
    const mounts = [
      { source: home, target: '/home/agent' },
      { source: cache, target: '/home/agent/hf_cache' },
    ];
    const stats = copyFinalModel(fm, dest, '/home/agent/task/final_model', mounts);
    expect(readFileSync(join(dest, 'model.safetensors'), 'utf8')).toBe('weights');
    expect(readFileSync(join(dest, 'tokenizer.json'), 'utf8')).toBe('tok');
    expect(existsSync(join(dest, 'leak.txt'))).toBe(false);
    expect(stats.skipped.join('\n')).toMatch(/leak\.txt/);
    expect(stats.files).toBe(3);
  });

  it('refuses a final_model above the size cap without leaving a partial copy', () => {
    const { home } = tree();
    const fm = join(home, 'task', 'final_model');
    writeFileSync(join(fm, 'big.bin'), Buffer.alloc(2048));
    const dest = join(home, 'fm-out');
    expect(() =>
      copyFinalModel(
        fm,
        dest,
        '/home/agent/task/final_model',
        [{ source: home, target: '/home/agent' }],
        1024,
      ),
    ).toThrow(/larger than 1024 bytes/);
    expect(existsSync(dest)).toBe(false);
  });

  it('snapshots the task directory without weights: checkpoint folders keep their other files', () => {
    const { home, root } = tree();
    const task = join(home, 'task');
    writeFileSync(join(task, 'train.py'), 'print(1)');
    mkdirSync(join(task, 'ckpt'));
    writeFileSync(join(task, 'ckpt', 'config.json'), '{}');
    writeFileSync(join(task, 'ckpt', 'tokenizer_config.json'), '{}');
    writeFileSync(join(task, 'ckpt', 'model.safetensors'), Buffer.alloc(2 << 20));
    writeFileSync(join(task, 'ckpt', 'training_args.bin'), Buffer.alloc(100));
    writeFileSync(join(task, 'ckpt', 'hidden.jsonl'), '{"text": "data beside the weights"}\n');
    mkdirSync(join(task, 'data'));
    writeFileSync(join(task, 'data', 'config.json'), '{}'); // one marker only: not a model folder
    const snap = snapshotTask(task, join(root, 'snapshot'));
    expect(snap.skippedModelDirs).toEqual(['ckpt']);
    expect(snap.skippedWeights).toEqual(['ckpt/model.safetensors']);
    for (const kept of [
      'train.py',
      'data/config.json',
      'ckpt/config.json',
      'ckpt/training_args.bin',
      'ckpt/hidden.jsonl',
    ])
      expect(existsSync(join(root, 'snapshot', kept))).toBe(true);
    expect(existsSync(join(root, 'snapshot', 'ckpt', 'model.safetensors'))).toBe(false);
    expect(existsSync(join(root, 'snapshot', 'final_model'))).toBe(false);
  });
});

describe('trial directory names', () => {
  it('keeps the reference run-folder shape so the template rule sees the model name', () => {
    const spec = TrialSpecSchema.parse({
      agent: 'sft',
      baseModel: 'Qwen/Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      hours: 1,
    });
    const name = trialDirName(spec, 'trial-20261127-031500-abc123');
    expect(name).toBe('gsm8k_Qwen_Qwen3-1.7B-Base_trial-20261127-031500-abc123');
    expect(name.split('_')).toHaveLength(4);
    expect(safeModelName('claude-opus-4-6[1m]')).toBe('claude-opus-4-6_1m_');
  });
});

describe('final score', () => {
  const spec = TrialSpecSchema.parse({
    agent: 'sft',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    benchmark: 'gsm8k',
    hours: 1,
  });
  const baselines: BaselineRow[] = [
    {
      id: 1,
      model: 'Qwen3-1.7B-Base',
      benchmark: 'gsm8k',
      protocol: null,
      kind: 'base',
      accuracy: 0.2,
      source: 't',
      eval_run_id: null,
      created_at: 'x',
    },
  ];
  it('uses the own score when clean, the base score when flagged, unverified or missing', () => {
    expect(finalScore(spec, 0.7, 'clean', baselines)).toMatchObject({ finalScore: 0.7, substituted: false });
    expect(finalScore(spec, 0.7, 'flagged', baselines)).toMatchObject({ finalScore: 0.2, substituted: true });
    expect(finalScore(spec, 0.7, 'unverified', baselines)).toMatchObject({
      finalScore: 0.2,
      substituted: true,
    });
    expect(
      finalScore({ ...spec, unverifiedPolicy: 'keep-score' }, 0.7, 'unverified', baselines),
    ).toMatchObject({ finalScore: 0.7 });
    expect(finalScore(spec, null, 'clean', baselines)).toMatchObject({ finalScore: 0.2, substituted: true });
    const none = finalScore(spec, 0.7, 'flagged', []);
    expect(none.finalScore).toBeNull();
    expect(none.reason).toMatch(/ptb baseline/);
  });
});
