import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { createContext } from '../../src/cli/context.ts';
import { buildProgram } from '../../src/cli/main.ts';
import { repoRoot } from '../../src/core/paths.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';

/**
 * Issue 13 "every user error is a message with a hint, never a stack trace": every command, given
 * bad paths (missing, a file for a folder, a folder for a file, an empty file, an oversized file,
 * a path under a file), bad ids, and PTB_HOME pointing at a file, ends with `ptb: <message>` and
 * no stack frames. The table must name every command the CLI has, so a new command joins the walk.
 */

const scratch = mkdtempSync(join(tmpdir(), 'ptb-walk-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const emptyDir = join(scratch, 'empty-dir');
mkdirSync(emptyDir);
// A folder that passes as a checkpoint, so that the checks after the model's are reached.
const checkpoint = join(scratch, 'checkpoint');
mkdirSync(checkpoint);
writeFileSync(join(checkpoint, 'config.json'), '{"architectures": ["Qwen3ForCausalLM"]}');
const aFile = join(scratch, 'a-file.txt');
writeFileSync(aFile, 'not what you think\n');
const emptyFile = join(scratch, 'empty.jsonl');
writeFileSync(emptyFile, '');
// A sparse 3 GiB file: bigger than Node reads in one call, costs no disk.
const hugeFile = join(scratch, 'huge.jsonl');
const fd = openSync(hugeFile, 'w');
ftruncateSync(fd, 3 * 1024 ** 3);
closeSync(fd);

type Kind = 'file' | 'dir' | 'id';
const BAD: Record<Kind, Array<[label: string, value: string]>> = {
  file: [
    ['missing file', join(scratch, 'missing.jsonl')],
    ['a folder for a file', emptyDir],
    ['an empty file', emptyFile],
    ['an oversized file', hugeFile],
    ['a path under a file', join(aFile, 'x.jsonl')],
  ],
  dir: [
    ['missing folder', join(scratch, 'missing-dir')],
    ['a file for a folder', aFile],
    ['a path under a file', join(aFile, 'sub')],
  ],
  id: [['an unknown id', 'no-such-thing-0000']],
};

const GSM8K_TEST = join(scratch, 'gsm8k-test.jsonl');
writeFileSync(GSM8K_TEST, `${JSON.stringify({ question: 'q', answer: '#### 1' })}\n`);
const RESPONSES = join(scratch, 'responses.jsonl');
writeFileSync(RESPONSES, `${JSON.stringify({ id: '0', response: 'ANSWER: 1' })}\n`);
const FIXTURE = join(repoRoot, 'test/fixtures/upstream-results');
const TRIAL_RUN = ['trial', 'run', '-a', 'noop', '-m', 'Qwen/Qwen3-1.7B-Base', '-b', 'gsm8k', '--offline'];

interface Case {
  kind: Kind;
  argv: (bad: string) => string[];
}
/** Per command: where it takes a path or an id; `home` is argv that touches PTB_HOME. */
const WALK: Record<string, { cases: Case[]; home: string[] }> = {
  demo: {
    cases: [{ kind: 'dir', argv: (x) => ['demo', '--base-model-path', x] }],
    home: ['demo', '--items', '2'],
  },
  'trial run': {
    cases: [
      { kind: 'dir', argv: (x) => [...TRIAL_RUN, '--base-model-path', x] },
      { kind: 'file', argv: (x) => [...TRIAL_RUN, '--prompt-file', x] },
    ],
    home: TRIAL_RUN,
  },
  'trial resume': {
    cases: [{ kind: 'id', argv: (x) => ['trial', 'resume', x] }],
    home: ['trial', 'resume', 'x'],
  },
  'trial show': { cases: [{ kind: 'id', argv: (x) => ['trial', 'show', x] }], home: ['trial', 'show', 'x'] },
  'trial clean': {
    cases: [{ kind: 'id', argv: (x) => ['trial', 'clean', x] }],
    home: ['trial', 'clean', 'x'],
  },
  'trial exec': {
    cases: [{ kind: 'file', argv: (x) => ['trial', 'exec', '--manifest', x, '--index', '0'] }],
    home: ['trial', 'exec', '--manifest', aFile, '--index', '0'],
  },
  trials: { cases: [], home: ['trials'] },
  run: {
    cases: [{ kind: 'file', argv: (x) => ['run', '--config', x, '--dry-run'] }],
    home: ['run', '--config', aFile],
  },
  'run status': { cases: [{ kind: 'id', argv: (x) => ['run', 'status', x] }], home: ['run', 'status', 'x'] },
  'run cancel': { cases: [{ kind: 'id', argv: (x) => ['run', 'cancel', x] }], home: ['run', 'cancel', 'x'] },
  'run resume': { cases: [{ kind: 'id', argv: (x) => ['run', 'resume', x] }], home: ['run', 'resume', 'x'] },
  audit: {
    cases: [
      { kind: 'id', argv: (x) => ['audit', x] },
      { kind: 'dir', argv: (x) => ['audit', '--dir', x] },
    ],
    home: ['audit', 'x'],
  },
  provenance: {
    cases: [
      { kind: 'dir', argv: (x) => ['provenance', '--base', x, '--model', x] },
      { kind: 'file', argv: (x) => ['provenance', '--base', x, '--model', x] },
    ],
    home: ['provenance', '--base', emptyDir, '--model', emptyDir],
  },
  scan: {
    cases: [
      { kind: 'file', argv: (x) => ['scan', scratch, '--against', x] },
      { kind: 'dir', argv: (x) => ['scan', x, '--against', GSM8K_TEST] },
    ],
    home: ['scan', scratch, '--against', 'gsm8k', '--offline'],
  },
  eval: {
    cases: [
      { kind: 'dir', argv: (x) => ['eval', '-m', x, '-b', 'gsm8k', '--engine', 'hf', '--offline'] },
      { kind: 'id', argv: () => ['eval', '-m', emptyDir, '-b', 'gsm8k', '--engine', 'hf', '--offline'] },
      {
        kind: 'file',
        argv: (x) => [
          'eval',
          '-m',
          checkpoint,
          '-b',
          'gsm8k',
          '--engine',
          'hf',
          '--offline',
          '--template',
          x,
        ],
      },
      {
        kind: 'file',
        argv: (x) => [
          'eval',
          '-m',
          emptyDir,
          '-b',
          'gsm8k',
          '--engine',
          'hf',
          '--offline',
          '--data',
          `test=${x}`,
        ],
      },
    ],
    home: ['eval', '-m', emptyDir, '-b', 'gsm8k', '--engine', 'hf', '--offline'],
  },
  score: {
    cases: [
      {
        kind: 'file',
        argv: (x) => ['score', '-b', 'gsm8k', '-r', x, '--offline', '--data', `test=${GSM8K_TEST}`],
      },
      {
        kind: 'file',
        argv: (x) => ['score', '-b', 'gsm8k', '-r', RESPONSES, '--offline', '--data', `test=${x}`],
      },
    ],
    home: ['score', '-b', 'gsm8k', '-r', RESPONSES, '--offline'],
  },
  evals: { cases: [], home: ['evals'] },
  'data pull': {
    cases: [{ kind: 'id', argv: (x) => ['data', 'pull', x] }],
    home: ['data', 'pull', 'nosuchgroup'],
  },
  'data import': {
    cases: [{ kind: 'file', argv: (x) => ['data', 'import', 'gsm8k', x] }],
    home: ['data', 'import', 'gsm8k', GSM8K_TEST, '--force'],
  },
  'data status': { cases: [], home: ['data', 'status'] },
  benchmarks: { cases: [], home: ['benchmarks'] },
  agents: { cases: [], home: ['agents', '--no-version-check'] },
  'agents install': {
    cases: [{ kind: 'id', argv: (x) => ['agents', 'install', x] }],
    home: ['agents', 'install', 'x'],
  },
  'image build': {
    cases: [{ kind: 'id', argv: (x) => ['image', 'build', '--kind', x, '--dry-run'] }],
    home: ['image', 'build', '--dry-run'],
  },
  'image status': { cases: [], home: ['image', 'status'] },
  'image pins': { cases: [], home: ['image', 'pins'] },
  report: {
    cases: [
      { kind: 'dir', argv: (x) => ['report', '--plots', x] },
      { kind: 'dir', argv: (x) => ['report', '--out', join(x, 'board.md')] },
    ],
    home: ['report'],
  },
  import: { cases: [{ kind: 'dir', argv: (x) => ['import', x] }], home: ['import', FIXTURE] },
  export: { cases: [{ kind: 'dir', argv: (x) => ['export', x] }], home: ['export', join(scratch, 'out')] },
  baseline: {
    cases: [
      {
        kind: 'dir',
        argv: (x) => ['baseline', '--models', x, '--benchmarks', 'gsm8k', '--engine', 'hf', '--offline'],
      },
    ],
    home: ['baseline', '--models', emptyDir, '--benchmarks', 'gsm8k', '--engine', 'hf', '--offline'],
  },
  view: { cases: [], home: ['view', '--port', '0'] },
  selftest: {
    cases: [{ kind: 'id', argv: (x) => ['selftest', '--only', x] }],
    home: ['selftest', '--only', 'x'],
  },
};

function leafCommands(cmd: Command, prefix: string[] = []): string[] {
  return cmd.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    if (sub.name() === 'help') return [];
    const leaves = leafCommands(sub, path);
    // A group with its own action (`ptb agents`) is a command too.
    const own = (sub as unknown as { _actionHandler: unknown })._actionHandler ? [path.join(' ')] : [];
    return leaves.length > 0 ? [...own, ...leaves] : [path.join(' ')];
  });
}

function expectMessage(run: { code: number; stderr: string; stdout: string }, what: string): void {
  const out = `${what}\n--- stderr ---\n${run.stderr}`;
  expect(run.stderr, out).not.toMatch(/unexpected error/);
  expect(run.stderr, out).not.toMatch(/\n\s+at .+:\d+:\d+\)?\n/);
  expect(run.stderr, out).not.toMatch(/^(TypeError|RangeError|Error|SyntaxError): /m);
  // A failure explains itself (commands that report per item, like baseline, do so on stdout).
  if (run.code !== 0) expect(`${run.stderr}${run.stdout}`.trim(), out).not.toBe('');
}

/** One CLI run, in-process, that must end quickly: bad input is refused before work starts. */
async function walk(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ptb ${argv.join(' ')} did not end within 60 s`)), 60_000);
  });
  try {
    return await Promise.race([runCli(argv, { PTB_OFFLINE: '1', ...env }), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('every command refuses bad input with a message, never a stack trace', () => {
  it('the walk names every command', () => {
    const commands = leafCommands(buildProgram(createContext())).sort();
    expect(Object.keys(WALK).sort()).toEqual(commands);
  });

  const cases = Object.entries(WALK).flatMap(([command, entry]) =>
    entry.cases.flatMap((c) =>
      BAD[c.kind].map(([label, value]) => ({ command, label, argv: c.argv(value) })),
    ),
  );
  it.each(cases)(
    'ptb $command with $label',
    async ({ argv }) => {
      const run = await walk(argv, { PTB_HOME: tempHome() });
      expectMessage(run, `ptb ${argv.join(' ')}`);
    },
    90_000,
  );

  it.each(Object.entries(WALK).map(([command, entry]) => ({ command, argv: entry.home })))(
    'PTB_HOME=<a file> ptb $command',
    async ({ argv }) => {
      const run = await walk(argv, { PTB_HOME: aFile });
      expectMessage(run, `PTB_HOME=${aFile} ptb ${argv.join(' ')}`);
    },
    90_000,
  );
});
