import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { repoRoot } from '../../core/paths.ts';
import { visibleGpuIndices } from '../../sandbox/gpuGate.ts';
import { MODEL_SANDBOX_PATHS, runUntrustedModelCode } from '../../sandbox/modelSandbox.ts';
import { interpreterBinds } from '../../sandbox/pythonRunner.ts';
import type { ProbeItem } from './items.ts';

/**
 * Runs python/ptb_likelihood_probe.py over two checkpoints in the model sandbox
 * (sandbox/modelSandbox.ts, the one the final evaluation's engine runs in): no network, an
 * allow-listed environment, final_model read-only at /opt/model, the base and the request as
 * read-only inputs, the interpreter and the program read-only, the trial's GPUs only, a private
 * scratch for the result. final_model is untrusted: the program reads safetensors only and never
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
  /** nvidia-smi indices of the GPUs to use ([]: CPU). */
  gpuIndices: readonly number[];
  threads?: number;
  timeoutMs?: number;
  memoryBytes?: number;
  signal?: AbortSignal;
}

/** The first `count` GPUs this process may use (CUDA_VISIBLE_DEVICES respected), [] without a driver. */
export function probeGpus(count: number): number[] {
  if (count <= 0) return [];
  try {
    return visibleGpuIndices().slice(0, count);
  } catch {
    return [];
  }
}

export async function runLikelihoodScorer(req: ScorerRequest): Promise<ScorerOutput> {
  for (const dir of [req.baseModel, req.finalModel])
    if (!existsSync(dir)) throw new Error(`model folder ${dir} does not exist`);
  const work = mkdtempSync(join(tmpdir(), 'ptb-probe-'));
  try {
    const requestFile = join(work, 'request.json');
    writeFileSync(
      requestFile,
      JSON.stringify({
        models: { base: `${MODEL_SANDBOX_PATHS.inputs}/base`, final: MODEL_SANDBOX_PATHS.model },
        tokenizer: `${MODEL_SANDBOX_PATHS.inputs}/base`,
        template: req.template,
        device: req.gpuIndices.length > 0 ? 'cuda' : 'cpu',
        threads: req.threads ?? 1,
        items: req.items,
      }),
    );
    const logFile = join(work, 'probe.log');
    const out = `${MODEL_SANDBOX_PATHS.scratch}/probe_result.json`;
    const { result, scratchDir } = await runUntrustedModelCode({
      kind: 'bwrap',
      argv: [
        req.python,
        '-I',
        `${MODEL_SANDBOX_PATHS.inputs}/probe.py`,
        '--request',
        `${MODEL_SANDBOX_PATHS.inputs}/request.json`,
        '--out',
        out,
      ],
      model: req.finalModel,
      inputs: { base: req.baseModel, 'probe.py': PROBE_SCRIPT, 'request.json': requestFile },
      programs: interpreterBinds(req.python),
      workDir: join(work, 'run'),
      gpuIndices: req.gpuIndices,
      env: { OMP_NUM_THREADS: String(req.threads ?? 1), TOKENIZERS_PARALLELISM: 'false' },
      limits: { memoryBytes: req.memoryBytes ?? 16 * 1024 ** 3 },
      timeoutMs: req.timeoutMs ?? 30 * 60_000,
      logFile,
      label: 'likelihood-probe',
      signal: req.signal,
    });
    const resultFile = join(scratchDir, 'probe_result.json');
    if (result.exitCode !== 0 || !existsSync(resultFile)) {
      const why = result.timedOut
        ? 'timed out'
        : result.oomKilled
          ? 'ran out of memory'
          : `exited with ${result.exitCode ?? result.signal}`;
      const tail = existsSync(logFile)
        ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-6).join(' | ')
        : '';
      throw new Error(`the likelihood scorer ${why}: ${tail.slice(-800)}`);
    }
    const parsed = ScorerOutputSchema.safeParse(JSON.parse(readFileSync(resultFile, 'utf8')));
    if (!parsed.success)
      throw new Error(`the likelihood scorer's output is malformed: ${parsed.error.message}`);
    return parsed.data;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
