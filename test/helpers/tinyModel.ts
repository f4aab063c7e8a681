import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../src/core/atomicWrite.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { CODE_ENV, ensurePythonEnv, runLines, withDirLock } from '../../src/runtime/pythonEnv.ts';

/**
 * The tiny Qwen3-architecture model tests serve: built once per checkout into .ptb-test/ (gitignored)
 * with the venv of .ptb-test/home, shared by every test file (a lock directory keeps parallel vitest
 * workers from building it twice), rebuilt when the builder script or its template changes.
 */

export const testRoot = join(repoRoot, '.ptb-test');
export const testHome = join(testRoot, 'home');
export const tinyModelDir = join(testRoot, 'tiny-qwen3');
const builderScript = join(repoRoot, 'python', 'make_tiny_model.py');
const templateFile = join(repoRoot, 'python', 'templates', 'tiny_chatml.jinja');

/** ptb's own small ChatML template (system, user, assistant, tool turns; hermes-style tool calls). */
export const tinyChatTemplate: string = readFileSync(templateFile, 'utf8');

/** Minutes a first build may take (venv install ≈ 1–2 min, model build ≈ 15 s): use as the hook timeout. */
export const tinyModelTimeoutMs = 15 * 60_000;

/**
 * pip arguments for machines whose pip config lists an on-disk package mirror (the dev and CI
 * machines): make it the main index, since pip otherwise retries the unreachable public index for
 * minutes, and take the CPU torch wheel. Nothing when PTB_PIP_ARGS or PIP_INDEX_URL is already set.
 */
function localMirrorEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.PTB_PIP_ARGS !== undefined || env.PIP_INDEX_URL !== undefined || env.PTB_PYTHON) return env;
  let config = '';
  try {
    config = execFileSync('python3', ['-m', 'pip', 'config', 'list'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return env;
  }
  const mirrors = [...config.matchAll(/file:\/\/\S+?(?=['\s])/g)].map((m) => m[0]);
  if (mirrors.length === 0) return env;
  const findLinks = [...config.matchAll(/find-links='([^']+)'/g)].flatMap((m) => (m[1] ?? '').split(/\s+/));
  const cpuTorch = findLinks
    .flatMap((dir) => (existsSync(dir) ? readdirSync(dir) : []))
    .map((f) => /^torch-([\w.]+\+cpu)-/.exec(f)?.[1])
    .find((v) => v !== undefined);
  return {
    ...env,
    PIP_INDEX_URL: mirrors[0],
    PTB_PIP_ARGS: cpuTorch ? `torch==${cpuTorch}` : '',
  };
}

let pythonPromise: Promise<string> | null = null;

/** The interpreter tests use: PTB_PYTHON when set, else the venv under .ptb-test/home. */
export function testPython(): Promise<string> {
  pythonPromise ??= ensurePythonEnv({
    home: testHome,
    env: localMirrorEnv(process.env),
    onProgress: (line) => process.stderr.write(`[test venv] ${line}\n`),
  });
  return pythonPromise;
}

let codePythonPromise: Promise<string> | null = null;

/** HumanEval's code-execution interpreter (PTB_CODE_PYTHON when set, else .ptb-test/home/venv-code). */
export function testCodePython(): Promise<string> {
  codePythonPromise ??= ensurePythonEnv({
    home: testHome,
    env: localMirrorEnv(process.env),
    kind: CODE_ENV,
    onProgress: (line) => process.stderr.write(`[test code venv] ${line}\n`),
  });
  return codePythonPromise;
}

function builderKey(): string {
  return createHash('sha256').update(readFileSync(builderScript)).update(tinyChatTemplate).digest('hex');
}

/** Path of the tiny model (built on first call). */
export async function ensureTinyModel(): Promise<string> {
  const python = await testPython();
  const stampFile = join(tinyModelDir, 'ptb-build.json');
  const key = builderKey();
  const fresh = () => {
    try {
      return JSON.parse(readFileSync(stampFile, 'utf8')).key === key;
    } catch {
      return false;
    }
  };
  if (fresh()) return tinyModelDir;
  return await withDirLock(`${tinyModelDir}.lock`, async () => {
    if (fresh()) return tinyModelDir;
    const tmp = `${tinyModelDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    const run = await runLines(python, [builderScript, tmp, '--seed', '0'], { onLine: () => {} });
    if (run.code !== 0) throw new Error(`make_tiny_model.py failed:\n${run.tail}`);
    writeJsonAtomic(join(tmp, 'ptb-build.json'), {
      key,
      report: run.tail.split('\n').find((l) => l.startsWith('{')),
    });
    rmSync(tinyModelDir, { recursive: true, force: true });
    renameSync(tmp, tinyModelDir);
    return tinyModelDir;
  });
}
