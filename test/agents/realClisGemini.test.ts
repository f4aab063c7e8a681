import { expect, it } from 'vitest';
import { describeRealCli, expectScriptedSession, runRealCli } from './realClisHarness.ts';

// The real Gemini CLI 0.29.0 from npm, in the bwrap sandbox, through the relay (GOOGLE_GEMINI_BASE_URL)
// to a stand-in of the Gemini API.
describeRealCli('gemini', 'Gemini CLI, for real, in the sandbox', () => {
  it('gemini: runs a shell command, writes a file, calls evaluate.py and finishes', async () => {
    const run = await runRealCli({
      agentId: 'gemini',
      api: 'gemini',
      provider: 'gemini',
      agentConfig: 'gemini-3-pro-preview',
    });
    expectScriptedSession(run);
    const main = run.standIn.requests.filter((r) => r.role === 'main');
    expect(main.every((r) => r.path === '/v1beta/models/gemini-3-pro-preview:streamGenerateContent')).toBe(
      true,
    );
    expect(run.trajectory.model).toBe('gemini-3-pro-preview');
    expect(run.ledger.every((e) => e.model === 'gemini-3-pro-preview')).toBe(true);
  }, 300_000);
});
