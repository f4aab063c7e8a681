/**
 * The inspect fork the reference's eval image installs (rank-and-file/inspect_ai_vllm_stdout), run
 * as a test oracle straight from a local git snapshot of it: its own text.py, _unicode.py and
 * _common.py, unmodified, with stub modules only for the imports the string functions do not use.
 * Nothing of it is copied into the repository; suites skip where the snapshot or python3 is absent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { INSPECT_FORK_COMMIT } from '../../src/core/protocols.ts';
import { hasPython } from './python.ts';

const FORK_GIT =
  process.env.PTB_INSPECT_FORK_GIT ?? '/work/.mirror/rank-and-file+inspect_ai_vllm_stdout/repo';

function gitShow(path: string): string | null {
  const out = spawnSync('git', ['--git-dir', FORK_GIT, 'show', `${INSPECT_FORK_COMMIT}:${path}`], {
    encoding: 'utf8',
    maxBuffer: 1e8,
  });
  return out.status === 0 ? out.stdout : null;
}

const FILES = {
  'inspect_ai/_util/text.py': 'src/inspect_ai/_util/text.py',
  'inspect_ai/scorer/_unicode.py': 'src/inspect_ai/scorer/_unicode.py',
  'inspect_ai/scorer/_common.py': 'src/inspect_ai/scorer/_common.py',
} as const;

// _common.py imports these for its scorer factory; the match functions never touch them.
const STUBS: Record<string, string> = {
  'inspect_ai/__init__.py': '',
  'inspect_ai/_util/__init__.py': '',
  'inspect_ai/scorer/__init__.py': '',
  'inspect_ai/solver/__init__.py': '',
  'inspect_ai/solver/_task_state.py': 'TaskState = object\n',
  'inspect_ai/scorer/_metric.py': 'CORRECT = "C"\nINCORRECT = "I"\nScore = dict\n',
  'inspect_ai/scorer/_scorer.py': 'Scorer = object\n',
  'inspect_ai/scorer/_target.py': 'Target = list\n',
};

let root: string | null | undefined;

/** A directory holding the fork's modules as an importable package, or null when unavailable. */
export function inspectForkPackage(): string | null {
  if (root !== undefined) return root;
  root = null;
  if (!hasPython || !existsSync(FORK_GIT)) return root;
  const dir = mkdtempSync(join(tmpdir(), 'ptb-inspect-fork-'));
  for (const [target, source] of Object.entries(FILES)) {
    const text = gitShow(source);
    if (text === null) return root;
    mkdirSync(dirname(join(dir, target)), { recursive: true });
    writeFileSync(join(dir, target), text);
  }
  for (const [target, text] of Object.entries(STUBS)) {
    mkdirSync(dirname(join(dir, target)), { recursive: true });
    writeFileSync(join(dir, target), text);
  }
  root = dir;
  return root;
}

export type OracleOutcome = { answer: string; matched: boolean } | { error: string };

// Reads [[value, target], ...] and prints, per pair, match_str(numeric=True, location="end")'s
// (answer, matched) or the name of the exception it raised (the reference fails the sample there).
const DRIVER = `
import json, sys
from inspect_ai.scorer._common import match_str
out = []
for value, target in json.load(sys.stdin):
    try:
        answer, matched = match_str(value, target, location="end", numeric=True)
        out.append({"answer": answer, "matched": matched})
    except Exception as ex:
        out.append({"error": type(ex).__name__})
print(json.dumps(out))
`;

/** The fork's match(numeric=True) on each (reply, target) pair. */
export function forkNumericMatch(pairs: ReadonlyArray<readonly [string, string]>): OracleOutcome[] {
  const dir = inspectForkPackage();
  if (dir === null) throw new Error('the inspect fork snapshot is not available');
  const out = spawnSync('python3', ['-c', DRIVER], {
    input: JSON.stringify(pairs),
    encoding: 'utf8',
    maxBuffer: 1e9,
    env: { ...process.env, PYTHONPATH: dir, PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout) as OracleOutcome[];
}
