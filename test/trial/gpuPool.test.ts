/**
 * The local GPU pool and the GPU gate together, on a machine without GPUs: `nvidia-smi` is a stand-in
 * speaking its query protocol (test/helpers/fakeNvidiaSmi.ts) and reporting two H100s; everything else
 * is real — `ptb run` with the local scheduler, the trials, the bwrap sandbox, the monitor.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { checkGpus, listGpus } from '../../src/sandbox/gpuGate.ts';
import { runLocally } from '../../src/schedulers/local.ts';
import { type FakeNvidiaSmi, fakeNvidiaSmi } from '../helpers/fakeNvidiaSmi.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { testPython } from '../helpers/tinyModel.ts';

/** A promise with its resolve exposed: the test decides when each job ends. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('the local GPU pool', () => {
  it('starts the next job the moment a GPU frees, while the other job still runs', async () => {
    const events: string[] = [];
    const ends = Array.from({ length: 4 }, deferred);
    const run = runLocally(
      ends.map((end, i) => ({
        gpus: 1,
        run: async (gpus: number[]) => {
          events.push(`start ${i} on ${gpus.join(',')}`);
          await end.promise;
          events.push(`end ${i}`);
          return gpus;
        },
      })),
      { gpuIndices: [0, 1], cpuSlots: 1 },
    );
    await tick();
    expect(events).toEqual(['start 0 on 0', 'start 1 on 1']);
    ends[1]!.resolve();
    await tick();
    await tick();
    // Job 2 took GPU 1 as soon as job 1 gave it back; job 0 is still running on GPU 0.
    expect(events).toEqual(['start 0 on 0', 'start 1 on 1', 'end 1', 'start 2 on 1']);
    ends[0]!.resolve();
    await tick();
    await tick();
    expect(events.slice(4)).toEqual(['end 0', 'start 3 on 0']);
    ends[2]!.resolve();
    ends[3]!.resolve();
    const results = await run;
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : null))).toEqual([[0], [1], [1], [0]]);
  });

  it('gives a 2-GPU job two GPUs at once and never splits a pair between jobs', async () => {
    const held = new Set<number>();
    const seen: number[][] = [];
    await runLocally(
      Array.from({ length: 3 }, () => ({
        gpus: 2,
        run: async (gpus: number[]) => {
          for (const g of gpus) expect(held.has(g)).toBe(false);
          for (const g of gpus) held.add(g);
          seen.push(gpus);
          await tick();
          for (const g of gpus) held.delete(g);
        },
      })),
      { gpuIndices: [0, 1, 2, 3], cpuSlots: 1 },
    );
    expect(seen.slice(0, 2)).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(seen[2]).toHaveLength(2);
  });
});

describe('the GPU gate against the nvidia-smi stand-in', () => {
  let smi: FakeNvidiaSmi;
  beforeAll(() => {
    smi = fakeNvidiaSmi(2);
  });
  const env = (extra: Record<string, string> = {}) => ({ PATH: `${smi.bin}:${process.env.PATH}`, ...extra });

  it('lists the GPUs and passes each trial its own idle one', () => {
    expect(listGpus({ env: env() }).gpus.map((g) => g.index)).toEqual([0, 1]);
    for (const index of [0, 1]) {
      const gate = checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: String(index) }), nameFilter: 'H100' });
      expect(gate.ok, gate.reason).toBe(true);
      expect(gate.gpus.map((g) => g.index)).toEqual([index]);
    }
  });

  it('refuses the trial whose GPU runs a foreign process, not the one beside it', () => {
    smi.set({ ...smi.state, apps: [{ gpuUuid: smi.state.gpus[1]!.uuid, pid: 4242, usedMemoryMiB: 2048 }] });
    const busy = checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: '1' }) });
    expect(busy.ok).toBe(false);
    expect(busy.reason).toContain('pid 4242 on GPU 1');
    expect(checkGpus(1, { env: env({ CUDA_VISIBLE_DEVICES: '0' }) }).ok).toBe(true);
    smi.set({ ...smi.state, apps: [] });
  });
});

interface TrialLine {
  id: string;
  dir: string;
  benchmark: string;
  status: string;
  agent_outcome: string;
}

interface GpuRecord {
  requested: number;
  assigned: number[] | null;
  ok: boolean;
  reason: string;
  gpus?: { index: number; uuid: string }[];
}

/** Start and end of the agent, from the lines it printed (epoch seconds). */
function agentSpan(dir: string): { start: number; end: number; inside: string } {
  const out = readFileSync(trialLayout(dir).solveOut, 'utf8');
  const num = (re: RegExp) => Number(re.exec(out)?.[1]);
  return { start: num(/agent-start (\d+\.\d+)/), end: num(/agent-end (\d+\.\d+)/), inside: out };
}

describe('ptb run: four 1-GPU trials on two GPUs', () => {
  it('runs two at once on disjoint GPUs, each gated and recorded; a foreign process makes its GPU refuse', async () => {
    const smi = fakeNvidiaSmi(2);
    const home = tempHome();
    const env = { PTB_HOME: home, PTB_PYTHON: await testPython(), PTB_OFFLINE: '1' };
    // ptb runs in this process (runCli): the GPU probes read its own environment. Each test file
    // has a process of its own, and the previous values come back at the end.
    const saved = { PATH: process.env.PATH, PTB_NVIDIA_DEV_DIR: process.env.PTB_NVIDIA_DEV_DIR };
    process.env.PATH = `${smi.bin}:${process.env.PATH}`;
    process.env.PTB_NVIDIA_DEV_DIR = smi.devDir;
    try {
      // The agent records what it sees from inside the sandbox, then holds its GPU for a while.
      const agent =
        'echo agent-start $(date +%s.%N); echo inside devices: $(ls /dev | grep nvidia | tr "\\n" " "); ' +
        'sleep 6; echo agent-end $(date +%s.%N)';
      const grid = (experiment: string) => {
        const path = join(home, `${experiment}.yaml`);
        writeFileSync(
          path,
          `experiment: ${experiment}\nagents: [{id: command, command: [bash, -c, ${JSON.stringify(agent)}]}]\n` +
            'models: [acme/tiny-base]\nbenchmarks: [gsm8k, aime2025, humaneval, bfcl]\n' +
            'hours: 0.05\ngpus_per_trial: 1\nengine: hf\nnetwork: none\n',
        );
        return path;
      };
      const parse = (stdout: string) =>
        stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as TrialLine);
      const record = (t: TrialLine) =>
        JSON.parse(readFileSync(trialLayout(t.dir).ledgers.gpus, 'utf8')) as GpuRecord;

      const first = await runCli(['run', '--config', grid('two-gpus'), '--json'], env);
      expect(first.code, first.stderr).toBe(0);
      const trials = parse(first.stdout);
      expect(trials).toHaveLength(4);
      for (const t of trials) {
        expect(t.agent_outcome, t.benchmark).toBe('finished');
        const r = record(t);
        // Each trial asked for one GPU, was given one by the pool, and the gate passed exactly that one.
        expect(r).toMatchObject({ requested: 1, ok: true });
        expect(r.assigned).toHaveLength(1);
        expect(r.gpus?.map((g) => g.index)).toEqual(r.assigned);
        // Inside, /dev holds the driver's shared nodes and only this trial's GPU.
        expect(agentSpan(t.dir).inside).toMatch(
          new RegExp(`inside devices: nvidia-uvm nvidia${r.assigned![0]} nvidiactl\\s*$`, 'm'),
        );
      }
      // Both GPUs were used, and every two trials whose agents overlapped held different GPUs.
      const spans = trials.map((t) => ({ gpu: record(t).assigned![0]!, ...agentSpan(t.dir) }));
      expect(new Set(spans.map((s) => s.gpu))).toEqual(new Set([0, 1]));
      let overlapping = 0;
      for (const [i, a] of spans.entries()) {
        for (const b of spans.slice(i + 1)) {
          if (a.start < b.end && b.start < a.end) {
            overlapping++;
            expect(a.gpu).not.toBe(b.gpu);
          }
        }
      }
      expect(overlapping).toBeGreaterThanOrEqual(1);
      // The monitor reported only the trial's own GPU.
      for (const t of trials) {
        const samples = readFileSync(trialLayout(t.dir).ledgers.monitor, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as { gpus: { index: number }[] });
        const indices = new Set(samples.flatMap((s) => s.gpus.map((g) => g.index)));
        expect([...indices]).toEqual(record(t).assigned);
      }

      // A foreign process on GPU 1: the trials the pool puts there are refused by the gate.
      smi.set({ ...smi.state, apps: [{ gpuUuid: smi.state.gpus[1]!.uuid, pid: 4242, usedMemoryMiB: 4096 }] });
      const second = await runCli(['run', '--config', grid('gpu-one-busy'), '--json'], env);
      const busy = parse(second.stdout);
      expect(busy).toHaveLength(4);
      for (const t of busy) {
        const r = record(t);
        if (r.assigned?.[0] === 1) {
          expect(t.agent_outcome).toBe('gpu_unavailable');
          expect(r).toMatchObject({ ok: false });
          expect(r.reason).toContain('pid 4242 on GPU 1');
        } else {
          expect(t.agent_outcome).toBe('finished');
          expect(r.assigned).toEqual([0]);
        }
      }
      expect(busy.some((t) => t.agent_outcome === 'gpu_unavailable')).toBe(true);
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.PTB_NVIDIA_DEV_DIR === undefined) delete process.env.PTB_NVIDIA_DEV_DIR;
      else process.env.PTB_NVIDIA_DEV_DIR = saved.PTB_NVIDIA_DEV_DIR;
    }
  }, 600_000);
});
