import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { writeJsonAtomic } from '../core/atomicWrite.ts';
import { InRunEvalEventSchema } from '../core/trial.ts';
import type { TrialLayout } from '../core/trialLayout.ts';
import { buildManifest } from '../ledgers/manifest.ts';
import type { SandboxMount } from '../sandbox/bwrap.ts';
import { isModelFolder } from './workspace.ts';

export interface CollectResult {
  finalModel: { present: boolean; files: number; bytes: number; skipped: string[] } | null;
  snapshotFiles: number;
  /** Folders whose weight files were left out of the snapshot (their other files are in it). */
  snapshotSkippedModelDirs: string[];
  snapshotSkippedWeights: string[];
  inRunEvals: number;
}

/** Largest final_model the harness copies (a runaway agent must not fill the disk). */
const DEFAULT_MAX_MODEL_BYTES = 200 * 1024 ** 3;

/**
 * Map a path as the sandbox saw it to the host path behind it, through the sandbox's mounts
 * (longest target first). Paths outside every mount have no host counterpart: null.
 */
export function hostPathOf(sandboxPath: string, mounts: readonly SandboxMount[]): string | null {
  const sorted = [...mounts].sort((a, b) => (b.target ?? b.source).length - (a.target ?? a.source).length);
  for (const m of sorted) {
    const target = m.target ?? m.source;
    if (sandboxPath === target || sandboxPath.startsWith(`${target}/`)) {
      return join(m.source, sandboxPath.slice(target.length));
    }
  }
  return null;
}

/**
 * Copy `final_model` out of the workspace. Symlinks are resolved the way the sandbox saw them (an
 * absolute link target is a sandbox path, mapped back through the mounts); links that lead outside
 * the agent's mounts are not followed and are listed in `skipped`.
 */
export function copyFinalModel(
  source: string,
  dest: string,
  sandboxDir: string,
  mounts: readonly SandboxMount[],
  maxBytes = DEFAULT_MAX_MODEL_BYTES,
): { files: number; bytes: number; skipped: string[] } {
  const tmp = `${dest}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  const stats = { files: 0, bytes: 0, skipped: [] as string[] };
  const visit = (hostPath: string, sandboxPath: string, out: string, depth: number): void => {
    if (depth > 40) {
      stats.skipped.push(`${sandboxPath} (symlink loop)`);
      return;
    }
    const st = lstatSync(hostPath);
    if (st.isSymbolicLink()) {
      const link = readlinkSync(hostPath);
      const targetInSandbox = isAbsolute(link) ? link : resolve(sandboxPath, '..', link);
      const targetOnHost = hostPathOf(targetInSandbox, mounts);
      if (!targetOnHost || !existsSync(targetOnHost)) {
        stats.skipped.push(`${sandboxPath} -> ${link} (outside the agent's files or dangling)`);
        return;
      }
      visit(targetOnHost, targetInSandbox, out, depth + 1);
      return;
    }
    if (st.isDirectory()) {
      mkdirSync(out, { recursive: true });
      for (const name of readdirSync(hostPath).sort()) {
        visit(join(hostPath, name), `${sandboxPath}/${name}`, join(out, name), depth);
      }
      return;
    }
    if (!st.isFile()) {
      stats.skipped.push(`${sandboxPath} (not a regular file)`);
      return;
    }
    stats.bytes += st.size;
    if (stats.bytes > maxBytes) {
      throw new Error(`final_model is larger than ${maxBytes} bytes; not copied`);
    }
    copyFileSync(hostPath, out);
    stats.files++;
  };
  visit(source, sandboxDir, tmp, 0);
  rmSync(dest, { recursive: true, force: true });
  // rename is atomic: a crash leaves either no final_model or the complete copy.
  renameSync(tmp, dest);
  return stats;
}

/** Weight files left out of the snapshot (in model folders, from 1 MiB up): everything else is kept. */
const WEIGHT_FILE = /\.(safetensors|bin|pt|pth|ckpt|gguf|ggml|h5|hdf5|msgpack|onnx)$/i;
const WEIGHT_MIN_BYTES = 1 << 20;

/**
 * Copy the task directory without model weights (the reference keeps no weights) and without
 * final_model (collected on its own). Checkpoint folders keep their other files — trainer state,
 * tokenizer files, training arguments, anything hidden beside the weights — so a re-audit after the
 * workspace is gone still reads every file the agent wrote but its weights.
 */
export function snapshotTask(
  taskDir: string,
  dest: string,
): { files: number; skippedModelDirs: string[]; skippedWeights: string[] } {
  const tmp = `${dest}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  const result = { files: 0, skippedModelDirs: [] as string[], skippedWeights: [] as string[] };
  const visit = (dir: string, out: string) => {
    mkdirSync(out, { recursive: true });
    const modelFolder = isModelFolder(dir);
    let weightsLeft = false;
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (dir === taskDir && name === 'final_model') continue;
      const st = lstatSync(path);
      if (st.isDirectory()) visit(path, join(out, name));
      else if (st.isFile()) {
        if (modelFolder && WEIGHT_FILE.test(name) && st.size >= WEIGHT_MIN_BYTES) {
          result.skippedWeights.push(relative(taskDir, path));
          weightsLeft = true;
          continue;
        }
        copyFileSync(path, join(out, name));
        result.files++;
      }
    }
    if (weightsLeft) result.skippedModelDirs.push(relative(taskDir, dir));
  };
  visit(taskDir, tmp);
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  return result;
}

/** Validated copy of the in-run evaluation ledger (written inside the sandbox by evaluate.py). */
export function collectInRunLedger(sourceFile: string, dest: string): number {
  if (!existsSync(sourceFile)) return 0;
  const lines: string[] = [];
  for (const line of readFileSync(sourceFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      lines.push(JSON.stringify(InRunEvalEventSchema.parse(JSON.parse(line))));
    } catch {
      lines.push(JSON.stringify({ invalid: line.slice(0, 2000) }));
    }
  }
  writeJsonLines(dest, lines);
  return lines.length;
}

function writeJsonLines(path: string, lines: string[]): void {
  writeFileSync(path, lines.length ? `${lines.join('\n')}\n` : '');
}

export async function collectTrial(
  layout: TrialLayout,
  mounts: readonly SandboxMount[],
): Promise<CollectResult> {
  const source = join(layout.work.task, 'final_model');
  let finalModel: CollectResult['finalModel'] = null;
  if (existsSync(source) && statSync(source).isDirectory()) {
    const copied = copyFinalModel(source, layout.finalModel, '/home/agent/task/final_model', mounts);
    finalModel = { present: copied.files > 0, ...copied };
  }
  const snapshot = snapshotTask(layout.work.task, layout.taskSnapshot);
  writeJsonAtomic(layout.ledgers.manifestEnd, await buildManifest(layout.work.task));
  const inRunEvals = collectInRunLedger(
    join(layout.work.dir, 'inrun', 'inrun_evals.jsonl'),
    layout.ledgers.inRunEvals,
  );
  return {
    finalModel,
    snapshotFiles: snapshot.files,
    snapshotSkippedModelDirs: snapshot.skippedModelDirs,
    snapshotSkippedWeights: snapshot.skippedWeights,
    inRunEvals,
  };
}
