import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkGpus, gpuDevices, listGpus } from '../../src/sandbox/gpuGate.ts';

/** A fake nvidia-smi that answers the two queries from files next to it, like the real one would. */
let root: string;
let bin: string;

function fakeMachine(gpusCsv: string, appsCsv = '') {
  writeFileSync(join(bin, 'gpus.csv'), gpusCsv);
  writeFileSync(join(bin, 'apps.csv'), appsCsv);
}

const TWO_H100 =
  '0, NVIDIA H100 80GB HBM3, GPU-aaaa1111, 00000000:17:00.0, 1, 81559\n' +
  '1, NVIDIA H100 80GB HBM3, GPU-bbbb2222, 00000000:2A:00.0, 1, 81559\n';

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ptb-gpugate-'));
  bin = join(root, 'bin');
  mkdirSync(bin);
  writeFileSync(
    join(bin, 'nvidia-smi'),
    [
      '#!/bin/sh',
      'here=$(dirname "$0")',
      'case "$1" in',
      '  --query-gpu=index,name,uuid,pci.bus_id,memory.used,memory.total) cat "$here/gpus.csv" ;;',
      '  --query-compute-apps=gpu_uuid,pid,used_memory) cat "$here/apps.csv" ;;',
      '  *) echo "unexpected arguments: $*" >&2; exit 2 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const env = (extra: Record<string, string> = {}) => ({ PATH: `${bin}:/usr/bin:/bin`, ...extra });

describe('checkGpus', () => {
  it('passes a CPU-only trial without nvidia-smi and refuses a GPU trial with a reason', () => {
    expect(checkGpus(0, { env: { PATH: join(root, 'empty') } })).toEqual({
      ok: true,
      reason: 'no GPU requested',
      gpus: [],
    });
    const refused = checkGpus(1, { env: { PATH: join(root, 'empty') } });
    expect(refused.ok).toBe(false);
    expect(refused.reason).toMatch(/nvidia-smi was not found.*asks for 1 GPU/);
  });

  it('needs exactly the number of visible GPUs asked for', () => {
    fakeMachine(TWO_H100);
    expect(checkGpus(2, { env: env() }).ok).toBe(true);
    const tooMany = checkGpus(1, { env: env() });
    expect(tooMany.ok).toBe(false);
    expect(tooMany.reason).toContain('2 GPU(s) visible but the trial asks for exactly 1');
    const picked = checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: '1' }) });
    expect(picked.ok).toBe(true);
    expect(picked.gpus.map((gpu) => gpu.index)).toEqual([1]);
    expect(checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: 'GPU-aaaa' }) }).gpus[0]?.uuid).toBe(
      'GPU-aaaa1111',
    );
    expect(checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: '' }) }).reason).toContain('0 GPU(s) visible');
  });

  it('refuses GPUs with compute processes and GPUs whose name does not match', () => {
    fakeMachine(TWO_H100, 'GPU-bbbb2222, 4242, 1024\n');
    const busy = checkGpus(2, { env: env() });
    expect(busy.ok).toBe(false);
    expect(busy.reason).toContain('pid 4242 on GPU 1');
    // The busy GPU is not ours when only GPU 0 is visible.
    expect(checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: '0' }) }).ok).toBe(true);

    fakeMachine('0, NVIDIA A100-SXM4-40GB, GPU-cccc, 00000000:17:00.0, 0, 40960\n');
    const wrongKind = checkGpus(1, { env: env(), nameFilter: 'H100' });
    expect(wrongKind.ok).toBe(false);
    expect(wrongKind.reason).toContain('is not a H100');
    expect(checkGpus(1, { env: env(), nameFilter: 'a100' }).ok).toBe(true);
  });

  it('parses every field and reports a failing nvidia-smi', () => {
    fakeMachine('0, NVIDIA H200, GPU-dddd, 00000000:17:00.0, [N/A], 143771\n');
    expect(listGpus({ env: env() }).gpus).toEqual([
      {
        index: 0,
        name: 'NVIDIA H200',
        uuid: 'GPU-dddd',
        busId: '00000000:17:00.0',
        memoryUsedMiB: null,
        memoryTotalMiB: 143771,
      },
    ]);
    const broken = join(root, 'broken');
    mkdirSync(broken, { recursive: true });
    writeFileSync(join(broken, 'nvidia-smi'), '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n');
    chmodSync(join(broken, 'nvidia-smi'), 0o755);
    const failed = checkGpus(1, { env: { PATH: broken } });
    expect(failed.ok).toBe(false);
    expect(failed.reason).toContain('NVIDIA-SMI has failed');
  });
});

describe('gpuDevices', () => {
  it('binds the control nodes and each GPU’s own node by its device minor', () => {
    fakeMachine(TWO_H100);
    const dev = join(root, 'dev');
    const proc = join(root, 'proc');
    mkdirSync(dev, { recursive: true });
    for (const node of ['nvidiactl', 'nvidia-uvm', 'nvidia0', 'nvidia1', 'nvidia5'])
      writeFileSync(join(dev, node), '');
    // GPU index 1 is minor 5 on this machine; GPU 0 has no driver entry and falls back to its index.
    const info = join(proc, 'driver/nvidia/gpus/0000:2a:00.0');
    mkdirSync(info, { recursive: true });
    writeFileSync(join(info, 'information'), 'Model: NVIDIA H100\nIRQ: 1\nDevice Minor: 5\n');
    expect(gpuDevices([1], { env: env(), devRoot: dev, procRoot: proc })).toEqual([
      join(dev, 'nvidiactl'),
      join(dev, 'nvidia-uvm'),
      join(dev, 'nvidia5'),
    ]);
    expect(gpuDevices([0, 1], { env: env(), devRoot: dev, procRoot: proc })).toContain(join(dev, 'nvidia0'));
    expect(gpuDevices([], { env: env(), devRoot: dev, procRoot: proc })).toEqual([]);
  });
});
