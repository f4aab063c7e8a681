import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import type { EvalRepo, EvalRunRow } from '../store/evalRepo.ts';

/**
 * Running the same `ptb eval` again after it finished reports the finished run instead of
 * evaluating again (`--fresh` does). "The same" is the run's settings (its config key) and the
 * same checkpoint files: the model folder's file names, sizes and modification times are recorded
 * with the run (`model.json`), so a checkpoint retrained into the same folder is evaluated anew.
 */
export const MODEL_FILE = 'model.json';

/** Names, sizes and mtimes of a local checkpoint's files, hashed; null for a Hugging Face id. */
export function modelFingerprint(model: string): string | null {
  let names: string[];
  try {
    if (!statSync(model).isDirectory()) return null;
    names = readdirSync(model).sort();
  } catch {
    return null;
  }
  const hash = createHash('sha256');
  for (const name of names) {
    try {
      const st = statSync(join(model, name));
      hash.update(`${name}\0${st.isDirectory() ? 'dir' : st.size}\0${st.isDirectory() ? '' : st.mtimeMs}\n`);
    } catch {
      hash.update(`${name}\0gone\n`);
    }
  }
  return hash.digest('hex');
}

export function recordModel(outDir: string, model: string): void {
  writeJsonAtomic(join(outDir, MODEL_FILE), { model, fingerprint: modelFingerprint(model) });
}

/** The newest completed run with these settings whose checkpoint files are still the same. */
export function finishedRun(repo: EvalRepo, configKey: string, model: string): EvalRunRow | undefined {
  const run = repo.findCompleted(configKey);
  if (!run?.metrics_json || run.rung === null) return undefined;
  let recorded: { fingerprint: string | null } | undefined;
  try {
    recorded = JSON.parse(readFileSync(join(run.out_dir, MODEL_FILE), 'utf8')) as {
      fingerprint: string | null;
    };
  } catch {
    return undefined; // a run from before model.json: evaluate again rather than guess
  }
  return recorded.fingerprint === modelFingerprint(model) ? run : undefined;
}
