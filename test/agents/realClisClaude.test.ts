import { expect, it } from 'vitest';
import { describeRealCli, expectScriptedSession, runRealCli } from './realClisHarness.ts';

// The real Claude Code 2.1.76 from npm, in the bwrap sandbox, through the relay to a stand-in of the
// Anthropic Messages API.
describeRealCli('claude', 'Claude Code, for real, in the sandbox', () => {
  it('claude: runs a shell command, writes a file, calls evaluate.py and finishes', async () => {
    const run = await runRealCli({
      agentId: 'claude',
      api: 'anthropic',
      provider: 'anthropic',
      agentConfig: 'claude-sonnet-4-5',
    });
    expectScriptedSession(run);
    // stream-json: the init line names the model; the result line carries Claude Code's own cost
    expect(run.trajectory.model).toBe('claude-sonnet-4-5');
    expect(run.trajectory.sessionId).toBeTruthy();
    // the relay priced the calls from its table, and its total agrees with what Claude Code computed
    const result = run.stdout
      .split('\n')
      .map((l) => (l.startsWith('{') ? JSON.parse(l) : {}))
      .find((e) => e.type === 'result');
    const relayCost = run.ledger.reduce((n, e) => n + (e.costUsd ?? 0), 0);
    expect(relayCost).toBeGreaterThan(0);
    expect(relayCost).toBeCloseTo(result.total_cost_usd, 6);
    expect(run.standIn.requests.every((r) => r.credentialSource === 'x-api-key')).toBe(true);
  }, 300_000);

  it('claude_non_api: the subscription OAuth token path goes through the relay too', async () => {
    const run = await runRealCli({
      agentId: 'claude_non_api',
      api: 'anthropic',
      provider: 'anthropic',
      agentConfig: 'claude-sonnet-4-5',
    });
    expectScriptedSession(run);
    // Claude Code sent the token as an OAuth Bearer credential; the relay put the real one in its place
    expect(run.standIn.requests.every((r) => r.credentialSource === 'authorization')).toBe(true);
  }, 300_000);
});
