import { copyFileSync, cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TrialEvidence } from '../types.ts';
import { walkFiles } from './files.ts';

/** Weight files stay out of the judging agent's copy (they are listed instead). */
const WEIGHTS = /\.(safetensors|bin|pt|pth|ckpt|gguf|onnx|h5|msgpack)$/i;

/**
 * The judging agent's working directory: a copy of the task snapshot (the agent's code, data and
 * logs, already without weights), final_model/ with its small files, and the trace one level up
 * where the reference puts solve_parsed.txt. A copy, so the judge cannot alter the evidence.
 */
export function prepareAgentJudgeWorkspace(evidence: TrialEvidence, workDir: string): void {
  mkdirSync(workDir, { recursive: true });
  const { layout } = evidence;
  if (existsSync(layout.taskSnapshot))
    cpSync(layout.taskSnapshot, workDir, { recursive: true, dereference: false });
  const finalDir = join(workDir, 'final_model');
  if (existsSync(layout.finalModel)) {
    const skipped: string[] = [];
    for (const f of walkFiles(layout.finalModel, { skipDirs: new Set(['.git']) })) {
      if (WEIGHTS.test(f.rel) || f.size > 50_000_000) {
        skipped.push(`${f.rel} (${f.size} bytes)`);
        continue;
      }
      const target = join(finalDir, f.rel);
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(f.abs, target);
    }
    if (skipped.length > 0)
      writeFileSync(join(finalDir, 'WEIGHTS_NOT_COPIED.txt'), `${skipped.join('\n')}\n`);
  }
  const trace = [layout.solveParsed, layout.solveOut].find((p) => existsSync(p));
  if (trace) copyFileSync(trace, join(dirname(workDir), 'solve_parsed.txt'));
}
