import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelCallEventSchema } from '../../src/core/trial.ts';
import { trialLayout } from '../../src/core/trialLayout.ts';
import { runCli, tempHome } from '../helpers/runCli.ts';
import { type StandInProvider, startStandInProvider } from '../helpers/standInProviders.ts';
import { testPython } from '../helpers/tinyModel.ts';

const REAL_KEY = `sk-ant-${'test-real-key'}-0123456789abcdef`;

/** A scaffold that calls its provider in a loop, through the relay, until it is stopped. */
const SPENDER = `
import json, os, time, urllib.request, urllib.error
url = os.environ["ANTHROPIC_BASE_URL"].rstrip("/") + "/v1/messages"
body = json.dumps({"model": "claude-opus-4-6", "max_tokens": 64,
                   "messages": [{"role": "user", "content": "x " * 4000}]}).encode()
for i in range(200):
    req = urllib.request.Request(url, data=body, headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"],
        "anthropic-version": "2023-06-01", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            print("call", i, r.status, flush=True)
    except urllib.error.HTTPError as e:
        print("call", i, e.code, flush=True)
    time.sleep(0.2)
print("never stopped", flush=True)
`;

describe('the model-call budget', () => {
  let standIn: StandInProvider | undefined;
  afterAll(async () => standIn?.close());

  it('stops the agent once its relayed calls cost the budget, and records every call', async () => {
    standIn = await startStandInProvider('anthropic', {
      expectedKey: REAL_KEY,
      script: { commands: [], finalMessage: 'ok' },
    });
    const home = tempHome();
    const env = {
      PTB_HOME: home,
      PTB_PYTHON: await testPython(),
      PTB_OFFLINE: '1',
      ANTHROPIC_API_KEY: REAL_KEY,
      PTB_RELAY_UPSTREAM_ANTHROPIC: standIn.url,
    };
    const run = await runCli(
      [
        'trial',
        'run',
        '-a',
        'command',
        '--agent-command',
        `python3 -c '${SPENDER}'`,
        '-m',
        'acme/tiny',
        '-b',
        'gsm8k',
        '--hours',
        '0.1',
        '--gpus',
        '0',
        '--network',
        'none',
        '--budget-usd',
        '0.02',
        '--json',
      ],
      env,
    );
    expect(run.code, run.stderr).toBe(0);
    const trial = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
      agent_outcome: string;
      cost_usd: number;
      dir: string;
    };
    expect(trial.agent_outcome).toBe('budget_exceeded');
    const layout = trialLayout(trial.dir);
    const calls = readFileSync(layout.ledgers.modelCalls, 'utf8')
      .trim()
      .split('\n')
      .map((l) => ModelCallEventSchema.parse(JSON.parse(l)));
    const spent = calls.reduce((n, c) => n + (c.costUsd ?? 0), 0);
    expect(spent).toBeGreaterThanOrEqual(0.02);
    expect(calls.length).toBeLessThan(60);
    expect(trial.cost_usd).toBeCloseTo(spent, 6);
    const out = readFileSync(layout.solveOut, 'utf8');
    expect(out).toContain('model-call budget reached');
    expect(out).not.toContain('never stopped');
    // The real key reached the provider but none of the trial's files.
    expect(standIn.requests.length).toBeGreaterThan(0);
    expect(readFileSync(layout.ledgers.modelCalls, 'utf8')).not.toContain(REAL_KEY);
    expect(out).not.toContain(REAL_KEY);
  }, 300_000);
});
