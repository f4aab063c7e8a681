import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repromptMessage } from '../../src/agents/definitions/codex.ts';
import { getAgent } from '../../src/agents/registry.ts';
import { buildSolveScript, shellQuote, writeAgentHome } from '../../src/agents/solveScript.ts';
import type { AgentDefinition, AgentRunContext } from '../../src/agents/types.ts';

/** A fake CLI: appends its argv and a few variables as one JSON line to $FAKE_LOG, exits $FAKE_EXIT_<n>. */
const FAKE_CLI = `#!/usr/bin/env python3
import json, os, sys
log = os.environ["FAKE_LOG"]
n = sum(1 for _ in open(log)) if os.path.exists(log) else 0
with open(log, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CODEX_API_KEY", "OPENAI_BASE_URL"]}}) + "\\n")
sys.exit(int(os.environ.get("FAKE_EXIT_%d" % n, os.environ.get("FAKE_EXIT", "0"))))
`;

/** timer.sh that prints the next of its scripted outputs on each call (the last one repeats). */
function fakeTimer(outputs: string[]): string {
  const cases = outputs.map((out, i) => `  ${i}) printf '%s\\n' ${shellQuote(out)} ;;`).join('\n');
  return `#!/bin/bash
state="$(dirname "$0")/.timer_calls"
n=$(cat "$state" 2>/dev/null || echo 0)
echo $((n + 1)) > "$state"
[ "$n" -ge ${outputs.length} ] && n=${outputs.length - 1}
case $n in
${cases}
esac
`;
}

interface Run {
  status: number | null;
  stderr: string;
  calls: Array<{ argv: string[]; cwd: string; env: Record<string, string | null> }>;
  taskDir: string;
  home: string;
}

function runSolve(
  def: AgentDefinition,
  ctxOverrides: Partial<AgentRunContext>,
  options: { timer?: string[]; env?: Record<string, string>; binName: string },
): Run {
  const root = mkdtempSync(join(tmpdir(), 'ptb-solve-'));
  const home = join(root, 'home');
  const taskDir = join(home, 'task');
  const bin = join(root, 'bin');
  mkdirSync(taskDir, { recursive: true });
  mkdirSync(bin);
  writeFileSync(join(bin, options.binName), FAKE_CLI);
  chmodSync(join(bin, options.binName), 0o755);
  if (options.timer) writeFileSync(join(taskDir, 'timer.sh'), fakeTimer(options.timer));
  const ctx: AgentRunContext = {
    prompt: 'hello',
    agentConfig: 'model-x',
    benchmark: 'gsm8k',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    hours: 10,
    gpus: 1,
    home,
    taskDir,
    relayUrls: { anthropic: 'http://127.0.0.1:1/anthropic', openai: 'http://127.0.0.1:1/openai' },
    relayTokens: { anthropic: 'tok', openai: 'tok' },
    credentialFiles: [],
    ...ctxOverrides,
  };
  const { scriptPath } = writeAgentHome({ def, ctx, hostHome: home, pathPrepend: [bin] });
  const log = join(root, 'calls.jsonl');
  const result = spawnSync('bash', [scriptPath], {
    cwd: root,
    env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: home, FAKE_LOG: log, ...options.env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  const calls = existsSync(log)
    ? readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line))
    : [];
  return { status: result.status, stderr: result.stderr, calls, taskDir, home };
}

describe('agent_solve.sh', () => {
  it('passes a hostile prompt to the CLI byte for byte, in the task directory, with the definition env', () => {
    const prompt = [
      `Train \`Qwen/Qwen3-1.7B-Base\` and don't "panic": $(touch /tmp/ptb-pwned-$$) \${HOME} \`id\``,
      "back\\slash \\` escaped backtick, 'single' quotes, !history, * globs ? [x]",
      '\ttabbed line; ünïcödé ✓',
      '',
    ].join('\n');
    const run = runSolve(
      getAgent('claude'),
      { prompt, agentConfig: "odd 'model' name" },
      { binName: 'claude' },
    );
    expect(run.status).toBe(0);
    expect(run.calls).toHaveLength(1);
    const [call] = run.calls;
    expect(call!.argv.at(-1)).toBe(prompt);
    expect(call!.argv.slice(0, 5)).toEqual([
      '--print',
      '--verbose',
      '--model',
      "odd 'model' name",
      '--output-format',
    ]);
    expect(call!.cwd).toBe(run.taskDir);
    expect(call!.env).toMatchObject({
      ANTHROPIC_API_KEY: 'tok',
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:1/anthropic',
    });
    expect(existsSync(`/tmp/ptb-pwned-${process.pid}`)).toBe(false);
  });

  it('exits with the CLI’s status', () => {
    const run = runSolve(getAgent('claude'), {}, { binName: 'claude', env: { FAKE_EXIT: '7' } });
    expect(run.status).toBe(7);
  });

  it('writes config files (0600) and the script (0700) into the home, never outside it', () => {
    const root = mkdtempSync(join(tmpdir(), 'ptb-solve-'));
    const ctx = {
      prompt: 'p',
      agentConfig: 'gpt-5.3-codex',
      benchmark: 'gsm8k',
      baseModel: 'b',
      hours: 1,
      gpus: 1,
      home: '/home/agent',
      taskDir: '/home/agent/task',
      relayUrls: { openai: 'http://127.0.0.1:1/openai' },
      relayTokens: { openai: 'tok' },
      credentialFiles: [],
    } satisfies AgentRunContext;
    const written = writeAgentHome({ def: getAgent('codexhigh'), ctx, hostHome: root });
    const config = join(root, '.codex', 'config.toml');
    expect(written.files).toEqual([config]);
    expect(readFileSync(config, 'utf8').split('\n')[1]).toBe('model_reasoning_effort = "high"');
    expect(statSync(config).mode & 0o777).toBe(0o600);
    expect(statSync(written.scriptPath).mode & 0o777).toBe(0o700);
    const escaping: AgentDefinition = {
      ...getAgent('claude'),
      files: () => [{ path: '../outside.txt', content: 'x' }],
    };
    expect(() => writeAgentHome({ def: escaping, ctx, hostHome: root })).toThrow(/outside its home/);
  });
});

describe('reprompt loop', () => {
  const def = getAgent('codex_reprompt');
  const timeLeft = (hm: string) => `Remaining time (hours:minutes):\n${hm}`;

  it('resumes while at least 30 minutes remain, telling the CLI the time left', () => {
    const run = runSolve(
      def,
      {},
      { binName: 'codex', timer: [timeLeft('2:15'), timeLeft('0:30'), timeLeft('0:29')] },
    );
    expect(run.status).toBe(0);
    expect(run.calls).toHaveLength(3);
    expect(run.calls[0]!.argv.slice(0, 3)).toEqual(['--search', 'exec', '--json']);
    for (const call of run.calls.slice(1)) {
      expect(call.argv.slice(0, 4)).toEqual(['--search', 'exec', 'resume', '--last']);
      expect(call.env.CODEX_API_KEY).toBe('tok');
    }
    expect(run.calls[1]!.argv.at(-1)).toBe(repromptMessage(2, 15));
    expect(run.calls[2]!.argv.at(-1)).toBe(repromptMessage(0, 30));
    expect(run.stderr).toContain('0h 29m left, under 30 minutes; not resuming');
  });

  it('reads minutes with a leading zero as decimal (1:08 = 68 minutes, not octal)', () => {
    const run = runSolve(def, {}, { binName: 'codex', timer: [timeLeft('1:08'), 'Timer expired!'] });
    expect(run.calls).toHaveLength(2);
    expect(run.calls[1]!.argv.at(-1)).toBe(repromptMessage(1, 8));
  });

  it('stops when the timer has expired or prints something else', () => {
    const expired = runSolve(def, {}, { binName: 'codex', timer: ['Timer expired!'] });
    expect(expired.calls).toHaveLength(1);
    expect(expired.stderr).toContain('timer has expired');
    const garbage = runSolve(def, {}, { binName: 'codex', timer: ['bash: timer.sh: Permission denied'] });
    expect(garbage.calls).toHaveLength(1);
    expect(garbage.stderr).toContain('could not read the time left');
  });

  it('gives up after three resumed sessions fail in a row (no spinning until the deadline)', () => {
    const run = runSolve(
      def,
      {},
      { binName: 'codex', timer: [timeLeft('5:00')], env: { FAKE_EXIT: '3', FAKE_EXIT_0: '0' } },
    );
    expect(run.calls).toHaveLength(4);
    expect(run.status).toBe(3);
    expect(run.stderr).toContain('failed 3 times in a row');
  });

  it('variants without reprompt have no loop', () => {
    const script = buildSolveScript({
      def: getAgent('codex'),
      ctx: {
        prompt: 'p',
        agentConfig: 'm',
        benchmark: 'gsm8k',
        baseModel: 'b',
        hours: 1,
        gpus: 1,
        home: '/home/agent',
        taskDir: '/home/agent/task',
        relayUrls: { openai: 'http://x/openai' },
        relayTokens: { openai: 't' },
        credentialFiles: [],
      },
    });
    expect(script).not.toContain('timer.sh');
    expect(script).toContain('cd /home/agent/task || exit 1');
  });
});
