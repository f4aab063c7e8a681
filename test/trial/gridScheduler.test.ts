import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runLocally } from '../../src/schedulers/local.ts';
import { cellKey, expandGrid, loadGrid } from '../../src/trial/grid.ts';

function gridFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ptb-grid-'));
  const path = join(dir, 'grid.yaml');
  writeFileSync(path, text);
  return path;
}

describe('grid files', () => {
  it('expands agents × models × benchmarks × seeds × hours with resolved paths', () => {
    const path = gridFile(`experiment: e1
agents: [sft, {id: claude, config: claude-opus-4-6}]
models: [Qwen/Qwen3-1.7B-Base, {id: local/tiny, path: ./models/tiny}]
benchmarks: [gsm8k, humaneval]
seeds: 2
hours: [1, 10]
gpus_per_trial: 2
`);
    const grid = loadGrid(path);
    const specs = expandGrid(grid);
    expect(specs).toHaveLength(2 * 2 * 2 * 2 * 2);
    expect(new Set(specs.map(cellKey)).size).toBe(specs.length);
    const local = specs.find((s) => s.baseModel === 'local/tiny')!;
    expect(local.baseModelPath).toBe(join(path, '..', 'models', 'tiny'));
    expect(specs.every((s) => s.gpus === 2)).toBe(true);
    expect(specs.filter((s) => s.agent === 'claude').every((s) => s.agentConfig === 'claude-opus-4-6')).toBe(
      true,
    );
  });

  it('rejects unknown keys and benchmarks with the path of the problem', () => {
    expect(() => loadGrid(gridFile('experiment: e\nagents: sft\nmodels: m\nbenchmarks: [gsm9k]\n'))).toThrow(
      /benchmarks/,
    );
    expect(() =>
      loadGrid(gridFile('experiment: e\nagents: sft\nmodels: m\nbenchmarks: all\nhourz: 3\n')),
    ).toThrow(/hourz/);
    expect(
      expandGrid(loadGrid(gridFile('experiment: e\nagents: sft\nmodels: m\nbenchmarks: all\n'))),
    ).toHaveLength(7);
  });
});

describe('local scheduler', () => {
  it('never gives two running jobs the same GPU and runs as many at once as GPUs allow', async () => {
    const inUse = new Set<number>();
    let peak = 0;
    let running = 0;
    const jobs = Array.from({ length: 6 }, () => ({
      gpus: 2,
      run: async (gpus: number[]) => {
        for (const g of gpus) {
          expect(inUse.has(g)).toBe(false);
          inUse.add(g);
        }
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        for (const g of gpus) inUse.delete(g);
        return gpus;
      },
    }));
    const results = await runLocally(jobs, { gpuIndices: [0, 1, 2, 3, 4], cpuSlots: 1 });
    expect(peak).toBe(2);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
  });

  it('keeps going after a failing job and reports it', async () => {
    const results = await runLocally(
      [
        { gpus: 0, run: async () => Promise.reject(new Error('boom')) },
        { gpus: 0, run: async () => 'ok' },
      ],
      { gpuIndices: [], cpuSlots: 2 },
    );
    expect(results[0]!.status).toBe('rejected');
    expect(results[1]).toEqual({ status: 'fulfilled', value: 'ok' });
    await expect(
      runLocally([{ gpus: 1, run: async () => 1 }], { gpuIndices: [], cpuSlots: 1 }),
    ).rejects.toThrow(/needs 1 GPUs/);
  });
});
