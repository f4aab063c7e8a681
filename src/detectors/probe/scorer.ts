import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { repoRoot } from '../../core/paths.ts';
import { grantSandboxRead, runInSandbox } from '../../sandbox/bwrap.ts';
import { interpreterBinds } from '../../sandbox/pythonRunner.ts';
import type { ProbeItem } from './items.ts';

/**
 * Runs python/ptb_likelihood_probe.py over two checkpoints inside a bubblewrap sandbox: no network,
 * nothing of the host but /usr, the interpreter, the program and the two model folders (read-only),
 * GPUs only when asked for. final_model is untrusted: the program reads safetensors only and never
 * runs code shipped with a checkpoint; the sandbox keeps a malicious file from reaching anything
 * else should a loader bug let it.
 */
export const PROBE_SCRIPT = join(repoRoot, 'python', 'ptb_likelihood_probe.py');

const SumsSchema = z.object({ n: z.number().int(), base: z.number(), final: z.number() });
export const ScorerOutputSchema = z.object({
  items: z.array(z.object({ id: z.string(), question: SumsSchema, answer: SumsSchema })),
  device: z.string(),
  timings: z.record(z.string(), z.object({ load_s: z.number(), score_s: z.number() })),
  seconds: z.number(),
});
export type ScorerOutput = z.infer<typeof ScorerOutputSchema>;

export interface ScorerRequest {
  python: string;
  baseModel: string;
  finalModel: string;
  /** Chat template (Jinja text) to render prompts with; null: the base tokenizer's own. */
  template: string | null;
  items: ProbeItem[];
  device: 'cpu' | 'cuda' | 'auto';
  /** Device nodes to bind for CUDA (empty on CPU). */
  gpuDevices?: string[];
  threads?: number;
  timeoutMs?: number;
  memoryBytes?: number;
  signal?: AbortSignal;
}

const IN = { script: '/opt/ptb/probe.py', base: '/opt/models/base', final: '/opt/models/final' } as const;

/** The NVIDIA device nodes present on this host (all of them; CUDA_VISIBLE_DEVICES picks inside). */
export function hostGpuDevices(): string[] {
  try {
    return readdirSync('/dev')
      .filter((n) => /^nvidia(\d+|ctl|-uvm|-uvm-tools)$/.test(n))
      .map((n) => `/dev/${n}`);
  } catch {
    return [];
  }
}

export async function runLikelihoodScorer(req: ScorerRequest): Promise<ScorerOutput> {
  for (const dir of [req.baseModel, req.finalModel])
    if (!existsSync(dir)) throw new Error(`model folder ${dir} does not exist`);
  grantSandboxRead([req.baseModel, req.finalModel, PROBE_SCRIPT]);
  const gpu = req.device !== 'cpu' && (req.gpuDevices?.length ?? 0) > 0;
  const env: Record<string, string> = {
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_HOME: '/tmp/hf',
    TOKENIZERS_PARALLELISM: 'false',
    OMP_NUM_THREADS: String(req.threads ?? 1),
  };
  if (gpu) {
    for (const [k, v] of Object.entries(process.env)) {
      if (v !== undefined && /^(LD_LIBRARY_PATH|CUDA_HOME|CUDA_PATH|CUDA_VISIBLE_DEVICES)$/.test(k))
        env[k] = v;
    }
  }
  const input = JSON.stringify({
    models: { base: IN.base, final: IN.final },
    tokenizer: IN.base,
    template: req.template,
    device: gpu ? req.device : 'cpu',
    threads: req.threads ?? 1,
    items: req.items,
  });
  const result = await runInSandbox({
    argv: [req.python, '-I', IN.script],
    system: 'usr',
    readOnlyBinds: [
      ...interpreterBinds(req.python).map((p) => ({ source: p })),
      { source: PROBE_SCRIPT, target: IN.script },
      { source: req.baseModel, target: IN.base },
      { source: req.finalModel, target: IN.final },
    ],
    devices: gpu ? req.gpuDevices : [],
    sysfs: gpu,
    network: 'none',
    env,
    stdin: input,
    timeoutMs: req.timeoutMs ?? 30 * 60_000,
    limits: { memoryBytes: req.memoryBytes ?? 16 * 1024 ** 3 },
    maxOutputBytes: 64 * 1024 ** 2,
    signal: req.signal,
  });
  if (result.exitCode !== 0) {
    const why = result.timedOut
      ? 'timed out'
      : result.oomKilled
        ? 'ran out of memory'
        : `exited with ${result.exitCode ?? result.signal}`;
    const tail = result.stderr.toString('utf8').trim().split('\n').slice(-6).join(' | ');
    throw new Error(`the likelihood scorer ${why}: ${tail.slice(-800)}`);
  }
  const parsed = ScorerOutputSchema.safeParse(JSON.parse(result.stdout.toString('utf8')));
  if (!parsed.success)
    throw new Error(`the likelihood scorer's output is malformed: ${parsed.error.message}`);
  return parsed.data;
}
