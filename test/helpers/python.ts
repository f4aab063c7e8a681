/** The real CPython as a test oracle; suites skip the comparisons where it is missing. */
import { spawnSync } from 'node:child_process';

export const hasPython = spawnSync('python3', ['--version']).status === 0;

/** Runs `code` in python3 with `input` (if any) as JSON on stdin, and parses the JSON it prints. */
export function runPythonJson(code: string, input?: unknown): unknown {
  const out = spawnSync('python3', ['-c', code], {
    input: input === undefined ? undefined : JSON.stringify(input),
    encoding: 'utf8',
    maxBuffer: 1e8,
  });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout);
}
