import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NON_INTERACTIVE_NOTE } from '../../src/agents/definitions/claude.ts';
import { REPROMPT_MIN_MINUTES, repromptMessage } from '../../src/agents/definitions/codex.ts';
import { agentAuth, credentialFilesFor, relayCredentials } from '../../src/agents/definitions/common.ts';
import { opencodeProvider } from '../../src/agents/definitions/opencode.ts';
import { costOf, PRICES, priceOf } from '../../src/agents/prices.ts';
import { AGENTS, getAgent } from '../../src/agents/registry.ts';
import type { AgentRunContext } from '../../src/agents/types.ts';
import { UserError } from '../../src/core/errors.ts';

const TOKEN = 'ptb-relay-token-xyz';

function context(overrides: Partial<AgentRunContext> = {}): AgentRunContext {
  return {
    prompt: 'Train `Qwen/Qwen3-1.7B-Base`.',
    agentConfig: 'model-x',
    benchmark: 'gsm8k',
    baseModel: 'Qwen/Qwen3-1.7B-Base',
    hours: 10,
    gpus: 1,
    home: '/home/agent',
    taskDir: '/home/agent/task',
    relayUrls: {
      anthropic: 'http://127.0.0.1:18080/anthropic',
      openai: 'http://127.0.0.1:18080/openai',
      gemini: 'http://127.0.0.1:18080/gemini',
      opencode: 'http://127.0.0.1:18080/opencode',
    },
    relayTokens: { anthropic: TOKEN, openai: TOKEN, gemini: TOKEN, opencode: TOKEN },
    credentialFiles: [],
    ...overrides,
  };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('agent registry', () => {
  it("holds the reference's CLI agents, once each", () => {
    const ids = AGENTS.map((a) => a.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of [
      'claude',
      'claude_non_api',
      'claude_non_api_max',
      'codex',
      'codexhigh',
      'codexlow',
      'codex_non_api',
      'codex_non_api_high',
      'codex_non_api_xhigh',
      'codex_non_api_reprompt',
      'codex_non_api_high_reprompt',
      'codex_non_api_xhigh_reprompt',
      'gemini',
      'opencode',
      'command',
    ]) {
      expect(getAgent(id).id).toBe(id);
    }
  });

  it('an unknown id is a UserError that lists the ids', () => {
    const err = thrown(() => getAgent('claud'));
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).hint).toContain('claude, claude_non_api');
  });

  it('pins the CLI versions the reference used (opencode: 1.1.58, the newest ≤ 1.1.59 on this registry)', () => {
    expect(getAgent('claude').install).toEqual({
      npm: '@anthropic-ai/claude-code',
      version: '2.1.76',
      bin: 'claude',
    });
    expect(getAgent('codex_non_api').install).toEqual({
      npm: '@openai/codex',
      version: '0.98.0',
      bin: 'codex',
    });
    expect(getAgent('gemini').install).toEqual({
      npm: '@google/gemini-cli',
      version: '0.29.0',
      bin: 'gemini',
    });
    expect(getAgent('opencode').install).toEqual({ npm: 'opencode-ai', version: '1.1.58', bin: 'opencode' });
  });
});

describe('Claude Code definitions', () => {
  it("claude: the reference's flags, relay URL and token, non-interactive note", () => {
    const def = getAgent('claude');
    const ctx = context({ agentConfig: 'claude-opus-4-6' });
    expect(def.command(ctx)).toEqual([
      'claude',
      '--print',
      '--verbose',
      '--model',
      'claude-opus-4-6',
      '--output-format',
      'stream-json',
      '--dangerously-skip-permissions',
      ctx.prompt,
    ]);
    expect(def.env(ctx)).toMatchObject({
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:18080/anthropic',
      ANTHROPIC_API_KEY: TOKEN,
      BASH_MAX_TIMEOUT_MS: '36000000',
    });
    expect(def.traceFormat).toBe('claude-stream-json');
    expect(def.promptSuffix).toBe(NON_INTERACTIVE_NOTE);
    // only `claude` gets the note, as in the reference
    expect(AGENTS.filter((a) => a.promptSuffix).map((a) => a.id)).toEqual(['claude']);
  });

  it('claude_non_api: OAuth token (the relay token), blank API key, --effort high; _max: effort env', () => {
    const ctx = context({ agentConfig: 'claude-opus-4-6' });
    const nonApi = getAgent('claude_non_api');
    expect(nonApi.env(ctx)).toMatchObject({ ANTHROPIC_API_KEY: '', CLAUDE_CODE_OAUTH_TOKEN: TOKEN });
    expect(nonApi.command(ctx).slice(-3)).toEqual(['--effort', 'high', ctx.prompt]);
    const max = getAgent('claude_non_api_max');
    expect(max.env(ctx)).toMatchObject({ CLAUDE_CODE_EFFORT_LEVEL: 'max', CLAUDE_CODE_OAUTH_TOKEN: TOKEN });
    expect(max.command(ctx)).not.toContain('--effort');
    expect(getAgent('claude').command({ ...ctx, reasoningEffort: 'low' })).toContain('low');
    expect(thrown(() => getAgent('claude').command({ ...ctx, reasoningEffort: 'xhigh' }))).toBeInstanceOf(
      UserError,
    );
  });

  it('a missing relay route is a UserError naming the host variable to set', () => {
    const err = thrown(() => getAgent('claude').env(context({ relayUrls: {} })));
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).hint).toContain('ANTHROPIC_API_KEY');
  });
});

describe('Codex CLI definitions', () => {
  const ctx = context({ agentConfig: 'gpt-5.3-codex' });
  const config = (id: string) =>
    getAgent(id).files!(ctx).find((f) => f.path === '.codex/config.toml')!.content;

  it("codex: the reference's exec flags, OPENAI_BASE_URL at the relay, CODEX_API_KEY = token", () => {
    const def = getAgent('codex');
    expect(def.command(ctx)).toEqual([
      'codex',
      '--search',
      'exec',
      '--json',
      '-c',
      'model_reasoning_summary=detailed',
      '--skip-git-repo-check',
      '--yolo',
      '--model',
      'gpt-5.3-codex',
      ctx.prompt,
    ]);
    expect(def.env(ctx)).toEqual({
      OPENAI_BASE_URL: 'http://127.0.0.1:18080/openai/v1',
      CODEX_API_KEY: TOKEN,
      OPENAI_API_KEY: '',
    });
    expect(def.traceFormat).toBe('codex-json');
    expect(config('codex')).not.toContain('model_reasoning_effort');
  });

  it('effort variants put model_reasoning_effort before any table; codexhigh/low trace as text', () => {
    for (const [id, effort] of [
      ['codexhigh', 'high'],
      ['codexlow', 'low'],
      ['codex_non_api_high', 'high'],
      ['codex_non_api_xhigh', 'xhigh'],
    ] as const) {
      const toml = config(id);
      const effortAt = toml.indexOf(`model_reasoning_effort = "${effort}"`);
      expect(effortAt).toBeGreaterThan(-1);
      expect(effortAt).toBeLessThan(toml.indexOf('['));
    }
    expect(getAgent('codexhigh').command(ctx)).not.toContain('--json');
    expect(getAgent('codexhigh').traceFormat).toBe('text');
    expect(getAgent('codex_non_api_high').command(ctx)).toContain('--json');
  });

  it('subscription variants: ChatGPT login forced, keys blanked, auth.json copied in', () => {
    const def = getAgent('codex_non_api');
    expect(def.env(ctx)).toEqual({ CODEX_API_KEY: '', OPENAI_API_KEY: '' });
    const toml = config('codex_non_api');
    expect(toml.indexOf('forced_login_method = "chatgpt"')).toBeLessThan(toml.indexOf('['));
    expect(agentAuth(def)).toMatchObject({ mode: 'credential-file', files: [{ to: '.codex/auth.json' }] });
  });

  it('reprompt variants resume the last session while 30 minutes remain', () => {
    const ids = AGENTS.filter((a) => a.reprompt).map((a) => a.id);
    expect(ids).toEqual([
      'codex_reprompt',
      'codex_non_api_reprompt',
      'codex_non_api_high_reprompt',
      'codex_non_api_xhigh_reprompt',
    ]);
    const def = getAgent('codex_non_api_high_reprompt');
    expect(def.reprompt!.minRemainingMinutes).toBe(REPROMPT_MIN_MINUTES);
    expect(REPROMPT_MIN_MINUTES).toBe(30);
    const argv = def.reprompt!.command(ctx, 2, 5);
    expect(argv.slice(0, 5)).toEqual(['codex', '--search', 'exec', 'resume', '--last']);
    expect(argv).toContain('--json');
    expect(argv.at(-1)).toBe(repromptMessage(2, 5));
    expect(argv.at(-1)).toContain('2h 5m');
  });
});

describe('Gemini CLI, OpenCode and command definitions', () => {
  it("gemini: the reference's flags, GOOGLE_GEMINI_BASE_URL at the relay, no telemetry", () => {
    const def = getAgent('gemini');
    const ctx = context({ agentConfig: 'gemini-3-pro-preview' });
    expect(def.command(ctx)).toEqual([
      'gemini',
      '--yolo',
      '--model',
      'gemini-3-pro-preview',
      '--output-format',
      'stream-json',
      '-p',
      ctx.prompt,
    ]);
    expect(def.env(ctx)).toEqual({
      GOOGLE_GEMINI_BASE_URL: 'http://127.0.0.1:18080/gemini',
      GEMINI_API_KEY: TOKEN,
      GEMINI_SANDBOX: 'false',
    });
    const settings = JSON.parse(def.files!(ctx)[0]!.content);
    expect(settings.privacy.usageStatisticsEnabled).toBe(false);
  });

  it('opencode: every relayed provider points at the relay; the key comes from the environment', () => {
    const def = getAgent('opencode');
    const ctx = context({
      agentConfig: 'opencode/kimi-k2.5',
      relayUrls: { opencode: 'http://127.0.0.1:1/opencode', anthropic: 'http://127.0.0.1:1/anthropic' },
    });
    expect(def.command(ctx)).toEqual([
      'opencode',
      'run',
      '--model',
      'opencode/kimi-k2.5',
      '--format',
      'json',
      ctx.prompt,
    ]);
    const file = def.files!(ctx)[0]!;
    expect(file.path).toBe('.config/opencode/opencode.json');
    const config = JSON.parse(file.content);
    expect(config.permission).toBe('allow');
    expect(config.provider).toEqual({
      opencode: { options: { baseURL: 'http://127.0.0.1:1/opencode/v1', apiKey: '{env:OPENCODE_API_KEY}' } },
      anthropic: {
        options: { baseURL: 'http://127.0.0.1:1/anthropic/v1', apiKey: '{env:ANTHROPIC_API_KEY}' },
      },
    });
    expect(def.env(ctx)).toEqual({ OPENCODE_API_KEY: TOKEN, ANTHROPIC_API_KEY: TOKEN });
    expect(file.content).not.toContain(TOKEN);
    expect(opencodeProvider('anthropic/claude-opus-4-5')).toBe('anthropic');
    expect(opencodeProvider('google/gemini-3-pro')).toBe('gemini');
    expect(opencodeProvider('zai/glm-5')).toBeNull();
  });

  it('command: runs the given argv with the prompt and every relayed SDK variable', () => {
    const def = getAgent('command');
    const ctx = context({ agentCommand: ['python3', 'my_agent.py', '--fast'] });
    expect(def.command(ctx)).toEqual(['python3', 'my_agent.py', '--fast']);
    expect(def.env(ctx)).toMatchObject({
      PROMPT: ctx.prompt,
      ANTHROPIC_BASE_URL: 'http://127.0.0.1:18080/anthropic',
      OPENAI_BASE_URL: 'http://127.0.0.1:18080/openai/v1',
      OPENAI_API_KEY: TOKEN,
      GOOGLE_GEMINI_BASE_URL: 'http://127.0.0.1:18080/gemini',
    });
    expect(thrown(() => def.command(context()))).toBeInstanceOf(UserError);
  });
});

describe('real credentials stay on the host', () => {
  const REAL = {
    ANTHROPIC_API_KEY: 'sk-ant-REAL',
    OPENAI_API_KEY: 'sk-openai-REAL',
    GEMINI_API_KEY: 'gemini-REAL',
    OPENCODE_API_KEY: 'oc-REAL',
    CLAUDE_CODE_OAUTH_TOKEN: 'oauth-REAL',
  };

  it('no definition puts a real key into its environment, files or command', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-creds-'));
    for (const def of AGENTS) {
      const ctx = context({
        agentConfig: def.id === 'opencode' ? 'opencode/kimi-k2.5' : 'model-x',
        agentCommand: ['true'],
      });
      if (agentAuth(def).mode === 'relay')
        expect(Object.keys(relayCredentials(def, REAL, dir, ctx.agentConfig)).length).toBeGreaterThan(0);
      const everything = JSON.stringify([def.env(ctx), def.files?.(ctx) ?? [], def.command(ctx)]);
      for (const secret of Object.values(REAL)) expect(everything, def.id).not.toContain(secret);
    }
  });

  it('relayCredentials: the agent’s own provider from the host env or a credentials file, else a UserError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-creds-'));
    expect(relayCredentials(getAgent('claude'), REAL, dir)).toEqual({ anthropic: 'sk-ant-REAL' });
    expect(relayCredentials(getAgent('claude_non_api'), REAL, dir)).toEqual({ anthropic: 'oauth-REAL' });
    writeFileSync(join(dir, 'claude_oauth_token'), 'oauth-FROM-FILE\n');
    expect(relayCredentials(getAgent('claude_non_api'), {}, dir)).toEqual({ anthropic: 'oauth-FROM-FILE' });
    // the reference moves OPENAI_API_KEY to CODEX_API_KEY; either works, CODEX_API_KEY first
    expect(relayCredentials(getAgent('codex'), { OPENAI_API_KEY: 'a', CODEX_API_KEY: 'b' }, dir)).toEqual({
      openai: 'b',
    });
    // opencode: the config's provider is required, others come along when present
    expect(relayCredentials(getAgent('opencode'), REAL, dir, 'anthropic/claude-opus-4-5')).toEqual({
      anthropic: 'sk-ant-REAL',
      openai: 'sk-openai-REAL',
      gemini: 'gemini-REAL',
    });
    const missing = thrown(() => relayCredentials(getAgent('gemini'), {}, dir));
    expect(missing).toBeInstanceOf(UserError);
    expect((missing as UserError).hint).toContain('GEMINI_API_KEY');
    expect(relayCredentials(getAgent('command'), { OPENAI_API_KEY: 'k' }, dir)).toEqual({ openai: 'k' });
  });

  it('credentialFilesFor: the ChatGPT login file must exist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptb-creds-'));
    expect(thrown(() => credentialFilesFor(getAgent('codex_non_api'), dir))).toBeInstanceOf(UserError);
    expect(credentialFilesFor(getAgent('codex'), dir)).toEqual([]);
  });
});

describe('prices', () => {
  it('prices listed models and their snapshots, and nothing else', () => {
    expect(priceOf('claude-sonnet-4-5-20250929')).toBe(PRICES['claude-sonnet-4-5']);
    expect(priceOf('gpt-5-2025-08-07')).toBe(PRICES['gpt-5']);
    expect(priceOf('models/gemini-2.5-pro')).toBe(PRICES['gemini-2.5-pro']);
    expect(priceOf('anthropic/claude-opus-4-5')).toBe(PRICES['claude-opus-4-5']);
    expect(priceOf('claude-opus-4-6[1m]')).toBe(PRICES['claude-opus-4-6']);
    // a newer model is not priced as an older one
    expect(priceOf('claude-opus-4-7')).toBeNull();
    expect(priceOf('gpt-5.4')).toBeNull();
    expect(priceOf(null)).toBeNull();
  });

  it('cost = tokens × price per token, cache reads and writes at their own prices', () => {
    const cost = costOf('claude-sonnet-4-5', {
      inputTokens: 1_000_000,
      outputTokens: 100_000,
      cacheReadTokens: 1_000_000,
      cacheWriteTokens: 1_000_000,
    });
    expect(cost).toBeCloseTo(3 + 1.5 + 0.3 + 3.75, 9);
    expect(
      costOf('unknown-model', { inputTokens: 5, outputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0 }),
    ).toBeNull();
  });
});
