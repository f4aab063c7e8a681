import { expect, it } from 'vitest';
import { describeRealCli, expectScriptedSession, runRealCli } from './realClisHarness.ts';

// The real OpenCode from npm, in the bwrap sandbox, through the relay (opencode.json baseURL) to a
// stand-in of the OpenAI-compatible API of OpenCode Zen (Chat Completions) and of OpenAI (Responses).
// OpenCode also asks a small model (gpt-5-nano) for a session title: the stand-in answers it as a side call.
describeRealCli('opencode', 'OpenCode, for real, in the sandbox', () => {
  it('opencode/kimi-k2.5 (Zen, Chat Completions): the scripted session', async () => {
    const run = await runRealCli({
      agentId: 'opencode',
      api: 'openai',
      provider: 'opencode',
      agentConfig: 'opencode/kimi-k2.5',
      models: ['kimi-k2.5', 'gpt-5-nano'],
    });
    expectScriptedSession(run);
    const main = run.standIn.requests.filter((r) => r.role === 'main');
    expect(main.every((r) => r.path === '/v1/chat/completions')).toBe(true);
    expect(run.ledger.filter((e) => e.model === 'kimi-k2.5')).toHaveLength(3);
  }, 300_000);

  it('openai/gpt-5.1-codex-max (Responses API): the scripted session', async () => {
    const run = await runRealCli({
      agentId: 'opencode',
      api: 'openai',
      provider: 'openai',
      agentConfig: 'openai/gpt-5.1-codex-max',
      models: ['gpt-5.1-codex-max', 'gpt-5-nano'],
    });
    expectScriptedSession(run);
    expect(run.standIn.requests.every((r) => r.path === '/v1/responses')).toBe(true);
  }, 300_000);
});
