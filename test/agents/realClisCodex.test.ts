import { expect, it } from 'vitest';
import { repromptMessage } from '../../src/agents/definitions/codex.ts';
import { describeRealCli, describeRun, expectScriptedSession, runRealCli } from './realClisHarness.ts';

/** timer.sh that reports one hour left on its first call and has expired on every later one. */
const ONE_RESUME_TIMER = `#!/bin/bash
state="$(dirname "$0")/.timer_calls"
n=$(cat "$state" 2>/dev/null || echo 0)
echo $((n + 1)) > "$state"
if [ "$n" -eq 0 ]; then printf 'Remaining time (hours:minutes):\\n1:00\\n'; else echo 'Timer expired!'; fi
`;

// The real Codex CLI 0.98.0 from npm, in the bwrap sandbox, through the relay to a stand-in of the
// OpenAI Responses API.
describeRealCli('codex', 'Codex CLI, for real, in the sandbox', () => {
  it('codex: runs a shell command, writes a file, calls evaluate.py and finishes', async () => {
    const run = await runRealCli({
      agentId: 'codex',
      api: 'openai',
      provider: 'openai',
      agentConfig: 'gpt-5.3-codex',
    });
    expectScriptedSession(run);
    expect(run.stdout.split('\n')[0]).toContain('"type":"thread.started"');
    expect(run.standIn.requests.every((r) => r.path === '/v1/responses' && r.stream)).toBe(true);
    // gpt-5.3-codex is in the price table: every call has a cost
    expect(run.ledger.every((e) => e.model === 'gpt-5.3-codex' && (e.costUsd ?? 0) > 0)).toBe(true);
  }, 300_000);

  it('codex_reprompt: with time left, resumes the same session with `exec resume --last`', async () => {
    const run = await runRealCli({
      agentId: 'codex_reprompt',
      api: 'openai',
      provider: 'openai',
      agentConfig: 'gpt-5.3-codex',
      timer: ONE_RESUME_TIMER,
    });
    const info = describeRun(run);
    expect(run.result.exitCode, info).toBe(0);
    expect(run.standIn.problems, info).toEqual([]);
    const main = run.standIn.requests.filter((r) => r.role === 'main');
    // three turns, then one resumed turn that the stand-in answers with its final message
    expect(
      main.map((r) => r.answer),
      info,
    ).toEqual(['echo hello > note.txt && cat note.txt', 'python3 evaluate.py --limit 1', 'final', 'final']);
    const resumed = JSON.stringify(main[3]!.body);
    expect(resumed).toContain(repromptMessage(1, 0));
    // the resumed request carries the earlier conversation: it is the same session
    expect(main[3]!.toolResults).toHaveLength(2);
    expect(run.stderr).toContain('1h 0m left; resuming the session');
    expect(run.stderr).toContain('timer has expired; not resuming');
    expect(run.ledger).toHaveLength(run.standIn.requests.length);
  }, 300_000);
});
