/**
 * A stand-in for `nvidia-smi` on machines without NVIDIA GPUs: an executable (node) that answers the
 * queries ptb makes (`--query-gpu=FIELDS`, `--query-compute-apps=FIELDS`, `--format=csv[,noheader][,nounits]`,
 * `-L`) from a JSON state file next to it, in nvidia-smi's output format. Tests change the state while
 * ptb runs (a foreign process appears on a GPU, a GPU is busy) and put the folder first on PATH.
 * Beside it, a folder of stand-in device nodes for PTB_NVIDIA_DEV_DIR.
 */
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FakeGpu {
  index: number;
  name: string;
  uuid: string;
  busId: string;
  memoryUsedMiB: number;
  memoryTotalMiB: number;
  utilPercent: number;
}

export interface FakeComputeApp {
  gpuUuid: string;
  pid: number;
  usedMemoryMiB: number;
}

export interface FakeSmiState {
  gpus: FakeGpu[];
  apps: FakeComputeApp[];
}

const SCRIPT = String.raw`#!/usr/bin/env node
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const state = JSON.parse(readFileSync(join(__dirname, 'state.json'), 'utf8'));
const args = process.argv.slice(2);
const arg = (name) => args.find((a) => a.startsWith(name + '='))?.slice(name.length + 1);
const format = (arg('--format') || 'csv').split(',');
const units = !format.includes('nounits');
const GPU = {
  index: (g) => String(g.index),
  name: (g) => g.name,
  uuid: (g) => g.uuid,
  'pci.bus_id': (g) => g.busId,
  'memory.used': (g) => g.memoryUsedMiB + (units ? ' MiB' : ''),
  'memory.total': (g) => g.memoryTotalMiB + (units ? ' MiB' : ''),
  'utilization.gpu': (g) => g.utilPercent + (units ? ' %' : ''),
  'temperature.gpu': () => '45',
  'power.draw': () => '120.5' + (units ? ' W' : ''),
};
const APP = {
  gpu_uuid: (a) => a.gpuUuid,
  pid: (a) => String(a.pid),
  used_memory: (a) => a.usedMemoryMiB + (units ? ' MiB' : ''),
  process_name: () => 'python3',
};
function table(fields, rows, columns) {
  const out = [];
  if (!format.includes('noheader')) out.push(fields.join(', '));
  for (const row of rows) {
    out.push(fields.map((f) => {
      if (!columns[f]) { process.stderr.write('Field "' + f + '" is not a valid field to query.\n'); process.exit(2); }
      return columns[f](row);
    }).join(', '));
  }
  process.stdout.write(out.map((l) => l + '\n').join(''));
}
if (args.includes('-L')) {
  for (const g of state.gpus) process.stdout.write('GPU ' + g.index + ': ' + g.name + ' (UUID: ' + g.uuid + ')\n');
} else if (arg('--query-gpu')) {
  table(arg('--query-gpu').split(','), state.gpus, GPU);
} else if (arg('--query-compute-apps')) {
  table(arg('--query-compute-apps').split(','), state.apps, APP);
} else {
  process.stderr.write('fake nvidia-smi: unsupported arguments ' + args.join(' ') + '\n');
  process.exit(2);
}
`;

export interface FakeNvidiaSmi {
  /** Folder holding `nvidia-smi`: put it first on PATH. */
  bin: string;
  /**
   * Stand-in device nodes (plain files named as the driver's: nvidiactl, nvidia-uvm, nvidia0…):
   * pass it as PTB_NVIDIA_DEV_DIR, and the sandboxes bind the trial's ones at /dev/<name>.
   */
  devDir: string;
  state: FakeSmiState;
  /** Rewrite the state the fake answers from (atomic enough for the fake's single read). */
  set(state: FakeSmiState): void;
}

/** `n` idle H100s (indices 0…n−1) on a fresh fake. */
export function fakeNvidiaSmi(n: number): FakeNvidiaSmi {
  const root = mkdtempSync(join(tmpdir(), 'ptb-fake-smi-'));
  const bin = join(root, 'bin');
  const devDir = join(root, 'dev');
  mkdirSync(bin);
  mkdirSync(devDir);
  // The sandbox user (uid 1000 when ptb runs as root) reaches the nodes, as it does /dev.
  chmodSync(root, 0o755);
  for (const node of ['nvidiactl', 'nvidia-uvm', ...Array.from({ length: n }, (_, i) => `nvidia${i}`)])
    writeFileSync(join(devDir, node), `stand-in for /dev/${node}\n`);
  writeFileSync(join(bin, 'nvidia-smi'), SCRIPT);
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  const fake: FakeNvidiaSmi = {
    bin,
    devDir,
    state: { gpus: [], apps: [] },
    set(state) {
      fake.state = state;
      writeFileSync(join(bin, 'state.json'), JSON.stringify(state));
    },
  };
  fake.set({
    gpus: Array.from({ length: n }, (_, index) => ({
      index,
      name: 'NVIDIA H100 80GB HBM3',
      uuid: `GPU-${String(index).repeat(8)}-fake`,
      busId: `00000000:${(0x17 + index).toString(16).toUpperCase()}:00.0`,
      memoryUsedMiB: 1,
      memoryTotalMiB: 81559,
      utilPercent: 0,
    })),
    apps: [],
  });
  return fake;
}
